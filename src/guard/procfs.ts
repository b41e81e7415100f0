// Reading and parsing /proc. Parsers are pure functions over the text the kernel gives, so
// they are unit-tested on hostile samples; readers return `undefined` when a process or
// thread is gone, because in a live process tree that is an ordinary event, not an error.
import * as fs from 'node:fs';

export const PROC_ROOT = '/proc';

/** One-letter scheduler state from /proc/<pid>/stat (see proc(5)). */
export type TaskState = string;

/** The fields of /proc/<pid>/stat that the guard needs. */
export interface StatFields {
  readonly pid: number;
  /** `comm`: the thread name, which crosvm sets to the device's debug label. */
  readonly comm: string;
  readonly state: TaskState;
  readonly ppid: number;
  readonly threads: number;
  /** Field 22, clock ticks after boot: with the pid, the identity of a process. */
  readonly startTime: number;
}

export interface StatusFields {
  readonly uid: { real: number; effective: number; saved: number };
  readonly tracerPid: number;
  /**
   * A stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) waits in `ShdPnd` or `SigPnd`: sent to a
   * process already stopped, it stays pending (no thread takes it), and a SIGCONT discards it.
   */
  readonly stopPending: boolean;
}

/** Signals 19 to 22 (bit n-1 for signal n) in the pending masks of /proc/<pid>/status. */
const STOP_SIGNALS = 0x3c0000n;

/**
 * Parses a /proc/<pid>/stat line. `comm` sits between the first `(` and the *last* `)`:
 * a label such as `weird) dev` contains `)`, and a parser that stops at the first one (as
 * crosvm's does) reads the wrong fields.
 */
export function parseStat(text: string): StatFields | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3].
  if (rest.length < 20 || !Number.isSafeInteger(pid)) return undefined;
  const state = rest[0];
  const ppid = Number(rest[1]);
  const threads = Number(rest[17]);
  const startTime = Number(rest[19]);
  if (state.length !== 1 || ![ppid, threads, startTime].every(Number.isSafeInteger)) return undefined;
  return { pid, comm: text.slice(open + 1, close), state, ppid, threads, startTime };
}

/** Parses the lines of /proc/<pid>/status the guard needs: `Uid:`, `TracerPid:`, `SigPnd:` and `ShdPnd:`. */
export function parseStatus(text: string): StatusFields | undefined {
  const uidLine = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(text);
  const tracerLine = /^TracerPid:\s+(\d+)/m.exec(text);
  if (!uidLine || !tracerLine) return undefined;
  const pending = [/^SigPnd:\s+([0-9a-f]{1,16})$/m, /^ShdPnd:\s+([0-9a-f]{1,16})$/m].map((re) => BigInt(`0x${re.exec(text)?.[1] ?? '0'}`));
  return {
    uid: { real: Number(uidLine[1]), effective: Number(uidLine[2]), saved: Number(uidLine[3]) },
    tracerPid: Number(tracerLine[1]),
    stopPending: pending.some((mask) => (mask & STOP_SIGNALS) !== 0n),
  };
}

