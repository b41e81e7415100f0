// What the tree, the status bar and the picker say about VMs and processes, as plain strings
// (Markdown for tooltips). No runtime vscode import: the wording is unit-tested under plain
// Node, and every string that comes from /proc (another user's process names and command
// lines among them) is escaped here, once, before it reaches a Markdown renderer.
import { driverOf, methodName, ProcessSnapshot, sameProcess, ProcessIdentity, SWAP_MONITOR_LABEL } from '../guard';
import type { FreezeMethod, SkippedProcess } from '../guard';
import { isExitedState, isStoppedState } from '../guard';
import { formatElapsed } from '../common/format';
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
  // A process the cgroup freezer froze is not in a stopped state (`ps` shows S or D): what we
  // froze says so. One that signals froze is frozen only while it is still stopped.
  const hidden = (method: FreezeMethod | undefined) => method !== undefined && !driverOf(method).showsAsStopped;
  if (hidden(vm.frozen?.method) && listed(vm.frozen?.processes)) return 'frozenByCgroup';
  if (stopped && listed(vm.frozen?.processes)) return 'frozen';
  if ((stopped || hidden(vm.frozenElsewhere?.method)) && listed(vm.frozenElsewhere?.processes)) return 'frozenElsewhere';
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

/**
 * A refusal as a notification says it: which VM, why in a few words, where the rest is. The
 * engine's message (the evidence, every way out) goes to the log; notifications show plain
 * text, so no Markdown backticks either.
 */
