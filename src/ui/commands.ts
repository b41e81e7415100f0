// Command handlers: resolve which VM is meant (argument, tree item, or ask), call the
// controller, and turn errors into notifications with a way forward. Every handler returns
// its result so tests and other extensions can script it. The picker, the details document,
// Kill and the way-out notification live in files of their own.
import * as vscode from 'vscode';
import { FreezeReport, FreezeScope, SkippedProcess, VmRef } from '../guard';
import { CommandTable, Commands } from './contributions';
import { GuardController, VmView } from './controller';
import { DetailsDocuments } from './detailsDocument';
import { plural, skipWords } from './describe';
import { killVm } from './killVm';
import { VmNode } from './processTreeView';
import { pickVmsToAct } from './vmPicker';
import { nodeFromArgument, vmRefFromArgument } from './vmRefs';
import { offerWayOut } from './wayOut';

export class CommandHandlers {
  constructor(
    readonly controller: GuardController,
    readonly log: vscode.LogOutputChannel,
    /** Called when the user toggles by hand: automatic freezing by debug sessions stops. */
    private readonly onManualToggle: () => void = () => undefined,
  ) {}

  register(): vscode.Disposable[] {
    const details = new DetailsDocuments(this.controller);
    const commands: CommandTable = {
      [Commands.Freeze]: (arg) => this.freeze(arg, 'devices'),
      [Commands.FreezeVm]: (arg) => this.freeze(arg, 'vm'),
      [Commands.Resume]: (arg) => this.resume(arg),
      [Commands.Toggle]: () => this.toggle(),
      [Commands.Refresh]: () => this.controller.refresh().length,
      [Commands.CopyPid]: (arg) => this.copyPid(arg),
      [Commands.ShowDetails]: (arg) => details.show(arg),
      [Commands.KillVm]: (arg) => killVm(this, arg),
      [Commands.ShowLog]: () => this.log.show(),
    };
    return [details, ...Object.entries(commands).map(([id, run]) => vscode.commands.registerCommand(id, run))];
  }

  /** Freezes one VM, or the VM(s) the user picks; returns the report(s), undefined if none. */
  async freeze(arg: unknown, scope: FreezeScope): Promise<FreezeReport | FreezeReport[] | undefined> {
    let targets: VmRef[] | undefined;
    try {
      const ref = vmRefFromArgument(arg);
      targets = ref ? [ref] : await pickVmsToAct(this.controller, scope);
    } catch (error) {
      void this.showError(error);
      return undefined;
    }
    if (!targets) return undefined;
    // A VM already frozen as asked: say so rather than "froze 0 processes".
    const already = targets.map((t) => this.controller.frozenVm(t.pid)).filter((f) => f && (f.scope === 'vm' || scope === 'devices'));
    if (already.length === targets.length) {
      const which = already.map((f) => `VM ${f?.vm.pid}`).join(', ');
      void vscode.window.showInformationMessage(
        `crosvm ${which} ${already.length === 1 ? 'is' : 'are'} already frozen${scope === 'vm' ? ', vCPUs too' : ''}.`,
      );
      return undefined;
    }
    targets = targets.filter((t) => !already.some((f) => f?.vm.pid === t.pid));
    const reports: FreezeReport[] = [];
    try {
      for (const target of targets) reports.push(await this.controller.freeze(target, { scope }));
    } catch (error) {
      // "All VMs" is one request: all or nothing across VMs as well.
      for (const done of reports) await this.controller.resume(done.vm);
      void this.showError(error, () => this.freeze(arg, scope));
      return undefined;
    }
    const count = reports.reduce((sum, r) => sum + r.frozen.length, 0);
    const ms = reports.reduce((sum, r) => sum + r.elapsedMs, 0);
    const running = reports.flatMap((r) => r.skipped.filter(keepsRunning).map((s) => ({ vm: r.vm.pid, s })));
    if (count === 0) {
      // Not a success: say what was left running, and why.
      const skipped = reports.flatMap((r) => r.skipped).map((s) => `${s.label} ${s.pid} ${skipWords(s)}`);
      void vscode.window.showWarningMessage(
        `Nothing was frozen: ${skipped.length > 0 ? `every process was left alone: ${skipped.join(', ')}` : 'the VM has no device processes'}.`,
      );
    } else if (running.length > 0) {
      // A device that runs writes guest memory: a freeze that left one running is told as such.
      const named = running.map(({ s }) => `${s.label} ${s.pid} ${skipWords(s)}`).join('; ');
      const vms = [...new Set(running.map((r) => r.vm))].join(', ');
      void vscode.window.showWarningMessage(`crosvm VM ${vms} is only partly frozen: ${named}.`, 'Show Log').then((choice) => {
        if (choice === 'Show Log') this.log.show();
      });
    } else vscode.window.setStatusBarMessage(`$(debug-pause) crosvm: ${frozeMessage(reports, count, ms)}`, 6000);
    return reports.length === 1 ? reports[0] : reports;
  }

