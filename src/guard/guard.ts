// The freezing engine's front door: which VMs exist, freeze one, resume what we froze, and
// tell listeners about every change. It has no `vscode` import: the extension, the plain
// Node tests and the benchmark all drive this same class.
import * as fs from 'node:fs';
import { assertLinux, FreezeError, GuardError } from './errors';
import { isStoppedState, readStat } from './procfs';
import { ChildrenSource, defaultChildrenSource, identityKey, LineageProof, ownersPhrase, ProcessIdentity, selfAndAncestors } from './processTree';
import { classify, continueProcesses, FreezeScope, FrozenProcess, leftVm, ownerRefusal, SkippedProcess, StopTreeFailure, stopTree } from './signalFreezer';
import { CgroupFreezeFailure, CgroupHierarchy, CgroupVersion, cgroupDirOf, FreezeCgroup, freezeInCgroups, freezerHierarchy, releaseFromFreezeCgroup, remainingCgroups, thawAndRestore } from './cgroupFreezer';
import { chooseMethod, FreezeMethod, MethodChoice, MethodSetting } from './method';
import { judgeSwapBuild, SwapBuildVerdict } from './swapBuild';
import type { SafetyNet } from './crashSafety';
import { findVms, ProvenVms, readVm, VmSnapshot } from './vms';

export interface GuardSettings {
  /** Executable or argv[0] basenames that identify crosvm. */
  readonly processNames: readonly string[];
  /** Glob patterns (`*`, `?`) of device labels never to stop, e.g. `swap monitor`. */
  readonly excludeLabels: readonly string[];
  /** Deadline for every thread of every target to be confirmed stopped. */
  readonly stopTimeoutMs: number;
  /** Also stop processes a debugger is attached to. */
  readonly includeTracedProcesses: boolean;
  /** The user vouches that crosvm was built with the `swap` feature. */
  readonly assumeSwapBuild: boolean;
  /** Re-scans for processes forked while freezing before giving up. */
  readonly maxRounds: number;
  readonly childrenSource: ChildrenSource;
  /** How to freeze: `auto` picks signals where the build tolerates them, else the cgroup freezer. */
  readonly method: MethodSetting;
  /**
   * Only VMs and processes of these uids are frozen, each checked in the read right before its
   * signal or move (the root companion: root and the user who ran sudo or pkexec). Unset: the
   * kernel's own rule (who may signal whom) is the only limit.
   */
  readonly allowedOwners?: ReadonlySet<number>;
}

export const DEFAULT_SETTINGS: GuardSettings = {
  processNames: ['crosvm'],
  excludeLabels: [],
  stopTimeoutMs: 2000,
  includeTracedProcesses: false,
  assumeSwapBuild: false,
  maxRounds: 5,
  childrenSource: 'children-files',
  method: 'auto',
};

/** Which VM: its main pid, and its start time when the caller has seen it before. */
export interface VmRef {
  readonly pid: number;
  readonly startTime?: number;
}

export interface FreezeRequest {
  /** `devices` (default): the device processes; `vm`: the main process (vCPUs) as well. */
  readonly scope?: FreezeScope;
  /**
   * Freeze with signals even when the build is not proven to tolerate stopped children.
   * This shuts down a crosvm built without the swap feature; for tests and the brave.
   */
  readonly allowUnsafeSignals?: boolean;
  /** Processes never to signal, e.g. the debuggee of a debug session. */
  readonly excludePids?: readonly number[];
  /**
   * Overrides the `method` setting. `signal`: SIGSTOP, crosvm's own method. `cgroup`: the
   * kernel's cgroup freezer, which crosvm does not notice, so any build survives it; needs
   * write access to the cgroup tree (root, or a subtree delegated to this user).
   */
  readonly method?: MethodSetting;
  /** With `cgroup`: force a hierarchy version (default: v2 if usable, else the v1 freezer). */
  readonly cgroupVersion?: CgroupVersion;
}

