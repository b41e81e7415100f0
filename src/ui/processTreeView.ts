// The tree view: one node per VM, its device processes below in their real parent/child
// shape. It renders the controller's last listing and never reads /proc itself.
import * as vscode from 'vscode';
import { isExitedState, isStoppedState, ProcessIdentity, ProcessSnapshot, sameProcess } from '../guard';
import { GuardController, VmView } from './controller';
import { formatElapsed, methodName } from '../common/format';

export type ProcessStateKind = 'running' | 'frozen' | 'frozenByCgroup' | 'frozenElsewhere' | 'stopped' | 'traced' | 'zombie';

export function processStateKind(p: ProcessSnapshot, vm: Pick<VmView, 'frozen' | 'frozenElsewhere'>): ProcessStateKind {
  if (isExitedState(p.state)) return 'zombie';
  const stopped = isStoppedState(p.state);
  const listed = (list: readonly ProcessIdentity[] | undefined) => list?.some((f) => sameProcess(f, p)) ?? false;
  // A cgroup-frozen task is not in a stopped state (`ps` shows S or D): what we froze says so.
  if (vm.frozen?.method === 'cgroup' && listed(vm.frozen.processes)) return 'frozenByCgroup';
  if (stopped && listed(vm.frozen?.processes)) return 'frozen';
  if ((stopped || vm.frozenElsewhere?.method === 'cgroup') && listed(vm.frozenElsewhere?.processes)) return 'frozenElsewhere';
  if (p.tracerPid !== 0) return 'traced';
  if (stopped) return 'stopped';
  return 'running';
}

const STATE_WORDS: Record<ProcessStateKind, string> = {
  running: 'running',
  frozen: 'frozen (SIGSTOP)',
  frozenByCgroup: 'frozen (cgroup freezer)',
  frozenElsewhere: 'frozen by another window',
  stopped: 'stopped by someone else',
  traced: 'traced by a debugger',
  zombie: 'zombie',
};

const STATE_ICONS: Record<ProcessStateKind, vscode.ThemeIcon> = {
  running: new vscode.ThemeIcon('play', new vscode.ThemeColor('debugIcon.startForeground')),
  frozen: new vscode.ThemeIcon('debug-pause', new vscode.ThemeColor('debugIcon.pauseForeground')),
  frozenByCgroup: new vscode.ThemeIcon('lock', new vscode.ThemeColor('debugIcon.pauseForeground')),
  frozenElsewhere: new vscode.ThemeIcon('debug-pause', new vscode.ThemeColor('charts.yellow')),
  stopped: new vscode.ThemeIcon('debug-stop', new vscode.ThemeColor('charts.orange')),
  traced: new vscode.ThemeIcon('bug', new vscode.ThemeColor('charts.purple')),
  zombie: new vscode.ThemeIcon('circle-slash', new vscode.ThemeColor('disabledForeground')),
};

