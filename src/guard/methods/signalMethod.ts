// The signal method: stopping a crosvm process tree with SIGSTOP, proving it stopped, and
// resuming it: crosvm's ProcessesGuard algorithm, without its weak points (docs/design.md).
// Only for a build that survives a stopped device process (see chooseMethod.ts).
import { describeBlockingState, describeSignalError, FreezeError, StopFailure } from '../errors';
import { isExitedState, isStoppedState, listThreads, readStat, readStatus } from '../procfs';
import { ChildrenSource, descendantPids, identityKey, isSkipped, ThreadIds, ProcessSnapshot, readSnapshot } from '../processTree';
import { Poller } from '../poller';
import { forkRaceFailure, proofBeforeActing, skippedByProof, sortRound, TargetRules } from '../targets';
import type { FreezeScope, FrozenProcess, SkippedProcess } from '../types';
import type { FreezeJob, FreezeOutcome, HeldProcess, MethodDriver, UndoOutcome, UndoPolicy } from './methodDriver';

export interface StopTreeOptions extends TargetRules {
  readonly scope: FreezeScope;
  /** One deadline for confirming every thread of every target stopped. */
  readonly stopTimeoutMs: number;
  /** Re-scans after stopping, to catch processes forked meanwhile. */
  readonly maxRounds: number;
  readonly childrenSource: ChildrenSource;
  /** Processes an earlier call already stopped: neither new targets nor "already stopped". */
  readonly alreadyFrozen: ReadonlyMap<string, FrozenProcess>;
  /** Processes an earlier call found stopped by someone else. */
  readonly alreadySkipped: ReadonlyMap<string, SkippedProcess>;
  /**
   * `knownDevices` come from an earlier walk, not one made for this freeze: round 1 then
   * always ends in a re-scan, even when it found nothing new to stop.
   */
  readonly knownDevicesFromEarlierWalk?: boolean;
  /** Thread ids read during discovery; the freezer keeps them current for what it stops. */
  readonly knownThreads?: ThreadIds;
  /** Write-ahead: told what is about to be stopped, before the first signal is sent. */
  readonly beforeStop?: (targets: readonly FrozenProcess[]) => void | Promise<void>;
}

export interface StopTreeResult {
  readonly stopped: FrozenProcess[];
  readonly skipped: SkippedProcess[];
  readonly rounds: number;
  /** Announced to `beforeStop` but found not to be part of the VM any more: never stopped. */
  readonly released: FrozenProcess[];
}

/** Thrown by stopTree after it has resumed everything it stopped. */
export class StopTreeFailure extends Error {
  constructor(
    readonly failures: StopFailure[],
    readonly resumed: FrozenProcess[],
  ) {
    super('stop failed');
  }
}

interface PendingTarget {
  readonly process: FrozenProcess;
  /** Every thread id known for the process. */
  readonly known: Set<number>;
  /** Threads not yet seen stopped. */
  unconfirmed: number[];
}

/**
 * Waits until every thread of every target is stopped (`T`, or `t` under a tracer), polling
 * all targets together against one deadline, without yielding at first (see Poller).
 * `knownThreads` are the thread lists read during discovery, to save listing them again.
 */
