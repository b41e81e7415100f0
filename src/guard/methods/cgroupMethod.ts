// The cgroup method: the kernel's cgroup freezer, the second way to freeze a VM: frozen tasks are not stopped
// in the job-control sense, so crosvm's parent gets no SIGCHLD and even a build without the
// `swap` feature survives. Each target moves into a freeze cgroup created as a child of the
// cgroup it lives in (so the limits above still apply), the freeze cgroup is frozen, and on
// resume everything in it is thawed and moved back to exactly where it came from. A child
// forked by a task in a freeze cgroup is born there, frozen: there is no fork race.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FreezeError, StopFailure } from '../errors';
import {
  CgroupHierarchy,
  cgroupDirOf,
  FREEZE_PREFIX,
  FreezeCgroup,
  freezerHierarchy,
  isFreezeCgroupDir,
  isFrozen,
  releaseFromFreezeCgroup,
  remainingCgroups,
  thawAndRestore,
  writeControl,
} from '../cgroupfs';
import { readStat } from '../procfs';
import { identityKey, isSkipped, ProcessSnapshot, ProofFailure, proveIdentity } from '../processTree';
import { Poller } from '../poller';
import { forkRaceFailure, proofBeforeActing, skippedByProof, sortRound, TargetRules } from '../targets';
import type { FrozenProcess, FrozenVm, SkippedProcess } from '../types';
import type { FreezeJob, FreezeOutcome, HeldProcess, HeldRecord, MethodDriver, UndoOutcome } from './methodDriver';

/** Thrown after everything the freeze moved was moved back and thawed. */
export class CgroupFreezeFailure extends Error {
  constructor(
    readonly failures: StopFailure[],
    /** What had been frozen before the failure, and was undone. */
    readonly undone: readonly FrozenProcess[] = [],
  ) {
    super('cgroup freeze failed');
  }
}

export interface CgroupFreezeOptions {
  readonly hierarchy: CgroupHierarchy;
  readonly stopTimeoutMs: number;
  /** One deadline (performance.now()) for the whole freeze, re-scan rounds included. */
  readonly deadline?: number;
  /**
   * This VM's freeze cgroups from earlier rounds or an earlier freeze: a target in one of
   * them is frozen already. A target in any other directory named like ours (left behind by
   * someone else) is not: it is frozen in a new group beside that one, and returns to its parent.
   */
  readonly ownCgroups?: ReadonlySet<string>;
  /**
   * Write-ahead: told which freeze cgroups are about to be created, before the first is
   * created, so that whoever cleans up after a crash knows of them.
   */
  readonly beforeCreate?: (groups: readonly FreezeCgroup[]) => void | Promise<void>;
  /**
   * Proves a target right before its move (identity, owner, lineage; see LineageProof).
   * Default: its pid still names the process with its start time, and it has not exited.
   */
  readonly prove?: (target: FrozenProcess) => ProofFailure | undefined;
  /** A target `prove` skips (outside the VM, or stopped or traced since): not moved, and told here (else it fails the freeze). */
  readonly onSkipped?: (target: FrozenProcess, problem: ProofFailure & { kind: 'left-vm' | 'traced' | 'already-stopped' }) => void;
  /** Called before each target is moved (tests use it to make a move fail half-way). */
  readonly beforeMove?: (target: FrozenProcess) => void;
  /** Called once every target is moved, before the groups freeze (tests fork a child here). */
  readonly afterMove?: () => void | Promise<void>;
}

/**
 * Freezes `targets` through freeze cgroups and waits until each group reports frozen. A
 * target already inside one of our freeze cgroups (forked there) stays where it is: its
 * group freezes it. All or nothing: on any failure everything is thawed and moved back, and
 * the step, path and error are named. Returns the groups created, for thawAndRestore.
 */
