// What the tree, the status bar and the picker say about VMs and processes, as plain strings
// (Markdown for tooltips). No runtime vscode import: the wording is unit-tested under plain
// Node, and every string that comes from /proc (another user's process names and command
// lines among them) is escaped here, once, before it reaches a Markdown renderer.
import { ProcessSnapshot, sameProcess, ProcessIdentity, SWAP_MONITOR_LABEL } from '../guard';
import { isExitedState, isStoppedState } from '../guard';
import { methodName } from '../common/format';
import type { VmView } from './controller';
import { processName, ProcessName } from './viewModel';

/** `1 thread`, `2 threads`; `many` for irregular plurals. */
export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * Text shown literally inside Markdown: every ASCII punctuation character a renderer could
 * read as syntax gets a backslash (CommonMark allows it before any of them), `$(` included,
 * which a MarkdownString with theme icons renders as an icon; line breaks become spaces.
 */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').replace(/[\\`*_{}[\]()#+\-.!|<>~$&:"'=]/g, '\\$&');
}

/** Backticks one longer than the longest run in `text` (at least `min`): a fence it cannot close. */
function fenceFor(text: string, min: number): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  return '`'.repeat(Math.max(min, longest + 1));
}

/** A fenced code block that no backtick run or line break in `text` can close early. */
export function codeBlock(text: string, language = ''): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  const fence = fenceFor(flat, 3);
  return `${fence}${language}\n${flat}\n${fence}\n`;
}

/** Inline code that no backtick run in `text` can close early. */
export function codeSpan(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  const fence = fenceFor(flat, 1);
  // A space on each side lets the text itself begin or end with a backtick.
  return fence.length > 1 ? `${fence} ${flat} ${fence}` : `${fence}${flat}${fence}`;
}

/** `14:03:05`: when a freeze began (local time). */
export function clockTime(epochMs: number): string {
  return new Date(epochMs).toTimeString().slice(0, 8);
}

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

/** A process's state in a row: short, so that it is not cut off; the tooltip explains it. */
export const PROCESS_STATE_WORDS: Record<ProcessStateKind, string> = {
  running: 'running',
  frozen: 'frozen',
  frozenByCgroup: 'frozen (cgroup)',
  frozenElsewhere: 'frozen by another window',
  stopped: 'stopped, not by us',
  traced: 'traced',
  zombie: 'zombie',
};

const PROCESS_STATE_EXPLAINED: Record<ProcessStateKind, string> = {
  running: 'Running.',
  frozen: 'Frozen by this window with `SIGSTOP`.',
  frozenByCgroup: 'Frozen by this window with the cgroup freezer (`ps` shows it sleeping, not stopped).',
  frozenElsewhere: 'Frozen by another VS Code window.',
  stopped: 'Stopped by someone else (a `kill -STOP`, a debugger, crosvm itself): a freeze skips it, and a resume leaves it stopped.',
  traced: 'A debugger is attached: a freeze leaves it to the debugger (setting `crosvmGuard.includeTracedProcesses`).',
  zombie: 'Exited; its parent has not reaped it yet.',
};

/** What a VM row shows: one state, told by its icon as well as its words. */
export type VmStateKind = 'running' | 'frozen' | 'frozenWithVcpus' | 'frozenElsewhere' | 'needsAdmin' | 'unfreezable';

export function vmStateKind(view: Pick<VmView, 'frozen' | 'frozenElsewhere' | 'needsElevation' | 'method'>): VmStateKind {
  if (view.frozen) return view.frozen.scope === 'vm' ? 'frozenWithVcpus' : 'frozen';
  if (view.frozenElsewhere) return 'frozenElsewhere';
  if (view.needsElevation) return 'needsAdmin';
  return view.method.method ? 'running' : 'unfreezable';
}

/** A VM row's description: its state first (the part that must not be cut off), then its pid. */
export function vmDescription(view: VmView): string {
  const kind = vmStateKind(view);
  const state: Record<VmStateKind, string> = {
    running: 'running',
    frozen: 'frozen',
    frozenWithVcpus: 'frozen, vCPUs too',
    frozenElsewhere: 'frozen by another window',
    needsAdmin: view.needsElevation === 'signals' ? `needs admin (uid ${view.snapshot.main.uid})` : 'needs admin (cgroup freezer)',
    unfreezable: 'cannot be frozen',
  };
  return `${state[kind]} · pid ${view.snapshot.main.pid}`;
}

