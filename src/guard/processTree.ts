// Walking a crosvm process tree and describing its processes.
import { ExecutableFile, runsExecutable } from './crosvmExecutable';
import {
  kernelHasChildrenFiles,
  listPids,
  listThreads,
  parseChildren,
  readProcFile,
  readStat,
  parseUidMap,
  readStatAndOwner,
  readStatus,
  isExitedState,
  isStoppedState,
  PROC_ROOT,
  StatFields,
} from './procfs';

/**
 * Where children come from. `children-files` reads `/proc/<pid>/task/<tid>/children` of
 * every thread (a child is listed only under the thread that forked it, so reading the main
 * thread's file alone, as crosvm does, misses devices forked from other threads);
 * `ppid-scan` reads the parent pid of every process on the host, for kernels built without
 * CONFIG_PROC_CHILDREN.
 */
export type ChildrenSource = 'children-files' | 'ppid-scan';

export function defaultChildrenSource(): ChildrenSource {
  return kernelHasChildrenFiles() ? 'children-files' : 'ppid-scan';
}

/** What the guard knows about one process at one moment. */
export interface ProcessSnapshot {
  readonly pid: number;
  readonly ppid: number;
  /** `comm`: crosvm names each device process after its debug label (15 bytes at most). */
  readonly label: string;
  readonly state: string;
  readonly startTime: number;
  readonly threads: number;
  /** Real uid: with the saved uid, what decides whether we may signal it. */
  readonly uid: number;
  readonly savedUid: number;
  /** Non-zero while a debugger (ptrace) is attached. */
  readonly tracerPid: number;
}

/** A process is (pid, start time): a pid alone may belong to another process after reuse. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: number;
}

export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.startTime === b.startTime;
}

export function identityKey(p: ProcessIdentity): string {
  return `${p.pid}@${p.startTime}`;
}

/** Reads one process; undefined when it is gone. */
export function readSnapshot(pid: number): ProcessSnapshot | undefined {
  const stat = readStat(pid);
  if (!stat) return undefined;
  const status = readStatus(pid);
  if (!status) return undefined;
  return {
    pid,
    ppid: stat.ppid,
    label: stat.comm,
    state: stat.state,
    startTime: stat.startTime,
    threads: stat.threads,
    uid: status.uid.real,
    savedUid: status.uid.saved,
    tracerPid: status.tracerPid,
  };
}

/** Reads the identity of `pid` now; undefined when no process has that pid. */
export function currentIdentity(pid: number): ProcessIdentity | undefined {
  const stat = readStat(pid);
  return stat && { pid, startTime: stat.startTime };
}

/** Thread ids per pid, as seen while walking; the freezer reuses them instead of listing again. */
export type ThreadIds = Map<number, number[]>;

/** Direct children of `pid`, from the children file of every one of its threads. */
function childrenFromFiles(pid: number, threads?: ThreadIds, stopped?: ReadonlySet<number>): number[] {
  const children = new Set<number>();
  // A stopped process cannot start threads: the list read before is still right.
  const cached = stopped?.has(pid) ? threads?.get(pid) : undefined;
  const tids = cached ?? listThreads(pid);
  threads?.set(pid, tids);
  for (const tid of tids) {
    const text = readProcFile(`${PROC_ROOT}/${pid}/task/${tid}/children`);
    if (text !== undefined) for (const child of parseChildren(text)) children.add(child);
  }
  return [...children];
}

/** Parent → children for every process on the host, from each one's `stat`. */
function childrenByParent(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const pid of listPids()) {
    const stat = readStat(pid);
    if (!stat) continue;
    const siblings = map.get(stat.ppid);
    if (siblings) siblings.push(pid);
    else map.set(stat.ppid, [pid]);
  }
  return map;
}

/**
 * Tests only: runs between listing a tree's pids and reading each one's snapshot, the moment
 * a listed process may exit and its pid be reused. Production code never sets it.
 */
export const walkHooks: { afterListing?: (root: number, pids: readonly number[]) => void } = {};

/**
 * All descendants of `root`, parents before their children. A pid is visited once, so a
 * pid that was reused into the tree while walking cannot make the walk loop. `threads`
 * receives each process's thread ids; for pids in `stopped` it also supplies them.
 */
