// The one place the VS Code layer keeps state: the engine, the last listing of VMs, and an
// event that the status bar, the tree and the context keys follow. Logging of discovery,
// freezes and resumes happens here so every path (command, API, status bar) is logged alike.
import * as vscode from 'vscode';
import { plural } from './describe';
import {
  CrosvmGuard,
  FreezeReport,
  FreezeRequest,
  FrozenVm,
  GuardEvent,
  ResumeReport,
  SwapBuildVerdict,
  VmRef,
  VmSnapshot,
  ProcessIdentity,
  sameProcess,
} from '../guard';
import { FreezeCgroup, freezerHierarchy } from '../guard/cgroupFreezer';
import { frozenByOthers, thawLeftoverCgroups } from '../guard/journal';
import { CgroupPlacement, cgroupPlacements, FreezeMethod, MethodChoice } from '../guard/method';
import { continueProcesses, maySignal } from '../guard/signalFreezer';
import { ElevatedGuard, ElevationError, ElevationOptions, ElevationTool } from '../guard/elevated';
import { GuardError } from '../guard/errors';
import { engineSettings, ExtensionSettings } from '../common/settings';
import { currentIdentity } from '../guard/processTree';
import { isExitedState, isStoppedState } from '../guard/procfs';

export interface VmView {
  readonly snapshot: VmSnapshot;
  readonly swapBuild: SwapBuildVerdict;
  /** What this window holds frozen of this VM, if anything. */
  readonly frozen: FrozenVm | undefined;
  /** What another VS Code window holds frozen of it (from that window's journal). */
  readonly frozenElsewhere:
    | { readonly ownerPid: number; readonly method: FreezeMethod; readonly processes: readonly ProcessIdentity[]; readonly cgroups: readonly FreezeCgroup[] }
    | undefined;
  /** The method a freeze would use now, and why (or why it would be refused). */
  readonly method: MethodChoice;
  /** Per pid: its cgroup in the freezer hierarchy and who may move it. */
  readonly placements: ReadonlyMap<number, CgroupPlacement>;
  /**
   * Why only the elevated companion can freeze it: `signals`, some of its processes may not be
   * signalled from here (crosvm runs as root); `cgroups`, its build dies on signals and its
   * cgroups are not writable from here (root's cgroup freezer is the way). Else undefined.
   */
  readonly needsElevation: 'signals' | 'cgroups' | undefined;
}

/** How the controller gets administrator rights, set up by the VS Code layer (password box, setting). */
export interface Elevation {
  /** crosvmGuard.elevation. */
  readonly setting: () => 'ask' | 'sudo' | 'pkexec' | 'never';
  /** Everything ElevatedGuard.start needs but the tool. */
  readonly options: () => Omit<ElevationOptions, 'tool'>;
}

/** How long a silent `sudo -n` that wanted a password is not tried again (each try spawns sudo). */
const SILENT_RETRY_MS = 60_000;
const SILENT_REFUSAL =
  'Starting the elevated companion needs your password, which is never asked at a debugger stop. Use "Freeze with administrator rights…" once: the companion it starts stays for the rest of the debug session.';

/** The tool each setting elevates with. */
const ELEVATION_TOOLS: Record<'ask' | 'sudo' | 'pkexec', ElevationTool> = { ask: 'auto', sudo: 'sudo', pkexec: 'pkexec' };

export class GuardController implements vscode.Disposable {
  readonly guard: CrosvmGuard;
  private views: VmView[] = [];
  private lastDiscovery = '';
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly stateChanged = new vscode.EventEmitter<GuardEvent>();
  private readonly disposables: vscode.Disposable[] = [this.changed, this.stateChanged];
  /** The listing or the frozen state changed. */
  readonly onDidChange = this.changed.event;
  /** The engine's own events, re-published for the API. */
  readonly onDidChangeState = this.stateChanged.event;

  /** Where windows keep their journals; set once crash safety is on. */
  journalDir: string | undefined;
  /** Set by the VS Code layer; without it VMs that need elevation cannot be frozen. */
  elevation: Elevation | undefined;
  private elevated: ElevatedGuard | undefined;
  private starting: Promise<ElevatedGuard> | undefined;
  /** When a silent `sudo -n` last failed for want of a password. */
  private silentRefusedAt: number | undefined;
  private readonly self: ProcessIdentity = { pid: process.pid, startTime: currentIdentity(process.pid)?.startTime ?? 0 };

  constructor(
    private readonly log: vscode.LogOutputChannel,
    settings: ExtensionSettings,
  ) {
    this.guard = new CrosvmGuard(engineSettings(settings));
    const subscription = this.guard.onDidChangeState((event) => {
      this.stateChanged.fire(event);
      // After the freeze or resume has returned, not inside it: a debugger step waits on it.
      if (event.type !== 'freezing') this.refreshSoon();
    });
    this.disposables.push({ dispose: () => subscription.dispose() });
  }

