// What the debug follower reads from a debug session, as pure functions (no vscode at run
// time, so plain Node tests them): which pid an attach configuration names, what a Debug
// Adapter Protocol message means for the devices (stop, run, the debuggee's pid), and which
// VMs a stop freezes for crosvmGuard.debug.target `auto` and `all`.
import type { DebugTarget } from '../common/settings';
import { isPid } from '../guard';
import type { VmView } from './viewModel';

/** The fields of a debug configuration read here (vscode.DebugConfiguration has them all). */
export interface AttachConfiguration {
  readonly type?: string;
  readonly request?: string;
  readonly [key: string]: unknown;
}

/** The fields of a DAP message read here. */
export interface DapMessage {
  readonly type?: string;
  readonly event?: string;
  readonly command?: string;
  readonly body?: { readonly systemProcessId?: unknown };
}

/** What a DAP message means for the devices. */
export type DapMeaning =
  | { readonly kind: 'debuggee'; readonly pid: number }
  | { readonly kind: 'stopped'; readonly cause: string }
  | { readonly kind: 'running'; readonly cause: string };

/** Client requests after which the debuggee runs again. */
const RESUMING_REQUESTS: ReadonlySet<string> = new Set(['continue', 'next', 'stepIn', 'stepOut', 'stepBack', 'reverseContinue']);

/** A pid written as a number or as decimal digits (launch.json's `${command:pickProcess}` gives a string). */
function pidIn(value: unknown): number | undefined {
  const pid = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return isPid(pid) ? pid : undefined;
}

/**
 * Where each debugger's attach configuration names the pid. Another type: `pid` or
 * `processId`, a number or decimal digits.
 */
const ATTACH_PID: Readonly<Record<string, (c: AttachConfiguration) => number | undefined>> = {
  // ms-vscode.cpptools (gdb or lldb through MI).
  cppdbg: (c) => pidIn(c.processId),
  // CodeLLDB, and LLVM's own adapter (lldb-vscode, now lldb-dap).
  lldb: (c) => pidIn(c.pid),
  'lldb-vscode': (c) => pidIn(c.pid),
  'lldb-dap': (c) => pidIn(c.pid),
  // Native Debug (webfreak.debug): `target` is the pid, or host:port of a gdbserver when `remote`.
  gdb: (c) => (c.remote === true ? undefined : pidIn(c.target)),
  'lldb-mi': (c) => (c.remote === true ? undefined : pidIn(c.target)),
  // js-debug: its process picker gives `pid:port`, the port empty unless the process listens already.
  // (js-debug's own resolver usually turns it into `port` before the session starts; then its
  // `process` event names the debuggee.)
  node: (c) => nodeProcessId(c.processId),
  'pwa-node': (c) => nodeProcessId(c.processId),
};

function nodeProcessId(value: unknown): number | undefined {
  const match = typeof value === 'string' ? /^\s*(\d+)(?::\d*)?\s*$/.exec(value) : undefined;
  return match ? pidIn(match[1]) : pidIn(value);
}

/** The pid an attach configuration attaches to, if it names one; a launch names none. */
export function configuredPid(configuration: AttachConfiguration): number | undefined {
  if (configuration.request !== 'attach') return undefined;
  const known = configuration.type !== undefined ? ATTACH_PID[configuration.type] : undefined;
  return known ? known(configuration) : (pidIn(configuration.pid) ?? pidIn(configuration.processId));
}

/** What a message from the debug adapter means: its debuggee's pid, a stop, or running again. */
export function adapterMessageMeaning(message: DapMessage): DapMeaning | undefined {
  if (message.type !== 'event') return undefined;
  if (message.event === 'process') {
    const pid = message.body?.systemProcessId;
    return isPid(pid) ? { kind: 'debuggee', pid } : undefined;
  }
  if (message.event === 'stopped') return { kind: 'stopped', cause: 'DAP event "stopped"' };
  if (message.event === 'continued') return { kind: 'running', cause: 'DAP event "continued"' };
  return undefined;
}

/** What a request to the debug adapter means: the debuggee runs again after continue or a step. */
export function clientRequestMeaning(message: DapMessage): DapMeaning | undefined {
  if (message.type !== 'request' || message.command === undefined || !RESUMING_REQUESTS.has(message.command)) return undefined;
  return { kind: 'running', cause: `DAP request "${message.command}"` };
}

/**
 * The VMs of `vms` a stop freezes for debug.target `auto` or `all`: `auto`, the VM whose main
 * or device process is the debuggee, else every VM of this user (`uid`), never another user's.
 */
export function targetVms(
  target: Exclude<DebugTarget, 'ask'>,
  vms: readonly VmView[],
  debuggeePid: number | undefined,
  uid: number | undefined,
): VmView[] {
  if (target === 'all') return [...vms];
  if (debuggeePid !== undefined) {
    const own = vms.filter((v) => v.snapshot.main.pid === debuggeePid || v.snapshot.devices.some((d) => d.pid === debuggeePid));
    if (own.length > 0) return own;
  }
  return vms.filter((v) => v.snapshot.main.uid === uid);
}
