// Composition root: wires the engine (src/guard) to VS Code's commands, views, status bar
// and events. Logic lives in the modules it calls; this file only connects them.
import * as vscode from 'vscode';
import { assertLinux, GuardError, VmRef } from './guard';
import { apiFreezeRequest, CrosvmGuardApi, CrosvmGuardState } from './ui/api';
import { CommandHandlers } from './ui/commands';
import { debugSettingsFromWorkspace, readSettings } from './ui/config';
import { Commands, ContextKeys, OUTPUT_CHANNEL_NAME, Views } from './ui/contributions';
import { ManagedContextKey } from './ui/contextKey';
import { GuardController } from './ui/controller';
import { ProcessTreeProvider } from './ui/processTreeView';
import { GuardStatusBar } from './ui/statusBar';
import { DebugFollower } from './ui/debugFollower';
import { enableCrashSafety, journalDirectory, MaxFreezeTimer, WindowWatchdog } from './ui/safetyValves';
import { CrashSafety } from './companion/watchClient';
import { elevationFor } from './ui/elevation';
import { ExtensionSettings, SETTINGS_SECTION } from './common/settings';

/**
 * Resumes everything this window froze, then lets the companions go; memoized, so that
 * deactivate() and the disposal of context.subscriptions share one run. VS Code disposes the
 * subscriptions right after calling deactivate(), without waiting for it: were the companion
 * link and the root companion's pipe closed then, the companions would resume in parallel
 * with deactivate() (and thaw the same freeze cgroups twice).
 */
let shutDown: (() => Promise<void>) | undefined;

export function activate(context: vscode.ExtensionContext): CrosvmGuardApi {
  const started = performance.now();
  const log = vscode.window.createOutputChannel(OUTPUT_CHANNEL_NAME, { log: true });
  context.subscriptions.push(log);
  const supported = new ManagedContextKey<boolean>(ContextKeys.Supported);

  try {
    assertLinux();
  } catch (error) {
    return activateUnsupported(context, log, supported, error as GuardError);
  }
  supported.set(true);

  let settings: ExtensionSettings = readSettings(log);
  let debugFromWorkspace = debugSettingsFromWorkspace();
  const journalDir = journalDirectory(context, log);
  const elevation = elevationFor(context, log, () => settings);
  const current = new GuardController({ log, settings, journalDir, elevation });
  const safety: CrashSafety = enableCrashSafety(context, current, log, settings, journalDir);
  let stopping: Promise<void> | undefined;
  const stop = (shutDown = () =>
    (stopping ??= (async () => {
      try {
        await current.resumeAll('the extension is deactivating');
      } finally {
        // Everything runs again: the companion may go, and the journal with it; closing the
        // root companion's pipe lets it exit too.
        safety.dispose();
        current.dispose();
      }
    })()));
  context.subscriptions.push(
    { dispose: () => void stop() },
    new WindowWatchdog(current),
    new MaxFreezeTimer(current, () => settings.maxFreezeSeconds),
  );

  const follower = new DebugFollower(current, log, () => ({
    autoFreeze: settings.debugAutoFreeze,
    target: settings.debugTarget,
    mayElevate: !debugFromWorkspace,
  }));
  context.subscriptions.push(follower, vscode.debug.registerDebugAdapterTrackerFactory('*', follower));
  // The root companion exits 10 s after its last request with nothing frozen, and starting it
  // again may cost a password, which is never asked at a stop: while a debug session freezes
  // at its stops, keep it.
  let keepAlive: NodeJS.Timeout | undefined;
  const followSessions = () => {
    // Not for debug settings from a workspace, which never use it.
    if (follower.automatic && !debugFromWorkspace) keepAlive ??= setInterval(() => current.elevation.keepAlive(), 5000);
    else if (keepAlive) keepAlive = void clearInterval(keepAlive);
  };
  context.subscriptions.push(follower.onDidChange(followSessions), { dispose: () => keepAlive && clearInterval(keepAlive) });
  const statusBar = new GuardStatusBar(current, () => settings.statusBarVisibility, follower);
  const tree = new ProcessTreeProvider(current);
  const views = [Views.Processes, Views.DebugProcesses].map((id) =>
    vscode.window.createTreeView(id, { treeDataProvider: tree, showCollapseAll: true }),
  );
  context.subscriptions.push(
    statusBar,
    tree,
    ...views,
    ...new CommandHandlers(current, log, () => follower.takeManualControl()).register(),
  );

  // Context keys for `when` clauses: hide resume when nothing is frozen, and so on.
  const vmRunning = new ManagedContextKey<boolean>(ContextKeys.VmRunning);
  const frozen = new ManagedContextKey<boolean>(ContextKeys.Frozen);
  const frozenElsewhere = new ManagedContextKey<boolean>(ContextKeys.FrozenElsewhere);
  context.subscriptions.push(
    current.onDidChange(() => {
      vmRunning.set(current.vms.length > 0);
      frozen.set(current.isFrozen);
      frozenElsewhere.set(current.isFrozenElsewhere);
    }),
  );

  // Periodic refresh only while a view shows the tree; otherwise refresh on events
  // (window focus, debug sessions, commands), so a hidden view costs nothing.
  let timer: NodeJS.Timeout | undefined;
  const updateTimer = () => {
    if (timer) clearInterval(timer);
    timer = views.some((v) => v.visible) ? setInterval(() => current.refresh(), settings.refreshIntervalMs) : undefined;
  };
  context.subscriptions.push(
    ...views.map((v) => v.onDidChangeVisibility(() => (v.visible && current.refresh(), updateTimer()))),
    { dispose: () => timer && clearInterval(timer) },
    vscode.window.onDidChangeWindowState((state) => state.focused && current.refresh()),
    vscode.debug.onDidStartDebugSession(() => current.refresh()),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SETTINGS_SECTION)) return;
      const before = settings;
      settings = readSettings(log);
      debugFromWorkspace = debugSettingsFromWorkspace();
      const changed = (Object.keys(settings) as (keyof ExtensionSettings)[]).filter(
        (key) => JSON.stringify(settings[key]) !== JSON.stringify(before[key]),
      );
      const change = (key: keyof ExtensionSettings) => `${key} ${JSON.stringify(before[key])} → ${JSON.stringify(settings[key])}`;
      if (changed.length > 0) log.info(`Settings changed: ${changed.map(change).join(', ')}.`);
      current.updateSettings(settings);
      updateTimer();
    }),
  );
  updateTimer();
  // The first /proc scan runs after activation returns, so activation itself stays cheap.
  setImmediate(() => current.refresh());

  log.info(`Activated in ${(performance.now() - started).toFixed(1)} ms (pid ${process.pid}, uid ${process.getuid?.()}).`);
  return createApi(current);
}