/** Parses a `children` file: pids separated by spaces. */
export function parseChildren(text: string): number[] {
  const pids: number[] = [];
  for (const word of text.split(/\s+/)) {
    if (word === '') continue;
    const pid = Number(word);
    if (Number.isSafeInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

/** Parses /proc/<pid>/cmdline: NUL-separated arguments, usually NUL-terminated. */
export function parseCmdline(text: string): string[] {
  const args = text.split('\0');
  if (args.length > 0 && args[args.length - 1] === '') args.pop();
  return args;
}

export function isStoppedState(state: TaskState): boolean {
  // `T`: stopped by a signal; `t`: stopped by a tracer (a debugger holds it). crosvm counts
  // only `T`, so a process held by gdb would make its freeze time out.
  return state === 'T' || state === 't';
}

/** `Z`: exited, waiting to be reaped; `X`: being torn down. Neither runs nor writes memory. */
export function isExitedState(state: TaskState): boolean {
  return state === 'Z' || state === 'X';
}

const readBuffer = Buffer.allocUnsafe(64 * 1024);

/**
 * Reads a small /proc file with one open/read/close and a shared buffer: this runs hundreds
 * of times per freeze, and `fs.readFileSync` costs an extra fstat and allocation each time.
 * Inside KeptProcFiles.run, a file read before is read again with one pread(2) on the file
 * kept open. Returns undefined when the file is gone (the process or thread exited).
 */
export function readProcFile(path: string): string | undefined {
  if (openFiles) return readKeptOpen(openFiles, path);
  const fd = openProcFile(path);
  if (fd === undefined) return undefined;
  try {
    return readOpenProcFile(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The files of the KeptProcFiles whose run() is in progress, by path. */
let openFiles: Map<string, number> | undefined;
/** Beyond this many, files are opened and closed per read again (the host's fd limit). */
const MAX_OPEN_FILES = 2048;

/**
 * /proc files kept open from one call to the next, so that each later read of the same file
 * costs one pread(2) instead of open, read and close: a freeze reads each file several times
 * (walk, proof, confirmation, re-scan), and a debugger that steps freezes and resumes the same
 * processes many times a second. An open /proc file stays bound to its process: once that
 * process is gone, the read fails (ESRCH) even if its pid was reused, so a file kept open never
 * describes another process. Everything is closed once `idleMs` pass without a call.
 */
export class KeptProcFiles {
  private readonly files = new Map<string, number>();
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly idleMs: number) {}

  /** Runs `work` (sync or async) with the /proc files it reads kept open; nested runs share the outer's. */
  run<T>(work: () => T): T {
    if (openFiles) return work();
    clearTimeout(this.idle);
    openFiles = this.files;
    let result: T;
    try {
      result = work();
    } catch (error) {
      this.release();
      throw error;
    }
    if (!(result instanceof Promise)) {
      this.release();
      return result;
    }
    return result.finally(() => this.release()) as T;
  }

  close(): void {
    clearTimeout(this.idle);
    for (const fd of this.files.values()) fs.closeSync(fd);
    this.files.clear();
  }

  private release(): void {
    openFiles = undefined;
    this.idle = setTimeout(() => this.close(), this.idleMs);
    this.idle.unref?.();
  }
}

function readKeptOpen(files: Map<string, number>, path: string): string | undefined {
  let fd = files.get(path);
  if (fd === undefined) {
    fd = openProcFile(path);
    if (fd === undefined) return undefined;
    if (files.size >= MAX_OPEN_FILES) {
      try {
        return readOpenProcFile(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    files.set(path, fd);
  }
  const text = readOpenProcFile(fd, 0);
  if (text !== undefined) return text;
  // Its process is gone. The pid may name a new process by now, as a fresh open would find:
  // read it the way a read outside KeptProcFiles.run would (proofs decide what it is).
  files.delete(path);
  fs.closeSync(fd);
  return readProcFile(path);
}

/** Opens a /proc file for reading; undefined when it is gone. */
function openProcFile(path: string): number | undefined {
  try {
    return fs.openSync(path, 'r');
  } catch (error) {
    if (isGone(error)) return undefined;
    throw error;
  }
}

/**
 * Reads a /proc file opened by openProcFile, from the start when `position` is 0 (pread: the
 * kernel generates the text anew); undefined when its process has exited since.
 */
function readOpenProcFile(fd: number, position: number | null = null): string | undefined {
  let text = '';
  for (;;) {
    let count: number;
    try {
      count = fs.readSync(fd, readBuffer, 0, readBuffer.length, position === null ? null : position + text.length);
    } catch (error) {
      if (isGone(error)) return undefined;
      throw error;
    }
    text += readBuffer.toString('latin1', 0, count);
    // /proc files are generated whole per read call: a read that does not fill the
    // buffer has reached the end, which saves the second read(2) that would return 0.
    if (count < readBuffer.length) return text;
  }
}

/**
 * `stat` and the owner (`status`) of one and the same process. Both files are opened before
 * either is read: an open /proc file stays bound to its process, and a `stat` that still shows
 * the expected start time after both opens proves that no reuse of the pid came between them.
 */
export function readStatAndOwner(
  pid: number,
  withUidMap = false,
): { stat: StatFields; uid: number; tracerPid: number; uidMap?: string } | undefined {
  const statFd = openProcFile(`${PROC_ROOT}/${pid}/stat`);
  if (statFd === undefined) return undefined;
  let statusFd: number | undefined;
  let uidMapFd: number | undefined;
  try {
    statusFd = openProcFile(`${PROC_ROOT}/${pid}/status`);
    if (statusFd === undefined) return undefined;
    // Opened with the others, before any is read: all three are of the same process.
    uidMapFd = withUidMap ? openProcFile(`${PROC_ROOT}/${pid}/uid_map`) : undefined;
    const statText = readOpenProcFile(statFd);
    const statusText = readOpenProcFile(statusFd);
    const uidMap = uidMapFd === undefined ? undefined : readOpenProcFile(uidMapFd);
    const stat = statText === undefined ? undefined : parseStat(statText);
    const status = statusText === undefined ? undefined : parseStatus(statusText);
    return stat && status && { stat, uid: status.uid.real, tracerPid: status.tracerPid, ...(uidMap !== undefined ? { uidMap } : {}) };
  } finally {
    fs.closeSync(statFd);
    if (statusFd !== undefined) fs.closeSync(statusFd);
    if (uidMapFd !== undefined) fs.closeSync(uidMapFd);
  }
}

/** One line of `/proc/<pid>/uid_map`: `count` ids from `inside` (in its namespace) are `outside` (in the reader's). */
export interface UidMapExtent {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

/** The extents of a `uid_map` (as seen from the reader's user namespace); lines of another shape are dropped. */
export function parseUidMap(text: string): UidMapExtent[] {
  const extents: UidMapExtent[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 3 || !fields.every((f) => /^\d{1,10}$/.test(f))) continue;
    const [inside, outside, count] = fields.map(Number);
    extents.push({ inside, outside, count });
  }
  return extents;
}

export function readUidMap(pid: number): string | undefined {
  return readProcFile(`${PROC_ROOT}/${pid}/uid_map`);
}

/** ENOENT: the /proc entry vanished; ESRCH: reading from a process that just exited. */
export function isGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}

export function readStat(pid: number, tid?: number): StatFields | undefined {
  const path = tid === undefined ? `${PROC_ROOT}/${pid}/stat` : `${PROC_ROOT}/${pid}/task/${tid}/stat`;
  const text = readProcFile(path);
  return text === undefined ? undefined : parseStat(text);
}

export function readStatus(pid: number): StatusFields | undefined {
  const text = readProcFile(`${PROC_ROOT}/${pid}/status`);
  return text === undefined ? undefined : parseStatus(text);
}

export function readCmdline(pid: number): string[] | undefined {
  const text = readProcFile(`${PROC_ROOT}/${pid}/cmdline`);
  return text === undefined ? undefined : parseCmdline(text);
}

/** The target of /proc/<pid>/exe, or undefined when it is gone or not ours to read. */
export function readExe(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`${PROC_ROOT}/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Thread ids of a process; empty when the process is gone. */
export function listThreads(pid: number): number[] {
  try {
    return fs.readdirSync(`${PROC_ROOT}/${pid}/task`).map(Number);
  } catch (error) {
    if (isGone(error)) return [];
    throw error;
  }
}

/** Every pid on the host. */
export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync(PROC_ROOT)) {
    const pid = Number(name);
    if (Number.isSafeInteger(pid) && pid > 0) pids.push(pid);
  }
  return pids;
}

/** `/proc/<pid>/task/<tid>/children` exists only with CONFIG_PROC_CHILDREN; checked once. */
let childrenFilesExist: boolean | undefined;
export function kernelHasChildrenFiles(): boolean {
  if (childrenFilesExist === undefined) {
    childrenFilesExist = fs.existsSync(`${PROC_ROOT}/self/task/${process.pid}/children`);
  }
  return childrenFilesExist;
}

/** USER_HZ: the unit of `stat` times; 100 on every Linux architecture's user ABI. */
const CLOCK_TICKS_PER_SECOND = 100;

/** Wall-clock time of a process start, from its `stat` start time and the boot time in /proc/stat. */
export function startTimeToDate(startTime: number): Date | undefined {
  const btime = /^btime\s+(\d+)/m.exec(readProcFile(`${PROC_ROOT}/stat`) ?? '');
  if (!btime) return undefined;
  return new Date((Number(btime[1]) + startTime / CLOCK_TICKS_PER_SECOND) * 1000);
}