  updateSettings(settings: ExtensionSettings): void {
    this.guard.updateSettings(engineSettings(settings));
    this.refresh();
  }

  get vms(): readonly VmView[] {
    return this.views;
  }

  /** What this window holds frozen: by its own engine, and through the elevated companion. */
  get frozenVms(): FrozenVm[] {
    return [...this.guard.frozenVms, ...(this.elevated?.frozenVms ?? [])];
  }

  frozenVm(pid: number): FrozenVm | undefined {
    return this.guard.frozenVm(pid) ?? this.elevated?.frozenVm(pid);
  }

  get isFrozen(): boolean {
    return this.frozenVms.length > 0;
  }

  /** Keeps the elevated companion from its idle exit (during debug sessions that freeze at stops). */
  keepElevationAlive(): void {
    if (this.elevated?.isRunning) void this.elevated.keepAlive().catch(() => undefined);
  }

  /** The elevated companion's pid while one runs. */
  get elevatedCompanionPid(): number | undefined {
    return this.elevated?.isRunning ? this.elevated.companionPid : undefined;
  }

  /**
   * Starts the elevated companion (sudo or pkexec; the password box if sudo wants one), or
   * returns the one running. Concurrent callers share one start. `silent`: only what asks
   * nothing (`sudo -n`), for a debugger stop, where no dialog may appear.
   */
  startElevation(silent = false): Promise<ElevatedGuard> {
    if (this.elevated?.isRunning) return Promise.resolve(this.elevated);
    if (this.starting) return this.starting;
    const elevation = this.elevation;
    if (!elevation || elevation.setting() === 'never') {
      return Promise.reject(new GuardError('needs-elevation', 'Freezing with administrator rights is turned off (setting crosvmGuard.elevation is "never").'));
    }
    // sudo -n failed for want of a password a moment ago: do not spawn it at every step.
    if (silent && this.silentRefusedAt !== undefined && Date.now() - this.silentRefusedAt < SILENT_RETRY_MS) {
      return Promise.reject(new GuardError('needs-elevation', SILENT_REFUSAL));
    }
    const tool = silent ? 'sudo' : ELEVATION_TOOLS[elevation.setting() as 'ask' | 'sudo' | 'pkexec'];
    const options = silent ? { ...elevation.options(), askPassword: undefined } : elevation.options();
    this.log.info(`Starting the elevated companion with ${silent ? 'sudo -n (nothing is asked at a debugger stop)' : tool === 'auto' ? 'sudo (then pkexec or a password if sudo asks for one)' : tool}.`);
    this.starting = ElevatedGuard.start({ ...options, tool }).then(
      (elevated) => {
        this.starting = undefined;
        this.elevated = elevated;
        this.silentRefusedAt = undefined;
        const subscription = elevated.onDidChangeState((event) => {
          this.stateChanged.fire(event);
          if (event.type !== 'freezing') this.refreshSoon();
        });
        elevated.onDidExit((reason) => {
          subscription.dispose();
          if (this.elevated === elevated) this.elevated = undefined;
          this.log.info(`The elevated companion ended (${reason}).`);
          this.refreshSoon();
        });
        return elevated;
      },
      (error: Error) => {
        this.starting = undefined;
        this.log.warn(`Elevation failed: ${error.message}`);
        if (silent && error instanceof ElevationError && error.reason === 'not-permitted') {
          this.silentRefusedAt = Date.now();
          throw new GuardError('needs-elevation', SILENT_REFUSAL);
        }
        throw error;
      },
    );
    return this.starting;
  }

  /**
   * Freezes through the engine that may: this window's own, or for a VM that runs as another
   * user, the elevated companion — started now if crosvmGuard.elevation is `sudo` or
   * `pkexec`; with `ask` the caller offers it first (error code `needs-elevation`). Not
   * logged: the debug follower calls it at every stop.
   */
  async freezeQuietly(ref: VmRef, request: FreezeRequest = {}, atDebuggerStop = false): Promise<FreezeReport> {
    const view = this.views.find((v) => v.snapshot.main.pid === ref.pid);
    if (this.guard.frozenVm(ref.pid) || !view?.needsElevation) return this.guard.freeze(ref, request);
    const full = { pid: ref.pid, startTime: ref.startTime ?? view.snapshot.main.startTime };
    if (this.elevated?.isRunning) return this.elevated.freeze(full, request);
    const setting = this.elevation?.setting() ?? 'never';
    // At a debugger stop nothing may be asked: sudo -n only (passwordless sudo), and the
    // follower offers the rest once, outside the stop.
    if (atDebuggerStop && setting !== 'never') return (await this.startElevation(true)).freeze(full, request);
    if (setting === 'sudo' || setting === 'pkexec') return (await this.startElevation()).freeze(full, request);
    // Elevation off: for want of cgroup access the engine's own refusal names the ways out.
    if (view.needsElevation === 'cgroups' && setting === 'never') return this.guard.freeze(ref, request);
    const why =
      view.needsElevation === 'signals'
        ? `crosvm VM ${ref.pid} ${view.snapshot.main.uid === 0 ? 'runs as root' : `runs as uid ${view.snapshot.main.uid}`}; this window runs as uid ${process.geteuid?.()} and may not signal it.`
        : `crosvm VM ${ref.pid} would shut down if its devices were stopped with signals (${view.swapBuild.evidence}), and this window may not write its cgroups for the cgroup freezer.`;
    throw new GuardError(
      'needs-elevation',
      `${why} ${setting === 'never' ? 'Freezing with administrator rights is turned off (setting crosvmGuard.elevation is "never").' : 'It can be frozen with administrator rights (as root the cgroup freezer is always open).'}`,
    );
  }