export { FreezeMethod, MethodChoice, MethodSetting };

export interface VmIdentity extends ProcessIdentity {
  readonly name: string;
}

export interface FreezeReport {
  readonly vm: VmIdentity;
  readonly scope: FreezeScope;
  readonly method: FreezeMethod;
  /** Why this method, in a user's words (the build's evidence, the cgroup and who may write it). */
  readonly methodReason: string;
  /** With the cgroup method: the freeze cgroups created by this call. */
  readonly cgroups?: readonly FreezeCgroup[];
  /** Stopped by this call. */
  readonly frozen: readonly FrozenProcess[];
  /** Left alone by this call, each with its reason. */
  readonly skipped: readonly SkippedProcess[];
  readonly swapBuild: SwapBuildVerdict;
  readonly rounds: number;
  readonly elapsedMs: number;
}

export interface ResumeReport {
  readonly resumed: readonly FrozenProcess[];
  /** Exited while frozen, or their pid now belongs to another process: not signalled. */
  readonly gone: readonly FrozenProcess[];
  /** With the cgroup method: steps that failed (a thaw, a move back, a removal), each with its path and error. */
  readonly problems?: readonly string[];
  readonly elapsedMs: number;
}

/** What the guard holds frozen for one VM. */
export interface FrozenVm {
  readonly vm: VmIdentity;
  readonly scope: FreezeScope;
  readonly method: FreezeMethod;
  /** With the cgroup method: the freeze cgroups and where their processes came from. */
  readonly cgroups?: readonly FreezeCgroup[];
  readonly cgroupVersion?: CgroupVersion;
  /** Date.now() of the first freeze. */
  readonly since: number;
  readonly processes: readonly FrozenProcess[];
  readonly skipped: readonly SkippedProcess[];
}

export type GuardEvent =
  | { readonly type: 'freezing'; readonly vmPid: number }
  | { readonly type: 'frozen'; readonly report: FreezeReport }
  | { readonly type: 'freeze-failed'; readonly vmPid: number; readonly error: Error }
  | { readonly type: 'resumed'; readonly report: ResumeReport };

export interface Disposable {
  dispose(): void;
}

function notPermittedVm(pid: number, uid: number, owners: ReadonlySet<number>): string {
  return `crosvm VM ${pid} runs as uid ${uid}: only VMs of ${ownersPhrase(owners)} may be frozen here.`;
}

/** Compiles label globs (`*` any run, `?` one character) into one full-match test. */
export function labelMatcher(patterns: readonly string[]): (label: string) => boolean {
  if (patterns.length === 0) return () => false;
  const alternatives = patterns.map((glob) =>
    glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.'),
  );
  const regex = new RegExp(`^(?:${alternatives.join('|')})$`);
  return (label) => regex.test(label);
}

export class CrosvmGuard {
  private settings: GuardSettings;
  private isExcludedLabel: (label: string) => boolean;
  private readonly frozen = new Map<number, FrozenVm>();
  private readonly provenVms: ProvenVms = new Map();
  private readonly listeners = new Set<(event: GuardEvent) => void>();
  private safetyNet: SafetyNet | undefined;
  /** Freeze and resume run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(settings: Partial<GuardSettings> = {}) {
    this.settings = { ...DEFAULT_SETTINGS, childrenSource: defaultChildrenSource(), ...settings };
    this.isExcludedLabel = labelMatcher(this.settings.excludeLabels);
  }

  updateSettings(settings: Partial<GuardSettings>): void {
    this.settings = { ...this.settings, ...settings };
    this.provenVms.clear();
    this.isExcludedLabel = labelMatcher(this.settings.excludeLabels);
  }

  get currentSettings(): GuardSettings {
    return this.settings;
  }

  /** From now on every stop is announced to `net` first, and every resume reported to it. */
  setSafetyNet(net: SafetyNet | undefined): void {
    this.safetyNet = net;
  }