export function descendantPids(root: number, source: ChildrenSource, threads?: ThreadIds, stopped?: ReadonlySet<number>): number[] {
  const byParent = source === 'ppid-scan' ? childrenByParent() : undefined;
  const childrenOf = (pid: number) => (byParent ? (byParent.get(pid) ?? []) : childrenFromFiles(pid, threads, stopped));
  const seen = new Set<number>([root]);
  const order: number[] = [];
  const queue = [root];
  for (let i = 0; i < queue.length; i++) {
    for (const child of childrenOf(queue[i])) {
      if (seen.has(child)) continue;
      seen.add(child);
      order.push(child);
      queue.push(child);
    }
  }
  walkHooks.afterListing?.(root, order);
  return order;
}

/** This process and every ancestor up to init: never ours to stop. */
export function selfAndAncestors(): Set<number> {
  const pids = new Set<number>();
  let pid = process.pid;
  while (pid > 0 && !pids.has(pid)) {
    pids.add(pid);
    pid = readStat(pid)?.ppid ?? 0;
  }
  return pids;
}

/**
 * Proves, right before a signal or a cgroup move, that a target is still the process the walk
 * saw (pid and start time), still a descendant of the VM, and, when `owners` is given, owned by
 * one of them: the walk lists pids first and reads each one later, and a pid freed and reused
 * in between would otherwise be trusted as the process listed. Each link of the parent chain
 * up to the VM's main process is checked with its start time, at most once per proof.
 */
export class LineageProof {
  /** pid → start time of the VM's processes proven linked to its main process. */
  private readonly linked = new Map<number, number>();
  private rootChecked = false;

  constructor(
    private readonly root: ProcessIdentity,
    /** Every process the walks found in the VM (pid → start time): the only possible links. */
    private readonly members: ReadonlyMap<number, number>,
    private readonly owners?: ReadonlySet<number>,
    /**
     * Also re-check what the walk decided from state and tracer: a process stopped or traced
     * by someone else since is left alone (a resume must not undo a stop we did not make).
     */
    private readonly recheck?: { readonly includeTraced: boolean; readonly executable?: ExecutableFile },
    /** The VM main process's uid_map, for devices under a uid the VM mapped (see mappedByVm). */
    private readonly vmUidMap?: string,
  ) {}

  /** Why `target` may not be touched, or undefined when it is proven. */
  check(target: ProcessIdentity): ProofFailure | undefined {
    const owners = this.owners;
    const read = owners ? readStatAndOwner(target.pid, this.vmUidMap !== undefined) : undefined;
    const stat = owners ? read?.stat : readStat(target.pid);
    if (!isStill(target, stat)) return { kind: 'gone', reason: GONE };
    if (owners && read && !owners.has(read.uid)) {
      // A uid the VM mapped (never the main process's) is the VM's only if this process is the
      // VM's: its lineage, proven below, decides.
      if (target.pid === this.root.pid || !mappedByVm(read.uid, read.uidMap, this.vmUidMap)) {
        return { kind: 'not-owned', reason: notOwnedReason(read.uid, owners) };
      }
    }
    // Checked now, not at the walk: an exec (a setuid program) keeps the pid and start time.
    const executable = this.recheck?.executable;
    if (executable && !runsExecutable(target.pid, executable)) return { kind: 'not-crosvm', reason: NOT_THE_VMS_EXECUTABLE };
    if (this.recheck) {
      // Only TracerPid needs the status file, and only when traced processes are left alone.
      const tracerPid = this.recheck.includeTraced ? 0 : (read?.tracerPid ?? readStatus(target.pid)?.tracerPid ?? 0);
      if (tracerPid !== 0) return { kind: 'traced', reason: tracedReason(tracerPid) };
      if (isStoppedState(stat.state)) return { kind: 'already-stopped', reason: STOPPED_BY_OTHERS };
    }
    // The main process itself (scope "vm"): its identity is the whole proof.
    if (target.pid === this.root.pid) return target.startTime === this.root.startTime ? undefined : { kind: 'gone', reason: GONE };
    if (!this.isLinked(stat.ppid, 0)) return { kind: 'left-vm', reason: notDescendantReason(this.root.pid, stat.ppid) };
    this.linked.set(target.pid, target.startTime);
    return undefined;
  }

