// The one place the VS Code layer keeps state: its engines (its own, and the root companion
// through ElevationSession), the last listing of VMs (viewModel.ts), and an event that the
// status bar, the tree and the context keys follow. It routes a freeze to the engine that
// may, and logs every freeze and resume, whatever path (command, API, status bar) asked.
import * as vscode from 'vscode';
import {
  cgroupPlacements,
  CrosvmGuard,
  currentIdentity,
  FreezeEngine,
  FreezeReport,
  FreezeRequest,
  freezerHierarchy,
  frozenByOthers,
  FrozenVm,
  GuardEvent,
  maySignal,
  mergeResumeReports,
  ProcessIdentity,
  ResumeReport,
  takeOverFrozenVm,
  VmRef,
  VmSnapshot,
} from '../guard';
import { ElevationNeed, ElevationSession, ElevationSessionOptions } from '../companion/elevationSession';
import { engineSettings, ExtensionSettings } from '../common/settings';
import { discoveryLine, frozeLine, resumedLine, tookOverLine } from './logText';
import { buildVmView, viewSignature, VmView } from './viewModel';

export type { VmView } from './viewModel';

/** How long after the last freeze or resume the host is listed again (see showEngineState). */
const SETTLE_MS = 300;

export interface ControllerOptions {
  readonly log: vscode.LogOutputChannel;
  readonly settings: ExtensionSettings;
  /** Where windows keep their journals: this window sees what others froze. */
  readonly journalDir: string;
  /** How administrator rights are had (the setting, the password box). */
  readonly elevation: Pick<ElevationSessionOptions, 'setting' | 'options'>;
}

export class GuardController implements vscode.Disposable {
  readonly guard: CrosvmGuard;
  /** The root companion, for VMs this window may not freeze itself. */
  readonly elevation: ElevationSession;
  private views: VmView[] = [];
  /** The last discovery line of each VM, by pid and start time (undefined: nothing listed yet). */
  private lastDiscovery: Map<string, string> | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly stateChanged = new vscode.EventEmitter<GuardEvent>();
  private readonly disposables: vscode.Disposable[] = [this.changed, this.stateChanged];
  /** The listing or the frozen state changed. */
  readonly onDidChange = this.changed.event;
  /** The engines' own events, re-published for the API. */
  readonly onDidChangeState = this.stateChanged.event;
  private readonly log: vscode.LogOutputChannel;
  private readonly journalDir: string;
  private readonly self: ProcessIdentity = { pid: process.pid, startTime: currentIdentity(process.pid)?.startTime ?? 0 };

  constructor(options: ControllerOptions) {
    this.log = options.log;
    this.journalDir = options.journalDir;
    this.guard = new CrosvmGuard(engineSettings(options.settings));
    const onEvent = (event: GuardEvent) => {
      this.stateChanged.fire(event);
      // After the freeze or resume has returned, not inside it: a debugger step waits on it.
      if (event.type !== 'freezing') this.showEngineState();
    };
    this.elevation = new ElevationSession({
      ...options.elevation,
      log: (level, message) => this.log[level](message),
      onEvent,
      onChange: () => this.refreshSoon(),
    });
    const subscription = this.guard.onDidChangeState(onEvent);
    this.disposables.push({ dispose: () => subscription.dispose() });
  }

  updateSettings(settings: ExtensionSettings): void {
    this.guard.updateSettings(engineSettings(settings));
    this.refresh();
  }

  get vms(): readonly VmView[] {
    return this.views;
  }

  /** This window's engines: its own, and the root companion while one runs. */
  private get engines(): FreezeEngine[] {
    const elevated = this.elevation.engine;
    return elevated ? [this.guard, elevated] : [this.guard];
  }

  /** What this window holds frozen, by any of its engines. */
  get frozenVms(): FrozenVm[] {
    return this.engines.flatMap((e) => e.frozenVms);
  }

  frozenVm(pid: number): FrozenVm | undefined {
    for (const engine of this.engines) {
      const frozen = engine.frozenVm(pid);
      if (frozen) return frozen;
    }
    return undefined;
  }

  get isFrozen(): boolean {
    return this.frozenVms.length > 0;
  }

