// Finding crosvm VMs. A VM is a process whose executable or argv[0] is named like crosvm
// and whose ancestors are not: device processes are fork()ed from crosvm and keep its
// executable and command line, so without the ancestor rule every device would be a "VM".
import * as path from 'node:path';
import { GuardError } from './errors';
import { globsRegExp } from './glob';
import { listPids, readCmdline, readExe, readStat } from './procfs';
import { ChildrenSource, descendantPids, ProcessSnapshot, readSnapshot, ThreadIds } from './processTree';
import { isPid } from './validate';

export interface VmSnapshot {
  readonly main: ProcessSnapshot;
  readonly cmdline: readonly string[];
  /** Target of /proc/<pid>/exe; undefined when we may not read it (another user's process). */
  readonly exe: string | undefined;
  /** A short name for lists: `crosvm run vm_rootfs.img`. */
  readonly name: string;
  /** Every descendant (the device processes), parents before children. */
  readonly devices: readonly ProcessSnapshot[];
  /** Thread ids of the main process and the devices, as listed during the walk. */
  readonly threadIds: ReadonlyMap<number, readonly number[]>;
}

/** Basename of an executable path, without the ` (deleted)` the kernel adds after a rebuild. */
export function executableName(file: string): string {
  return path.basename(file.replace(/ \(deleted\)$/, ''));
}

/**
 * cargo's test binaries of crosvm's own crate, `target/<profile>/deps/crosvm-<16 hex digits>`: they
 * run crosvm VMs as children, and taken for a VM themselves they would hide those VMs as their
 * "devices". A wildcard never matches one; naming it exactly still does.
 */
const CARGO_TEST_BINARY = /^crosvm-[0-9a-f]{16}$/;

/** A compiled crosvmGuard.processNames: exact names, and globs (`*` any run, `?` one character). */
interface NameMatcher {
  readonly exact: ReadonlySet<string>;
  readonly glob: RegExp | undefined;
}

const nameMatchers = new WeakMap<readonly string[], NameMatcher>();

function nameMatcher(names: readonly string[]): NameMatcher {
  let matcher = nameMatchers.get(names);
  if (!matcher) {
    matcher = { exact: new Set(names), glob: globsRegExp(names.filter((n) => /[*?]/.test(n))) };
    nameMatchers.set(names, matcher);
  }
  return matcher;
}

/** Whether an executable's basename is one of `names` (exactly, or by a glob). */
export function matchesProcessName(names: readonly string[], name: string): boolean {
  const { exact, glob } = nameMatcher(names);
  return exact.has(name) || (glob !== undefined && glob.test(name) && !CARGO_TEST_BINARY.test(name));
}

export function matchesProcessNames(names: readonly string[], exe: string | undefined, argv0: string | undefined): boolean {
  return (
    (exe !== undefined && matchesProcessName(names, executableName(exe))) ||
    (argv0 !== undefined && matchesProcessName(names, executableName(argv0)))
  );
}

/** Options of `crosvm run` whose value tells one VM from another, in the order they are named by. */
const SOCKET_OPTIONS = ['--socket', '-s'];
const DISK_OPTIONS = ['--rwdisk', '--disk', '--rwroot', '--root', '--block', '-d', '-r'];
const MEMORY_OPTIONS = ['--mem', '-m'];
/** Options of `crosvm run` that take no value (so the word after them is no option value). */
const FLAGS = /^--(disable-|no-|enable-|swap$|protected-vm|split-irqchip|s2idle)/;