export async function confirmStopped(
  targets: readonly FrozenProcess[],
  deadline: number,
  timeoutMs: number,
  knownThreads?: ThreadIds,
): Promise<StopFailure[]> {
  const failures: StopFailure[] = [];
  const exited = (p: FrozenProcess) => failures.push({ pid: p.pid, label: p.label, reason: 'it exited while being stopped' });
  let pending: PendingTarget[] = targets.map((process) => {
    const tids = knownThreads?.get(process.pid) ?? listThreads(process.pid);
    return { process, known: new Set(tids), unconfirmed: [...tids] };
  });
  const poller = new Poller();
  for (;;) {
    const still: PendingTarget[] = [];
    const late = performance.now() >= deadline;
    for (const target of pending) {
      const { pid, label, startTime } = target.process;
      let blocking: string | undefined;
      let threadCount: number | undefined;
      target.unconfirmed = target.unconfirmed.filter((tid) => {
        const stat = readStat(pid, tid);
        if (!stat) {
          target.known.delete(tid); // the thread exited
          return false;
        }
        threadCount = stat.threads;
        // Z/X threads are exiting: they cannot write memory either.
        if (isStoppedState(stat.state) || isExitedState(stat.state)) return false;
        blocking ??= stat.state;
        return true;
      });
      if (target.unconfirmed.length === 0) {
        // Every listed thread is stopped. A thread created after the list was read would
        // be missing from it: the group's thread count (in every thread's stat) tells.
        const stat = threadCount === undefined ? readStat(pid) : undefined;
        if (threadCount === undefined && (!stat || stat.startTime !== startTime)) {
          exited(target.process);
          continue;
        }
        const count = threadCount ?? stat?.threads ?? 0;
        if (count === target.known.size) {
          knownThreads?.set(pid, [...target.known]); // confirmed: its final thread list
          continue;
        }
        const fresh = listThreads(pid).filter((tid) => !target.known.has(tid));
        for (const tid of fresh) target.known.add(tid);
        target.unconfirmed = fresh;
        if (fresh.length === 0) continue; // threads exited meanwhile; none is new
      }
      if (late) {
        const tid = target.unconfirmed[0];
        failures.push({
          pid,
          label,
          reason: `it did not stop within ${timeoutMs} ms: thread ${tid} is ${describeBlockingState(blocking ?? readStat(pid, tid)?.state ?? '?')}`,
        });
        continue;
      }
      still.push(target);
    }
    pending = still;
    if (pending.length === 0) return failures;
    await poller.next();
  }
}

/**
 * Why `p`, which we stopped, must now be left stopped: someone else stopped or traced it since.
 * A stop signal sent to it while stopped is still pending (our SIGCONT would discard it); a
 * debugger attached since (`leaveTraced`: it was untraced when stopped) owns it now. A SIGSTOP
 * that reached it before ours, between the proof and our signal, leaves ours pending: the same.
 */
export function stoppedOrTracedSince(pid: number, leaveTraced: boolean): string | undefined {
  const status = readStatus(pid);
  if (!status) return undefined;
  if (leaveTraced && status.tracerPid !== 0) return `a debugger (pid ${status.tracerPid}) attached while it was frozen`;
  const stat = readStat(pid);
  if (status.stopPending && stat && isStoppedState(stat.state)) return 'someone else stopped it while it was frozen';
  return undefined;
}

/**
 * SIGCONT for each process that is still the one we stopped (pid and start time), children
 * first; with `leaveOthers`, a process stopped or traced by someone else since is left as it
 * is, and `proof` may refuse any other. The signal method's undo.
 */
export function continueProcesses<P extends HeldProcess>(
  processes: readonly P[],
  leaveOthers?: UndoPolicy['leaveOthers'],
  proof?: UndoPolicy<P>['proof'],
): Pick<UndoOutcome<P>, 'resumed' | 'gone' | 'leftStopped' | 'refused'> {
  const outcome: Pick<UndoOutcome<P>, 'resumed' | 'gone' | 'leftStopped' | 'refused'> = {
    resumed: [],
    gone: [],
    leftStopped: [],
    refused: [],
  };
  // Children first, so a parent that resumes finds its children running again.
  for (const p of [...processes].reverse()) {
    const stat = readStat(p.pid);
    if (!stat || stat.startTime !== p.startTime) {
      // Exited, or the pid now names another process: that one we never stopped.
      outcome.gone.push(p);
      continue;
    }
    const refusal = proof?.(p);
    if (refusal) {
      outcome.refused.push({ process: p, why: refusal });
      continue;
    }
    const since = leaveOthers && stoppedOrTracedSince(p.pid, leaveOthers.leaveTraced);
    if (since) {
      outcome.leftStopped.push({ ...p, why: since });
      continue;
    }
    try {
      process.kill(p.pid, 'SIGCONT');
      outcome.resumed.push(p);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ESRCH') outcome.gone.push(p);
      else outcome.refused.push({ process: p, why: code ?? (error as Error).message });
    }
  }
  return outcome;
}