  /**
   * Freezes through the engine that may: the one already holding the VM, this window's own,
   * or, for a VM that needs it, the root companion (see ElevationSession.engineFor, which
   * may refuse with `needs-elevation`, the way out in its message). Not logged: the debug
   * follower calls it at every stop.
   */
  async freezeQuietly(ref: VmRef, request: FreezeRequest = {}, at: ElevationNeed['at'] = 'command'): Promise<FreezeReport> {
    const holder = this.engines.find((e) => e.frozenVm(ref.pid));
    // A VM the root companion holds goes to it again only when root may be used here.
    if (holder && (holder === this.guard || at !== 'stop-from-workspace')) return holder.freeze(ref, request);
    const view = this.views.find((v) => v.snapshot.main.pid === ref.pid);
    if (!view?.needsElevation) return this.guard.freeze(ref, request);
    const { main } = view.snapshot;
    const need = { vmPid: ref.pid, why: view.needsElevation, uid: main.uid, evidence: view.swapBuild.evidence, at };
    const engine = (await this.elevation.engineFor(need)) ?? this.guard;
    return engine.freeze({ pid: ref.pid, startTime: ref.startTime ?? main.startTime }, request);
  }

  /** Resumes through every engine that holds something; not logged (see freezeQuietly). */
  async resumeQuietly(ref?: VmRef): Promise<ResumeReport> {
    const holders = this.engines.filter((e, i) => i === 0 || (ref ? e.frozenVm(ref.pid) : e.frozenVms.length > 0));
    const reports: ResumeReport[] = [];
    for (const engine of holders) reports.push(await engine.resume(ref));
    return reports.length === 1 ? reports[0] : mergeResumeReports(reports);
  }

  /**
   * Lets go of VMs that run again although this window did not resume them (another window
   * took over, or someone sent SIGCONT). Cheap: one `stat` per frozen process.
   */
  forgetResumedElsewhere(): boolean {
    const forgotten = this.guard.reconcile();
    for (const vm of forgotten) {
      this.log.info(`VM ${vm.vm.pid} (${vm.vm.name}) runs again, resumed outside this window; no longer holding it.`);
      // The user froze it here and may be relying on it: a freeze lost is said where it is seen.
      void vscode.window.showWarningMessage(lostFreezeMessage(vm.vm.pid, vm.vm.name));
    }
    return forgotten.length > 0;
  }

  /** Some VM is held frozen by another VS Code window. */
  get isFrozenElsewhere(): boolean {
    return this.views.some((v) => v.frozenElsewhere !== undefined);
  }

  /** Resumes what another window froze of a VM, after the user agreed (see takeOverFrozenVm). */
  takeOver(view: VmView): ProcessIdentity[] {
    const other = view.frozenElsewhere;
    if (!other) return [];
    const { resumed, notes } = takeOverFrozenVm(other, view.snapshot);
    const thawed = other.cgroups.length > 0 ? other.cgroups.length : undefined;
    this.log.info(tookOverLine(view.snapshot.main.pid, other.ownerPid, thawed, resumed.length, notes));
    this.refresh();
    return resumed;
  }

  private refreshPending = false;
  private settling: NodeJS.Timeout | undefined;

  /**
   * After a freeze or resume: shows what the engines hold at once, without reading /proc, and
   * once nothing has changed for a moment, the states of the listed VMs' processes (a `stat`
   * and a `status` each, not a listing of the host). Stepping in a debugger freezes and
   * resumes many times a second, and a listing in between would delay the next stop's freeze
   * or continue's resume. A VM gone or changed meanwhile is found by a full refresh.
   */
  private showEngineState(): void {
    setImmediate(() => {
      // The VM whose freeze changed is read again at once (its processes' states, a few reads
      // each), so that no row says running while it is frozen; the others wait for the settle.
      this.views = this.views.map((v) => {
        const frozen = this.frozenVm(v.snapshot.main.pid);
        if (frozen === v.frozen) return v;
        return { ...v, snapshot: this.guard.reread(v.snapshot) ?? v.snapshot, frozen };
      });
      this.fireIfShownChanged();
    });
    clearTimeout(this.settling);
    this.settling = setTimeout(() => this.refreshStates(), SETTLE_MS);
  }

