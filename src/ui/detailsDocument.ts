// Show process details: a read-only Markdown document per process (its own URI scheme, so
// there is nothing to save), rendered in the preview and re-read whenever the listing changes
// while it is open.
import * as vscode from 'vscode';
import { methodName, ProcessSnapshot, startTimeToDate, VmSnapshot } from '../guard';
import type { GuardController, VmView } from './controller';
import { clockTime, codeBlock, codeSpan, escapeMarkdown, nameExplained, plural, PROCESS_STATE_WORDS, processStateKind } from './describe';
import { ProcessNode, VmNode } from './processTreeView';
import { processName } from './viewModel';
import { nodeFromArgument } from './vmRefs';

const DETAILS_SCHEME = 'crosvm-guard-details';

export class DetailsDocuments implements vscode.Disposable {
  /** The text of each document open, by URI (a few KiB each). */
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  private readonly subscriptions: vscode.Disposable[];

  constructor(private readonly controller: Pick<GuardController, 'refresh' | 'vms' | 'onDidChange'>) {
    this.subscriptions = [
      vscode.workspace.registerTextDocumentContentProvider(DETAILS_SCHEME, {
        onDidChange: this.changed.event,
        provideTextDocumentContent: (uri) => this.texts.get(uri.toString()) ?? '',
      }),
      this.changed,
      controller.onDidChange(() => this.refresh()),
      vscode.workspace.onDidCloseTextDocument((doc) => this.texts.delete(doc.uri.toString())),
    ];
  }

  /** Opens the details of a tree item or a listed pid, read now; undefined if it names none. */
  async show(arg: unknown): Promise<vscode.TextDocument | undefined> {
    const node = nodeFromArgument(arg, () => this.controller.refresh());
    if (!node) return undefined;
    const p = node instanceof VmNode ? node.view.snapshot.main : node.process;
    const title = node instanceof VmNode ? `crosvm VM ${p.pid}` : `${p.label.replace(/[/\\]/g, '_')} ${p.pid}`;
    const uri = vscode.Uri.from({ scheme: DETAILS_SCHEME, path: `/${title}.md`, query: `${p.pid}@${p.startTime}` });
    this.texts.set(uri.toString(), detailsMarkdown(node));
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

  /** Re-reads the details of every open document from the current listing. */
  private refresh(): void {
    for (const key of this.texts.keys()) {
      const uri = vscode.Uri.parse(key);
      const [pid, startTime] = uri.query.split('@').map(Number);
      const node = nodeFromArgument(pid, () => this.controller.vms);
      const text =
        node && (node instanceof VmNode ? node.view.snapshot.main : node.process).startTime === startTime
          ? detailsMarkdown(node)
          : goneMarkdown(pid);
      if (text === this.texts.get(key)) continue;
      this.texts.set(key, text);
      this.changed.fire(uri);
    }
  }

  dispose(): void {
    for (const s of this.subscriptions) s.dispose();
  }
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
