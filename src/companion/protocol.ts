// What the extension host and a companion say to each other: one JSON object per line, on the
// companion's standard input (requests) and standard output (replies, elevated mode only).
// Every request is validated here, strictly, by the side that receives it: a companion takes
// nothing on trust, least of all as root.
import { CgroupHierarchy, FreezeCgroup, mountedHierarchies, validateFreezeCgroup } from '../guard/cgroupfs';
import { driverOf } from '../guard/methods/drivers';
import { HeldProcess, HeldRecord, isFreezeMethod, isMethodSetting, METHOD_SETTINGS } from '../guard/methods/methodDriver';
import { FREEZE_SCOPES, isFreezeScope } from '../guard/types';
import type { FreezeReport, FreezeScope, FrozenVm, MethodSetting, ResumeReport } from '../guard/types';
import { identityOf, isPid, isTicks, oneOf } from '../guard/validate';

// ---- the command line: which mode, and its few numbers -------------------------------------

/**
 * Executable names the root companion accepts as crosvm (`crosvm`, `crosvm-dev`, `crosvm-*`, …):
 * the names come from the unprivileged side, and no setting may point root at another program.
 * Wildcards only after the literal `crosvm`, so whatever a name matches starts with it.
 */
export const ELEVATED_NAME = /^crosvm[A-Za-z0-9._+*?-]{0,58}$/;

export type CompanionArguments =
  /** The host's own freezes: resumes them (and removes `journal`) when host `hostPid` is gone. */
  | { readonly mode: 'watch'; readonly journal?: string; readonly hostPid?: number; readonly idleMs?: number }
  /** As root: freezes VMs named `names` of root and of its invoker itself. */
  | { readonly mode: 'elevated'; readonly names: readonly string[]; readonly idleMs?: number; readonly heartbeatMs?: number };

/** The argument vector after the script's path, for `args`. */
export function companionArgv(args: CompanionArguments): string[] {
  const ms = (name: string, value: number | undefined) => (value === undefined ? [] : [`--${name}-ms`, String(value)]);
  if (args.mode === 'elevated') {
    return ['--elevated', '--names', args.names.join(','), ...ms('idle', args.idleMs), ...ms('heartbeat', args.heartbeatMs)];
  }
  const journal = args.journal === undefined ? [] : ['--journal', args.journal];
  const host = args.hostPid === undefined ? [] : ['--host-pid', String(args.hostPid)];
  return [...journal, ...host, ...ms('idle', args.idleMs)];
}

/**
 * The companion's own reading of its argument vector (after the script's path). Numbers in a
 * wrong shape fall back to the defaults; elevated names other than crosvm builds are refused.
 */
export function parseCompanionArgv(argv: readonly string[]): CompanionArguments | string {
  const value = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const ms = (name: string) => {
    const text = value(`--${name}-ms`);
    return text !== undefined && /^\d{3,7}$/.test(text) ? Number(text) : undefined;
  };
  if (argv.includes('--elevated')) {
    const names = (value('--names') ?? 'crosvm').split(',');
    if (names.length > 16 || !names.every((n) => ELEVATED_NAME.test(n))) return 'invalid --names: only names that start with "crosvm"';
    return { mode: 'elevated', names, idleMs: ms('idle'), heartbeatMs: ms('heartbeat') };
  }
  const host = value('--host-pid');
  return {
    mode: 'watch',
    journal: value('--journal'),
    hostPid: host !== undefined && isPid(Number(host)) ? Number(host) : undefined,
    idleMs: ms('idle'),
  };
}

// ---- watch mode: the host's own freezes, resumed by the companion if the host dies --------

export type WatchRequest =
  /** Write-ahead: about to be frozen (processes, and freeze cgroups about to be made): a record to undo. */
  | ({ readonly op: 'hold' } & HeldRecord)
  /** Running again, or gone: nothing to resume any more. */
  | { readonly op: 'release'; readonly processes: readonly HeldProcess[]; readonly cgroups: readonly FreezeCgroup[] }
  /** The host resumed everything itself: exit without resuming. */
  | { readonly op: 'exit' };

const MAX_HELD_PROCESSES = 4096;
const MAX_HELD_CGROUPS = 256;

function parseHeldProcesses(value: unknown): HeldProcess[] | string {
  if (!Array.isArray(value) || value.length > MAX_HELD_PROCESSES) return 'processes is not a short list';
  const out: HeldProcess[] = [];
  for (const p of value) {
    if (typeof p !== 'object' || p === null) return 'a process is not an object';
    const { pid, startTime, label } = p as Record<string, unknown>;
    if (!isPid(pid) || !isTicks(startTime)) return 'a process has no valid pid and start time';
    out.push({ pid, startTime, label: typeof label === 'string' ? label.slice(0, 64) : '' });
  }
  return out;
}

/** `hostPid`: freeze cgroups must carry the pid of the host that made them. */
function parseHeldCgroups(value: unknown, hostPid: number, mounted: readonly CgroupHierarchy[]): FreezeCgroup[] | string {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_HELD_CGROUPS) return 'cgroups is not a short list';
  const out: FreezeCgroup[] = [];
  for (const raw of value) {
    const group = validateFreezeCgroup(raw, mounted, hostPid);
    if (typeof group === 'string') return `a freeze cgroup was refused: ${group}`;
    out.push(group);
  }
  return out;
}