/**
 * Stops `root`'s tree (its descendants, and itself for scope `vm`) and returns once every
 * thread of every target is confirmed stopped and a re-scan finds nothing new. All or
 * nothing: on any failure it resumes what this call stopped and throws StopTreeFailure.
 */
export async function stopTree(
  root: ProcessSnapshot,
  knownDevices: readonly ProcessSnapshot[] | undefined,
  options: StopTreeOptions,
): Promise<StopTreeResult> {
  const deadline = performance.now() + options.stopTimeoutMs;
  const stopped: FrozenProcess[] = [];
  const skipped: SkippedProcess[] = [];
  const released: FrozenProcess[] = [];
  /** Every process the walks found in the tree: the links a lineage proof may use. */
  const members = new Map<number, number>(
    [...options.alreadyFrozen.values(), ...options.alreadySkipped.values()].map((p) => [p.pid, p.startTime]),
  );
  const handled = new Set<string>([...options.alreadyFrozen.keys(), ...options.alreadySkipped.keys()]);
  const handledPids = new Set<number>([...options.alreadyFrozen.values(), ...options.alreadySkipped.values()].map((p) => p.pid));
  const threads: ThreadIds = options.knownThreads ?? new Map();
  const stoppedPids = new Set<number>();
  const rollback = (failures: StopFailure[]): never => {
    const { resumed } = continueProcesses(stopped, { leaveTraced: !options.includeTraced });
    throw new StopTreeFailure(failures, resumed);
  };

  // Round 1 uses the tree the caller has just read, if any; later rounds re-scan for forks.
  const rootIfVm = options.scope === 'vm' ? [root] : [];
  let snapshots: ProcessSnapshot[] | undefined = knownDevices && [...rootIfVm, ...knownDevices];
  for (let round = 1; ; round++) {
    if (!snapshots) {
      snapshots = round === 1 ? rootIfVm : [];
      for (const pid of descendantPids(root.pid, options.childrenSource, threads, stoppedPids)) {
        if (handledPids.has(pid)) continue;
        const snapshot = readSnapshot(pid);
        if (snapshot) snapshots.push(snapshot);
      }
    }
    const sorted = sortRound(snapshots, handled, members, root.pid, options);
    for (const p of snapshots) handledPids.add(p.pid);
    const targets = sorted.targets;
    skipped.push(...sorted.skipped);
    snapshots = undefined;
    // A process of another user stops the whole freeze, before any signal of this round.
    if (sorted.refused.length > 0) return rollback(sorted.refused);
    if (targets.length === 0) {
      // Nothing new: done, unless the round came from an earlier walk (re-scan it first).
      if (round > 1 || !options.knownDevicesFromEarlierWalk) return { stopped, skipped, rounds: round, released };
      continue;
    }
    if (round > options.maxRounds) {
      return rollback(targets.map((t) => forkRaceFailure(t, options.maxRounds)));
    }

    // Ask the kernel first (signal 0) whether we may signal every target: a permission
    // problem should stop nothing at all rather than stop and resume half the tree.
    const refused: StopFailure[] = [];
    for (const t of targets) {
      try {
        process.kill(t.pid, 0);
      } catch (error) {
        const snapshot = readSnapshot(t.pid);
        refused.push({ pid: t.pid, label: t.label, reason: describeSignalError(error, snapshot ?? { uid: -1 }) });
      }
    }
    if (refused.length > 0) return rollback(refused);

    try {
      await options.beforeStop?.(targets);
    } catch (error) {
      // Nobody could be told what is about to stop: stop nothing more, undo what is stopped.
      return rollback(
        targets.map(({ pid, label }) => ({
          pid,
          label,
          reason: `it could not be recorded for crash safety (${(error as Error).message})`,
        })),
      );
    }
    const failures: StopFailure[] = [];
    const signalled: FrozenProcess[] = [];
    // Listing, reading and the awaited write-ahead all came before this: prove each target
    // again right before its signal (identity, owner, every link up to the VM) in one pass.
    // State and tracer too: a stop or a debugger that came after the walk is someone else's.
    const proof = proofBeforeActing(root, members, options);
    for (const t of targets) {
      const problem = proof.check(t);
      if (problem === undefined) signalled.push(t);
      else if (isSkipped(problem)) {
        skipped.push(skippedByProof(t, problem));
        released.push(t);
      } else failures.push({ pid: t.pid, label: t.label, reason: problem.reason });
    }
    if (failures.length > 0) return rollback(failures);
    for (const t of signalled) {
      try {
        process.kill(t.pid, 'SIGSTOP');
        stopped.push(t);
      } catch (error) {
        failures.push({ pid: t.pid, label: t.label, reason: describeSignalError(error, readSnapshot(t.pid) ?? { uid: -1 }) });
      }
    }
    if (failures.length > 0) return rollback(failures);
    const unconfirmed = await confirmStopped(signalled, deadline, options.stopTimeoutMs, threads);
    if (unconfirmed.length > 0) return rollback(unconfirmed);
    for (const t of signalled) stoppedPids.add(t.pid);
  }
}