  onDidChangeState(listener: (event: GuardEvent) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** Every crosvm VM on the host, with its device processes. */
  listVms(): VmSnapshot[] {
    assertLinux();
    return findVms(this.settings.processNames, this.settings.childrenSource);
  }

  /** Reads one VM, proving it is crosvm (and the same process, when a start time is given). */
  inspectVm(ref: VmRef): VmSnapshot {
    assertLinux();
    return readVm(ref.pid, this.settings.processNames, this.settings.childrenSource, ref.startTime, this.provenVms);
  }

  swapBuildOf(vm: VmSnapshot): SwapBuildVerdict {
    return judgeSwapBuild(vm, this.settings.assumeSwapBuild);
  }

  /** The VMs this guard holds frozen now. */
  get frozenVms(): FrozenVm[] {
    return [...this.frozen.values()];
  }

  frozenVm(pid: number): FrozenVm | undefined {
    return this.frozen.get(pid);
  }

  freeze(ref: VmRef, request: FreezeRequest = {}): Promise<FreezeReport> {
    return this.serialise(() => this.freezeNow(ref, request));
  }

  /** Resumes one VM, or every VM this guard froze when `ref` is omitted. */
  resume(ref?: VmRef): Promise<ResumeReport> {
    return this.serialise(async () => this.resumeNow(ref));
  }

  /**
   * Resumes everything at once, synchronously, outside the queue: only for a process about to
   * die of an error nothing caught (the companion's last resort), where awaiting is not possible.
   */
  resumeAllImmediately(): ResumeReport {
    return this.resumeNow();
  }

  /** Resumes everything; what an extension's deactivate() awaits. */
  dispose(): Promise<ResumeReport> {
    this.listeners.clear();
    return this.resume();
  }

  /**
   * Forgets VMs whose frozen processes all run again, or are gone, without signalling:
   * another window resumed them, or the user did. Returns what it forgot.
   */
  reconcile(): FrozenVm[] {
    const forgotten: FrozenVm[] = [];
    for (const vm of this.frozen.values()) {
      // Frozen by cgroup, the tasks are not "stopped": held while one of our freeze cgroups
      // is still there (whoever took over removed them).
      const stillHeld =
        vm.method === 'cgroup'
          ? (vm.cgroups ?? []).some((g) => fs.existsSync(g.dir))
          : vm.processes.some((p) => {
              const stat = readStat(p.pid);
              return stat !== undefined && stat.startTime === p.startTime && isStoppedState(stat.state);
            });
      if (stillHeld) continue;
      this.frozen.delete(vm.vm.pid);
      this.safetyNet?.didRelease(vm.processes, vm.cgroups);
      forgotten.push(vm);
    }
    if (forgotten.length > 0) this.emit({ type: 'resumed', report: { resumed: [], gone: forgotten.flatMap((f) => f.processes), elapsedMs: 0 } });
    return forgotten;
  }

  private serialise<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private emit(event: GuardEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not break freezing or, worse, resuming.
      }
    }
  }

  /** The method a freeze of `vm` would use now, and why; or why it would be refused. */
  methodFor(vm: VmSnapshot, request: FreezeRequest = {}): MethodChoice {
    return chooseMethod({
      vm,
      swapBuild: this.swapBuildOf(vm),
      setting: request.method ?? this.settings.method,
      scope: request.scope ?? 'devices',
      cgroupVersion: request.cgroupVersion,
      allowUnsafeSignals: request.allowUnsafeSignals,
    });
  }

  private async freezeNow(ref: VmRef, request: FreezeRequest): Promise<FreezeReport> {
    const started = performance.now();
    this.emit({ type: 'freezing', vmPid: ref.pid });
    try {
      const earlier = this.frozen.get(ref.pid);
      const vm = this.inspectVm({ pid: ref.pid, startTime: ref.startTime ?? earlier?.vm.startTime });
      const owners = this.settings.allowedOwners;
      if (owners && !owners.has(vm.main.uid)) {
        throw new GuardError('not-permitted', notPermittedVm(vm.main.pid, vm.main.uid, owners));
      }
      const scope: FreezeScope = request.scope === 'vm' || earlier?.scope === 'vm' ? 'vm' : 'devices';
      if (earlier && request.method && request.method !== 'auto' && request.method !== earlier.method) {
        throw new GuardError('invalid-argument', `VM ${vm.main.pid} is already frozen with ${earlier.method === 'signal' ? 'signals' : 'the cgroup freezer'}; resume it first.`);
      }
      // A VM frozen before keeps its method: what is frozen and what joins it must thaw together.
      const choice = this.methodFor(vm, {
        ...request,
        scope,
        method: earlier?.method ?? request.method,
        cgroupVersion: earlier?.cgroupVersion ?? request.cgroupVersion,
        allowUnsafeSignals: request.allowUnsafeSignals || earlier?.method === 'signal',
      });
      if (choice.method === undefined) throw choice.error;
      const identity: VmIdentity = { pid: vm.main.pid, startTime: vm.main.startTime, name: vm.name };
      const report =
        choice.method === 'cgroup'
          ? await this.freezeWithCgroups(vm, identity, scope, choice.hierarchy, request, earlier)
          : await this.freezeWithSignals(vm, identity, scope, request, earlier);
      const done: FreezeReport = { ...report, vm: identity, scope, methodReason: choice.why, swapBuild: this.swapBuildOf(vm), elapsedMs: performance.now() - started };
      this.emit({ type: 'frozen', report: done });
      return done;
    } catch (error) {
      this.emit({ type: 'freeze-failed', vmPid: ref.pid, error: error as Error });
      throw error;
    }
  }

  private async freezeWithSignals(
    vm: VmSnapshot,
    identity: VmIdentity,
    scope: FreezeScope,
    request: FreezeRequest,
    earlier: FrozenVm | undefined,
  ): Promise<Pick<FreezeReport, 'method' | 'frozen' | 'skipped' | 'rounds'>> {
    const alreadyFrozen = new Map((earlier?.processes ?? []).map((p) => [identityKey(p), p]));
    const alreadySkipped = new Map((earlier?.skipped ?? []).map((p) => [identityKey(p), p]));
    const announced: FrozenProcess[] = [];
    const net = this.safetyNet;
    let result;
    try {
      result = await stopTree(vm.main, vm.devices, {
        scope,
        isExcludedLabel: this.isExcludedLabel,
        includeTraced: this.settings.includeTracedProcesses,
        stopTimeoutMs: this.settings.stopTimeoutMs,
        maxRounds: this.settings.maxRounds,
        childrenSource: this.settings.childrenSource,
        protectedPids: selfAndAncestors(),
        debuggeePids: new Set(request.excludePids ?? []),
        alreadyFrozen,
        alreadySkipped,
        knownThreads: new Map([...vm.threadIds].map(([pid, tids]) => [pid, [...tids]])),
        allowedOwners: this.settings.allowedOwners,
        // Write-ahead: whoever resumes after a crash knows of a process before it stops.
        beforeStop: net
          ? (targets) => {
              announced.push(...targets);
              return net.willStop(identity, targets);
            }
          : undefined,
      });
    } catch (error) {
      // Everything this call stopped was resumed: nobody needs to hold it any more.
      if (announced.length > 0) net?.didRelease(announced);
      if (error instanceof StopTreeFailure) {
        throw new FreezeError(vm.main.pid, error.failures, error.resumed.map((p) => p.pid));
      }
      throw error;
    }
    // Announced, then found outside the VM right before the signal: nobody may resume them.
    if (result.released.length > 0) net?.didRelease(result.released);
    if (result.stopped.length > 0 || earlier) {
      this.frozen.set(vm.main.pid, {
        vm: identity,
        scope,
        method: 'signal',
        since: earlier?.since ?? Date.now(),
        processes: [...(earlier?.processes ?? []), ...result.stopped],
        skipped: [...(earlier?.skipped ?? []), ...result.skipped],
      });
    }
    return { method: 'signal', frozen: result.stopped, skipped: result.skipped, rounds: result.rounds };
  }

  /**
   * The cgroup method: the same targets as for signals (the same skip rules), moved into
   * freeze cgroups and frozen. Re-scans catch devices the main process forked meanwhile; a
   * child forked inside a freeze cgroup is born frozen and stays there. All or nothing.
   */
  private async freezeWithCgroups(
    vm: VmSnapshot,
    identity: VmIdentity,
    scope: FreezeScope,
    hierarchy: CgroupHierarchy,
    request: FreezeRequest,
    earlier: FrozenVm | undefined,
  ): Promise<Pick<FreezeReport, 'method' | 'frozen' | 'skipped' | 'rounds' | 'cgroups'>> {
    const rules = {
      protectedPids: selfAndAncestors(),
      debuggeePids: new Set(request.excludePids ?? []),
      isExcludedLabel: this.isExcludedLabel,
      includeTraced: this.settings.includeTracedProcesses,
    };
    const handled = new Set([...(earlier?.processes ?? []), ...(earlier?.skipped ?? [])].map(identityKey));
    const frozen: FrozenProcess[] = [];
    const skipped: SkippedProcess[] = [];
    const groups: FreezeCgroup[] = [];
    const net = this.safetyNet;
    const announced: { processes: FrozenProcess[]; cgroups: FreezeCgroup[] } = { processes: [], cgroups: [] };
    let candidates = scope === 'vm' ? [vm.main, ...vm.devices] : [...vm.devices];
    let rounds = 0;
    // One deadline for every round, as for signals.
    const deadline = performance.now() + this.settings.stopTimeoutMs;
    const ownCgroups = new Set((earlier?.cgroups ?? []).map((g) => g.dir));
    const owners = this.settings.allowedOwners;
    const members = new Map([...(earlier?.processes ?? []), ...(earlier?.skipped ?? [])].map((p) => [p.pid, p.startTime]));
    try {
      for (; rounds < this.settings.maxRounds && candidates.length > 0; rounds++) {
        const targets: FrozenProcess[] = [];
        for (const p of candidates) {
          if (handled.has(identityKey(p))) continue;
          handled.add(identityKey(p));
          if (p.pid !== vm.main.pid) members.set(p.pid, p.startTime);
          const skip = classify(p, rules);
          const refusal = skip ? undefined : ownerRefusal(p, owners);
          if (refusal) throw new CgroupFreezeFailure([refusal]);
          if (skip) {
            skipped.push({ pid: p.pid, startTime: p.startTime, label: p.label, ...skip });
            // Born inside a freeze cgroup (forked by a target before its group froze), a
            // process the freeze must leave alone would stay frozen: it goes back, thawed.
            releaseFromFreezeCgroup(p.pid, [...(earlier?.cgroups ?? []), ...groups], hierarchy);
          } else targets.push({ pid: p.pid, startTime: p.startTime, label: p.label, ppid: p.ppid });
        }
        const outside: FrozenProcess[] = [];
        if (targets.length > 0) {
          const proof = new LineageProof(vm.main, members, owners);
          const created = await freezeInCgroups(targets, {
            hierarchy,
            stopTimeoutMs: this.settings.stopTimeoutMs,
            deadline,
            ownCgroups,
            prove: (target) => proof.check(target),
            onLeftVm: (target, reason) => {
              outside.push(target);
              skipped.push(leftVm(target, reason));
            },
            // Write-ahead: a crash from here on leaves cgroups the companion and journal know.
            beforeCreate: net
              ? (planned) => {
                  announced.processes.push(...targets);
                  announced.cgroups.push(...planned);
                  return net.willStop(identity, targets, planned);
                }
              : undefined,
          });
          groups.push(...created);
          for (const g of created) ownCgroups.add(g.dir);
        }
        if (outside.length > 0) {
          net?.didRelease(outside);
          announced.processes = announced.processes.filter((p) => !outside.includes(p));
        }
        frozen.push(...targets.filter((t) => !outside.includes(t)));
        candidates = this.inspectVm({ pid: vm.main.pid, startTime: vm.main.startTime }).devices.filter((d) => !handled.has(identityKey(d)));
      }
      if (candidates.length > 0) {
        // As for signals: a VM that forks faster than it can be frozen is not frozen at all.
        throw new CgroupFreezeFailure(
          candidates.map((p) => ({ pid: p.pid, label: p.label, reason: `new processes kept being forked while freezing (${this.settings.maxRounds} rounds); try again` })),
        );
      }
    } catch (error) {
      const problems = thawAndRestore(groups);
      if (announced.processes.length > 0) net?.didRelease(announced.processes, announced.cgroups);
      if (error instanceof CgroupFreezeFailure) {
        const failures = [...error.failures, ...problems.map((reason) => ({ pid: 0, label: 'rollback', reason }))];
        throw new FreezeError(vm.main.pid, failures, frozen.map((p) => p.pid));
      }
      throw error;
    }
    if (frozen.length > 0 || earlier) {
      this.frozen.set(vm.main.pid, {
        vm: identity,
        scope,
        method: 'cgroup',
        cgroupVersion: hierarchy.version,
        cgroups: [...(earlier?.cgroups ?? []), ...groups],
        since: earlier?.since ?? Date.now(),
        processes: [...(earlier?.processes ?? []), ...frozen],
        skipped: [...(earlier?.skipped ?? []), ...skipped],
      });
    }
    return { method: 'cgroup', frozen, skipped, rounds, cgroups: groups };
  }

  private resumeNow(ref?: VmRef): ResumeReport {
    const started = performance.now();
    const vms = ref ? [this.frozen.get(ref.pid)].filter((v): v is FrozenVm => v !== undefined) : [...this.frozen.values()];
    const resumed: FrozenProcess[] = [];
    const gone: FrozenProcess[] = [];
    const problems: string[] = [];
    for (const vm of vms) {
      if (vm.cgroups) {
        // Back in their own cgroups, and so thawed; a process that exited is simply gone.
        problems.push(...thawAndRestore(vm.cgroups));
        // A group that could not be thawed or removed stays held (here, in the journal and by
        // the companion) with the processes still in it: the next resume tries again.
        const left = remainingCgroups(vm.cgroups);
        const hierarchy = left.length > 0 ? freezerHierarchy(left[0].version) : undefined;
        const stuck = (p: FrozenProcess) => hierarchy !== undefined && left.some((g) => g.dir === cgroupDirOf(p.pid, hierarchy));
        const stillHeld = vm.processes.filter(stuck);
        for (const p of vm.processes) if (!stillHeld.includes(p)) (readStat(p.pid)?.startTime === p.startTime ? resumed : gone).push(p);
        if (left.length > 0) {
          this.frozen.set(vm.vm.pid, { ...vm, cgroups: left, processes: stillHeld });
          this.safetyNet?.didRelease(vm.processes.filter((p) => !stillHeld.includes(p)), vm.cgroups.filter((g) => !left.includes(g)));
          continue;
        }
      } else {
        const result = continueProcesses(vm.processes);
        resumed.push(...result.resumed);
        gone.push(...result.gone);
      }
      this.frozen.delete(vm.vm.pid);
      this.safetyNet?.didRelease(vm.processes, vm.cgroups);
    }
    const report: ResumeReport = { resumed, gone, ...(problems.length > 0 ? { problems } : {}), elapsedMs: performance.now() - started };
    if (vms.length > 0) this.emit({ type: 'resumed', report });
    return report;
  }
}