/** The request, or why it is refused; `mounted`: the cgroup hierarchies a freeze cgroup may lie in. */
export function parseWatchRequest(raw: Record<string, unknown>, hostPid: number, mounted = mountedHierarchies()): WatchRequest | string {
  if (raw.op === 'exit') return { op: 'exit' };
  if (raw.op !== 'hold' && raw.op !== 'release') return `unknown op ${String(raw.op).slice(0, 32)}`;
  const processes = parseHeldProcesses(raw.processes);
  if (typeof processes === 'string') return processes;
  const cgroups = parseHeldCgroups(raw.cgroups, hostPid, mounted);
  if (typeof cgroups === 'string') return cgroups;
  if (raw.op === 'release') return { op: raw.op, processes, cgroups };
  if (!isFreezeMethod(raw.method)) return `unknown method ${String(raw.method).slice(0, 32)}`;
  const vm = identityOf(raw.vm);
  if (!vm) return 'a hold names no VM (its main pid and start time)';
  const record: HeldRecord = { vm, method: raw.method, processes, cgroups };
  return driverOf(raw.method).recordProblem(record) ?? { op: raw.op, ...record };
}

// ---- elevated mode: the root companion freezes VMs of root and of its invoker --------------

export type ElevatedRequest =
  | {
      readonly op: 'freeze';
      readonly id: number;
      /** The VM's main process and its start time. */
      readonly pid: number;
      readonly startTime: number;
      readonly scope: FreezeScope;
      readonly method: MethodSetting;
      /** Never touched: the debuggee of a debug session. */
      readonly excludePids: readonly number[];
    }
  /** Everything, or with `vm` one VM it froze. */
  | { readonly op: 'resume'; readonly id: number; readonly vm?: { readonly pid: number; readonly startTime: number } }
  | { readonly op: 'status'; readonly id: number }
  /** The host still runs (no reply): a host silent too long gets everything resumed. */
  | { readonly op: 'heartbeat' }
  /** Resume everything and exit. */
  | { readonly op: 'exit' };

/** The fields each request may have: anything else is refused, so nothing can widen one. */
const ELEVATED_KEYS: Readonly<Record<ElevatedRequest['op'], readonly string[]>> = {
  freeze: ['op', 'id', 'pid', 'startTime', 'scope', 'method', 'excludePids'],
  resume: ['op', 'id', 'pid', 'startTime'],
  status: ['op', 'id'],
  heartbeat: ['op'],
  exit: ['op'],
};

const MAX_EXCLUDED_PIDS = 64;

/** The request, or why it is refused. */
export function parseElevatedRequest(raw: Record<string, unknown>): ElevatedRequest | string {
  const op = raw.op;
  if (typeof op !== 'string' || !Object.hasOwn(ELEVATED_KEYS, op)) return 'unknown op';
  const unknown = Object.keys(raw).filter((key) => !ELEVATED_KEYS[op as ElevatedRequest['op']].includes(key));
  if (unknown.length > 0) return `unexpected field ${unknown[0].slice(0, 32)}`;
  if (op === 'exit' || op === 'heartbeat') return { op };
  const id = raw.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return 'id must be a whole number';
  if (op === 'status') return { op, id };
  if (op === 'resume') {
    if (raw.pid === undefined && raw.startTime === undefined) return { op, id };
    if (!isPid(raw.pid) || !isTicks(raw.startTime)) return 'resume takes a pid and its start time, or neither';
    return { op, id, vm: { pid: raw.pid, startTime: raw.startTime } };
  }
  if (!isPid(raw.pid) || !isTicks(raw.startTime)) return 'freeze takes the VM main pid and its start time';
  const scope = raw.scope ?? 'devices';
  if (!isFreezeScope(scope)) return `scope must be ${oneOf(FREEZE_SCOPES)}`;
  const method = raw.method ?? 'auto';
  if (!isMethodSetting(method)) return `method must be ${oneOf(METHOD_SETTINGS)}`;
  const excludePids = raw.excludePids ?? [];
  if (!Array.isArray(excludePids) || excludePids.length > MAX_EXCLUDED_PIDS || !excludePids.every(isPid)) {
    return 'excludePids must be a short list of pids';
  }
  return { op: 'freeze', id, pid: raw.pid, startTime: raw.startTime, scope, method, excludePids };
}

/** The request as written on the wire: `resume`'s VM is flat (`pid`, `startTime`). */
export function elevatedWireFormat(request: ElevatedRequest): Record<string, unknown> {
  if (request.op !== 'resume' || !request.vm) return { ...request };
  return { op: 'resume', id: request.id, pid: request.vm.pid, startTime: request.vm.startTime };
}

/** The root companion's first line: it runs, as `uid`. */
export interface ReadyEvent {
  readonly event: 'ready';
  readonly pid: number;
  readonly uid: number;
}

/** A request's answer: `frozen` is what the companion holds afterwards. */
export type ElevatedReply =
  | { readonly id: number; readonly ok: true; readonly frozen: readonly FrozenVm[]; readonly report?: FreezeReport | ResumeReport }
  | { readonly id: number | undefined; readonly ok: false; readonly code: string; readonly message: string };

/** The ready event or a reply, or undefined for a line that is neither. */
export function parseElevatedLine(value: Record<string, unknown>): ReadyEvent | ElevatedReply | undefined {
  if (value.event === 'ready') return isPid(value.pid) && typeof value.uid === 'number' ? (value as unknown as ReadyEvent) : undefined;
  if (value.ok === true && typeof value.id === 'number' && Array.isArray(value.frozen)) return value as unknown as ElevatedReply;
  if (value.ok === false && typeof value.message === 'string') return value as unknown as ElevatedReply;
  return undefined;
}