/** Signals: SIGSTOP and SIGCONT, crosvm's own way, seen as `T` by `ps` and debuggers. */
export const SIGNAL_DRIVER: MethodDriver<'signal'> = {
  method: 'signal',
  words: {
    name: 'signals',
    canFreeze: (_why, evidence) => ({ how: `signals: ${evidence}` }),
  },
  showsAsStopped: true,

  async freeze(job: FreezeJob<'signal'>): Promise<FreezeOutcome> {
    const { vm, identity, earlier, net } = job;
    const announced: FrozenProcess[] = [];
    let result;
    try {
      result = await stopTree(vm.main, vm.devices, {
        ...job.rules,
        scope: job.scope,
        stopTimeoutMs: job.stopTimeoutMs,
        maxRounds: job.maxRounds,
        childrenSource: job.childrenSource,
        alreadyFrozen: new Map((earlier?.processes ?? []).map((p) => [identityKey(p), p])),
        alreadySkipped: new Map((earlier?.skipped ?? []).map((p) => [identityKey(p), p])),
        knownThreads: new Map([...vm.threadIds].map(([pid, tids]) => [pid, [...tids]])),
        knownDevicesFromEarlierWalk: job.fromEarlierWalk,
        // Write-ahead: whoever resumes after a crash knows of a process before it stops.
        beforeStop: net
          ? (targets) => {
              announced.push(...targets);
              return net.willStop(identity, { method: 'signal', processes: targets, cgroups: [] });
            }
          : undefined,
      });
    } catch (error) {
      // Everything this call stopped was resumed: nobody needs to hold it any more.
      if (announced.length > 0) net?.didRelease(announced);
      if (!(error instanceof StopTreeFailure)) throw error;
      throw new FreezeError(
        vm.main.pid,
        error.failures,
        error.resumed.map((p) => p.pid),
      );
    }
    // Announced, then found outside the VM right before the signal: nobody may resume them.
    if (result.released.length > 0) net?.didRelease(result.released);
    return { frozen: result.stopped, skipped: result.skipped, rounds: result.rounds, held: { method: 'signal' } };
  },

  undo(record, policy = {}) {
    return { ...continueProcesses(record.processes, policy.leaveOthers, policy.proof), problems: [], notes: [] };
  },

  isStillHeld: (vm) =>
    vm.processes.some((p) => {
      const stat = readStat(p.pid);
      return stat !== undefined && stat.startTime === p.startTime && isStoppedState(stat.state);
    }),

  recordProblem: (record) => (record.cgroups.length > 0 ? 'a freeze by signals has no freeze cgroups' : undefined),
};
