// Command handlers: resolve which VM is meant (argument, tree item, or ask), call the
// controller, and turn errors into notifications with a way forward. Every handler returns
// its result so tests and other extensions can script it.
import * as vscode from 'vscode';
import treeKill from 'tree-kill';
import {
  FreezeReport,
  FreezeScope,
  GuardError,
  maySignal,
  methodName,
  ProcessSnapshot,
  SkippedProcess,
  startTimeToDate,
  VmRef,
  VmSnapshot,
} from '../guard';
import { Commands } from './contributions';
import { GuardController, VmView } from './controller';
import { ElevationError } from '../companion/elevatedClient';
import { ProcessNode, VmNode } from './processTreeView';
import { SettingKeys } from '../common/settings';
import { openSetting } from './openSetting';
import {
  clockTime,
  codeBlock,
  codeSpan,
  escapeMarkdown,
  nameExplained,
  plural,
  PROCESS_STATE_WORDS,
  processStateKind,
  shortRefusal,
  skipWords,
  vmPickDetail,
  VmStateKind,
  vmStateKind,
} from './describe';
import { processName } from './viewModel';

/** A command's argument: a pid, a tree item, or `{ pid, startTime? }`; undefined means "ask". */
export function vmRefFromArgument(arg: unknown): VmRef | undefined {
  if (arg === undefined || arg === null) return undefined;
  if (typeof arg === 'number') return { pid: arg };
  if (arg instanceof VmNode) return { pid: arg.view.snapshot.main.pid, startTime: arg.view.snapshot.main.startTime };
  if (arg instanceof ProcessNode) return { pid: arg.vm.snapshot.main.pid, startTime: arg.vm.snapshot.main.startTime };
  if (typeof arg === 'object' && typeof (arg as VmRef).pid === 'number') {
    const { pid, startTime } = arg as VmRef;
    return typeof startTime === 'number' ? { pid, startTime } : { pid };
  }
  throw new GuardError('invalid-argument', `Expected a crosvm VM's pid or a tree item, got ${JSON.stringify(arg)}.`);
}

const refOf = (vm: VmView): VmRef => ({ pid: vm.snapshot.main.pid, startTime: vm.snapshot.main.startTime });

/** Read-only documents of Show process details. */
const DETAILS_SCHEME = 'crosvm-guard-details';

export class CommandHandlers {
  /** Show process details: the text of each document opened, by URI (a few KiB each). */
  private readonly details = new Map<string, string>();
  private readonly detailsChanged = new vscode.EventEmitter<vscode.Uri>();

  constructor(
    private readonly controller: GuardController,
    private readonly log: vscode.LogOutputChannel,
    /** Called when the user toggles by hand: automatic freezing by debug sessions stops. */
    private readonly onManualToggle: () => void = () => undefined,
  ) {}

  register(): vscode.Disposable[] {
    const r = vscode.commands.registerCommand;
    return [
      vscode.workspace.registerTextDocumentContentProvider(DETAILS_SCHEME, {
        onDidChange: this.detailsChanged.event,
        provideTextDocumentContent: (uri) => this.details.get(uri.toString()) ?? '',
      }),
      this.detailsChanged,
      this.controller.onDidChange(() => this.refreshDetails()),
      vscode.workspace.onDidCloseTextDocument((doc) => this.details.delete(doc.uri.toString())),
      r(Commands.Freeze, (arg?: unknown) => this.freeze(arg, 'devices')),
      r(Commands.FreezeVm, (arg?: unknown) => this.freeze(arg, 'vm')),
      r(Commands.Resume, (arg?: unknown) => this.resume(arg)),
      r(Commands.Toggle, () => this.toggle()),
      r(Commands.Refresh, () => this.controller.refresh().length),
      r(Commands.CopyPid, (arg?: unknown) => this.copyPid(arg)),
      r(Commands.ShowDetails, (arg?: unknown) => this.showDetails(arg)),
      r(Commands.KillVm, (arg?: unknown) => this.killVm(arg)),
      r(Commands.ShowLog, () => this.log.show()),
    ];
  }

