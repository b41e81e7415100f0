// The freezing engine's front door: which VMs exist, freeze one, resume what we froze, and
// tell listeners about every change. It has no `vscode` import: the extension, the plain
// Node tests and the benchmark all drive this same class.
import { assertLinux, GuardError } from './errors';
import { KeptProcFiles, readUidMap } from './procfs';
import { defaultChildrenSource, ownersPhrase, selfAndAncestors } from './processTree';
import { chooseMethod, MethodChoice } from './methods/chooseMethod';
import { driverOf, freezeBy, methodName, undoFreeze } from './methods/drivers';
import type { FreezeMethod } from './methods/methodDriver';
import { globsRegExp } from './glob';
import { fullLabel } from './labels';
import { judgeSwapBuild, SwapBuildVerdict } from './swapBuild';
import { TargetRules } from './targets';
import {
  DEFAULT_SETTINGS,
  Disposable,
  FreezeEngine,
  FreezeReport,
  FreezeRequest,
  FreezeScope,
  FrozenProcess,
  FrozenVm,
  GuardEvent,
  GuardSettings,
  ResumeReport,
  LeftStopped,
  SafetyNet,
  VmIdentity,
  VmRef,
} from './types';
import { findVms, ProvenVms, readVm, rereadVm, VmSnapshot } from './vms';
import { crosvmExecutableOf, ExecutableFile } from './crosvmExecutable';

/** How old a walk may be for a freeze to start from it instead of walking again. */
const RECENT_TREE_MS = 30_000;

function notPermittedVm(pid: number, uid: number, owners: ReadonlySet<number>): string {
  return `crosvm VM ${pid} runs as uid ${uid}: only VMs of ${ownersPhrase(owners)} may be frozen here.`;
}

function frozenOtherwise(pid: number, method: FreezeMethod): string {
  return `VM ${pid} is already frozen with ${methodName(method)}; resume it first.`;
}

function notCrosvmExecutable(pid: number, label: string, problem: string): string {
  return `Process ${pid} (${label}) is named like crosvm, but ${problem}: only crosvm VMs are frozen here.`;
}

/** Resume reports of several engines as one. */
export function mergeResumeReports(reports: readonly ResumeReport[]): ResumeReport {
  const problems = reports.flatMap((r) => r.problems ?? []);
  const leftStopped = reports.flatMap((r) => r.leftStopped ?? []);
  return {
    resumed: reports.flatMap((r) => r.resumed),
    gone: reports.flatMap((r) => r.gone),
    ...(leftStopped.length > 0 ? { leftStopped } : {}),
    ...(problems.length > 0 ? { problems } : {}),
    elapsedMs: reports.reduce((sum, r) => sum + r.elapsedMs, 0),
  };
}

/** Compiles label globs (`*` any run, `?` one character) into one full-match test. */
export function labelMatcher(patterns: readonly string[]): (label: string) => boolean {
  const regex = globsRegExp(patterns);
  return regex ? (label) => regex.test(label) : () => false;
}

/**
 * crosvmGuard.excludeLabels: a pattern matches a process's name as the kernel shows it
 * (`comm`, at most 15 bytes) or, where the kernel cut one of crosvm's labels, the whole label:
 * `pcivirtio-console` and `pcivirtio-conso` both exclude the console. Never the `#n` the view
 * adds to tell identical siblings apart: that number is not the process's and can change.
 */
export function excludedLabelMatcher(patterns: readonly string[]): (label: string) => boolean {
  const matches = labelMatcher(patterns);
  return (label) => {
    if (matches(label)) return true;
    const full = fullLabel(label);
    return full !== undefined && matches(full);
  };
}

export class CrosvmGuard implements FreezeEngine {
  private settings: GuardSettings;
  private isExcludedLabel: (label: string) => boolean;
  private readonly frozen = new Map<number, FrozenVm>();
  private readonly provenVms: ProvenVms = new Map();
  /** The last walk of each VM (see recentVm). */
  private readonly lastTrees = new Map<number, { vm: VmSnapshot; at: number }>();
  private readonly listeners = new Set<(event: GuardEvent) => void>();
  private safetyNet: SafetyNet | undefined;
  /** Freeze and resume run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The /proc files freezes and resumes read, kept open while they come in quick succession. */
  private readonly procFiles = new KeptProcFiles(RECENT_TREE_MS);

  constructor(settings: Partial<GuardSettings> = {}) {
    this.settings = { ...DEFAULT_SETTINGS, childrenSource: defaultChildrenSource(), ...settings };
    this.isExcludedLabel = excludedLabelMatcher(this.settings.excludeLabels);
  }