/** A VM in the picker: what tells it apart, and whether it can be frozen. */
export function vmPickDetail(view: VmView): string {
  const kind = vmStateKind(view);
  const devices = plural(view.snapshot.devices.length, 'device process', 'device processes');
  const what: Record<VmStateKind, string> = {
    running: `can be frozen with ${methodName(view.method.method)}`,
    frozen: `frozen with ${methodName(view.frozen?.method)}`,
    frozenWithVcpus: `frozen with ${methodName(view.frozen?.method)}, vCPUs too`,
    frozenElsewhere: 'frozen by another window',
    needsAdmin: 'needs administrator rights',
    unfreezable: `cannot be frozen: ${view.method.why}`,
  };
  return `${devices} · ${what[kind]}`;
}

/** The Markdown of a VM row's tooltip. Each reason is said once. */
const ROOT_COMPANION_EXPLAINED =
  'A companion started as root with `sudo` or `pkexec` (setting `crosvmGuard.elevation`) freezes it, ' +
  'with signals where the build tolerates them and the cgroup freezer otherwise.';

export function vmTooltip(view: VmView): string {
  const { snapshot: vm, swapBuild, frozen, frozenElsewhere } = view;
  const kind = vmStateKind(view);
  const lines: string[] = [`**crosvm VM ${vm.main.pid}** · ${escapeMarkdown(vm.name)}`, '', codeBlock(vm.cmdline.join(' '), 'shell')];
  const devices = plural(vm.devices.length, 'device process', 'device processes');
  lines.push(`uid ${vm.main.uid} · ${plural(vm.main.threads, 'thread')} (vCPUs included) · ${devices}`, '');
  const why = escapeMarkdown;
  if (frozen) {
    const what =
      frozen.scope === 'vm' ? 'its device processes and its main process with every vCPU thread' : 'its device processes (the vCPUs run)';
    lines.push(`$(debug-pause) **Frozen** since ${clockTime(frozen.since)} with ${methodName(frozen.method)}: ${what}.`);
    const skipped = frozen.skipped.map((s) => `${escapeMarkdown(s.label)} ${s.pid} (${why(s.detail)})`);
    if (skipped.length > 0) lines.push('', `Left running: ${skipped.join(', ')}.`);
  } else if (frozenElsewhere) {
    const who = `another VS Code window** (extension host pid ${frozenElsewhere.ownerPid})`;
    lines.push(`$(debug-pause) **Frozen by ${who} with ${methodName(frozenElsewhere.method)}.`);
  } else if (kind === 'needsAdmin') {
    // What this window reads of another user's VM (its executable, its cgroups) says little:
    // the elevated companion chooses the method as root, where the cgroup freezer is always open.
    const reason =
      view.needsElevation === 'signals'
        ? `some of its processes run as another user (the VM as uid ${vm.main.uid}), which this window may not signal`
        : why(view.method.why);
    lines.push(`$(shield) **Needs administrator rights**: ${reason}. ${ROOT_COMPANION_EXPLAINED}`);
  } else if (view.method.method === 'signal') {
    lines.push(`$(check) **Can be frozen** with signals: ${why(swapBuild.evidence)}.`);
  } else if (view.method.method === 'cgroup') {
    lines.push(
      `$(check) **Can be frozen** with the ${why(view.method.why)}.`,
      '',
      `$(warning) Not with signals: ${why(swapBuild.evidence)}.`,
    );
  } else {
    lines.push(`$(error) **Cannot be frozen**: ${why(view.method.error.message)}`);
  }
  return lines.join('\n');
}

/** Where a process sits in the freezer hierarchy, for its tooltip. */
export interface Placement {
  readonly dir: string | undefined;
  readonly access: 'denied' | 'root' | 'delegated' | string;
}

/**
 * What the swap monitor is, in its tooltip. A freeze takes it like any device: it moves guest
 * memory to and from its staging area while vmm-swap swaps out or in, so guest memory holds
 * still only with it stopped. crosvm's own ProcessesGuard runs inside it and skips it, which an
 * outside tool need not: stopping it is safe, as it is crosvm's proof of a swap build.
 */
export const SWAP_MONITOR_EXPLAINED =
  "crosvm's vmm-swap monitor: its running proves this build tolerates stopped devices. " +
  'A freeze stops it too, as it writes guest memory while swapping out or in; ' +
  "crosvm's own ProcessesGuard runs inside it and stops every other device.";

