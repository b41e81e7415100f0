// The on-disk record of what one window holds frozen, so that a window started after a crash
// (of the extension host *and* its companion) can resume what nobody else will. One file per
// extension host, written atomically. Files are read as untrusted input: whatever one says,
// a process is signalled only if it is still the process recorded (pid and start time), is
// stopped, and is a crosvm VM or one of its descendants; and a cgroup is thawed only if it is
// named like our freeze cgroups, a direct child of the cgroup it claims to come from, inside
// a cgroup hierarchy mounted here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { identityOf, isObject, isTicks } from './validate';
import { ensurePrivateFolder, writePrivateFile } from './privateFolder';
import { FreezeCgroup, mountedHierarchies, thawAndRestore, validateFreezeCgroup } from './cgroupfs';
import type { FreezeMethod } from './method';
import { isExitedState, isStoppedState, readCmdline, readExe, readStat } from './procfs';
import { ProcessIdentity, sameProcess } from './processTree';
import { continueProcesses } from './signalFreezer';
import { matchesProcessNames, VmSnapshot } from './vms';

export const JOURNAL_VERSION = 1;
/** Larger files are not ours: the biggest real journal is a few KiB. */
export const MAX_JOURNAL_BYTES = 256 * 1024;
const MAX_VMS = 64;
const MAX_PROCESSES = 4096;
const MAX_CGROUPS = 256;

export interface JournalProcess extends ProcessIdentity {
  readonly label: string;
}

export interface JournalVm extends ProcessIdentity {
  readonly name: string;
  /** Date.now() when it was frozen. */
  readonly since: number;
  /** Absent in journals written before the cgroup method: `signal`. */
  readonly method: FreezeMethod;
  readonly processes: readonly JournalProcess[];
  /** With the cgroup method: the freeze cgroups, to thaw and remove. */
  readonly cgroups: readonly FreezeCgroup[];
}

export interface Journal {
  readonly version: number;
  /** The extension host that froze these processes. */
  readonly owner: ProcessIdentity;
  /** Its companion, which resumes them if the owner dies. */
  readonly companion: ProcessIdentity | undefined;
  readonly vms: readonly JournalVm[];
}

export function journalFile(dir: string, owner: ProcessIdentity): string {
  return path.join(dir, `window-${owner.pid}-${owner.startTime}.json`);
}

/** Writes atomically, owner-only, in a folder proven private, never through a link. */
export function writeJournal(file: string, journal: Journal): void {
  writePrivateFile(file, JSON.stringify(journal));
}

/** Removes a journal, only from a folder that is still private (else the path may lead elsewhere). */
export function removeJournal(file: string): void {
  if (ensurePrivateFolder(path.dirname(file), undefined, false) === undefined) fs.rmSync(file, { force: true });
}

/** Validates a parsed journal strictly; returns why not when it is not one. */
export function parseJournal(value: unknown, mounted = mountedHierarchies()): Journal | string {
  if (!isObject(value)) return 'not an object';
  if (value.version !== JOURNAL_VERSION) return `unknown version ${JSON.stringify(value.version)}`;
  const owner = identityOf(value.owner);
  if (!owner) return 'no valid owner';
  const companion = value.companion === undefined ? undefined : identityOf(value.companion);
  if (value.companion !== undefined && !companion) return 'invalid companion';
  if (!Array.isArray(value.vms) || value.vms.length > MAX_VMS) return 'vms is not a short list';
  const vms: JournalVm[] = [];
  let total = 0;
  for (const vm of value.vms) {
    const id = identityOf(vm);
    if (!id || !isObject(vm) || typeof vm.name !== 'string' || !isTicks(vm.since) || !Array.isArray(vm.processes)) {
      return 'invalid VM entry';
    }
    const method = vm.method ?? 'signal';
    if (method !== 'signal' && method !== 'cgroup') return 'unknown method';
    const rawCgroups = vm.cgroups ?? [];
    if (!Array.isArray(rawCgroups) || rawCgroups.length > MAX_CGROUPS || (method === 'signal' && rawCgroups.length > 0)) {
      return 'invalid cgroups';
    }
    const cgroups: FreezeCgroup[] = [];
    for (const raw of rawCgroups) {
      const group = validateFreezeCgroup(raw, mounted, owner.pid);
      if (typeof group === 'string') return `invalid freeze cgroup: ${group}`;
      cgroups.push(group);
    }
    total += vm.processes.length;
    if (total > MAX_PROCESSES) return 'too many processes';
    const processes: JournalProcess[] = [];
    for (const p of vm.processes) {
      const pid = identityOf(p);
      if (!pid || !isObject(p) || typeof p.label !== 'string') return 'invalid process entry';
      processes.push({ ...pid, label: p.label.slice(0, 64) });
    }
    vms.push({ ...id, name: vm.name.slice(0, 256), since: vm.since, method, processes, cgroups });
  }
  return { version: JOURNAL_VERSION, owner, companion, vms };
}