  /** Freezes one VM, or the VM(s) the user picks; returns the report(s), undefined if none. */
  async freeze(arg: unknown, scope: FreezeScope): Promise<FreezeReport | FreezeReport[] | undefined> {
    let targets: VmRef[] | undefined;
    try {
      const ref = vmRefFromArgument(arg);
      targets = ref ? [ref] : await this.pickVms(scope);
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

  /** The VMs to act on: the only one, or the user's pick (`kill`: one VM, never "All VMs"). */
  private async pickVms(scope: FreezeScope | 'kill'): Promise<VmRef[] | undefined> {
    const vms = this.controller.refresh();
    if (vms.length === 0) {
      const refresh = 'Refresh';
      const settings = 'Open Settings';
      const choice = await vscode.window.showInformationMessage(
        'No crosvm VM is running on this host. crosvm Guard looks for processes whose executable or argv[0] is named as in crosvmGuard.processNames.',
        refresh,
        settings,
      );
      if (choice === refresh) {
        return this.controller.refresh().length > 0 ? this.pickVms(scope) : undefined;
      }
      if (choice === settings) void openSetting(SettingKeys.processNames);
      return undefined;
    }
    if (vms.length === 1) return [refOf(vms[0])];
    type Item = vscode.QuickPickItem & { refs: VmRef[] };
    const items: Item[] = vms.map((vm) => ({
      label: `$(${PICK_ICONS[vmStateKind(vm)]}) ${vm.snapshot.name}`,
      description: `pid ${vm.snapshot.main.pid}`,
      detail: vmPickDetail(vm),
      refs: [refOf(vm)],
    }));
    // The VMs a freeze would change: running ones it can freeze (a VM frozen as asked already,
    // one that cannot be frozen, one another window holds are left out).
    const open = scope === 'kill' ? vms : vms.filter((vm) => canAct(vm, scope));
    if (scope !== 'kill' && open.length > 1) {
      const left = vms.filter((vm) => !open.includes(vm) && !vm.frozen);
      const detail = left.length > 0 ? `not ${left.map((vm) => `VM ${vm.snapshot.main.pid} (${vmPickDetail(vm)})`).join(', ')}` : undefined;
      items.push({
        label: '$(layers) All VMs',
        description: `${plural(open.length, 'VM')} that can be frozen`,
        detail,
        refs: open.map(refOf),
      });
    }
    const quickPick = vscode.window.createQuickPick<Item>();
    quickPick.items = items;
    quickPick.title =
      scope === 'kill' ? 'Kill crosvm VM' : scope === 'vm' ? 'Freeze entire crosvm VM (vCPUs too)' : 'Freeze crosvm devices';
    quickPick.placeholder = 'Which crosvm VM?';
    quickPick.matchOnDescription = true;
    // Enter on the preselected row must do something: the first VM that can be frozen.
    const first = items.find((item) => item.refs.length === 1 && open.some((vm) => refOf(vm).pid === item.refs[0].pid));
    if (first) quickPick.activeItems = [first];
    const picked = await new Promise<Item | undefined>((resolve) => {
      quickPick.onDidAccept(() => resolve(quickPick.selectedItems[0] ?? quickPick.activeItems[0]));
      quickPick.onDidHide(() => resolve(undefined));
      quickPick.show();
    });
    quickPick.dispose();
    return picked?.refs;
  }

  /** A tree item, or a pid of a listed VM or device process (for scripts). */
  private nodeFromArgument(arg: unknown, refresh = true): VmNode | ProcessNode | undefined {
    if (arg instanceof VmNode || arg instanceof ProcessNode) return arg;
    if (typeof arg !== 'number') return undefined;
    for (const vm of refresh ? this.controller.refresh() : this.controller.vms) {
      if (vm.snapshot.main.pid === arg) return new VmNode(vm);
      const device = vm.snapshot.devices.find((d) => d.pid === arg);
      if (device) return new ProcessNode(vm, device, false);
    }
    return undefined;
  }

  private async copyPid(arg: unknown): Promise<number | undefined> {
    const node = this.nodeFromArgument(arg);
    if (!node) return undefined;
    const pid = node instanceof VmNode ? node.view.snapshot.main.pid : node.process.pid;
    await vscode.env.clipboard.writeText(String(pid));
    vscode.window.setStatusBarMessage(`$(copy) Copied pid ${pid}`, 2000);
    return pid;
  }

  /**
   * Opens a process's details rendered (Markdown preview), read at the time it says, and
   * re-read whenever the listing changes while the document is open.
   */
  private async showDetails(arg: unknown): Promise<vscode.TextDocument | undefined> {
    const node = this.nodeFromArgument(arg);
    if (!node) return undefined;
    // A read-only document of our own scheme: nothing to save when it is closed.
    const p = node instanceof VmNode ? node.view.snapshot.main : node.process;
    const title = node instanceof VmNode ? `crosvm VM ${p.pid}` : `${p.label.replace(/[/\\]/g, '_')} ${p.pid}`;
    const uri = vscode.Uri.from({ scheme: DETAILS_SCHEME, path: `/${title}.md`, query: `${p.pid}@${p.startTime}` });
    this.details.set(uri.toString(), detailsMarkdown(node));
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
    try {
      await vscode.commands.executeCommand('markdown.showPreview', uri);
    } catch {
      // No Markdown preview (the built-in extension disabled): the source, still readable.
      await vscode.window.showTextDocument(doc, { preview: true });
    }
    return doc;
  }

  /** Re-reads the details of every open details document from the current listing. */
  private refreshDetails(): void {
    for (const key of this.details.keys()) {
      const uri = vscode.Uri.parse(key);
      const [pid, startTime] = uri.query.split('@').map(Number);
      const node = this.nodeFromArgument(pid, false);
      const text =
        node && (node instanceof VmNode ? node.view.snapshot.main : node.process).startTime === startTime
          ? detailsMarkdown(node)
          : goneMarkdown(pid);
      if (text === this.details.get(key)) continue;
      this.details.set(key, text);
      this.detailsChanged.fire(uri);
    }
  }

  /** Kills a VM's whole tree with SIGKILL, after asking: a stopped process ignores SIGTERM. */
  private async killVm(arg: unknown): Promise<boolean> {
    try {
      const ref = vmRefFromArgument(arg) ?? (await this.pickVms('kill'))?.[0];
      if (!ref) return false;
      const vm = this.controller.guard.inspectVm(ref);
      const foreign = [vm.main, ...vm.devices].find((p) => !maySignal(p.pid));
      if (foreign) {
        throw new GuardError('not-permitted', mayNotKill(vm.main.pid, foreign));
      }
      const kill = 'Kill VM';
      const choice = await vscode.window.showWarningMessage(
        `Kill crosvm VM ${vm.main.pid} (${vm.name}) and its ${plural(vm.devices.length, 'device process', 'device processes')}?`,
        { modal: true, detail: 'Every process of the VM gets SIGKILL. The guest is lost; unsaved guest state is gone.' },
        kill,
      );
      if (choice !== kill) return false;
      // Proven again right before the signal: the user may have waited at the dialog.
      this.controller.guard.inspectVm({ pid: vm.main.pid, startTime: vm.main.startTime });
      await new Promise<void>((resolve, reject) => treeKill(vm.main.pid, 'SIGKILL', (error) => (error ? reject(error) : resolve())));
      const killed = `Killed VM ${vm.main.pid} (${vm.name}) and its ${plural(vm.devices.length, 'device process', 'device processes')}`;
      this.log.info(`${killed} with SIGKILL.`);
      vscode.window.setStatusBarMessage(`$(trash) crosvm: ${killed}.`, 6000);
      await this.controller.resume(ref);
      this.controller.refresh();
      return true;
    } catch (error) {
      void this.showError(error);
      return false;
    }
  }

  /** A notification that says what happened and offers the next step. */
  private async showError(error: unknown, retry?: () => unknown): Promise<void> {
    const code = error instanceof GuardError ? error.code : undefined;
    // A refusal is short on screen; its evidence and every way out are in the log.
    if (code === 'unsafe-build' || code === 'cgroup-unavailable') this.log.warn((error as Error).message);
    const message = code ? shortRefusal(error as GuardError) : ((error as Error).message ?? String(error));
    const actions: string[] = [];
    if (code === 'freeze-failed' && retry) actions.push('Retry');
    const elevate = 'Freeze with administrator rights…';
    if (code === 'needs-elevation' && retry && this.controller.elevation.setting !== 'never') actions.push(elevate);
    if (code === 'unsafe-build' || code === 'cgroup-unavailable' || code === 'needs-elevation') actions.push('Open Settings');
    if (code === 'vm-gone' || code === 'not-crosvm') actions.push('Refresh');
    actions.push('Show Log');
    const show =
      code === 'unsafe-build' || code === 'cgroup-unavailable' || code === 'needs-elevation'
        ? vscode.window.showWarningMessage
        : vscode.window.showErrorMessage;
    const choice = await show(message, ...actions);
    if (choice === 'Retry') void retry?.();
    else if (choice === elevate) {
      try {
        await this.controller.elevation.start();
      } catch (failure) {
        if (failure instanceof ElevationError && failure.reason === 'cancelled') return;
        return this.showError(failure);
      }
      void retry?.();
    } else if (choice === 'Open Settings') {
      // For a build that dies on signals the way out is the method (the cgroup freezer), not
      // assumeSwapBuild, which would crash it if you were wrong.
      void openSetting(code === 'needs-elevation' ? SettingKeys.elevation : SettingKeys.method);
    } else if (choice === 'Refresh') this.controller.refresh();
    else if (choice === 'Show Log') this.log.show();
  }
}

/** The status-bar message after a freeze: what froze, and what was left running and why. */
function frozeMessage(reports: readonly FreezeReport[], count: number, ms: number): string {
  const skipped = reports.flatMap((r) => r.skipped).map((s) => `${s.label} ${s.pid} ${skipWords(s)}`);
  return `froze ${plural(count, 'process', 'processes')} in ${ms.toFixed(1)} ms` + (skipped.length > 0 ? `; ${skipped.join('; ')}` : '');
}

/** A process a freeze skipped that goes on running (and writing guest memory). */
const keepsRunning = (s: SkippedProcess) => s.reason === 'traced' || s.reason === 'excluded';

/** Whether a freeze of `scope` would change this VM. */
function canAct(vm: VmView, scope: FreezeScope): boolean {
  if (vm.frozenElsewhere) return false;
  if (vm.frozen) return scope === 'vm' && vm.frozen.scope === 'devices';
  return vmStateKind(vm) !== 'unfreezable';
}

/** Picker icons: the tree's state icons (a quick pick cannot colour them). */
const PICK_ICONS: Record<VmStateKind, string> = {
  running: 'vm-running',
  frozen: 'debug-pause',
  frozenWithVcpus: 'debug-stop',
  partlyFrozen: 'warning',
  frozenElsewhere: 'debug-pause',
  needsAdmin: 'shield',
  unfreezable: 'circle-slash',
};

function frozenElsewhereQuestion(view: VmView): string {
  const { snapshot, frozenElsewhere } = view;
  const who = `another VS Code window (extension host pid ${frozenElsewhere?.ownerPid})`;
  return `VM ${snapshot.main.pid} (${snapshot.name}) is frozen by ${who}. Resume it from this window?`;
}

function mayNotKill(vmPid: number, foreign: ProcessSnapshot): string {
  const owner = `uid ${foreign.uid} (${foreign.label} ${foreign.pid})`;
  return `crosvm VM ${vmPid} runs as ${owner}; this window may not kill it. To kill it anyway, run \`sudo kill -KILL ${vmPid}\` in a terminal.`;
}

function goneMarkdown(pid: number): string {
  return `# pid ${pid}\n\n*Read at ${clockTime(Date.now())}:* this process has exited.\n`;
}

function detailsMarkdown(node: VmNode | ProcessNode): string {
  const p = node instanceof VmNode ? node.view.snapshot.main : node.process;
  const started = startTimeToDate(p.startTime);
  const cell = (text: string) => escapeMarkdown(text);
  const name = node instanceof VmNode ? undefined : processName(node.vm.snapshot, node.process);
  const view = node instanceof VmNode ? node.view : node.vm;
  const placement = view.placements.get(p.pid);
  const lines = [
    `# ${name ? `${cell(name.shown)} (pid ${p.pid})` : `crosvm VM ${p.pid}`}`,
    '',
    `*Read from /proc at ${clockTime(Date.now())}; updated whenever crosvm Guard sees this process change.*`,
    '',
    `| | |`,
    `|---|---|`,
    `| pid | ${p.pid} |`,
    `| parent pid | ${p.ppid} |`,
    `| label (comm) | ${codeSpan(p.label)} |`,
    ...(name && nameExplained(name).length > 0 ? [`| name | ${nameExplained(name).join(' ')} |`] : []),
    `| state | ${stateCell(p, view)} |`,
    `| uid | ${p.uid} |`,
    `| threads | ${p.threads} |`,
    `| start time | ${p.startTime} clock ticks after boot${started ? ` (${started.toISOString()})` : ''} |`,
    `| debugger pid | ${p.tracerPid || 'none'} |`,
    `| cgroup | ${placement?.dir ? `${codeSpan(placement.dir)} (${placement.access === 'denied' ? 'not writable here' : 'writable'})` : 'not read'} |`,
  ];
  // A device process's VM: how it is frozen, or would be.
  if (node instanceof ProcessNode) lines.push(`| VM | ${node.vm.snapshot.main.pid}, freeze method ${methodCell(node.vm)} |`);
  if (node instanceof VmNode) {
    const vm = node.view.snapshot;
    lines.push(
      `| executable | ${vm.exe ? codeSpan(vm.exe) : 'not readable'} |`,
      `| signals | ${node.view.swapBuild.tolerant ? 'safe' : 'unsafe'}: ${cell(node.view.swapBuild.evidence)} |`,
      `| freeze method | ${methodCell(node.view)} |`,
      '',
      '## Command line',
      '',
      codeBlock(vm.cmdline.join(' '), 'shell'),
      '## Device processes',
      '',
      ...vm.devices.map((d) => deviceLine(vm, d, node.view)),
    );
  }
  return lines.join('\n') + '\n';
}

function deviceLine(vm: VmSnapshot, d: ProcessSnapshot, view: VmView): string {
  const name = processName(vm, d);
  const shown = name.shown === d.label ? codeSpan(d.label) : `${escapeMarkdown(name.shown)} (${codeSpan(d.label)})`;
  return `- ${shown} pid ${d.pid}, parent ${d.ppid}, state ${stateCell(d, view)}, uid ${d.uid}, ${plural(d.threads, 'thread')}`;
}

/** `T` alone says little: the kernel's letter, and what it means here. */
function stateCell(p: ProcessSnapshot, view: VmView): string {
  return `${codeSpan(p.state)} (${PROCESS_STATE_WORDS[processStateKind(p, view)]})`;
}

/** The details' freeze method: the one in force, or the one a freeze would use (or none, and why). */
function methodCell(view: VmView): string {
  const { frozen, method } = view;
  if (frozen) return `frozen with ${methodName(frozen.method)}${frozen.scope === 'vm' ? ', vCPUs too' : ''}`;
  return escapeMarkdown(method.method ? method.why : `none: ${method.why}`);
}