export function shortRefusal(error: { readonly code?: string; readonly message: string }): string {
  const vm = /crosvm VM (\d+)/.exec(error.message)?.[1];
  const which = vm ? `crosvm VM ${vm}` : 'this crosvm VM';
  if (error.code === 'unsafe-build') {
    const cgroupToo = /cgroup freezer.*is not open here/.test(error.message) ? ', and the cgroup freezer is not open here' : '';
    return `Not freezing ${which}: this build lacks --features swap, so stopping its devices would shut the VM down${cgroupToo}. Show Log says how to fix it.`;
  }
  if (error.code === 'cgroup-unavailable') {
    return `Not freezing ${which}: the cgroup freezer is not open here. Show Log says why and how to fix it.`;
  }
  return error.message.replace(/`/g, '');
}

/** Why a freeze left a process alone, in words (the engine's reason codes are not for people). */
export function skipWords(s: Pick<SkippedProcess, 'reason' | 'detail'>): string {
  switch (s.reason) {
    case 'already-stopped':
      return 'skipped, already stopped (stays stopped)';
    case 'traced':
      // The detail names the debugger: "a debugger (pid 42) is attached; it owns this process".
      return `left running: ${s.detail.replace(/; it owns this process$/, '')}`;
    case 'excluded':
      return 'left running: excluded by crosvmGuard.excludeLabels';
    case 'debuggee':
      return 'skipped, it is the debuggee (the debugger holds it)';
    case 'zombie':
      return 'skipped, it has exited';
    case 'left-vm':
      return 'skipped, no longer part of the VM';
    case 'self':
      return 'skipped, it is this extension or its ancestor';
    case 'init':
      return 'skipped, pid 1 is never stopped';
  }
}

/** A process that runs although this window holds its VM frozen, and why. */
export interface LeftRunning {
  readonly pid: number;
  readonly label: string;
  readonly why: string;
}

/**
 * The processes of a VM this window froze that run all the same: a device under a debugger,
 * an excluded one, one forked after the freeze (and the main process of an entire-VM freeze).
 * Read from the listing, not from the freeze's report: what runs is what writes guest memory.
 */
export function leftRunning(view: Pick<VmView, 'snapshot' | 'frozen' | 'frozenElsewhere'>): LeftRunning[] {
  const { frozen, snapshot } = view;
  if (!frozen) return [];
  const processes = frozen.scope === 'vm' ? [snapshot.main, ...snapshot.devices] : snapshot.devices;
  return processes
    .filter((p) => {
      // What it froze counts as frozen even before the listing shows the stop.
      if (frozen.processes.some((f) => sameProcess(f, p))) return false;
      const kind = processStateKind(p, view);
      return kind === 'running' || (kind === 'traced' && !isStoppedState(p.state));
    })
    .map((p) => {
      const skipped = frozen.skipped.find((s) => sameProcess(s, p));
      return { pid: p.pid, label: p.label, why: skipped ? skipWords(skipped) : 'left running: it was not there when the VM froze' };
    });
}

/** What a VM row shows: one state, told by its icon as well as its words. */
export type VmStateKind = 'running' | 'frozen' | 'frozenWithVcpus' | 'partlyFrozen' | 'frozenElsewhere' | 'needsAdmin' | 'unfreezable';

export function vmStateKind(view: Pick<VmView, 'snapshot' | 'frozen' | 'frozenElsewhere' | 'needsElevation' | 'method'>): VmStateKind {
  if (view.frozen) {
    if (leftRunning(view).length > 0) return 'partlyFrozen';
    return view.frozen.scope === 'vm' ? 'frozenWithVcpus' : 'frozen';
  }
  if (view.frozenElsewhere) return 'frozenElsewhere';
  if (view.needsElevation) return 'needsAdmin';
  return view.method.method ? 'running' : 'unfreezable';
}

/**
 * A VM row's description: its state first (the part that must not be cut off), when this VM
 * froze (each VM its own time: the status bar's one clock cannot tell two VMs apart), its pid.
 */
export function vmDescription(view: VmView): string {
  const kind = vmStateKind(view);
  const since = view.frozen ? ` since ${clockTime(view.frozen.since)}` : '';
  const running = leftRunning(view).length;
  const state: Record<VmStateKind, string> = {
    running: 'running',
    frozen: `frozen${since}`,
    frozenWithVcpus: `frozen with vCPUs${since}`,
    partlyFrozen: `partly frozen, ${running} left running${since}`,
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
    partlyFrozen: `partly frozen: ${leftRunning(view)
      .map((p) => `${p.label} ${p.pid} ${p.why}`)
      .join(', ')}`,
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
    const running = leftRunning(view);
    const state = running.length > 0 ? '$(warning) **Partly frozen**' : '$(debug-pause) **Frozen**';
    lines.push(`${state} since ${clockTime(frozen.since)} with ${methodName(frozen.method)}: ${what}.`);
    if (running.length > 0) {
      const named = running.map((p) => `${escapeMarkdown(p.label)} ${p.pid}, ${why(p.why)}`);
      lines.push('', `Still running, writing guest memory: ${named.join('; ')}.`);
    }
    const stopped = frozen.skipped.filter((s) => !running.some((r) => r.pid === s.pid));
    if (stopped.length > 0) lines.push('', stopped.map((s) => `${escapeMarkdown(s.label)} ${s.pid}: ${why(skipWords(s))}.`).join(' '));
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
  } else if (view.method.method) {
    const { how, caveat } = driverOf(view.method.method).words.canFreeze(view.method.why, swapBuild.evidence);
    lines.push(`$(check) **Can be frozen** with ${why(how)}.`, ...(caveat ? ['', `$(warning) ${why(caveat)}.`] : []));
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
  /** The user took manual control (a click on the status bar) during this session. */
  readonly manual: boolean;
  readonly target: 'auto' | 'all' | 'ask';
  readonly debuggeePid: number | undefined;
  /** With `ask`, the VMs picked for this session, once asked. */
  readonly asked: readonly number[] | undefined;
}

/** The VM a debuggee belongs to (its main or one of its devices), if any. */
export function vmOfProcess(vms: readonly VmView[], pid: number | undefined): VmView | undefined {
  return pid === undefined ? undefined : vms.find((v) => v.snapshot.main.pid === pid || v.snapshot.devices.some((d) => d.pid === pid));
}

const vmList = (vms: readonly VmView[]) => vms.map((v) => v.snapshot.main.pid).join(', ');

/** Of the VMs a stop would freeze, those it cannot: said, so that "freezes" is not read as "all of them". */
function cannotFreeze(vms: readonly VmView[]): string {
  const cannot = vms.filter((v) => vmStateKind(v) === 'unfreezable');
  if (cannot.length === 0) return '';
  return ` ${cannot.length === 1 ? 'VM' : 'VMs'} ${vmList(cannot)} cannot be frozen and ${cannot.length === 1 ? 'keeps' : 'keep'} running.`;
}

/** Which VMs a debug session freezes at each stop, and why, in Markdown. `uid`: this window's. */
export function debugTargetsSentence(s: DebugSessionTargets, vms: readonly VmView[], uid = process.geteuid?.() ?? -1): string {
  const session = `Debug session "${escapeMarkdown(s.session)}"`;
  if (s.manual) return `${session}: manual control (you clicked the status bar); it freezes nothing by itself until it ends.`;
  if (!s.automatic) return `${session} freezes nothing by itself (setting \`crosvmGuard.debug.autoFreeze\` is \`off\`).`;
  if (s.target === 'all') {
    return `${session} freezes every VM at each stop (setting \`crosvmGuard.debug.target\` is \`all\`).${cannotFreeze(vms)}`;
  }
  if (s.target === 'ask') {
    return s.asked === undefined
      ? `${session} asks at its first stop which VMs to freeze.`
      : `${session} freezes ${s.asked.length === 0 ? 'no VM' : `VM ${s.asked.join(', ')}`} at each stop, as you chose.`;
  }
  const own = vmOfProcess(vms, s.debuggeePid);
  if (own) {
    const which = own.snapshot.main.pid === s.debuggeePid ? 'its main process' : 'one of its processes';
    return `${session} freezes VM ${own.snapshot.main.pid} at each stop: the debuggee (pid ${s.debuggeePid}) is ${which}.${cannotFreeze([own])}`;
  }
  // js-debug names its child session after the pid without reporting it (no `process` event):
  // say what crosvm Guard was told, not that the pid is unknown.
  const why =
    s.debuggeePid === undefined
      ? "its debugger has not reported the debuggee's pid"
      : `the debuggee (pid ${s.debuggeePid}) is no crosvm VM`;
  const mine = vms.filter((v) => v.snapshot.main.uid === uid);
  const which = mine.length === 0 ? 'your VMs (none runs now)' : `your ${mine.length === 1 ? 'VM' : 'VMs'} (${vmList(mine)})`;
  return (
    `${session} freezes ${which} at each stop: ${why} (setting \`crosvmGuard.debug.target\` is \`auto\`; \`ask\` lets you choose).` +
    cannotFreeze(mine)
  );
}

/** How the status bar looks: each look its own colour (see statusBar.ts). */
export type StatusLook = 'running' | 'frozen' | 'partlyFrozen' | 'frozenElsewhere' | 'notFrozenAtStop';

export interface StatusSummary {
  readonly text: string;
  readonly look: StatusLook;
  /** The accessible label: the state, and what a click does. */
  readonly label: string;
  /** The text holds an elapsed time: redraw it every second. */
  readonly ticking: boolean;
}

/** What the status bar's debug part knows. */
export interface StatusDebug {
  /** A session freezes automatically at its stops. */
  readonly automatic: boolean;
  /** A session runs under manual control (the user clicked during it). */
  readonly manual: boolean;
  /** VMs a stopped session could not freeze. */
  readonly notFrozen: readonly { readonly pid: number }[];
}

/** Device processes that run, and those someone else stopped (a `kill -STOP`, a debugger). */
export function deviceCounts(vms: readonly VmView[]): { running: number; stopped: number } {
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

/** `1 of 2 VMs `, `2 VMs `, or nothing with one VM listed and it in that state. */
function howMany(count: number, total: number): string {
  if (total <= 1 && count <= 1) return '';
  return count === total ? `${count} VMs ` : `${count} of ${total} VMs `;
}

/**
 * The status bar's text, look and accessible label: what this window holds frozen and how
 * much of it, what another window holds, a VM a stopped debugger left running. One clock,
 * and only when one VM is frozen: with several, each VM's row says since when.
 */
export function statusSummary(vms: readonly VmView[], debug: StatusDebug, now: number): StatusSummary {
  const marker = debug.automatic ? ' auto' : debug.manual ? ' manual' : '';
  const total = vms.length;
  const frozen = vms.filter((v) => v.frozen);
  const partly = frozen.filter((v) => leftRunning(v).length > 0);
  const click = frozen.length > 0 ? 'Click to resume.' : 'Click to freeze.';
  if (debug.notFrozen.length > 0) {
    // The debugger is stopped and some devices are not: the one state that must not look calm.
    const n = debug.notFrozen.length;
    const which = n === 1 ? `VM ${debug.notFrozen[0].pid} keeps running` : `${n} VMs keep running`;
    const text =
      frozen.length === 0 ? '$(warning) crosvm auto: not frozen' : `$(warning) crosvm auto: ${howMany(n, Math.max(total, n))}not frozen`;
    return { text, look: 'notFrozenAtStop', label: `crosvm: the debugger is stopped but ${which}. ${click}`, ticking: false };
  }
  if (frozen.length > 0) {
    const one = frozen.length === 1 ? frozen[0].frozen : undefined;
    const elapsed = one ? ` ${formatElapsed(now - one.since)}` : '';
    const vmsPart = howMany(frozen.length, total);
    // Device processes only, as the tooltip counts them (an entire-VM freeze also holds the main process).
    const devices = frozen.reduce((sum, v) => sum + (v.frozen?.processes.filter((p) => p.pid !== v.snapshot.main.pid).length ?? 0), 0);
    if (partly.length > 0) {
      const running = partly.flatMap((v) => leftRunning(v));
      const count = partly.length === frozen.length ? '' : `, ${partly.length} partly`;
      const text =
        partly.length === frozen.length
          ? `$(warning) crosvm ${vmsPart}partly frozen${elapsed}${marker}`
          : `$(warning) crosvm ${vmsPart}frozen${count}${elapsed}${marker}`;
      const names = running.map((p) => `${p.label} ${p.pid}`).join(', ');
      return { text, look: 'partlyFrozen', label: `crosvm: partly frozen; still running: ${names}. ${click}`, ticking: one !== undefined };
    }
    const text =
      vmsPart === ''
        ? `$(debug-pause) crosvm ${devices} frozen${elapsed}${marker}`
        : `$(debug-pause) crosvm ${vmsPart}frozen${elapsed}${marker}`;
    const label = `crosvm: ${vmsPart === '' ? plural(devices, 'device process', 'device processes') : vmsPart.trim()} frozen${elapsed ? ` for${elapsed}` : ''}. ${click}`;
    return { text, look: 'frozen', label, ticking: one !== undefined };
  }
  const elsewhere = vms.filter((v) => v.frozenElsewhere);
  if (elsewhere.length > 0) {
    const text = `$(debug-pause) crosvm ${howMany(elsewhere.length, total)}frozen by another window${marker}`;
    const which = elsewhere.map((v) => `VM ${v.snapshot.main.pid}`).join(', ');
    const label = `crosvm: ${which} frozen by another VS Code window. Click to resume it here (you are asked first).`;
    return { text, look: 'frozenElsewhere', label, ticking: false };
  }
  const counts = deviceCounts(vms);
  const stopped = counts.stopped > 0 ? ` · ${counts.stopped} stopped` : '';
  const others = counts.stopped > 0 ? `, ${counts.stopped} stopped by someone else` : '';
  const running = plural(counts.running, 'device process', 'device processes');
  const what = total > 0 ? `${running} running${others}` : 'no VM found';
  return {
    text: `$(vm-running) crosvm${total > 0 ? ` ${counts.running}${stopped}` : ''}${marker}`,
    look: 'running',
    label: `crosvm: ${what}. ${total > 0 ? click : 'Click to look for VMs again.'}`,
    ticking: false,
  };
}