  updateSettings(settings: Partial<GuardSettings>): void {
    this.settings = { ...this.settings, ...settings };
    this.provenVms.clear();
    this.isExcludedLabel = excludedLabelMatcher(this.settings.excludeLabels);
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
    const vms = findVms(this.settings.processNames, this.settings.childrenSource);
    this.lastTrees.clear();
    for (const vm of vms) this.lastTrees.set(vm.main.pid, { vm, at: performance.now() });
    return vms;
  }

  /** Reads one VM, proving it is crosvm (and the same process, when a start time is given). */
  inspectVm(ref: VmRef): VmSnapshot {
    assertLinux();
    const vm = readVm(ref.pid, this.settings.processNames, this.settings.childrenSource, ref.startTime, this.provenVms);
    this.lastTrees.set(vm.main.pid, { vm, at: performance.now() });
    return vm;
  }

  /** `vm` with each of its processes read again (see rereadVm); undefined when the VM is gone. */
  reread(vm: VmSnapshot): VmSnapshot | undefined {
    return rereadVm(vm);
  }

  /**
   * The VM as the last walk of it found it, each process read again (a freeze's first round
   * needs fresh states): what is gone or is another process now is dropped, and the freeze's
   * re-scan finds whatever is new. Saves a whole walk at each debugger stop. Undefined when
   * there is no recent walk, or the main process is not that one any more.
   */
  private recentVm(pid: number, startTime: number | undefined): VmSnapshot | undefined {
    const last = this.lastTrees.get(pid);
    if (!last || performance.now() - last.at > RECENT_TREE_MS) return undefined;
    if (startTime !== undefined && last.vm.main.startTime !== startTime) return undefined;
    return rereadVm(last.vm);
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
    return this.serialise(() => this.procFiles.run(() => this.freezeNow(ref, request)));
  }

  /** Resumes one VM, or every VM this guard froze when `ref` is omitted. */
  resume(ref?: VmRef): Promise<ResumeReport> {
    return this.serialise(async () => this.procFiles.run(() => this.resumeNow(ref)));
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
    return this.resume().finally(() => this.procFiles.close());
  }

  /**
   * Forgets VMs whose frozen processes all run again, or are gone, without signalling:
   * another window resumed them, or the user did. Returns what it forgot.
   */
  reconcile(): FrozenVm[] {
    const forgotten: FrozenVm[] = [];
    for (const vm of this.frozen.values()) {
      if (driverOf(vm.method).isStillHeld(vm)) continue;
      this.frozen.delete(vm.vm.pid);
      this.safetyNet?.didRelease(vm.processes, vm.cgroups);
      forgotten.push(vm);
    }
    if (forgotten.length > 0) {
      this.emit({ type: 'resumed', report: { resumed: [], gone: forgotten.flatMap((f) => f.processes), elapsedMs: 0 } });
    }
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
      const startTime = ref.startTime ?? earlier?.vm.startTime;
      const recent = this.recentVm(ref.pid, startTime);
      const vm = recent ?? this.inspectVm({ pid: ref.pid, startTime });
      const owners = this.settings.allowedOwners;
      if (owners && !owners.has(vm.main.uid)) {
        throw new GuardError('not-permitted', notPermittedVm(vm.main.pid, vm.main.uid, owners));
      }
      this.crosvmExecutable(vm);
      const scope: FreezeScope = request.scope === 'vm' || earlier?.scope === 'vm' ? 'vm' : 'devices';
      if (earlier && request.method && request.method !== 'auto' && request.method !== earlier.method) {
        throw new GuardError('invalid-argument', frozenOtherwise(vm.main.pid, earlier.method));
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
      const outcome = await freezeBy({
        vm,
        identity,
        scope,
        choice,
        rules: this.targetRules(request, vm),
        stopTimeoutMs: this.settings.stopTimeoutMs,
        maxRounds: this.settings.maxRounds,
        childrenSource: this.settings.childrenSource,
        earlier,
        fromEarlierWalk: recent !== undefined,
        net: this.safetyNet,
        rescan: () => this.inspectVm({ pid: vm.main.pid, startTime: vm.main.startTime }).devices,
      });
      this.hold(identity, scope, earlier, outcome.held, outcome.frozen, outcome.skipped);
      const done: FreezeReport = {
        method: choice.method,
        frozen: outcome.frozen,
        skipped: outcome.skipped,
        rounds: outcome.rounds,
        ...(outcome.cgroups ? { cgroups: outcome.cgroups } : {}),
        vm: identity,
        scope,
        methodReason: choice.why,
        swapBuild: this.swapBuildOf(vm),
        elapsedMs: performance.now() - started,
      };
      this.emit({ type: 'frozen', report: done });
      return done;
    } catch (error) {
      this.emit({ type: 'freeze-failed', vmPid: ref.pid, error: error as Error });
      throw error;
    }
  }