export interface JournalEntry {
  readonly file: string;
  readonly journal: Journal | undefined;
  /** Why the file is not a valid journal. */
  readonly problem: string | undefined;
}

/**
 * Every journal in `dir`, each validated; none when `dir` does not exist or is not private to
 * this user (files another user could have planted are neither trusted nor acted on).
 */
export function readJournals(dir: string): JournalEntry[] {
  if (ensurePrivateFolder(dir, undefined, false) !== undefined) return [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const entries: JournalEntry[] = [];
  for (const name of names) {
    if (!/^window-\d+-\d+\.json$/.test(name)) continue;
    const file = path.join(dir, name);
    try {
      const st = fs.lstatSync(file);
      if (!st.isFile()) {
        entries.push({ file, journal: undefined, problem: 'not a regular file' });
        continue;
      }
      if (st.size > MAX_JOURNAL_BYTES) {
        entries.push({ file, journal: undefined, problem: `${st.size} bytes, more than a journal can hold` });
        continue;
      }
      const parsed = parseJournal(JSON.parse(fs.readFileSync(file, 'utf8')));
      entries.push(
        typeof parsed === 'string' ? { file, journal: undefined, problem: parsed } : { file, journal: parsed, problem: undefined },
      );
    } catch (error) {
      entries.push({ file, journal: undefined, problem: (error as Error).message });
    }
  }
  return entries;
}

/** Still running: same pid and start time, and not a zombie waiting to be reaped. */
export function isAlive(p: ProcessIdentity): boolean {
  const stat = readStat(p.pid);
  return stat !== undefined && stat.startTime === p.startTime && !isExitedState(stat.state);
}

/** The process, or one of its ancestors, is named like crosvm: it belongs to a crosvm tree. */
export function inCrosvmTree(pid: number, names: readonly string[]): boolean {
  for (let current = pid, hops = 0; current > 1 && hops < 4096; hops++) {
    if (matchesProcessNames(names, readExe(current), readCmdline(current)?.[0])) return true;
    current = readStat(current)?.ppid ?? 0;
  }
  return false;
}

export interface RecoveredVm {
  readonly name: string;
  readonly pid: number;
  readonly method: FreezeMethod;
  readonly resumed: readonly JournalProcess[];
}

export interface Recovery {
  readonly vms: readonly RecoveredVm[];
  /** Entries not signalled, and why (different process now, not stopped, not crosvm). */
  readonly untouched: readonly string[];
  /** Files that were not journals. */
  readonly invalid: readonly string[];
}

/**
 * Resumes what windows that died together with their companions left frozen. A journal whose
 * owner or companion still runs is left alone: that process is in charge. Each file handled,
 * valid or not, is removed so it is reported once.
 */
export function recoverLeftovers(dir: string, names: readonly string[], self: ProcessIdentity): Recovery {
  const vms: RecoveredVm[] = [];
  const untouched: string[] = [];
  const invalid: string[] = [];
  for (const entry of readJournals(dir)) {
    const { journal } = entry;
    if (!journal) {
      invalid.push(`${path.basename(entry.file)}: ${entry.problem}`);
      removeJournal(entry.file);
      continue;
    }
    if (sameProcess(journal.owner, self)) continue;
    if (isAlive(journal.owner) || (journal.companion && isAlive(journal.companion))) continue;
    for (const vm of journal.vms) {
      if (vm.method === 'cgroup') {
        const thawed = thawLeftoverCgroups(vm, untouched);
        if (thawed.length > 0) vms.push({ name: vm.name, pid: vm.pid, method: 'cgroup', resumed: thawed });
        continue;
      }
      const resumed: JournalProcess[] = [];
      for (const p of [...vm.processes].reverse()) {
        const stat = readStat(p.pid);
        if (!stat || stat.startTime !== p.startTime) untouched.push(`${p.label} (pid ${p.pid}): now another process or gone`);
        else if (!isStoppedState(stat.state)) untouched.push(`${p.label} (pid ${p.pid}): not stopped`);
        else if (!inCrosvmTree(p.pid, names)) untouched.push(`${p.label} (pid ${p.pid}): not part of a crosvm VM`);
        else {
          try {
            process.kill(p.pid, 'SIGCONT');
            resumed.push(p);
          } catch (error) {
            untouched.push(`${p.label} (pid ${p.pid}): ${(error as NodeJS.ErrnoException).code}`);
          }
        }
      }
      if (resumed.length > 0) vms.push({ name: vm.name, pid: vm.pid, method: 'signal', resumed });
    }
    removeJournal(entry.file);
  }
  return { vms, untouched, invalid };
}

/**
 * Thaws the freeze cgroups a journal lists (validated when it was read), moves their
 * processes back and removes them. Returns the recorded processes that run again.
 */
export function thawLeftoverCgroups(vm: Pick<JournalVm, 'cgroups' | 'processes'>, notes: string[]): JournalProcess[] {
  const present = vm.cgroups.filter((g) => fs.existsSync(g.dir));
  for (const g of vm.cgroups) if (!present.includes(g)) notes.push(`freeze cgroup ${g.dir}: already gone`);
  if (present.length === 0) return [];
  for (const problem of thawAndRestore(present)) notes.push(problem);
  return vm.processes.filter(isAlive);
}

/**
 * Resumes what another window holds frozen of `vm`, after the user agreed to take over: its
 * freeze cgroups thawed, moved back and removed; or SIGCONT for each process it recorded that
 * is still that process (start time) and still part of `vm` as read now. Nothing else.
 */
export function takeOverFrozenVm(
  record: Pick<JournalVm, 'method' | 'processes' | 'cgroups'>,
  vm: VmSnapshot,
): { resumed: ProcessIdentity[]; notes: string[] } {
  const notes: string[] = [];
  if (record.method === 'cgroup') return { resumed: thawLeftoverCgroups(record, notes), notes };
  const current = new Map([vm.main, ...vm.devices].map((p) => [p.pid, p]));
  const mine = record.processes
    .map((r) => current.get(r.pid))
    .filter((p): p is NonNullable<typeof p> => p !== undefined && record.processes.some((r) => sameProcess(r, p)))
    .map((p) => ({ pid: p.pid, startTime: p.startTime, label: p.label, ppid: p.ppid }));
  return { resumed: continueProcesses(mine).resumed, notes };
}

/** VMs frozen by other windows that still run: pid → processes, for the tree and resume. */
export function frozenByOthers(dir: string, self: ProcessIdentity): Map<number, { owner: ProcessIdentity; vm: JournalVm }> {
  const result = new Map<number, { owner: ProcessIdentity; vm: JournalVm }>();
  for (const { journal } of readJournals(dir)) {
    if (!journal || sameProcess(journal.owner, self)) continue;
    if (!isAlive(journal.owner)) continue;
    for (const vm of journal.vms) result.set(vm.pid, { owner: journal.owner, vm });
  }
  return result;
}
