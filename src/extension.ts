// Composition root: wires the engine (src/guard) to VS Code's commands, views, status bar
// and events. activate() is a list of registrations; each policy lives in the module that
// owns it (register…(context, …)), and this file only connects them.
import * as vscode from 'vscode';
import { assertLinux, GuardError, VmRef } from './guard';
import { apiFreezeRequest, CrosvmGuardApi, CrosvmGuardState } from './ui/api';
import { CommandHandlers } from './ui/commands';
import { registerSettings } from './ui/config';
import { Commands, ContextKeys, OUTPUT_CHANNEL_NAME } from './ui/contributions';
import { ManagedContextKey, registerContextKeys } from './ui/contextKey';
import { GuardController } from './ui/controller';
import { registerProcessViews } from './ui/processTreeView';
import { GuardStatusBar } from './ui/statusBar';
import { registerDebugFollower } from './ui/debugFollower';
import { enableCrashSafety, journalDirectory, MaxFreezeTimer, WindowWatchdog } from './ui/safetyValves';
import { CrashSafety } from './companion/watchClient';
import { elevationFor, registerRootCompanionKeepAlive } from './ui/elevation';

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

  const settings = registerSettings(context, log);
  const journalDir = journalDirectory(context, log);
  const elevation = elevationFor(context, log, () => settings.current);
  const current = new GuardController({ log, settings: settings.current, journalDir, elevation });
  const safety: CrashSafety = enableCrashSafety(context, current, log, settings.current, journalDir);
  registerShutDown(context, current, safety);
  context.subscriptions.push(
    settings.onDidChange((changed) => current.updateSettings(changed)),
    new WindowWatchdog(current),
    new MaxFreezeTimer(current, () => settings.current.maxFreezeSeconds),
  );
  const follower = registerDebugFollower(context, current, log, settings);
  registerRootCompanionKeepAlive(context, follower, current, settings);
  context.subscriptions.push(new GuardStatusBar(current, () => settings.current.statusBarVisibility, follower));
  registerProcessViews(context, current, settings);
  context.subscriptions.push(...new CommandHandlers(current, log, () => follower.takeManualControl()).register());
  registerContextKeys(context, current);
  // The first /proc scan runs after activation returns, so activation itself stays cheap.
  setImmediate(() => current.refresh());

  log.info(`Activated in ${(performance.now() - started).toFixed(1)} ms (pid ${process.pid}, uid ${process.getuid?.()}).`);
  return createApi(current);
}

/** Deactivation, or the disposal of the subscriptions, resumes everything, then lets the companions go. */
function registerShutDown(context: vscode.ExtensionContext, current: GuardController, safety: CrashSafety): void {
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
  context.subscriptions.push({ dispose: () => void stop() });
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