  /** Resumes through both engines; not logged (see freezeQuietly). */
  async resumeQuietly(ref?: VmRef): Promise<ResumeReport> {
    const local = await this.guard.resume(ref);
    const elevated = this.elevated?.isRunning && (!ref || this.elevated.frozenVm(ref.pid)) ? await this.elevated.resume(ref && { pid: ref.pid, startTime: ref.startTime ?? this.elevated.frozenVm(ref.pid)?.vm.startTime ?? 0 }) : undefined;
    if (!elevated) return local;
    const problems = [...(local.problems ?? []), ...(elevated.problems ?? [])];
    return {
      resumed: [...local.resumed, ...elevated.resumed],
      gone: [...local.gone, ...elevated.gone],
      ...(problems.length > 0 ? { problems } : {}),
      elapsedMs: local.elapsedMs + elevated.elapsedMs,
    };
  }

  /**
   * Lets go of VMs that run again although this window did not resume them (another window
   * took over, or someone sent SIGCONT). Cheap: one `stat` per frozen process.
   */
  forgetResumedElsewhere(): boolean {
    const forgotten = this.guard.reconcile();
    for (const vm of forgotten) {
      this.log.info(`VM ${vm.vm.pid} (${vm.vm.name}) runs again, resumed outside this window; no longer holding it.`);
    }
    return forgotten.length > 0;
  }

  /** Some VM is held frozen by another VS Code window. */
  get isFrozenElsewhere(): boolean {
    return this.views.some((v) => v.frozenElsewhere !== undefined);
  }

  /**
   * Resumes what another window froze of a VM, after the user agreed to take over: its
   * freeze cgroups thawed and removed, or SIGCONT for each process that is still the one
   * that window recorded and is still stopped.
   */
  takeOver(view: VmView): ProcessIdentity[] {
    const other = view.frozenElsewhere;
    if (other?.method === 'cgroup') {
      const notes: string[] = [];
      const thawed = thawLeftoverCgroups({ cgroups: other.cgroups, processes: other.processes.map((p) => ({ ...p, label: '' })) }, notes);
      this.log.info(`Took over VM ${view.snapshot.main.pid} from the window of extension host ${other.ownerPid}: thawed ${plural(other.cgroups.length, 'freeze cgroup')}, ${plural(thawed.length, 'process', 'processes')} running again.${notes.length > 0 ? ` ${notes.join('; ')}` : ''}`);
      this.refresh();
      return thawed;
    }
    const recorded = other?.processes ?? [];
    const known = new Map(view.snapshot.devices.concat(view.snapshot.main).map((p) => [p.pid, p]));
    // Only processes of this VM as read now, with the recorded start time: nothing else.
    const mine = recorded
      .map((p) => known.get(p.pid))
      .filter((p): p is NonNullable<typeof p> => p !== undefined && recorded.some((r) => sameProcess(r, p)))
      .map((p) => ({ pid: p.pid, startTime: p.startTime, label: p.label, ppid: p.ppid }));
    const { resumed } = continueProcesses(mine);
    this.log.info(`Took over VM ${view.snapshot.main.pid} from the window of extension host ${view.frozenElsewhere?.ownerPid}: resumed ${plural(resumed.length, 'process', 'processes')} [${resumed.map((p) => `${p.label} ${p.pid}`).join(', ')}].`);
    this.refresh();
    return resumed;
  }

