// Follows every debug session through the Debug Adapter Protocol: when the debugger stops,
// the devices freeze; when it continues or steps, they resume; when the session ends,
// everything it froze resumes. Setting crosvmGuard.debug.autoFreeze turns it on.
import * as vscode from 'vscode';
import { FreezeReport, GuardError, VmRef } from '../guard';
import { DebugTarget } from '../common/settings';
import type { LiveSettings } from './config';
import { GuardController, VmView } from './controller';
import { autoLine } from './logText';
import type { DebugSessionTargets } from './describe';
import { adapterMessageMeaning, clientRequestMeaning, configuredPid, DapMessage, DapMeaning, targetVms } from './debugAdapterMessages';
import { showVmPicker } from './vmPicker';
import { isVm, vmRef } from './vmRefs';
import { offerWayOut } from './wayOut';

/**
 * After the debuggee runs again, how long to wait before choosing the VMs for the next stop
 * anew (listing every process on the host): a step stops again sooner than that, and then
 * the last choice serves. Nothing is listed at a stop when a choice is ready.
 */
const RECHOOSE_AFTER_MS = 300;

interface SessionState {
  readonly session: vscode.DebugSession;
  /** The process being debugged: from the `process` event or the attach configuration. */
  debuggeePid: number | undefined;
  /** The user took manual control (status bar): no more automatic freezing. */
  manual: boolean;
  /** VMs chosen once per session with `ask`. */
  asked: VmRef[] | undefined;
  /** The VMs the next stop freezes, chosen before it comes (see prepare). */
  chosen: { refs: VmRef[]; at: number } | undefined;
  /** A choice scheduled after the debuggee ran again. */
  rechoose: NodeJS.Timeout | undefined;
  /** VMs this session froze and has not resumed. */
  frozen: VmRef[];
  /** Stop and continue handled one after the other, in the order the debugger sent them. */
  queue: Promise<unknown>;
  /** VMs whose refusal was already told (log and notification), once per session. */
  warned: Set<number>;
  /** The debugger is stopped (the last stop has not been followed by a continue or step). */
  stopped: boolean;
  /** VMs the last stop could not freeze, and why: they keep running while the debugger is stopped. */
  notFrozen: Map<number, string>;
}

/** A VM a stopped debug session could not freeze. */
export interface NotFrozen {
  readonly pid: number;
  readonly session: string;
  readonly reason: string;
}

/** What the status bar needs to know of debug sessions. */
export interface DebugSessions {
  /** A debug session runs (one tracker per session, so the follower knows every one). */
  readonly debugging: boolean;
  /** A debug session freezes automatically at each stop. */
  readonly automatic: boolean;
  /** A debug session runs under manual control: the user clicked the status bar during it. */
  readonly manual: boolean;
  /** VMs that run on although a session that freezes automatically is stopped. */
  readonly notFrozen: readonly NotFrozen[];
  /** Each session: which VMs it freezes at its stops, and why. */
  readonly sessionTargets: readonly DebugSessionTargets[];
  /** A session started or ended, or automatic mode changed. */
  readonly onDidChange: vscode.Event<void>;
}

