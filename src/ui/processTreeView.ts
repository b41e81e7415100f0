// The tree view: one node per VM, its device processes below in their real parent/child
// shape. It renders the controller's last listing and never reads /proc itself.
//
// Nodes live as long as the process they show (id: pid and start time) and are updated in
// place; a refresh fires onDidChangeTreeData only for the nodes whose rendering changed (or
// for the parent whose children changed). Redrawing every row at every refresh closed any
// tooltip open on a row, and the tooltips carry the explanations.
import * as vscode from 'vscode';
import { ProcessSnapshot } from '../guard';
import { GuardController, VmView } from './controller';
import type { LiveSettings } from './config';
import { Views } from './contributions';
import {
  PROCESS_STATE_WORDS,
  processStateKind,
  ProcessStateKind,
  processTooltip,
  vmDescription,
  VmStateKind,
  vmStateKind,
  vmTooltip,
} from './describe';
import { processName } from './viewModel';

export { processStateKind, ProcessStateKind } from './describe';

/** Icons show state only (the actions are in the menus and tooltips). */
const PROCESS_ICONS: Record<ProcessStateKind, [string, string]> = {
  running: ['circle-filled', 'debugIcon.startForeground'],
  frozen: ['debug-pause', 'debugIcon.pauseForeground'],
  frozenByCgroup: ['lock', 'debugIcon.pauseForeground'],
  frozenElsewhere: ['debug-pause', 'charts.yellow'],
  stopped: ['stop-circle', 'charts.orange'],
  traced: ['bug', 'charts.purple'],
  zombie: ['circle-slash', 'disabledForeground'],
};

const VM_ICONS: Record<VmStateKind, [string, string]> = {
  running: ['vm-running', 'debugIcon.startForeground'],
  frozen: ['debug-pause', 'debugIcon.pauseForeground'],
  // Each state its own icon: at the default side-bar width a long name cuts the words off.
  frozenWithVcpus: ['debug-stop', 'debugIcon.pauseForeground'],
  partlyFrozen: ['warning', 'errorForeground'],
  frozenElsewhere: ['debug-pause', 'charts.yellow'],
  needsAdmin: ['shield', 'charts.yellow'],
  unfreezable: ['circle-slash', 'errorForeground'],
};

const icon = ([name, color]: [string, string]) => new vscode.ThemeIcon(name, new vscode.ThemeColor(color));

/** What a row shows, as a string to compare between refreshes. */
function rendering(item: vscode.TreeItem, iconOf: [string, string]): string {
  const tooltip = item.tooltip instanceof vscode.MarkdownString ? item.tooltip.value : item.tooltip;
  return JSON.stringify([item.label, item.description, iconOf, item.contextValue, tooltip, item.collapsibleState]);
}

export class VmNode extends vscode.TreeItem {
  readonly kind = 'vm';
  view!: VmView;
  /** Its rendering after the last update. */
  rendered = '';

  constructor(view: VmView) {
    super(view.snapshot.name, vscode.TreeItemCollapsibleState.Expanded);
    this.id = vmNodeId(view);
    this.update(view);
  }

  /** Takes the VM's current listing; returns whether the row looks different now. */
  update(view: VmView): boolean {
    this.view = view;
    const { snapshot: vm, frozen, frozenElsewhere } = view;
    const kind = vmStateKind(view);
    this.label = vm.name;
    this.description = vmDescription(view);
    this.iconPath = icon(VM_ICONS[kind]);
    // Drives the actions in package.json: freeze on a running VM, freeze the vCPUs too on one
    // whose devices only are frozen, resume on a frozen one. `.admin`: this window may not
    // signal it, so Kill is not offered.
    const method = frozen?.method ?? view.method.method;
    const state = frozen ? (frozen.scope === 'vm' ? 'frozenVm' : 'frozen') : frozenElsewhere ? 'frozenElsewhere' : 'running';
    this.contextValue =
      `vm.${state}.${method || view.needsElevation ? 'freezable' : 'unsafe'}` + (view.needsElevation === 'signals' ? '.admin' : '');
    this.tooltip = new vscode.MarkdownString(vmTooltip(view), true);
    return this.rendered !== (this.rendered = rendering(this, VM_ICONS[kind]));
  }
}

export class ProcessNode extends vscode.TreeItem {
  readonly kind = 'process';
  vm!: VmView;
  process!: ProcessSnapshot;
  rendered = '';

  constructor(vm: VmView, process: ProcessSnapshot, hasChildren: boolean) {
    super(processName(vm.snapshot, process).shown);
    this.id = processNodeId(process);
    this.update(vm, process, hasChildren);
  }

  update(vm: VmView, process: ProcessSnapshot, hasChildren: boolean): boolean {
    this.vm = vm;
    this.process = process;
    const kind = processStateKind(process, vm);
    this.label = processName(vm.snapshot, process).shown;
    // Expanded when it gains children; left as the user set it otherwise (VS Code keeps that by id).
    this.collapsibleState = hasChildren ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None;
    // The uid only where it is not this window's: the owner matters when it is someone else.
    const owner = process.uid !== globalThis.process.getuid?.() ? ` · uid ${process.uid}` : '';
    // The state first: at the default side-bar width the end of the row is cut off.
    this.description = `${PROCESS_STATE_WORDS[kind]} · ${process.pid}${owner}`;
    this.iconPath = icon(PROCESS_ICONS[kind]);
    this.contextValue = `process.${kind}`;
    this.tooltip = new vscode.MarkdownString(processTooltip(vm, process, vm.placements.get(process.pid)));
    return this.rendered !== (this.rendered = rendering(this, PROCESS_ICONS[kind]));
  }
}