  private refreshPending = false;

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
    const others = this.journalDir ? frozenByOthers(this.journalDir, this.self) : new Map();
    const hierarchy = freezerHierarchy();
    this.views = snapshots.map((snapshot) => {
      const other = others.get(snapshot.main.pid);
      const frozen = this.frozenVm(snapshot.main.pid);
      const method = this.guard.methodFor(snapshot);
      return {
        snapshot,
        swapBuild: this.guard.swapBuildOf(snapshot),
        frozen,
        frozenElsewhere:
          other && other.vm.startTime === snapshot.main.startTime
            ? { ownerPid: other.owner.pid, method: other.vm.method, processes: other.vm.processes, cgroups: other.vm.cgroups }
            : undefined,
        method,
        placements: new Map(hierarchy ? cgroupPlacements(snapshot, 'vm', hierarchy).map((p) => [p.pid, p]) : []),
        needsElevation: this.elevationNeeded(snapshot, method),
      };
    });
    this.logDiscovery();
    // Fire only when what is shown changed: the tree and the context keys follow this event,
    // and the status bar's elapsed time has a ticker of its own.
    const signature = viewSignature(this.views);
    if (signature !== this.lastSignature) this.changed.fire();
    this.lastSignature = signature;
    return this.views;
  }

  private lastSignature = '';

  private elevationNeeded(vm: VmSnapshot, method: MethodChoice): VmView['needsElevation'] {
    if (process.geteuid?.() === 0) return undefined;
    if ([vm.main, ...vm.devices].some((p) => !maySignal(p.pid))) return 'signals';
    // Refused here for want of cgroup access (not for want of a mounted freezer): root has it.
    return method.method === undefined && method.refusal === 'cgroup-denied' ? 'cgroups' : undefined;
  }

  private logDiscovery(): void {
    const text = this.views
      .map(
        ({ snapshot: vm, swapBuild, method }) =>
          `VM ${vm.main.pid} (${vm.name}), ${plural(vm.devices.length, 'device process', 'device processes')} [${vm.devices.map((d) => `${d.label} ${d.pid}`).join(', ')}]; signals ${swapBuild.tolerant ? 'safe' : 'unsafe'}: ${swapBuild.evidence}; freeze method ${method.method ?? 'none'}: ${method.why}`,
      )
      .join('\n');
    // The same listing every 2 s would drown the log: say it when it changes.
    if (text === this.lastDiscovery) return;
    this.lastDiscovery = text;
    this.log.info(this.views.length === 0 ? 'Discovery: no crosvm VM is running.' : `Discovery:\n${text}`);
  }

  async freeze(ref: VmRef, request: FreezeRequest = {}): Promise<FreezeReport> {
    try {
      const report = await this.freezeQuietly(ref, request);
      const frozen = report.frozen.map((p) => `${p.label} ${p.pid}`).join(', ');
      const skipped = report.skipped.map((s) => `${s.label} ${s.pid} (${s.detail})`).join(', ');
      this.log.info(
        `Froze VM ${report.vm.pid} (${report.vm.name}), scope ${report.scope}, by ${report.methodReason}: ${plural(report.frozen.length, 'process', 'processes')} in ${report.elapsedMs.toFixed(1)} ms [${frozen}]` +
          (skipped ? `; skipped [${skipped}]` : ''),
      );
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
      this.log.info(
        `Resumed ${plural(report.resumed.length, 'process', 'processes')} in ${report.elapsedMs.toFixed(1)} ms [${report.resumed.map((p) => `${p.label} ${p.pid}`).join(', ')}]` +
          (report.gone.length > 0 ? `; gone meanwhile, not signalled [${report.gone.map((p) => `${p.label} ${p.pid}`).join(', ')}]` : ''),
      );
    }
    return report;
  }

  /** Resumes everything this window froze; what deactivate() awaits. */
  async resumeAll(reason: string): Promise<ResumeReport> {
    if (this.isFrozen) this.log.info(`Resuming everything: ${reason}.`);
    return this.resume();
  }

  dispose(): void {
    // Closing the link makes the elevated companion resume what it still holds, and exit.
    this.elevated?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

/** What the tree and the status bar show of the listing, as a string to compare. */
function viewSignature(views: readonly VmView[]): string {
  const kind = (state: string) => (isStoppedState(state) ? 'T' : isExitedState(state) ? 'Z' : 'R');
  return JSON.stringify(
    views.map((v) => [
      v.snapshot.main.pid,
      v.snapshot.main.startTime,
      v.snapshot.name,
      [v.snapshot.main, ...v.snapshot.devices].map((p) => [p.pid, p.startTime, p.ppid, p.label, p.uid, p.threads, p.tracerPid, kind(p.state)]),
      v.swapBuild.tolerant,
      v.swapBuild.evidence,
      v.method.method,
      v.method.why,
      v.needsElevation,
      v.frozen && [v.frozen.since, v.frozen.scope, v.frozen.method, v.frozen.processes.length, v.frozen.skipped.length],
      v.frozenElsewhere?.ownerPid,
      [...v.placements.values()].map((p) => [p.pid, p.dir, p.access]),
    ]),
  );
}