export class VmNode extends vscode.TreeItem {
  readonly kind = 'vm';
  constructor(readonly view: VmView) {
    const { snapshot: vm, swapBuild, frozen, frozenElsewhere } = view;
    super(vm.name, vscode.TreeItemCollapsibleState.Expanded);
    this.id = `vm:${vm.main.pid}@${vm.main.startTime}`;
    // The method in force while frozen; else the one a freeze would use now.
    const method = frozen?.method ?? view.method.method;
    const state = frozen
      ? `frozen ${formatElapsed(Date.now() - frozen.since)} · ${methodName(frozen.method)}`
      : frozenElsewhere
        ? 'frozen by another window'
        : view.needsElevation === 'signals'
          ? `running · needs admin (uid ${vm.main.uid})`
          : view.needsElevation === 'cgroups'
            ? 'running · needs admin (cgroup freezer)'
            : `running · ${methodName(method)}`;
    this.description = `pid ${vm.main.pid} · ${state}`;
    this.iconPath = new vscode.ThemeIcon(frozen ? 'vm-outline' : view.needsElevation ? 'shield' : 'vm', frozen ? new vscode.ThemeColor('debugIcon.pauseForeground') : undefined);
    // Drives the inline and context actions in package.json (`viewItem =~ /^vm\.frozen/`);
    // `.admin`: this window may not signal it, so Kill is not offered.
    this.contextValue =
      `vm.${frozen ? 'frozen' : frozenElsewhere ? 'frozenElsewhere' : 'running'}.${method || view.needsElevation ? 'freezable' : 'unsafe'}` +
      (view.needsElevation === 'signals' ? '.admin' : '');
    const md = new vscode.MarkdownString('', true);
    md.appendMarkdown(`**crosvm VM ${vm.main.pid}** — ${state}\n\n`);
    md.appendCodeblock(vm.cmdline.join(' '), 'shell');
    md.appendMarkdown(`\nuid ${vm.main.uid} · ${vm.main.threads} threads (vCPUs included) · ${vm.devices.length} device processes\n\n`);
    md.appendMarkdown(`${swapBuild.tolerant ? '$(check)' : '$(warning)'} Signals: ${swapBuild.evidence}.\n\n`);
    if (frozen) md.appendMarkdown(`$(${frozen.method === 'cgroup' ? 'lock' : 'debug-pause'}) Frozen with ${methodName(frozen.method)}.`);
    else if (view.needsElevation) {
      // What this window reads of another user's VM (its executable, its cgroups) says little:
      // the elevated companion chooses the method as root, where the cgroup freezer is always open.
      md.appendMarkdown(
        (view.needsElevation === 'signals'
          ? `$(shield) Some of its processes run as another user (the VM as uid ${vm.main.uid}): this window may not signal them. `
          : `$(shield) ${view.method.why}. `) +
          'Freezing goes through a companion process started as root with `sudo` or `pkexec` (setting `crosvmGuard.elevation`), ' +
          'which uses signals where the build tolerates them and the cgroup freezer otherwise.',
      );
    } else if (view.method.method) md.appendMarkdown(`$(check) A freeze would use ${view.method.why}.`);
    else md.appendMarkdown(`$(error) Cannot be frozen: ${view.method.error.message}`);
    this.tooltip = md;
  }
}

export class ProcessNode extends vscode.TreeItem {
  readonly kind = 'process';
  constructor(
    readonly vm: VmView,
    readonly process: ProcessSnapshot,
    hasChildren: boolean,
  ) {
    super(process.label || `pid ${process.pid}`, hasChildren ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
    const kind = processStateKind(process, vm);
    this.id = `proc:${process.pid}@${process.startTime}`;
    // The uid only where it is not this window's: the owner matters when it is someone else.
    const owner = process.uid !== globalThis.process.getuid?.() ? ` · uid ${process.uid}` : '';
    this.description = `${process.pid} · ${STATE_WORDS[kind]}${owner}`;
    this.iconPath = STATE_ICONS[kind];
    this.contextValue = `process.${kind}`;
    const placement = vm.placements.get(process.pid);
    const cgroup = placement?.dir
      ? `\n\ncgroup \`${placement.dir}\` · ${placement.access === 'denied' ? 'not writable by this window' : placement.access === 'root' ? 'writable (root)' : 'writable (delegated to you)'}`
      : '';
    this.tooltip = new vscode.MarkdownString(
      `**${process.label}** (pid ${process.pid})\n\n${STATE_WORDS[kind]} · state \`${process.state}\` · uid ${process.uid} · ${process.threads} threads` +
        (process.tracerPid ? ` · debugger pid ${process.tracerPid}` : '') +
        `\n\nparent pid ${process.ppid}${cgroup}`,
    );
  }
}

export type GuardNode = VmNode | ProcessNode;

export class ProcessTreeProvider implements vscode.TreeDataProvider<GuardNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<GuardNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: vscode.Disposable;
  private parents = new Map<string, GuardNode>();

  constructor(private readonly controller: GuardController) {
    this.subscription = controller.onDidChange(() => this.changed.fire(undefined));
  }

  getTreeItem(node: GuardNode): vscode.TreeItem {
    return node;
  }

  getChildren(node?: GuardNode): GuardNode[] {
    if (!node) {
      this.parents = new Map();
      return this.controller.vms.map((view) => new VmNode(view));
    }
    const vm = node.kind === 'vm' ? node.view : node.vm;
    const parentPid = node.kind === 'vm' ? vm.snapshot.main.pid : node.process.pid;
    const devices = vm.snapshot.devices;
    const children = devices
      .filter((d) => d.ppid === parentPid)
      .map((d) => new ProcessNode(vm, d, devices.some((c) => c.ppid === d.pid)));
    for (const child of children) this.parents.set(child.id as string, node);
    return children;
  }

  getParent(node: GuardNode): GuardNode | undefined {
    return node.kind === 'vm' ? undefined : this.parents.get(node.id as string);
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
