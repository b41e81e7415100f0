// Which processes of a VM a freeze takes, for both methods: the rules that leave a process
// alone (with the reason shown to the user), the owner check of the root companion, and the
// one classification step every round of either method runs.
import type { ExecutableFile } from './crosvmExecutable';
import { StopFailure } from './errors';
import { isExitedState, isStoppedState, readUidMap } from './procfs';
import {
  identityKey,
  LineageProof,
  mappedByVm,
  notOwnedReason,
  ProcessIdentity,
  ProcessSnapshot,
  ProofFailure,
  STOPPED_BY_OTHERS,
  tracedReason,
} from './processTree';
import type { FrozenProcess, SkippedProcess } from './types';

/** What decides, for every process of a VM, whether a freeze takes it. */
export interface TargetRules {
  readonly isExcludedLabel: (label: string) => boolean;
  readonly includeTraced: boolean;
  /** Never touched: this process and its ancestors. */
  readonly protectedPids: ReadonlySet<number>;
  /** Never touched either: the process a debugger is debugging (the debugger owns it). */
  readonly debuggeePids?: ReadonlySet<number>;
  /** Only processes of these uids may be frozen (the root companion: root and its invoker). */
  readonly allowedOwners?: ReadonlySet<number>;
  /**
   * With allowedOwners: the VM main process's uid_map. A device under another uid is the VM's
   * when a user namespace of the VM's own maps it (see mappedByVm); its lineage decides the rest.
   */
  readonly vmUidMap?: string;
  /** Only processes that run this file, the VM's crosvm executable (the root companion). */
  readonly executable?: ExecutableFile;
}

/**
 * The proof each target passes right before its signal or move, with every check these rules
 * ask for: identity, owner (or a uid the VM mapped), lineage, executable, state and tracer.
 */
export function proofBeforeActing(root: ProcessIdentity, members: ReadonlyMap<number, number>, rules: TargetRules): LineageProof {
  const recheck = { includeTraced: rules.includeTraced, executable: rules.executable };
  return new LineageProof(root, members, rules.allowedOwners, recheck, rules.vmUidMap);
}

/** Why `p` is left alone, or undefined when it is a target. */
export function classify(p: ProcessSnapshot, rules: TargetRules): Omit<SkippedProcess, 'pid' | 'startTime' | 'label'> | undefined {
  if (p.pid <= 1) return { reason: 'init', detail: 'pid 1 and the kernel are never stopped' };
  if (rules.protectedPids.has(p.pid)) {
    return { reason: 'self', detail: 'it is this extension or one of its ancestors' };
  }
  if (rules.debuggeePids?.has(p.pid)) return { reason: 'debuggee', detail: 'it is the debuggee: the debugger owns it' };
  if (isExitedState(p.state)) return { reason: 'zombie', detail: 'it has exited and waits to be reaped' };
  if (rules.isExcludedLabel(p.label)) return { reason: 'excluded', detail: 'its label matches crosvmGuard.excludeLabels' };
  if (p.tracerPid !== 0 && !rules.includeTraced) {
    return { reason: 'traced', detail: tracedReason(p.tracerPid) };
  }
  if (isStoppedState(p.state)) {
    return { reason: 'already-stopped', detail: STOPPED_BY_OTHERS };
  }
  return undefined;
}

/** Why the owner of `p` rules a freeze out, or undefined when it may be frozen. */
export function ownerRefusal(p: ProcessSnapshot, owners: ReadonlySet<number> | undefined, vmUidMap?: string): StopFailure | undefined {
  if (!owners || owners.has(p.uid)) return undefined;
  // Read again right before its signal or move, with its lineage (LineageProof).
  if (mappedByVm(p.uid, readUidMap(p.pid), vmUidMap)) return undefined;
  return { pid: p.pid, label: p.label, reason: notOwnedReason(p.uid, owners) };
}

/** A target the proof right before its signal or move left alone (see isSkipped). */
export function skippedByProof(
  t: FrozenProcess,
  problem: ProofFailure & { kind: 'left-vm' | 'traced' | 'already-stopped' },
): SkippedProcess {
  return { pid: t.pid, startTime: t.startTime, label: t.label, reason: problem.kind, detail: problem.reason };
}

/** May this process signal `pid`? The kernel says (signal 0); only EPERM means no. */
export function maySignal(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

/** A process found in a round past the last: the tree forks faster than it can be frozen. */
export function forkRaceFailure(p: { pid: number; label: string }, rounds: number): StopFailure {
  return { pid: p.pid, label: p.label, reason: `new processes kept being forked while freezing (${rounds} rounds); try again` };
}

export interface SortedRound {
  readonly targets: FrozenProcess[];
  readonly skipped: SkippedProcess[];
  /** Processes of another owner: they fail the whole freeze. */
  readonly refused: StopFailure[];
}

/**
 * One round of either method: each snapshot not `handled` before becomes a target, a skipped
 * process, or a refusal. Marks each handled, and records each but the VM's main process
 * (`rootPid`) among the `members` a lineage proof may link through.
 */
export function sortRound(
  snapshots: readonly ProcessSnapshot[],
  handled: Set<string>,
  members: Map<number, number>,
  rootPid: number,
  rules: TargetRules,
): SortedRound {
  const sorted: SortedRound = { targets: [], skipped: [], refused: [] };
  for (const p of snapshots) {
    const key = identityKey(p);
    if (handled.has(key)) continue;
    handled.add(key);
    if (p.pid !== rootPid) members.set(p.pid, p.startTime);
    const skip = classify(p, rules);
    const refusal = skip ? undefined : ownerRefusal(p, rules.allowedOwners, p.pid === rootPid ? undefined : rules.vmUidMap);
    if (skip) sorted.skipped.push({ pid: p.pid, startTime: p.startTime, label: p.label, ...skip });
    else if (refusal) sorted.refused.push(refusal);
    else sorted.targets.push({ pid: p.pid, startTime: p.startTime, label: p.label, ppid: p.ppid });
  }
  return sorted;
}