  private refreshStates(): void {
    const views: VmView[] = [];
    for (const view of this.views) {
      const snapshot = this.guard.reread(view.snapshot);
      if (!snapshot || snapshot.devices.length !== view.snapshot.devices.length) return void this.refresh();
      views.push({ ...view, snapshot, frozen: this.frozenVm(snapshot.main.pid) });
    }
    this.views = views;
    this.fireIfShownChanged();
  }

  /** One refresh on the next turn of the event loop, however many changes came before it. */
  refreshSoon(): void {
    if (this.refreshPending) return;
    this.refreshPending = true;
    setImmediate(() => {
      this.refreshPending = false;
      this.refresh();
    });
  }

  /** Re-reads /proc. Cheap (a few ms) but not free, so it runs on events, not in a loop. */
  refresh(): readonly VmView[] {
    let snapshots: VmSnapshot[];
    try {
      snapshots = this.guard.listVms();
    } catch (error) {
      this.log.error(`Listing crosvm VMs failed: ${(error as Error).message}`);
      snapshots = [];
    }
    this.forgetResumedElsewhere();
    const others = frozenByOthers(this.journalDir, this.self);
    const hierarchy = freezerHierarchy();
    const uid = process.geteuid?.() ?? -1;
    this.views = snapshots.map((snapshot) => {
      const other = others.get(snapshot.main.pid);
      return buildVmView({
        snapshot,
        swapBuild: this.guard.swapBuildOf(snapshot),
        method: this.guard.methodFor(snapshot),
        frozen: this.frozenVm(snapshot.main.pid),
        other: other && { ownerPid: other.owner.pid, vm: other.vm },
        placements: hierarchy ? cgroupPlacements(snapshot, 'vm', hierarchy) : [],
        uid,
        maySignal,
      });
    });
    this.logDiscovery();
    this.fireIfShownChanged();
    return this.views;
  }

  /**
   * Fires only when what is shown changed: the tree and the context keys follow this event,
   * and the status bar's elapsed time has a ticker of its own.
   */
  private fireIfShownChanged(): void {
    const signature = viewSignature(this.views);
    if (signature !== this.lastSignature) this.changed.fire();
    this.lastSignature = signature;
  }

  private lastSignature = '';

  /**
   * Logs what changed in the listing since the last time: a VM found (or found changed: its
   * devices, its method), a VM gone. The same listing every 2 s, or the whole of it at each
   * change, would drown the log.
   */
  private logDiscovery(): void {
    const lines = new Map(this.views.map((v) => [`${v.snapshot.main.pid}@${v.snapshot.main.startTime}`, discoveryLine(v)]));
    const first = this.lastDiscovery === undefined;
    const before = this.lastDiscovery ?? new Map<string, string>();
    this.lastDiscovery = lines;
    for (const [key, line] of lines) if (before.get(key) !== line) this.log.info(`Discovery: ${line}`);
    for (const key of before.keys()) if (!lines.has(key)) this.log.info(`Discovery: VM ${key.split('@')[0]} is gone.`);
    if (lines.size === 0 && (first || before.size > 0)) this.log.info('Discovery: no crosvm VM is running.');
  }

  async freeze(ref: VmRef, request: FreezeRequest = {}): Promise<FreezeReport> {
    try {
      const report = await this.freezeQuietly(ref, request);
      this.log.info(frozeLine(report));
      return report;
    } catch (error) {
      this.log.error(`Freezing VM ${ref.pid} failed: ${(error as Error).message}`);
      throw error;
    }
  }

  async resume(ref?: VmRef): Promise<ResumeReport> {
    const report = await this.resumeQuietly(ref);
    for (const problem of report.problems ?? []) this.log.error(`Resume: ${problem}`);
    if (report.resumed.length > 0 || report.gone.length > 0) {
      this.log.info(resumedLine(report));
    }
    return report;
  }

  /** Resumes everything this window froze; what deactivate() awaits. */
  async resumeAll(reason: string): Promise<ResumeReport> {
    if (this.isFrozen) this.log.info(`Resuming everything: ${reason}.`);
    return this.resume();
  }

  dispose(): void {
    clearTimeout(this.settling);
    this.elevation.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

function lostFreezeMessage(pid: number, name: string): string {
  return `crosvm VM ${pid} (${name}) runs again: it was resumed outside this window (another window took it over, or a SIGCONT). This window no longer holds it frozen.`;
}
