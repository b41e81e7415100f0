// Walking a crosvm process tree and describing its processes.
import {
  kernelHasChildrenFiles,
  listPids,
  listThreads,
  parseChildren,
  readProcFile,
  readStat,
  readStatus,
  PROC_ROOT,
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
 * All descendants of `root`, parents before their children. A pid is visited once, so a
 * pid that was reused into the tree while walking cannot make the walk loop. `threads`
 * receives each process's thread ids; for pids in `stopped` it also supplies them.
 */
export function descendantPids(
  root: number,
  source: ChildrenSource,
  threads?: ThreadIds,
  stopped?: ReadonlySet<number>,
): number[] {
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