export async function freezeInCgroups(targets: readonly FrozenProcess[], options: CgroupFreezeOptions): Promise<FreezeCgroup[]> {
  const { hierarchy } = options;
  const groups = new Map<string, FreezeCgroup>();
  const created: FreezeCgroup[] = [];
  const fail = (failures: StopFailure[]): never => {
    thawAndRestore(created);
    throw new CgroupFreezeFailure(failures);
  };
  const tag = `${FREEZE_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  const moves: Array<{ target: FrozenProcess; group: FreezeCgroup }> = [];
  for (const target of targets) {
    let originalDir = cgroupDirOf(target.pid, hierarchy);
    if (!originalDir) {
      const reason = 'its cgroup could not be read (it exited, or lives outside the mounted hierarchy)';
      return fail([{ pid: target.pid, label: target.label, reason }]);
    }
    if (isFreezeCgroupDir(originalDir)) {
      if (options.ownCgroups?.has(originalDir)) continue;
      originalDir = path.dirname(originalDir);
    }
    let group = groups.get(originalDir);
    if (!group) groups.set(originalDir, (group = { version: hierarchy.version, dir: path.join(originalDir, tag), originalDir }));
    moves.push({ target, group });
  }
  await options.beforeCreate?.([...groups.values()]);
  // From the first mkdir on, whatever throws goes through fail(): everything moved goes back.
  try {
    for (const { target, group } of moves) {
      try {
        if (!created.includes(group)) {
          fs.mkdirSync(group.dir);
          created.push(group);
        }
        options.beforeMove?.(target);
        // The pid was read before the awaited write-ahead: prove it still names the target,
        // so that a reused pid never moves a stranger (the same check signals make).
        const problem = (options.prove ?? proveIdentity)(target);
        if (problem && isSkipped(problem) && options.onSkipped) {
          options.onSkipped(target, problem);
          continue;
        }
        if (problem) throw new Error(problem.reason);
        writeControl(group.dir, 'cgroup.procs', String(target.pid));
      } catch (error) {
        const step = created.includes(group) ? `moving it into ${group.dir}` : `creating ${group.dir}`;
        return fail([{ pid: target.pid, label: target.label, reason: `${step} failed: ${(error as Error).message}` }]);
      }
    }
    await options.afterMove?.();
    for (const group of created) {
      try {
        if (group.version === 2) writeControl(group.dir, 'cgroup.freeze', '1');
        else writeControl(group.dir, 'freezer.state', 'FROZEN');
      } catch (error) {
        return fail([{ pid: 0, label: group.dir, reason: `freezing failed: ${(error as Error).message}` }]);
      }
    }
    const deadline = options.deadline ?? performance.now() + options.stopTimeoutMs;
    const poller = new Poller();
    for (;;) {
      const pending = created.filter((g) => !isFrozen(g));
      if (pending.length === 0) return created;
      if (performance.now() >= deadline) {
        return fail(pending.map((g) => ({ pid: 0, label: g.dir, reason: `it was not frozen within ${options.stopTimeoutMs} ms` })));
      }
      await poller.next();
    }
  } catch (error) {
    if (error instanceof CgroupFreezeFailure) throw error;
    return fail([{ pid: 0, label: created[0]?.dir ?? '', reason: `freezing failed: ${(error as Error).message}` }]);
  }
}

export interface CgroupTreeOptions extends TargetRules {
  readonly hierarchy: CgroupHierarchy;
  readonly stopTimeoutMs: number;
  readonly maxRounds: number;
  /** What an earlier freeze of this VM holds: its processes stay handled, its groups its own. */
  readonly earlier?: FrozenVm;
  /** The VM's devices as they are now (a re-scan, for processes forked meanwhile). */
  readonly rescan: () => readonly ProcessSnapshot[];
  /** Write-ahead: the targets and the freeze cgroups about to be created, before the first. */
  readonly beforeCreate?: (targets: readonly FrozenProcess[], planned: readonly FreezeCgroup[]) => Promise<void>;
  /** Announced processes (and groups) that nobody needs to resume any more. */
  readonly release?: (processes: readonly FrozenProcess[], cgroups?: readonly FreezeCgroup[]) => void;
}

/**
 * The cgroup method's rounds: the same targets as for signals (the same rules, see
 * targets.ts), moved into freeze cgroups and frozen. Re-scans catch devices forked meanwhile;
 * a child forked inside a freeze cgroup is born frozen and stays there. All or nothing: a
 * failure moves everything back, thaws it and throws CgroupFreezeFailure.
 */
export async function freezeTreeWithCgroups(
  root: ProcessSnapshot,
  first: readonly ProcessSnapshot[],
  options: CgroupTreeOptions,
): Promise<{ frozen: FrozenProcess[]; skipped: SkippedProcess[]; rounds: number; cgroups: FreezeCgroup[] }> {
  const { earlier, hierarchy } = options;
  const handled = new Set([...(earlier?.processes ?? []), ...(earlier?.skipped ?? [])].map(identityKey));
  const members = new Map([...(earlier?.processes ?? []), ...(earlier?.skipped ?? [])].map((p) => [p.pid, p.startTime]));
  const frozen: FrozenProcess[] = [];
  const skipped: SkippedProcess[] = [];
  const groups: FreezeCgroup[] = [];
  const announced: { processes: FrozenProcess[]; cgroups: FreezeCgroup[] } = { processes: [], cgroups: [] };
  let candidates = first;
  let rounds = 0;
  // One deadline for every round, as for signals.
  const deadline = performance.now() + options.stopTimeoutMs;
  const ownCgroups = new Set((earlier?.cgroups ?? []).map((g) => g.dir));
  try {
    for (; rounds < options.maxRounds && candidates.length > 0; rounds++) {
      const sorted = sortRound(candidates, handled, members, root.pid, options);
      if (sorted.refused.length > 0) throw new CgroupFreezeFailure(sorted.refused);
      for (const p of sorted.skipped) {
        skipped.push(p);
        // Born inside a freeze cgroup (forked by a target before its group froze), a
        // process the freeze must leave alone would stay frozen: it goes back, thawed.
        releaseFromFreezeCgroup(p.pid, [...(earlier?.cgroups ?? []), ...groups], hierarchy);
      }
      const targets = sorted.targets;
      const outside: FrozenProcess[] = [];
      if (targets.length > 0) {
        const proof = proofBeforeActing(root, members, options);
        const beforeCreate = options.beforeCreate;
        const created = await freezeInCgroups(targets, {
          hierarchy,
          stopTimeoutMs: options.stopTimeoutMs,
          deadline,
          ownCgroups,
          prove: (target) => proof.check(target),
          onSkipped: (target, problem) => {
            outside.push(target);
            skipped.push(skippedByProof(target, problem));
          },
          // Write-ahead: a crash from here on leaves cgroups the companion and journal know.
          beforeCreate:
            beforeCreate &&
            ((planned) => {
              announced.processes.push(...targets);
              announced.cgroups.push(...planned);
              return beforeCreate(targets, planned);
            }),
        });
        groups.push(...created);
        for (const g of created) ownCgroups.add(g.dir);
      }
      if (outside.length > 0) {
        options.release?.(outside);
        announced.processes = announced.processes.filter((p) => !outside.includes(p));
      }
      frozen.push(...targets.filter((t) => !outside.includes(t)));
      candidates = options.rescan().filter((d) => !handled.has(identityKey(d)));
    }
    if (candidates.length > 0) {
      // As for signals: a VM that forks faster than it can be frozen is not frozen at all.
      throw new CgroupFreezeFailure(candidates.map((p) => forkRaceFailure(p, options.maxRounds)));
    }
  } catch (error) {
    const problems = thawAndRestore(groups);
    if (announced.processes.length > 0) options.release?.(announced.processes, announced.cgroups);
    if (!(error instanceof CgroupFreezeFailure)) throw error;
    const rollback = problems.map((reason) => ({ pid: 0, label: 'rollback', reason }));
    throw new CgroupFreezeFailure([...error.failures, ...rollback], frozen);
  }
  return { frozen, skipped, rounds, cgroups: groups };
}

/**
 * Thaws the freeze cgroups of `record` that still exist, moves their processes back and
 * removes them; a group that will not go stays held, with the recorded processes in it.
 */
function thawRecord<P extends HeldProcess>(record: HeldRecord<P>): UndoOutcome<P> {
  const outcome: UndoOutcome<P> = { resumed: [], gone: [], leftStopped: [], refused: [], problems: [], notes: [] };
  const present = remainingCgroups(record.cgroups);
  for (const g of record.cgroups) if (!present.includes(g)) outcome.notes.push(`freeze cgroup ${g.dir}: already gone`);
  // None left: whoever removed them thawed them; nothing of ours to undo.
  if (present.length === 0) return outcome;
  outcome.problems.push(...thawAndRestore(present));
  const left = remainingCgroups(present);
  const hierarchy = left.length > 0 ? freezerHierarchy(left[0].version) : undefined;
  const stuck = (p: P) => hierarchy !== undefined && left.some((g) => g.dir === cgroupDirOf(p.pid, hierarchy));
  const stillHeld = record.processes.filter(stuck);
  // Back in their own cgroups, and so thawed; a process that exited is simply gone.
  for (const p of record.processes) {
    if (!stillHeld.includes(p)) (readStat(p.pid)?.startTime === p.startTime ? outcome.resumed : outcome.gone).push(p);
  }
  return left.length > 0 ? { ...outcome, stillHeld: { processes: stillHeld, cgroups: left } } : outcome;
}

/** The cgroup freezer: crosvm does not notice it, so any build survives; needs write access to the cgroups. */
export const CGROUP_DRIVER: MethodDriver<'cgroup'> = {
  method: 'cgroup',
  words: {
    name: 'the cgroup freezer',
    canFreeze: (why, evidence) => ({ how: `the ${why}`, caveat: `Not with signals: ${evidence}` }),
  },
  showsAsStopped: false,

  async freeze(job: FreezeJob<'cgroup'>): Promise<FreezeOutcome> {
    const { vm, identity, earlier, net, choice } = job;
    const first = job.scope === 'vm' ? [vm.main, ...vm.devices] : [...vm.devices];
    // From an earlier walk, nothing listed may mean nothing known yet: look before deciding.
    const result = await freezeTreeWithCgroups(vm.main, first.length === 0 && job.fromEarlierWalk ? job.rescan() : first, {
      ...job.rules,
      hierarchy: choice.hierarchy,
      stopTimeoutMs: job.stopTimeoutMs,
      maxRounds: job.maxRounds,
      earlier,
      rescan: job.rescan,
      beforeCreate: net && ((targets, planned) => net.willStop(identity, { method: 'cgroup', processes: targets, cgroups: planned })),
      release: net && ((processes, cgroups) => net.didRelease(processes, cgroups)),
    }).catch((error: unknown) => {
      if (!(error instanceof CgroupFreezeFailure)) throw error;
      throw new FreezeError(
        vm.main.pid,
        error.failures,
        error.undone.map((p) => p.pid),
      );
    });
    const cgroups = [...(earlier?.cgroups ?? []), ...result.cgroups];
    return { ...result, held: { method: 'cgroup', cgroupVersion: choice.hierarchy.version, cgroups } };
  },

  // Processes go back with their cgroups, never by a signal: `policy` has nothing to decide.
  undo: (record) => thawRecord(record),

  // Frozen by cgroup, the tasks are not "stopped": held while one of our freeze cgroups is
  // still there (whoever took over removed them).
  isStillHeld: (vm) => remainingCgroups(vm.cgroups ?? []).length > 0,

  recordProblem: () => undefined,
};
