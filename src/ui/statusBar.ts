// The status-bar item: what is frozen and for how long, and a click that toggles it. It is
// created once and only updated; the one-second ticker runs only while something is frozen.
import * as vscode from 'vscode';
import { formatElapsed, methodName } from '../common/format';
import { codeSpan, debugTargetsSentence, escapeMarkdown, plural, processStateKind } from './describe';
import { StatusBarVisibility } from '../common/settings';
import { Commands } from './contributions';
import { GuardController, VmView } from './controller';
import { isStoppedState } from '../guard';
import type { DebugSessions } from './debugFollower';

export class GuardStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private ticker: NodeJS.Timeout | undefined;

  constructor(
    private readonly controller: GuardController,
    private readonly visibility: () => StatusBarVisibility,
    /** The debug follower: which sessions run, and whether one freezes automatically. */
    private readonly debug: DebugSessions,
  ) {
    // Left, right after the debug items (which use priorities around 30 and above).
    this.item = vscode.window.createStatusBarItem('crosvmGuard.status', vscode.StatusBarAlignment.Left, 29);
    this.item.name = 'crosvm Guard';
    this.item.command = Commands.Toggle;
    this.disposables.push(
      this.item,
      controller.onDidChange(() => this.update()),
      // During a debug session it shows at once, before any refresh has listed a VM.
      debug.onDidChange(() => this.update()),
    );
    this.update();
  }

  update(): void {
    const vms = this.controller.vms;
    const frozen = this.controller.frozenVms;
    const debugging = this.debug.debugging;
    const visible = this.isVisible(this.visibility(), vms.length > 0 || frozen.length > 0, debugging);
    if (!visible) {
      this.stopTicker();
      this.item.hide();
      return;
    }
    const now = Date.now();
    const counts = deviceCounts(vms);
    const auto = this.debug.automatic ? ' auto' : '';
    const notFrozen = this.debug.notFrozen;
    // Icons show the state (as the tree does); the tooltip says what a click does.
    if (notFrozen.length > 0 && frozen.length === 0) {
      // The debugger is stopped and the devices are not: the one state that must not look calm.
      this.item.text = `$(warning) crosvm auto: not frozen`;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
      const vmsRunning = notFrozen.length === 1 ? `VM ${notFrozen[0].pid} keeps running` : `${notFrozen.length} VMs keep running`;
      this.item.accessibilityInformation = { label: `crosvm: the debugger is stopped but ${vmsRunning}. Click to freeze.` };
      this.stopTicker();
    } else if (frozen.length > 0) {
      const count = frozen.reduce((sum, f) => sum + f.processes.length, 0);
      const elapsed = formatElapsed(now - Math.min(...frozen.map((f) => f.since)));
      this.item.text = `$(debug-pause) crosvm ${count} frozen ${elapsed}${auto}${notFrozen.length > 0 ? ' $(warning)' : ''}`;
      this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      this.item.accessibilityInformation = {
        label: `crosvm: ${plural(count, 'process', 'processes')} frozen for ${elapsed}. Click to resume.`,
      };
      this.startTicker();
    } else {
      const stopped = counts.stopped > 0 ? ` · ${counts.stopped} stopped` : '';
      this.item.text = `$(vm-running) crosvm${vms.length > 0 ? ` ${counts.running}${stopped}` : ''}${auto}`;
      this.item.backgroundColor = undefined;
      const others = counts.stopped > 0 ? `, ${counts.stopped} stopped by someone else` : '';
      const running = plural(counts.running, 'device process', 'device processes');
      this.item.accessibilityInformation = { label: `crosvm: ${running} running${others}. Click to freeze.` };
      this.stopTicker();
    }
    this.item.tooltip = this.tooltip(now);
    this.item.show();
  }

  private isVisible(setting: StatusBarVisibility, vmOrFrozen: boolean, debugging: boolean): boolean {
    switch (setting) {
      case 'never':
        return false;
      case 'always':
        return true;
      case 'debugging':
        return debugging;
      case 'whenVmRunning':
        return vmOrFrozen || debugging;
    }
  }

  private tooltip(now: number): vscode.MarkdownString {
    const md = new vscode.MarkdownString('', true);
    md.appendMarkdown('**crosvm Guard**\n\n');
    const vms = this.controller.vms;
    if (vms.length === 0) md.appendMarkdown('No crosvm VM is running.\n\n');
    for (const vm of vms) md.appendMarkdown(`- ${statusLine(vm, now)}\n`);
    md.appendMarkdown('\n');
    for (const session of this.debug.sessionTargets) md.appendMarkdown(`$(debug) ${debugTargetsSentence(session, vms)}\n\n`);
    for (const vm of this.debug.notFrozen) {
      const session = `Debug session "${escapeMarkdown(vm.session)}" is stopped`;
      md.appendMarkdown(`$(warning) ${session}, but VM ${vm.pid} was not frozen: ${escapeMarkdown(vm.reason)}\n\n`);
    }
    if (this.debug.automatic) md.appendMarkdown('A click takes manual control for the rest of the session.\n\n');
    if (this.controller.isFrozen) md.appendMarkdown('Click to resume every frozen VM.');
    else if (this.controller.isFrozenElsewhere) md.appendMarkdown('Click to resume the VM another window froze (you are asked first).');
    else if (vms.length === 1) md.appendMarkdown(`Click to freeze the device processes of VM ${vms[0].snapshot.main.pid}.`);
    else if (vms.length > 1) md.appendMarkdown('Click to choose a VM to freeze.');
    else md.appendMarkdown('Click to look for VMs again.');
    return md;
  }

  private startTicker(): void {
    this.ticker ??= setInterval(() => this.update(), 1000);
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  dispose(): void {
    this.stopTicker();
    for (const d of this.disposables) d.dispose();
  }
}

/** Device processes that run, and those someone else stopped (a `kill -STOP`, a debugger). */
function deviceCounts(vms: readonly VmView[]): { running: number; stopped: number } {
  let running = 0;
  let stopped = 0;
  for (const vm of vms) {
    for (const device of vm.snapshot.devices) {
      const kind = processStateKind(device, vm);
      // A traced process runs unless its debugger holds it stopped.
      if (kind === 'running' || (kind === 'traced' && !isStoppedState(device.state))) running++;
      else if (kind === 'stopped' || kind === 'traced') stopped++;
    }
  }
  return { running, stopped };
}

/** One VM in the tooltip: what tells it apart, its devices, and its state with the one clock. */
function statusLine(vm: VmView, now: number): string {
  const devices = plural(vm.snapshot.devices.length, 'device process', 'device processes');
  const frozen = vm.frozen;
  const state = frozen
    ? `**frozen ${formatElapsed(now - frozen.since)}** with ${methodName(frozen.method)}${frozen.scope === 'vm' ? ', vCPUs too' : ''}` +
      (frozen.skipped.length > 0 ? ` (${frozen.skipped.length} left running)` : '')
    : vm.frozenElsewhere
      ? `**frozen by another VS Code window** (extension host pid ${vm.frozenElsewhere.ownerPid}); a click offers to resume it here`
      : vm.needsElevation
        ? 'running, needs administrator rights'
        : vm.method.method
          ? `running, can be frozen with ${methodName(vm.method.method)}`
          : 'running, cannot be frozen (see the tree)';
  return `VM ${vm.snapshot.main.pid} ${codeSpan(vm.snapshot.name)}: ${devices}, ${state}`;
}