export type GuardNode = VmNode | ProcessNode;

const vmNodeId = (view: VmView) => `vm:${view.snapshot.main.pid}@${view.snapshot.main.startTime}`;
const processNodeId = (p: ProcessSnapshot) => `proc:${p.pid}@${p.startTime}`;
const ROOT = '';

export class ProcessTreeProvider implements vscode.TreeDataProvider<GuardNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<GuardNode | GuardNode[] | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly subscription: vscode.Disposable;
  /** Every node shown, by id, and the ids of each node's children (ROOT: the VMs). */
  private nodes = new Map<string, GuardNode>();
  private children = new Map<string, string[]>();
  private parents = new Map<string, GuardNode>();
  private synced = false;

  constructor(private readonly controller: GuardController) {
    this.subscription = controller.onDidChange(() => this.sync());
  }

  /** Brings the nodes up to date with the controller's listing and fires for what changed. */
  private sync(fire = true): void {
    const firstTime = !this.synced;
    this.synced = true;
    const nodes = new Map<string, GuardNode>();
    const children = new Map<string, string[]>([[ROOT, []]]);
    const parents = new Map<string, GuardNode>();
    const dirty: GuardNode[] = [];
    for (const view of this.controller.vms) {
      const id = vmNodeId(view);
      const old = this.nodes.get(id);
      const vmNode = old instanceof VmNode ? old : new VmNode(view);
      if (vmNode === old && vmNode.update(view)) dirty.push(vmNode);
      nodes.set(id, vmNode);
      children.get(ROOT)?.push(id);
      const devices = view.snapshot.devices;
      const parentNode = new Map<number, GuardNode>([[view.snapshot.main.pid, vmNode]]);
      // Devices are listed parents before children.
      for (const device of devices) {
        const parent = parentNode.get(device.ppid) ?? vmNode;
        const hasChildren = devices.some((c) => c.ppid === device.pid);
        const childId = processNodeId(device);
        const previous = this.nodes.get(childId);
        const node = previous instanceof ProcessNode ? previous : new ProcessNode(view, device, hasChildren);
        if (node === previous && node.update(view, device, hasChildren)) dirty.push(node);
        nodes.set(childId, node);
        parents.set(childId, parent);
        parentNode.set(device.pid, node);
        const siblings = children.get(parent.id as string) ?? [];
        siblings.push(childId);
        children.set(parent.id as string, siblings);
      }
    }
    const sameChildren = (id: string) => JSON.stringify(children.get(id) ?? []) === JSON.stringify(this.children.get(id) ?? []);
    const rootChanged = !sameChildren(ROOT);
    // A node whose children changed is fired itself: VS Code then asks for its children again.
    for (const [id, node] of nodes) if (!sameChildren(id) && !dirty.includes(node)) dirty.push(node);
    this.nodes = nodes;
    this.children = children;
    this.parents = parents;
    if (!fire) return;
    if (firstTime || rootChanged) this.changed.fire(undefined);
    else if (dirty.length > 0) this.changed.fire(dirty);
  }

  getTreeItem(node: GuardNode): vscode.TreeItem {
    return node;
  }

  getChildren(node?: GuardNode): GuardNode[] {
    if (!this.synced) this.sync(false);
    const ids = this.children.get(node ? (node.id as string) : ROOT) ?? [];
    return ids.map((id) => this.nodes.get(id)).filter((n): n is GuardNode => n !== undefined);
  }

  getParent(node: GuardNode): GuardNode | undefined {
    return node.kind === 'vm' ? undefined : this.parents.get(node.id as string);
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}

/**
 * The tree in its two views (the crosvm Guard view, and the one in Run and Debug). The
 * listing is read periodically only while a view shows the tree; otherwise on events (window
 * focus, debug sessions, commands), so a hidden view costs nothing.
 */
export function registerProcessViews(
  context: vscode.ExtensionContext,
  controller: GuardController,
  settings: Pick<LiveSettings, 'current' | 'onDidChange'>,
): void {
  const tree = new ProcessTreeProvider(controller);
  const views = [Views.Processes, Views.DebugProcesses].map((id) =>
    vscode.window.createTreeView(id, { treeDataProvider: tree, showCollapseAll: true }),
  );
  let timer: NodeJS.Timeout | undefined;
  const updateTimer = () => {
    if (timer) clearInterval(timer);
    timer = views.some((v) => v.visible) ? setInterval(() => controller.refresh(), settings.current.refreshIntervalMs) : undefined;
  };
  context.subscriptions.push(
    tree,
    ...views,
    ...views.map((v) => v.onDidChangeVisibility(() => (v.visible && controller.refresh(), updateTimer()))),
    { dispose: () => timer && clearInterval(timer) },
    vscode.window.onDidChangeWindowState((state) => state.focused && controller.refresh()),
    vscode.debug.onDidStartDebugSession(() => controller.refresh()),
    settings.onDidChange(updateTimer),
  );
  updateTimer();
}
