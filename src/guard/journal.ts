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
import { FreezeCgroup, mountedHierarchies, validateFreezeCgroup } from './cgroupfs';
import { driverOf, undoFreeze } from './methods/drivers';
import { FreezeMethod, HeldProcess, HeldRecord, isFreezeMethod } from './methods/methodDriver';
import { isExitedState, isStoppedState, readCmdline, readExe, readStat } from './procfs';
import { ProcessIdentity, sameProcess } from './processTree';
import { matchesProcessNames, VmSnapshot } from './vms';

export const JOURNAL_VERSION = 1;
/** Larger files are not ours: the biggest real journal is a few KiB. */
export const MAX_JOURNAL_BYTES = 256 * 1024;
const MAX_VMS = 64;
const MAX_PROCESSES = 4096;
const MAX_CGROUPS = 256;

export type JournalProcess = HeldProcess;

/** One VM a window holds: its method's record (`method` absent in journals before the cgroup method: `signal`). */
export interface JournalVm extends ProcessIdentity, Omit<HeldRecord, 'vm'> {
  readonly name: string;
  /** Date.now() when it was frozen. */
  readonly since: number;
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
    if (!isFreezeMethod(method)) return 'unknown method';
    const rawCgroups = vm.cgroups ?? [];
    if (!Array.isArray(rawCgroups) || rawCgroups.length > MAX_CGROUPS) return 'invalid cgroups';
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
    const problem = driverOf(method).recordProblem({ vm: id, method, processes, cgroups });
    if (problem) return `invalid cgroups: ${problem}`;
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
      // A journal is untrusted: a process is signalled only if it is still stopped, in a crosvm tree.
      const record = { ...vm, vm: { pid: vm.pid, startTime: vm.startTime } };
      const outcome = undoFreeze(record, { proof: (p) => leftoverRefusal(p, names) });
      const said = (p: JournalProcess, why: string) => `${p.label} (pid ${p.pid}): ${why}`;
      untouched.push(
        ...outcome.notes,
        ...outcome.problems,
        ...outcome.gone.map((p) => said(p, 'now another process or gone')),
        ...outcome.refused.map((r) => said(r.process, r.why)),
      );
      if (outcome.resumed.length > 0) vms.push({ name: vm.name, pid: vm.pid, method: vm.method, resumed: outcome.resumed });
    }
    removeJournal(entry.file);
  }
  return { vms, untouched, invalid };
}

/** Why a process a dead window's journal lists is not to be resumed, or undefined. */
function leftoverRefusal(p: ProcessIdentity, names: readonly string[]): string | undefined {
  const stat = readStat(p.pid);
  if (stat && !isStoppedState(stat.state)) return 'not stopped';
  if (!inCrosvmTree(p.pid, names)) return 'not part of a crosvm VM';
  return undefined;
}

/**
 * Resumes what another window holds frozen of `vm`, after the user agreed to take over, by
 * its method's undo: only processes it recorded that are still those processes (start time)
 * and still part of `vm` as read now; freeze cgroups thawed, moved back and removed.
 */
export function takeOverFrozenVm(record: Omit<HeldRecord, 'vm'>, vm: VmSnapshot): { resumed: ProcessIdentity[]; notes: string[] } {
  const current = [vm.main, ...vm.devices];
  const inVm = (p: ProcessIdentity) => (current.some((c) => sameProcess(c, p)) ? undefined : 'no longer part of the VM');
  const outcome = undoFreeze({ ...record, vm: vm.main }, { proof: inVm });
  return { resumed: outcome.resumed, notes: [...outcome.notes, ...outcome.problems] };
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
