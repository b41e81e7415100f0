// Is a process's executable crosvm? A name proves nothing (`exec -a crosvm` names any program
// so), and the root companion must not freeze, for its invoker, root's processes that merely
// sit below a program so named (the root child of a sudo the invoker started). So root acts
// only on a VM whose main process runs a file holding strings every crosvm build compiles in,
// and only on processes that run that very file: crosvm forks its devices without an exec, so
// each one's executable is the main process's; a setuid program started below is another file.
import * as fs from 'node:fs';
import { PROC_ROOT } from './procfs';

/**
 * Module paths of crosvm's own crates, in its log and panic messages: present in every build
 * (checked with `strings` on the swap and default builds in /work/shared/real-crosvm), and in
 * the test fixture (test/fixture/crosvm.c) for the same reason.
 */
export const CROSVM_MARKERS: readonly string[] = ['devices::virtio', 'vm_control'];

/** An executable file, as the kernel names it: its device and inode. */
export interface ExecutableFile {
  readonly dev: number;
  readonly ino: number;
}

/** Per file (device, inode, size, mtime): whether it holds every marker. */
const verdicts = new Map<string, boolean>();
const CHUNK = 1 << 20;

/**
 * The `needles` found in the open file, read chunk by chunk with an overlap (a string that
 * straddles two chunks is still found) without holding a 100 MB binary in memory. `all`:
 * read on until every needle is found; else stop at the first.
 */
export function stringsInFile(fd: number, needles: readonly string[], until: 'first' | 'all'): string[] {
  const longest = Math.max(...needles.map((m) => m.length));
  const bytes = needles.map((m) => Buffer.from(m, 'latin1'));
  const found = new Set<string>();
  const buffer = Buffer.allocUnsafe(CHUNK + longest);
  let carried = 0;
  for (let position = 0; ;) {
    const read = fs.readSync(fd, buffer, carried, CHUNK, position);
    if (read === 0) return [...found];
    position += read;
    const filled = carried + read;
    const view = buffer.subarray(0, filled);
    for (let i = 0; i < bytes.length; i++) if (!found.has(needles[i]) && view.indexOf(bytes[i]) >= 0) found.add(needles[i]);
    if (found.size > 0 && (until === 'first' || found.size === needles.length)) return [...found];
    carried = Math.min(longest - 1, filled);
    buffer.copy(buffer, 0, filled - carried, filled);
  }
}

/** `file` (a path, or /proc/<pid>/exe) is a crosvm executable: its file, or why not. */
export function crosvmFile(file: string): { file: ExecutableFile } | { problem: string } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    return { problem: `its executable cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` };
  }
  try {
    const st = fs.fstatSync(fd);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    let isCrosvm = verdicts.get(key);
    if (isCrosvm === undefined) {
      isCrosvm = stringsInFile(fd, CROSVM_MARKERS, 'all').length === CROSVM_MARKERS.length;
      verdicts.set(key, isCrosvm);
    }
    return isCrosvm
      ? { file: { dev: st.dev, ino: st.ino } }
      : { problem: 'its executable is not crosvm (it lacks strings that every crosvm build holds)' };
  } finally {
    fs.closeSync(fd);
  }
}

/** The executable of process `pid`, through /proc/<pid>/exe: the file it runs even after a rebuild replaced it on disk. */
export function crosvmExecutableOf(pid: number): { file: ExecutableFile } | { problem: string } {
  return crosvmFile(`${PROC_ROOT}/${pid}/exe`);
}

/** Whether `pid` runs `file` now (false when it cannot be told). */
export function runsExecutable(pid: number, file: ExecutableFile): boolean {
  try {
    const st = fs.statSync(`${PROC_ROOT}/${pid}/exe`);
    return st.dev === file.dev && st.ino === file.ino;
  } catch {
    return false;
  }
}