/** Where the name shown comes from, when it is not simply the process's `comm`. */
export function nameExplained(name: ProcessName): string[] {
  const lines: string[] = [];
  if (name.full) {
    lines.push(`crosvm calls it ${codeSpan(name.full)}; the kernel keeps 15 bytes of a name and shows ${codeSpan(name.comm)}.`);
  } else if (name.mayBeCut) {
    lines.push(`The kernel keeps 15 bytes of a process name: ${codeSpan(name.comm)} may be cut.`);
  }
  if (name.ordinal) {
    const what = `${name.ordinal.of} processes named ${codeSpan(name.comm)}`;
    lines.push(`#${name.ordinal.n} of ${what} under the same parent, numbered by start time (crosvm names them alike).`);
  }
  return lines;
}

/** The Markdown of a process row's tooltip. */
export function processTooltip(vm: VmView, p: ProcessSnapshot, placement: Placement | undefined): string {
  const kind = processStateKind(p, vm);
  const name = processName(vm.snapshot, p);
  const about = [...nameExplained(name), ...(p.label === SWAP_MONITOR_LABEL ? [SWAP_MONITOR_EXPLAINED] : [])];
  const lines = [
    `**${escapeMarkdown(name.shown)}** (pid ${p.pid})`,
    '',
    ...(about.length > 0 ? [about.join(' '), ''] : []),
    PROCESS_STATE_EXPLAINED[kind],
    '',
    `state ${codeSpan(p.state)} · uid ${p.uid} · ${plural(p.threads, 'thread')}` +
      (p.tracerPid ? ` · debugger pid ${p.tracerPid}` : '') +
      ` · parent pid ${p.ppid}`,
  ];
  if (placement?.dir) {
    const access =
      placement.access === 'denied'
        ? 'not writable by this window'
        : placement.access === 'root'
          ? 'writable (root)'
          : 'writable (delegated to you)';
    lines.push('', `cgroup ${codeSpan(placement.dir)} · ${access}`);
  }
  return lines.join('\n');
}

/** What a debug session does at its stops, for the status bar's tooltip. */
export interface DebugSessionTargets {
  readonly session: string;
  /** Freezing at stops is on (crosvmGuard.debug.autoFreeze) and the user has not taken manual control. */
  readonly automatic: boolean;
  readonly target: 'auto' | 'all' | 'ask';
  readonly debuggeePid: number | undefined;
  /** With `ask`, the VMs picked for this session, once asked. */
  readonly asked: readonly number[] | undefined;
}

/** The VM a debuggee belongs to (its main or one of its devices), if any. */
export function vmOfProcess(vms: readonly VmView[], pid: number | undefined): VmView | undefined {
  return pid === undefined ? undefined : vms.find((v) => v.snapshot.main.pid === pid || v.snapshot.devices.some((d) => d.pid === pid));
}

/** Which VMs a debug session freezes at each stop, and why, in one Markdown sentence. */
export function debugTargetsSentence(s: DebugSessionTargets, vms: readonly VmView[]): string {
  const session = `Debug session "${escapeMarkdown(s.session)}"`;
  if (!s.automatic) {
    return `${session} freezes nothing by itself (setting \`crosvmGuard.debug.autoFreeze\` is off, or you took manual control).`;
  }
  if (s.target === 'all') return `${session} freezes every VM at each stop (setting \`crosvmGuard.debug.target\` is \`all\`).`;
  if (s.target === 'ask') {
    return s.asked === undefined
      ? `${session} asks at its first stop which VMs to freeze.`
      : `${session} freezes ${s.asked.length === 0 ? 'no VM' : `VM ${s.asked.join(', ')}`} at each stop, as you chose.`;
  }
  const own = vmOfProcess(vms, s.debuggeePid);
  if (own) {
    const which = own.snapshot.main.pid === s.debuggeePid ? 'its main process' : 'one of its processes';
    return `${session} freezes VM ${own.snapshot.main.pid} at each stop: the debuggee (pid ${s.debuggeePid}) is ${which}.`;
  }
  const why = s.debuggeePid === undefined ? 'the debuggee is unknown' : `the debuggee (pid ${s.debuggeePid}) is no crosvm VM`;
  return `${session} freezes all of your VMs at each stop: ${why} (setting \`crosvmGuard.debug.target\` is \`auto\`; \`ask\` lets you choose).`;
}