function createApi(current: GuardController): CrosvmGuardApi {
  const toRef = (vm: number | VmRef | undefined): VmRef | undefined => (typeof vm === 'number' ? { pid: vm } : vm);
  const state = (): CrosvmGuardState => ({
    vms: current.vms.map(({ snapshot, swapBuild, method, frozen, needsElevation }) => ({
      pid: snapshot.main.pid,
      startTime: snapshot.main.startTime,
      name: snapshot.name,
      devices: snapshot.devices.length,
      signalsSafe: swapBuild.tolerant === true,
      method: frozen?.method ?? method.method,
      needsElevation: needsElevation !== undefined,
      // From the engine, not the last listing: a refresh follows each change a moment later.
      frozen: current.frozenVm(snapshot.main.pid) !== undefined,
    })),
    frozen: current.frozenVms,
  });
  return {
    freeze: async (vm, options) => current.freeze(toRef(vm) as VmRef, apiFreezeRequest(options)),
    resume: (vm) => current.resume(toRef(vm)),
    refresh: () => (current.refresh(), state()),
    getState: state,
    onDidChangeState: current.onDidChangeState,
  };
}

/** On a host that is not Linux: say so once, offer nothing that would fail. */
function activateUnsupported(
  context: vscode.ExtensionContext,
  log: vscode.LogOutputChannel,
  supported: ManagedContextKey<boolean>,
  error: GuardError,
): CrosvmGuardApi {
  supported.set(false);
  new ManagedContextKey<boolean>(ContextKeys.Unsupported).set(true);
  log.warn(error.message);
  context.subscriptions.push(vscode.commands.registerCommand(Commands.ShowLog, () => log.show()));
  const toldKey = 'crosvmGuard.toldUnsupported';
  if (!context.globalState.get<boolean>(toldKey)) {
    void context.globalState.update(toldKey, true);
    void vscode.window.showInformationMessage(error.message);
  }
  const refuse = () => Promise.reject(error);
  const empty: CrosvmGuardState = { vms: [], frozen: [] };
  return { freeze: refuse, resume: refuse, refresh: () => empty, getState: () => empty, onDidChangeState: () => ({ dispose() {} }) };
}

/** Resumes everything this window froze, and waits for it (VS Code waits up to 5 s). */
export async function deactivate(): Promise<void> {
  await shutDown?.();
  shutDown = undefined;
}
