// The status-bar item: what is frozen and for how long, and a click that toggles it. It is
// created once and only updated; the one-second ticker runs only while something is frozen.
import * as vscode from 'vscode';
import { formatElapsed } from '../common/format';
import { methodName } from '../guard';
import { codeSpan, debugTargetsSentence, escapeMarkdown, leftRunning, plural, statusSummary, StatusLook } from './describe';
import { StatusBarVisibility } from '../common/settings';
import { Commands } from './contributions';
import { GuardController, VmView } from './controller';
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
    // Icons and colours show the state (as the tree does); the tooltip says what a click does.
    const summary = statusSummary(vms, this.debug, now);
    this.item.text = summary.text;
    const background = LOOKS[summary.look];
    this.item.backgroundColor = background ? new vscode.ThemeColor(background) : undefined;
    this.item.accessibilityInformation = { label: summary.label };
    if (summary.ticking) this.startTicker();
    else this.stopTicker();
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
    // One sentence for what a click does, taking manual control included.
    const manual = this.debug.automatic ? ' and take manual control of the debug session (no more automatic freezing)' : '';
    if (this.controller.isFrozen) md.appendMarkdown(`Click to resume every frozen VM${manual}.`);
    else if (this.controller.isFrozenElsewhere) md.appendMarkdown('Click to resume the VM another window froze (you are asked first).');
    else if (vms.length === 1) md.appendMarkdown(`Click to freeze the device processes of VM ${vms[0].snapshot.main.pid}${manual}.`);
    else if (vms.length > 1) md.appendMarkdown(`Click to choose a VM to freeze${manual}.`);
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

/** The background of each look: frozen in the warning colour, what must not look calm in the error colour. */
const LOOKS: Record<StatusLook, string | undefined> = {
  running: undefined,
  frozen: 'statusBarItem.warningBackground',
  frozenElsewhere: 'statusBarItem.warningBackground',
  partlyFrozen: 'statusBarItem.errorBackground',
  notFrozenAtStop: 'statusBarItem.errorBackground',
};

/** One VM in the tooltip: what tells it apart, its devices, and its state with the one clock. */
function statusLine(vm: VmView, now: number): string {
  const devices = plural(vm.snapshot.devices.length, 'device process', 'device processes');
  const frozen = vm.frozen;
  const running = leftRunning(vm);
  const state = frozen
    ? `**${running.length > 0 ? 'partly frozen' : 'frozen'} ${formatElapsed(now - frozen.since)}** with ${methodName(frozen.method)}` +
      (frozen.scope === 'vm' ? ', vCPUs too' : '') +
      (running.length > 0
        ? `; still running: ${running.map((p) => `${escapeMarkdown(p.label)} ${p.pid} (${escapeMarkdown(p.why)})`).join(', ')}`
        : '')
    : vm.frozenElsewhere
      ? `**frozen by another VS Code window** (extension host pid ${vm.frozenElsewhere.ownerPid}); a click offers to resume it here`
      : vm.needsElevation
        ? 'running, needs administrator rights'
        : vm.method.method
          ? `running, can be frozen with ${methodName(vm.method.method)}`
          : 'running, cannot be frozen (see the tree)';
  return `VM ${vm.snapshot.main.pid} ${codeSpan(vm.snapshot.name)}: ${devices}, ${state}`;
}