/** `4 GiB` for `--mem 4096` (MiB), `--mem size=4096` or `--mem=4096`; undefined for anything else. */
function memorySize(value: string | undefined): string | undefined {
  const mib = /^(?:size=)?(\d+)(?:,|$)/.exec(value ?? '')?.[1];
  if (mib === undefined) return undefined;
  const n = Number(mib);
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} GiB` : `${n} MiB`;
}

/** The file of a disk option: `path=/x.img,ro` or `/x.img,ro`. */
function diskPath(value: string): string {
  const parts = value.split(',');
  return (parts.find((p) => p.startsWith('path='))?.slice('path='.length) ?? parts[0]) || value;
}

/**
 * A name that tells VMs apart, from the command line: the control socket, else the first
 * disk, else the kernel image (the last bare argument), then the memory size; e.g.
 * `vm1.sock · 4 GiB` or `rootfs.img · bzImage`. `crosvm run` when it names none of them.
 */
export function shortVmName(cmdline: readonly string[]): string {
  const program = cmdline.length > 0 ? executableName(cmdline[0]) : 'crosvm';
  const args = cmdline.slice(1);
  const values = new Map<string, string>();
  let subcommand: string | undefined;
  let image: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg.startsWith('-')) {
      const eq = arg.indexOf('=');
      const next = FLAGS.test(arg) || args[i + 1]?.startsWith('-') ? undefined : args[i + 1];
      const [option, value] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, next];
      if (eq < 0 && value !== undefined) i++;
      if (value !== undefined && !values.has(option)) values.set(option, value);
    } else if (subcommand === undefined) subcommand = arg;
    else image = arg;
  }
  const first = (options: string[]) => options.map((o) => values.get(o)).find((v) => v !== undefined);
  const socket = first(SOCKET_OPTIONS);
  const disk = first(DISK_OPTIONS);
  const parts = [
    socket && path.basename(socket),
    disk ? path.basename(diskPath(disk)) : image && path.basename(image),
    memorySize(first(MEMORY_OPTIONS)),
  ];
  const name = parts.filter((p): p is string => Boolean(p));
  return name.length > 0 ? name.join(' · ') : [program, subcommand].filter(Boolean).join(' ');
}

function isCrosvmProcess(pid: number, names: readonly string[]): boolean {
  return matchesProcessNames(names, readExe(pid), readCmdline(pid)?.[0]);
}

/**
 * Reads VM `pid` and proves it is one: named like crosvm, not a device of another crosvm,
 * and, when `expectedStartTime` is given, the very process the caller saw before.
 */
export function readVm(
  pid: number,
  names: readonly string[],
  source: ChildrenSource,
  expectedStartTime?: number,
  provenVms?: ProvenVms,
): VmSnapshot {
  if (!isPid(pid)) {
    throw new GuardError('invalid-argument', `${String(pid)} is not a process id of a crosvm VM.`);
  }
  const main = readSnapshot(pid);
  if (!main) throw new GuardError('vm-gone', `No process ${pid} is running: the crosvm VM has exited.`);
  if (expectedStartTime !== undefined && main.startTime !== expectedStartTime) {
    throw new GuardError('vm-gone', `crosvm VM ${pid} has exited; pid ${pid} now belongs to another process (${main.label}).`);
  }
  const proven = provenVms?.get(pid);
  // This process (same start time, same names) was proven a VM before: skip the proof.
  if (proven && proven.startTime === main.startTime && proven.names === names) {
    return { ...proven.vm, main, ...readDevices(pid, source) };
  }
  const exe = readExe(pid);
  const cmdline = readCmdline(pid) ?? [];
  if (!matchesProcessNames(names, exe, cmdline[0])) {
    throw new GuardError(
      'not-crosvm',
      `Process ${pid} (${main.label}) is not crosvm: neither its executable nor argv[0] is named ${names.join(' or ')} (setting crosvmGuard.processNames).`,
    );
  }
  for (let ancestor = main.ppid, hops = 0; ancestor > 1 && hops < 4096; hops++) {
    if (isCrosvmProcess(ancestor, names)) {
      throw new GuardError(
        'not-crosvm',
        `Process ${pid} (${main.label}) is a device process of crosvm VM ${ancestor}, not a VM: freeze VM ${ancestor} instead.`,
      );
    }
    ancestor = readStat(ancestor)?.ppid ?? 0;
  }
  const vm = { main, cmdline, exe, name: shortVmName(cmdline), ...readDevices(pid, source) };
  provenVms?.set(pid, { startTime: main.startTime, names, vm });
  return vm;
}

/**
 * `known` read again: its main process, which must be the same process, and each device that
 * still is (same start time). Undefined when the main process is gone or another one.
 */
export function rereadVm(known: VmSnapshot): VmSnapshot | undefined {
  const main = readSnapshot(known.main.pid);
  if (!main || main.startTime !== known.main.startTime) return undefined;
  const devices: ProcessSnapshot[] = [];
  for (const device of known.devices) {
    const now = readSnapshot(device.pid);
    if (now && now.startTime === device.startTime) devices.push(now);
  }
  return { ...known, main, devices };
}

function readDevices(pid: number, source: ChildrenSource): Pick<VmSnapshot, 'devices' | 'threadIds'> {
  const devices: ProcessSnapshot[] = [];
  const threadIds: ThreadIds = new Map();
  for (const child of descendantPids(pid, source, threadIds)) {
    const snapshot = readSnapshot(child);
    if (snapshot) devices.push(snapshot);
  }
  return { devices, threadIds };
}

/**
 * VMs already proven to be crosvm, by pid: a process keeps its executable name, argv[0] and
 * ancestry for life, so (pid, start time) proven once under the same names stays proven.
 */
export type ProvenVms = Map<number, { startTime: number; names: readonly string[]; vm: VmSnapshot }>;

/** Every crosvm VM on the host, oldest first. */
export function findVms(names: readonly string[], source: ChildrenSource): VmSnapshot[] {
  const candidates = new Map<number, number>(); // crosvm-named pid → its ppid
  for (const pid of listPids()) {
    const stat = readStat(pid);
    if (stat && stat.state !== 'Z' && isCrosvmProcess(pid, names)) candidates.set(pid, stat.ppid);
  }
  const vms: VmSnapshot[] = [];
  for (const [pid] of candidates) {
    // A candidate with a crosvm-named ancestor is a device process: walk up the candidates'
    // own ppids first (cheap), then the rest of the chain.
    let ancestor = candidates.get(pid) ?? 0;
    let isDevice = false;
    for (let hops = 0; ancestor > 1 && hops < 4096; hops++) {
      if (candidates.has(ancestor)) {
        isDevice = true;
        break;
      }
      ancestor = readStat(ancestor)?.ppid ?? 0;
    }
    if (isDevice) continue;
    try {
      vms.push(readVm(pid, names, source));
    } catch {
      // It exited while we looked: not a VM any more.
    }
  }
  return vms.sort((a, b) => a.main.startTime - b.main.startTime || a.main.pid - b.main.pid);
}