export class DebugFollower implements vscode.DebugAdapterTrackerFactory, DebugSessions, vscode.Disposable {
  private readonly sessions = new Map<string, SessionState>();
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly controller: GuardController,
    private readonly log: vscode.LogOutputChannel,
    private readonly settings: () => {
      autoFreeze: 'off' | 'onStop';
      target: DebugTarget;
      /** False when a workspace set the debug settings: then a stop never starts elevation. */
      mayElevate: boolean;
    },
  ) {}

  get debugging(): boolean {
    return this.sessions.size > 0;
  }

  get automatic(): boolean {
    return [...this.sessions.values()].some((s) => this.isAutomatic(s));
  }

  get manual(): boolean {
    return !this.automatic && [...this.sessions.values()].some((s) => s.manual && this.settings().autoFreeze === 'onStop');
  }

  get notFrozen(): NotFrozen[] {
    return [...this.sessions.values()]
      .filter((s) => s.stopped && this.isAutomatic(s))
      .flatMap((s) => [...s.notFrozen].map(([pid, reason]) => ({ pid, session: s.session.name, reason })));
  }

  get sessionTargets(): DebugSessionTargets[] {
    const target = this.settings().target;
    const all = [...this.sessions.values()];
    // One F5 of js-debug (and others) is a parent session and its child that runs the
    // debuggee: show the child only, as the Call Stack view does.
    const parents = new Set(all.map((s) => s.session.parentSession?.id).filter((id) => id !== undefined));
    return all
      .filter((s) => !parents.has(s.session.id))
      .map((s) => ({
        session: s.session.name,
        automatic: this.isAutomatic(s),
        manual: s.manual && this.settings().autoFreeze === 'onStop',
        target,
        debuggeePid: s.debuggeePid,
        asked: s.asked?.map((ref) => ref.pid),
      }));
  }

  /** The user toggled by hand: automatic freezing stops for the running sessions. */
  takeManualControl(): void {
    const turnedOff: string[] = [];
    for (const state of this.sessions.values()) {
      if (!state.manual && this.isAutomatic(state)) turnedOff.push(state.session.name);
      state.manual = true;
    }
    this.changed.fire();
    if (turnedOff.length === 0) return;
    const names = [...new Set(turnedOff)].map((n) => `"${n}"`).join(', ');
    this.log.info(`Automatic freezing off for debug session ${names}: manual control (status bar clicked).`);
    // Said once, when it happens: the status bar then reads "manual" until the session ends.
    void vscode.window.showInformationMessage(manualControlMessage(names));
  }

  createDebugAdapterTracker(session: vscode.DebugSession): vscode.DebugAdapterTracker {
    const state: SessionState = {
      session,
      debuggeePid: configuredPid(session.configuration),
      manual: false,
      asked: undefined,
      chosen: undefined,
      frozen: [],
      queue: Promise.resolve(),
      warned: new Set(),
      stopped: false,
      notFrozen: new Map(),
      rechoose: undefined,
    };
    this.sessions.set(session.id, state);
    this.changed.fire();
    // Before the first stop comes: it then only proves and freezes what was chosen.
    this.prepare(state);
    const end = (cause: string) => {
      clearTimeout(state.rechoose);
      this.enqueue(state, () => this.resume(state, cause));
      this.sessions.delete(session.id);
      this.changed.fire();
    };
    const follow = (meaning: DapMeaning | undefined) => {
      if (meaning?.kind === 'debuggee') {
        state.debuggeePid = meaning.pid;
        this.prepare(state); // the debuggee decides which VM (debug.target auto)
      } else if (meaning?.kind === 'stopped') this.enqueue(state, () => this.freeze(state, meaning.cause));
      else if (meaning?.kind === 'running') this.enqueue(state, () => this.resume(state, meaning.cause));
    };
    return {
      onDidSendMessage: (message: DapMessage) => follow(adapterMessageMeaning(message)),
      onWillReceiveMessage: (message: DapMessage) => follow(clientRequestMeaning(message)),
      onWillStopSession: () => end('the end of the debug session'),
      onExit: () => end('the exit of the debug adapter'),
    };
  }

  /**
   * Chooses the VMs the next stop freezes, now (a listing of the host, a few milliseconds,
   * while the debuggee runs): at session start, when the debuggee is known, and a moment
   * after it runs again. Not for debug.target `ask`, which asks at the first stop.
   */
  private prepare(state: SessionState): void {
    clearTimeout(state.rechoose);
    state.rechoose = undefined;
    const { target } = this.settings();
    if (!this.isAutomatic(state) || target === 'ask' || state.stopped) return;
    try {
      state.chosen = { refs: this.targetVms(target, state).map(vmRef), at: Date.now() };
    } catch (error) {
      state.chosen = undefined; // chosen at the stop instead
      this.log.warn(`Debug follower: could not list the VMs ahead of a stop: ${(error as Error).message}`);
    }
  }

  private isAutomatic(state: SessionState): boolean {
    return this.settings().autoFreeze === 'onStop' && !state.manual;
  }

  private enqueue(state: SessionState, work: () => Promise<void>): void {
    state.queue = state.queue.then(work, work).catch((error: Error) => this.log.error(`Debug follower: ${error.message}`));
  }

  private async freeze(state: SessionState, cause: string): Promise<void> {
    if (!this.isAutomatic(state)) return;
    const started = performance.now();
    clearTimeout(state.rechoose); // it is stopped: the choice made before serves
    state.rechoose = undefined;
    if (!state.chosen) {
      state.chosen = { refs: (await this.targets(state)).map(vmRef), at: Date.now() };
    }
    const reports: FreezeReport[] = [];
    state.stopped = true;
    state.notFrozen.clear();
    for (const ref of state.chosen.refs) {
      try {
        const request = { excludePids: state.debuggeePid ? [state.debuggeePid] : [] };
        reports.push(await this.controller.freezeQuietly(ref, request, this.settings().mayElevate ? 'stop' : 'stop-from-workspace'));
        if (!state.frozen.some((f) => f.pid === ref.pid)) state.frozen.push(ref);
      } catch (error) {
        // Never crash a VM at a breakpoint, nor ask for a password there: leave it running,
        // show it in the status bar, and say so once per session with the way out.
        const refused =
          error instanceof GuardError &&
          (error.code === 'unsafe-build' || error.code === 'needs-elevation' || error.code === 'cgroup-unavailable');
        state.notFrozen.set(ref.pid, (error as Error).message);
        if (!refused) state.chosen = undefined; // the VM may have exited: choose again next time
        if (state.warned.has(ref.pid)) continue;
        state.warned.add(ref.pid);
        const why = `no automatic freeze of VM ${ref.pid} on ${cause}: ${(error as Error).message}`;
        this.log[refused ? 'warn' : 'error'](`Debug session "${state.session.name}": ${why}`);
        if (refused) void this.offerWayOut(state, ref, error);
      }
    }
    this.changed.fire();
    if (reports.length > 0) {
      const count = reports.reduce((sum, r) => sum + r.frozen.length, 0);
      const vms = reports.map((r) => r.vm.pid);
      this.log.info(autoLine('freeze', cause, state.session.name, state.debuggeePid, count, vms, performance.now() - started));
    }
  }

  /**
   * The notification for a VM a stop could not freeze: it keeps writing guest memory while
   * you look at it. Its button does what the stop may not (ask for a password, open a
   * setting); a VM frozen that way while still stopped is resumed with the session's next
   * continue, like the others.
   */
  private offerWayOut(state: SessionState, ref: VmRef, error: GuardError): Promise<void> {
    return offerWayOut(
      { controller: this.controller, log: this.log },
      {
        error,
        atStop: { session: state.session.name, vm: ref.pid },
        // Still stopped: freeze it now, in the session's order of events.
        retry: () =>
          this.enqueue(state, async () => {
            if (!state.stopped || !this.isAutomatic(state)) return;
            await this.freeze(state, 'administrator rights granted');
          }),
      },
    );
  }

  private async resume(state: SessionState, cause: string): Promise<void> {
    const wasStopped = state.stopped;
    state.stopped = false;
    state.notFrozen.clear();
    // The devices first; the status bar, the log and the next choice can wait a moment.
    if (state.frozen.length > 0) {
      const started = performance.now();
      const vms = state.frozen;
      state.frozen = [];
      let count = 0;
      for (const ref of vms) count += (await this.controller.resumeQuietly(ref)).resumed.length;
      const pids = vms.map((v) => v.pid);
      // Nothing to say when a manual resume came first.
      if (count > 0) this.log.info(autoLine('resume', cause, state.session.name, undefined, count, pids, performance.now() - started));
    }
    if (wasStopped) this.changed.fire();
    // VMs may come and go while it runs: choose again, unless it stops first (a step).
    if (this.sessions.has(state.session.id)) {
      clearTimeout(state.rechoose);
      state.rechoose = setTimeout(() => this.prepare(state), RECHOOSE_AFTER_MS);
    }
  }

  /** Which VMs a stop freezes, per crosvmGuard.debug.target. Waits on a dialog only for `ask`. */
  private async targets(state: SessionState): Promise<VmView[]> {
    const { target } = this.settings();
    if (target !== 'ask') return this.targetVms(target, state);
    const vms = this.controller.refresh();
    state.asked ??= await this.ask(state, vms);
    return vms.filter((v) => state.asked?.some((ref) => isVm(v, ref)));
  }

  /** The VMs debug.target `auto` or `all` picks for this session, from a fresh listing. */
  private targetVms(target: Exclude<DebugTarget, 'ask'>, state: SessionState): VmView[] {
    return targetVms(target, this.controller.refresh(), state.debuggeePid, process.geteuid?.());
  }

  private async ask(state: SessionState, vms: readonly VmView[]): Promise<VmRef[]> {
    const picked = await showVmPicker(vms, {
      title: `Which crosvm VM should freeze whenever "${state.session.name}" stops?`,
      placeholder: 'Asked once for this debug session (setting crosvmGuard.debug.target)',
      icon: () => 'vm',
      all: vms.length > 1 ? { vms, description: `${vms.length} VMs` } : undefined,
      // The debugger reveals the stopped line at the same moment: that must not dismiss it.
      ignoreFocusOut: true,
    });
    return picked ?? [];
  }

  dispose(): void {
    this.changed.dispose();
  }
}

function manualControlMessage(sessions: string): string {
  return `crosvm: manual control. Debug session ${sessions} no longer freezes VMs at its stops; the status bar freezes and resumes them until the session ends.`;
}

/** Follows every debug session (all debugger types) while crosvmGuard.debug.autoFreeze is on. */
export function registerDebugFollower(
  context: vscode.ExtensionContext,
  controller: GuardController,
  log: vscode.LogOutputChannel,
  settings: Pick<LiveSettings, 'current' | 'debugFromWorkspace'>,
): DebugFollower {
  const follower = new DebugFollower(controller, log, () => ({
    autoFreeze: settings.current.debugAutoFreeze,
    target: settings.current.debugTarget,
    mayElevate: !settings.debugFromWorkspace,
  }));
  context.subscriptions.push(follower, vscode.debug.registerDebugAdapterTrackerFactory('*', follower));
  return follower;
}