  /** Adds what one freeze call froze and skipped to what this guard holds of the VM (either method). */
  private hold(
    vm: VmIdentity,
    scope: FreezeScope,
    earlier: FrozenVm | undefined,
    how: Pick<FrozenVm, 'method' | 'cgroupVersion' | 'cgroups'>,
    frozen: readonly FrozenProcess[],
    skipped: FrozenVm['skipped'],
  ): void {
    if (frozen.length === 0 && !earlier) return;
    this.frozen.set(vm.pid, {
      vm,
      scope,
      ...how,
      since: earlier?.since ?? Date.now(),
      processes: [...(earlier?.processes ?? []), ...frozen],
      skipped: [...(earlier?.skipped ?? []), ...skipped],
    });
  }

  /** The rules both methods apply to every process of a VM (see targets.ts). */
  private targetRules(request: FreezeRequest, vm: VmSnapshot): TargetRules {
    const owners = this.settings.allowedOwners;
    return {
      protectedPids: selfAndAncestors(),
      debuggeePids: new Set(request.excludePids ?? []),
      isExcludedLabel: this.isExcludedLabel,
      includeTraced: this.settings.includeTracedProcesses,
      allowedOwners: owners,
      // Read once per freeze: the VM's own namespace, against which a device's is compared.
      ...(owners ? { vmUidMap: readUidMap(vm.main.pid) } : {}),
      executable: this.crosvmExecutable(vm),
    };
  }

  /**
   * With requireCrosvmExecutable, the file the VM's main process runs, shown to be crosvm by
   * its contents; every process frozen must run it too. Throws for anything else.
   */
  private crosvmExecutable(vm: VmSnapshot): ExecutableFile | undefined {
    if (!this.settings.requireCrosvmExecutable) return undefined;
    const judged = crosvmExecutableOf(vm.main.pid);
    if ('problem' in judged) throw new GuardError('not-crosvm', notCrosvmExecutable(vm.main.pid, vm.main.label, judged.problem));
    return judged.file;
  }

  private resumeNow(ref?: VmRef): ResumeReport {
    const started = performance.now();
    const vms = ref ? [this.frozen.get(ref.pid)].filter((v): v is FrozenVm => v !== undefined) : [...this.frozen.values()];
    const resumed: FrozenProcess[] = [];
    const gone: FrozenProcess[] = [];
    const leftStopped: LeftStopped[] = [];
    const problems: string[] = [];
    for (const vm of vms) {
      const outcome = undoFreeze(
        { vm: vm.vm, method: vm.method, processes: vm.processes, cgroups: vm.cgroups ?? [] },
        { leaveOthers: { leaveTraced: !this.settings.includeTracedProcesses } },
      );
      resumed.push(...outcome.resumed);
      gone.push(...outcome.gone);
      // Refused by the kernel (not by a proof: none here): left as it is, and said.
      leftStopped.push(...outcome.leftStopped, ...outcome.refused.map((r) => ({ ...r.process, why: r.why })));
      problems.push(...outcome.problems);
      const left = outcome.stillHeld;
      if (left) {
        // What could not be undone stays held (here, in the journal and by the companion)
        // with the processes still in it: the next resume tries again.
        const stillHeld = new Set(left.processes);
        this.frozen.set(vm.vm.pid, { ...vm, cgroups: left.cgroups, processes: left.processes });
        this.safetyNet?.didRelease(
          vm.processes.filter((p) => !stillHeld.has(p)),
          (vm.cgroups ?? []).filter((g) => !left.cgroups.includes(g)),
        );
        continue;
      }
      this.frozen.delete(vm.vm.pid);
      this.safetyNet?.didRelease(vm.processes, vm.cgroups);
    }
    const report: ResumeReport = {
      resumed,
      gone,
      ...(leftStopped.length > 0 ? { leftStopped } : {}),
      ...(problems.length > 0 ? { problems } : {}),
      elapsedMs: performance.now() - started,
    };
    if (vms.length > 0) this.emit({ type: 'resumed', report });
    return report;
  }
}