  /**
   * Resumes one VM (argument) or everything this window froze; returns the pids resumed. A
   * VM that another window froze is resumed only after asking: that window holds it.
   */
  async resume(arg?: unknown): Promise<number[]> {
    try {
      const ref = vmRefFromArgument(arg);
      const report = await this.controller.resume(ref);
      const pids = report.resumed.map((p) => p.pid);
      if (pids.length > 0) vscode.window.setStatusBarMessage(`$(debug-continue) crosvm: ${this.resumedMessage(pids)}`, 6000);
      if (pids.length > 0 || report.gone.length > 0) return pids;
      const others = this.controller.refresh().filter((v) => v.frozenElsewhere && !v.frozen && (!ref || v.snapshot.main.pid === ref.pid));
      for (const view of others) {
        const takeOver = 'Resume VM';
        const choice = await vscode.window.showWarningMessage(
          frozenElsewhereQuestion(view),
          { modal: true, detail: 'The other window will notice that the VM runs again and stop holding it.' },
          takeOver,
        );
        if (choice === takeOver) pids.push(...this.controller.takeOver(view).map((p) => p.pid));
      }
      return pids;
    } catch (error) {
      void this.showError(error);
      return [];
    }
  }

  /** What a resume did, the vCPUs named when a VM's main process was among them (an entire-VM freeze). */
  private resumedMessage(pids: readonly number[]): string {
    const mains = this.controller.vms.filter((v) => pids.includes(v.snapshot.main.pid)).map((v) => v.snapshot.main.pid);
    const vcpus = mains.length > 0 ? `, the vCPUs of VM ${mains.join(', ')} too` : '';
    return `resumed ${plural(pids.length - mains.length, 'device process', 'device processes')}${vcpus}`;
  }

  async toggle(): Promise<FreezeReport | FreezeReport[] | number[] | undefined> {
    this.onManualToggle();
    // A VM another window froze: the click offers to resume it (after asking), not to freeze it again.
    return this.controller.isFrozen || this.controller.isFrozenElsewhere ? this.resume() : this.freeze(undefined, 'devices');
  }

  private async copyPid(arg: unknown): Promise<number | undefined> {
    const node = nodeFromArgument(arg, () => this.controller.refresh());
    if (!node) return undefined;
    const pid = node instanceof VmNode ? node.view.snapshot.main.pid : node.process.pid;
    await vscode.env.clipboard.writeText(String(pid));
    vscode.window.setStatusBarMessage(`$(copy) Copied pid ${pid}`, 2000);
    return pid;
  }

  /** A notification that says what happened and offers the next step. */
  private showError(error: unknown, retry?: () => unknown): Promise<void> {
    return offerWayOut(this, { error, retry });
  }
}

/** The status-bar message after a freeze: what froze, and what was left running and why. */
function frozeMessage(reports: readonly FreezeReport[], count: number, ms: number): string {
  const skipped = reports.flatMap((r) => r.skipped).map((s) => `${s.label} ${s.pid} ${skipWords(s)}`);
  return `froze ${plural(count, 'process', 'processes')} in ${ms.toFixed(1)} ms` + (skipped.length > 0 ? `; ${skipped.join('; ')}` : '');
}

/** A process a freeze skipped that goes on running (and writing guest memory). */
const keepsRunning = (s: SkippedProcess) => s.reason === 'traced' || s.reason === 'excluded';

function frozenElsewhereQuestion(view: VmView): string {
  const { snapshot, frozenElsewhere } = view;
  const who = `another VS Code window (extension host pid ${frozenElsewhere?.ownerPid})`;
  return `VM ${snapshot.main.pid} (${snapshot.name}) is frozen by ${who}. Resume it from this window?`;
}
