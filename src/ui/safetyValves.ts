// Crash safety in the VS Code layer: where journals live, resuming what dead windows left
// frozen, and the two safety valves that resume a VM nobody is looking at any more.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { CrashSafety } from '../companion/watchClient';
import { chooseJournalFolder, currentIdentity, recoverLeftovers } from '../guard';
import { plural } from './describe';
import { ExtensionSettings } from '../common/settings';
import { GuardController } from './controller';

/**
 * One folder per user that every window of that user on this host shares, so one window
 * sees what another froze (see chooseJournalFolder: only a folder private to this user).
 */
export function journalDirectory(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): string {
  const { folder, rejected } = chooseJournalFolder({
    override: process.env.CROSVM_GUARD_JOURNAL_DIR,
    runtimeDir: process.env.XDG_RUNTIME_DIR,
    fallback: path.join(context.globalStorageUri.fsPath, 'journal'),
  });
  for (const reason of rejected) log.warn(`Not keeping journals in ${reason}.`);
  return folder;
}

/** Turns crash safety on for `controller`'s engine, after resuming leftovers of dead windows. */
export function enableCrashSafety(
  context: vscode.ExtensionContext,
  controller: GuardController,
  log: vscode.LogOutputChannel,
  settings: ExtensionSettings,
  journalDir: string,
): CrashSafety {
  const self = currentIdentity(process.pid) ?? { pid: process.pid, startTime: 0 };
  try {
    const recovery = recoverLeftovers(journalDir, settings.processNames, self);
    for (const problem of recovery.invalid) log.warn(`Ignored and removed a journal that is not valid: ${problem}.`);
    for (const note of recovery.untouched) log.info(`Journal leftover not signalled: ${note}.`);
    if (recovery.vms.length > 0) {
      const count = recovery.vms.reduce((sum, vm) => sum + vm.resumed.length, 0);
      const which = recovery.vms.map((vm) => `VM ${vm.pid} (${vm.name})`).join(', ');
      log.info(`Resumed ${plural(count, 'process', 'processes')} that a window which ended had left frozen: ${which}.`);
      void vscode.window.showInformationMessage(
        `crosvm Guard resumed ${count} device process${count === 1 ? '' : 'es'} of ${which}, left frozen by a VS Code window that ended.`,
      );
    }
  } catch (error) {
    // A broken journal must never break activation.
    log.error(`Looking for frozen leftovers failed: ${(error as Error).message}`);
  }
  const safety = new CrashSafety({
    journalDir,
    companionScript: context.asAbsolutePath(path.join('dist', 'companion.js')),
    log: (level, message) => log[level](message),
  });
  controller.guard.setSafetyNet(safety);
  log.info(`Crash safety: journal ${safety.journalPath}; a companion process resumes frozen VMs if this window dies.`);
  return safety;
}

/**
 * While something is frozen, checks once a second that what is frozen is still stopped
 * (another window may have taken over) and that the window still answers (a round trip to
 * the workbench). A client that went away — a closed browser tab, a dropped
 * Remote-SSH connection — leaves the extension host running, waiting to reconnect, for hours;
 * a frozen VM must not wait with it. No answer for `timeoutMs`: resume everything.
 */
export class WindowWatchdog implements vscode.Disposable {
  private timer: NodeJS.Timeout | undefined;
  private lastAnswer = Date.now();
  private inFlight = false;
  private tick = 0;
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly controller: GuardController,
    private readonly timeoutMs = 5000,
  ) {
    this.subscription = controller.onDidChange(() => this.update());
  }

  private update(): void {
    if (this.controller.isFrozen && !this.timer) {
      this.lastAnswer = Date.now();
      this.timer = setInterval(() => this.check(), 1000);
    } else if (!this.controller.isFrozen && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private check(): void {
    // The guard's resume event refreshes the listing, which stops this timer if need be.
    this.controller.forgetResumedElsewhere();
    if (!this.controller.isFrozen) return;
    if (Date.now() - this.lastAnswer > this.timeoutMs) {
      void this.controller.resumeAll(`this window has not answered for ${this.timeoutMs / 1000} s: its VS Code client is gone`);
      return;
    }
    if (this.inFlight) return;
    this.inFlight = true;
    void vscode.commands.executeCommand('setContext', 'crosvmGuard.heartbeat', ++this.tick).then(
      () => {
        this.lastAnswer = Date.now();
        this.inFlight = false;
      },
      () => (this.inFlight = false),
    );
  }

  dispose(): void {
    if (this.timer) clearInterval(this.timer);
    this.subscription.dispose();
  }
}

/** Setting crosvmGuard.maxFreezeSeconds: resumes a VM that stayed frozen that long. */
export class MaxFreezeTimer implements vscode.Disposable {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly subscription: vscode.Disposable;

  constructor(
    private readonly controller: GuardController,
    private readonly maxSeconds: () => number,
  ) {
    this.subscription = controller.onDidChange(() => this.update());
  }

  update(): void {
    const max = this.maxSeconds();
    const frozen = new Map(this.controller.frozenVms.map((f) => [f.vm.pid, f]));
    for (const [pid, timer] of this.timers) {
      if (!frozen.has(pid) || max === 0) {
        clearTimeout(timer);
        this.timers.delete(pid);
      }
    }
    if (max === 0) return;
    for (const [pid, vm] of frozen) {
      if (this.timers.has(pid)) continue;
      const due = Math.max(0, vm.since + max * 1000 - Date.now());
      this.timers.set(
        pid,
        setTimeout(() => {
          this.timers.delete(pid);
          void this.controller.resume({ pid }).then(() => {
            const message = `crosvm Guard resumed VM ${pid} (${vm.vm.name}) after ${max} s frozen`;
            void vscode.window.showInformationMessage(`${message} (setting crosvmGuard.maxFreezeSeconds).`);
          });
        }, due),
      );
    }
  }

  dispose(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.subscription.dispose();
  }
}