  private isLinked(pid: number, hops: number): boolean {
    if (pid === this.root.pid) return this.rootIsAlive();
    const startTime = this.members.get(pid);
    if (startTime === undefined || hops > 64) return false;
    if (this.linked.get(pid) === startTime) return true;
    const stat: StatFields | undefined = readStat(pid);
    if (!stat || stat.startTime !== startTime || !this.isLinked(stat.ppid, hops + 1)) return false;
    this.linked.set(pid, startTime);
    return true;
  }

  private rootIsAlive(): boolean {
    if (!this.rootChecked) {
      const stat = readStat(this.root.pid);
      this.rootChecked = stat !== undefined && stat.startTime === this.root.startTime;
      if (!this.rootChecked) return false;
    }
    return true;
  }
}

/**
 * `gone`, `not-owned` and `not-crosvm` fail a freeze; the others are skipped: `left-vm` is no part of the VM,
 * `traced` and `already-stopped` became so after the walk (someone else's, left alone).
 */
export interface ProofFailure {
  readonly kind: 'gone' | 'not-owned' | 'not-crosvm' | 'left-vm' | 'traced' | 'already-stopped';
  readonly reason: string;
}

/** A proof failure that skips the target rather than failing the freeze. */
export function isSkipped(problem: ProofFailure): problem is ProofFailure & { kind: 'left-vm' | 'traced' | 'already-stopped' } {
  return problem.kind === 'left-vm' || problem.kind === 'traced' || problem.kind === 'already-stopped';
}

export function tracedReason(tracerPid: number): string {
  return `a debugger (pid ${tracerPid}) is attached; it owns this process`;
}

const NOT_THE_VMS_EXECUTABLE = "it does not run the VM's crosvm executable (a crosvm device is forked, never exec'd): not a crosvm process";

export const STOPPED_BY_OTHERS = 'it was stopped before the freeze and will stay stopped after resume';

const GONE = 'it exited (its pid names no process, a zombie, or another process)';

/** `stat`, read just now, is still `target`: same start time, and not exited. */
function isStill(target: ProcessIdentity, stat: StatFields | undefined): stat is StatFields {
  return stat !== undefined && stat.startTime === target.startTime && !isExitedState(stat.state);
}

/** The plainest proof: the pid still names the process with that start time, not exited. */
export function proveIdentity(target: ProcessIdentity): ProofFailure | undefined {
  return isStill(target, readStat(target.pid)) ? undefined : { kind: 'gone', reason: GONE };
}

/**
 * Whether the VM gave `uid` to one of its processes itself: the process (a proven descendant of
 * the VM, which the caller checks) sits in a user namespace of its own, whose map (`uidMap`,
 * its /proc uid_map) differs from the VM main process's (`vmUidMap`) and maps `uid` by name.
 * crosvm jails a device so (`--shared-dir …:uidmap=0 1000 1`: the fs device runs as host uid
 * 1000). A process that merely called setuid() stays in the VM's namespace, whose map is the
 * main's: that proves nothing, and such a uid stays someone else's.
 */
export function mappedByVm(uid: number, uidMap: string | undefined, vmUidMap: string | undefined): boolean {
  if (uidMap === undefined || vmUidMap === undefined) return false;
  const own = parseUidMap(uidMap);
  const vms = parseUidMap(vmUidMap);
  const same =
    own.length === vms.length &&
    own.every((e, i) => e.inside === vms[i].inside && e.outside === vms[i].outside && e.count === vms[i].count);
  return !same && own.some((e) => uid >= e.outside && uid - e.outside < e.count);
}

/** `root and uid 1000`: who may have processes frozen by this engine. */
export function ownersPhrase(owners: ReadonlySet<number>): string {
  return [...owners].map((o) => (o === 0 ? 'root' : `uid ${o}`)).join(' and ');
}

export function notOwnedReason(uid: number, owners: ReadonlySet<number>): string {
  return `it runs as uid ${uid}; only processes of ${ownersPhrase(owners)} may be frozen here`;
}

export function notDescendantReason(vmPid: number, ppid: number): string {
  return `it is no longer a descendant of VM ${vmPid} (its parent is pid ${ppid}): its pid was reused, or it was reparented`;
}
