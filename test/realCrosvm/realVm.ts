// Real crosvm VMs for tests, the demo and the bench: the binaries, tick guest and run-vm.sh of
// ../shared/real-crosvm (or the folder CROSVM_GUARD_REAL_CROSVM names), started sandboxed as
// root. The guest prints `TICK n` on its serial console and its counter stands still while
// any device process is stopped or frozen: that, not /proc, is the proof a freeze held.
// Plain Node only (no vscode import).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type RealBuild = 'swap' | 'default';

/** The variable that names another folder laid out like shared/real-crosvm. */
export const REAL_CROSVM_VARIABLE = 'CROSVM_GUARD_REAL_CROSVM';

export interface RealCrosvmAssets {
  readonly dir: string;
  readonly runVm: string;
  binary(build: RealBuild): string;
}

/** The folder beside the clone, as CI and the developers' machines lay it out. */
function defaultAssetsDir(): string {
  return path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'real-crosvm');
}

/**
 * The real crosvm assets, or one line saying what is missing and how to provide it.
 * Needs root (crosvm's minijail sandbox), /dev/kvm, and the folder with run-vm.sh,
 * tick.elf, crosvm-swap and crosvm-default.
 */
export function findRealCrosvm(): { assets: RealCrosvmAssets } | { missing: string } {
  const dir = process.env[REAL_CROSVM_VARIABLE] || defaultAssetsDir();
  const needed = ['run-vm.sh', 'tick.elf', 'crosvm-swap', 'crosvm-default'];
  const absent = needed.filter((name) => !fs.existsSync(path.join(dir, name)));
  if (absent.length > 0) {
    return {
      missing: `no real crosvm in ${dir} (${absent.join(', ')} missing); set ${REAL_CROSVM_VARIABLE} to a folder like shared/real-crosvm`,
    };
  }
  if (!fs.existsSync('/dev/kvm')) return { missing: 'no /dev/kvm: real crosvm needs KVM' };
  if (process.getuid?.() !== 0) return { missing: 'not root: real crosvm VMs start sandboxed as root (run the tests as root)' };
  return { assets: { dir, runVm: path.join(dir, 'run-vm.sh'), binary: (build) => path.join(dir, `crosvm-${build}`) } };
}

export function requireRealCrosvm(): RealCrosvmAssets {
  const found = findRealCrosvm();
  if ('missing' in found) throw new Error(found.missing);
  return found.assets;
}

export interface RealVmOptions {
  readonly build: RealBuild;
  /** Swap build only: `--swap <dir>`, so crosvm forks its `swap monitor`. */
  readonly swapMonitor?: boolean;
  /**
   * `--socket <runDir>/crosvm.sock`, for `crosvm suspend/resume --full`; a string names the
   * socket file instead of crosvm.sock (the view names a VM by its socket's file name).
   */
  readonly socket?: boolean | string;
  /** The name of the hard link crosvm runs as (executable and argv[0]). Default `crosvm`. */
  readonly name?: string;
  /** vCPU quota in percent (run-vm.sh's THROTTLE); 0 is off. Default run-vm.sh's 5. */
  readonly throttle?: number;
  /**
   * A vCPU quota in percent in a cpu cgroup of this VM's own, instead of run-vm.sh's shared
   * `real-crosvm-vcpu`, whose one quota every throttled VM on the machine shares (a guest's
   * pace then depends on other VMs). Replaces `throttle`; without the cgroup v1 cpu controller
   * the vCPU runs unthrottled.
   */
  readonly ownThrottle?: number;
  /** Another crosvm binary (CROSVM_BIN). */
  readonly binary?: string;
  /** More `crosvm run` arguments, e.g. a `--shared-dir`. */
  readonly extraArgs?: readonly string[];
}

export interface RealVm {
  readonly pid: number;
  readonly build: RealBuild;
  readonly runDir: string;
  readonly serialLog: string;
  readonly socketPath?: string;
  /** The VM's own executable (run-vm.sh's link), to run `crosvm suspend/resume` as a user would. */
  readonly executable: string;
  /** The last `TICK n` on the serial console, -1 before the first. */
  tick(): number;
  /** Resolves with the tick once the counter passed `after` (default: the current one). */
  waitForTick(after?: number, timeoutMs?: number): Promise<number>;
  /** True if the counter did not move for `ms`. */
  standsStill(ms: number): Promise<boolean>;
  /** Bytes the guest has written to its serial console so far. */
  outputSize(): number;
  /**
   * Watches the serial console from this call on: resolves once a new `TICK` line is complete,
   * with `at`, the performance.now() of the first byte the guest wrote after the call (seen
   * through inotify, so within the event loop's latency; a 20 ms poll backs it up).
   */
  watchForOutput(timeoutMs?: number): Promise<{ at: number; tick: number }>;
  /** crosvm's own log (its stderr). */
  crosvmLog(): string;
  /** The exit code run-vm.sh's parent recorded, once crosvm has exited. */
  exitCode(): number | undefined;
  /** Sends `signal` to the main process and waits for the exit code (143 after SIGTERM). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
}

const running = new Set<RealVm>();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function lastTick(serialLog: string): number {
  let text = '';
  try {
    text = fs.readFileSync(serialLog, 'latin1');
  } catch {
    return -1;
  }
  const ticks = [...text.matchAll(/TICK (\d+) /g)];
  return ticks.length === 0 ? -1 : Number(ticks[ticks.length - 1][1]);
}

/** Starts a real VM through run-vm.sh and waits for the guest's first tick. */
export async function startRealVm(options: RealVmOptions, assets = requireRealCrosvm()): Promise<RealVm> {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `real-crosvm-${options.build}-`));
  fs.chmodSync(runDir, 0o755);
  const socketPath = options.socket
    ? path.join(runDir, options.socket === true ? 'crosvm.sock' : path.basename(options.socket))
    : undefined;
  const env: NodeJS.ProcessEnv = { ...process.env, RUN_DIR: runDir };
  if (options.swapMonitor) env.SWAP_MONITOR = '1';
  if (options.name) env.NAME = options.name;
  if (options.throttle !== undefined) env.THROTTLE = String(options.throttle);
  if (options.ownThrottle !== undefined) env.THROTTLE = '0';
  if (options.binary) env.CROSVM_BIN = options.binary;
  const args = [options.build, ...(socketPath ? ['--socket', socketPath] : []), ...(options.extraArgs ?? [])];
  const printed = execFileSync(assets.runVm, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = Number(printed.trim().split('\n').pop());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error(`run-vm.sh printed no pid: ${printed}`);
  const serialLog = path.join(runDir, 'serial.log');
  let cpuGroup: string | undefined;
  try {
    if (options.ownThrottle) cpuGroup = throttleOwnVcpus(pid, path.basename(runDir), options.ownThrottle);
  } catch (error) {
    killTree(pid); // not yet a RealVm that stopAllRealVms() would stop
    throw error;
  }
  const exitCodeFile = path.join(runDir, 'exit-code');
  const exitCode = () => {
    try {
      // The shell truncates the file before it writes the code: empty is not yet 0.
      const text = fs.readFileSync(exitCodeFile, 'utf8');
      return /^\d+\n$/.test(text) ? Number(text) : undefined;
    } catch {
      return undefined;
    }
  };
  const vm: RealVm = {
    pid,
    build: options.build,
    runDir,
    serialLog,
    socketPath,
    executable: path.join(runDir, 'bin', options.name ?? 'crosvm'),
    tick: () => lastTick(serialLog),
    async waitForTick(after = lastTick(serialLog), timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const now = lastTick(serialLog);
        if (now > after) return now;
        if (exitCode() !== undefined) {
          throw new Error(`real crosvm ${pid} exited (${exitCode()}) waiting for TICK > ${after}: ${vm.crosvmLog().slice(-600)}`);
        }
        if (Date.now() > deadline) throw new Error(`real crosvm ${pid}: no TICK after ${after} within ${timeoutMs} ms`);
        await sleep(50);
      }
    },
    async standsStill(ms) {
      const before = lastTick(serialLog);
      await sleep(ms);
      return lastTick(serialLog) === before;
    },
    outputSize: () => sizeOf(serialLog),
    watchForOutput(timeoutMs = 20_000) {
      const size = sizeOf(serialLog);
      const tick = lastTick(serialLog);
      return new Promise((resolve, reject) => {
        let first: number | undefined;
        const check = () => {
          if (first === undefined && sizeOf(serialLog) > size) first = performance.now();
          const now = first === undefined ? tick : lastTick(serialLog);
          if (first !== undefined && now > tick && /\n$/.test(tail(serialLog))) finish(() => resolve({ at: first!, tick: now }));
          else if (exitCode() !== undefined) finish(() => reject(new Error(`real crosvm ${pid} exited (${exitCode()})`)));
        };
        const watcher = fs.watch(serialLog, check);
        const poll = setInterval(check, 20);
        const timer = setTimeout(() => finish(() => reject(new Error(`real crosvm ${pid}: no output within ${timeoutMs} ms`))), timeoutMs);
        const finish = (settle: () => void) => {
          watcher.close();
          clearInterval(poll);
          clearTimeout(timer);
          settle();
        };
      });
    },
    crosvmLog: () => {
      try {
        return fs.readFileSync(path.join(runDir, 'crosvm.log'), 'utf8');
      } catch {
        return '';
      }
    },
    exitCode,
    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone: its exit code is what it is.
      }
      for (;;) {
        const code = exitCode();
        if (code !== undefined) {
          running.delete(vm);
          if (cpuGroup) removeCpuGroup(cpuGroup);
          return code;
        }
        if (Date.now() > deadline) {
          killTree(pid);
          running.delete(vm);
          if (cpuGroup) removeCpuGroup(cpuGroup);
          throw new Error(`real crosvm ${pid} did not exit within ${timeoutMs} ms of ${signal}`);
        }
        await sleep(50);
      }
    },
  };
  running.add(vm);
  await vm.waitForTick(-1, 30_000);
  return vm;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The serial log's last bytes (a line is complete once it ends in a newline). */
function tail(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.min(size, 64));
    fs.readSync(fd, buffer, 0, buffer.length, size - buffer.length);
    return buffer.toString('latin1');
  } finally {
    fs.closeSync(fd);
  }
}

const CPU_V1 = '/sys/fs/cgroup/cpu';

/** Moves the VM's vCPU threads into a cpu cgroup of its own with `percent` of one CPU. */
function throttleOwnVcpus(pid: number, name: string, percent: number): string | undefined {
  if (!fs.existsSync(path.join(CPU_V1, 'cpu.cfs_quota_us'))) return undefined;
  const group = path.join(CPU_V1, `real-crosvm-vcpu-${name}`);
  fs.mkdirSync(group, { recursive: true });
  fs.writeFileSync(path.join(group, 'cpu.cfs_period_us'), '100000');
  fs.writeFileSync(path.join(group, 'cpu.cfs_quota_us'), String(Math.round(percent * 1000)));
  // The vCPU threads appear once crosvm has set the VM up: wait for them, as run-vm.sh does.
  for (let attempt = 0; attempt < 400; attempt++) {
    let moved = 0;
    for (const tid of safeReaddir(`/proc/${pid}/task`)) {
      const comm = safeRead(`/proc/${pid}/task/${tid}/comm`);
      if (comm.startsWith('crosvm_vcpu')) {
        fs.writeFileSync(path.join(group, 'tasks'), tid);
        moved++;
      }
    }
    if (moved > 0) return group;
    execFileSync('sleep', ['0.01']);
  }
  throw new Error(`real crosvm ${pid}: no vCPU thread to throttle within 4 s`);
}

function removeCpuGroup(group: string): void {
  try {
    fs.rmdirSync(group);
  } catch {
    // still busy or gone: a later run's mkdir reuses nothing of it (names are unique)
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** SIGCONT then SIGKILL to a VM's whole tree (a frozen device would not die of SIGTERM). */
function killTree(pid: number): void {
  const pids = [pid, ...descendants(pid)];
  for (const signal of ['SIGCONT', 'SIGKILL'] as const) {
    for (const each of pids) {
      try {
        process.kill(each, signal);
      } catch {
        // gone
      }
    }
  }
}

/**
 * The device processes the guest talks to: every descendant but the swap monitor, crosvm's own
 * helper (whether a freeze takes it is the engine's decision, which the tests do not assume).
 */
export function guestDevicesOf(vm: { readonly pid: number }): number[] {
  const comm = (pid: number) => safeRead(`/proc/${pid}/comm`).trim();
  return descendants(vm.pid).filter((pid) => comm(pid) !== 'swap monitor');
}

/** Every descendant of `pid`, through the `children` file of each of its threads. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const tid of tasks) {
    let children = '';
    try {
      children = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const child of children.split(' ').filter(Boolean).map(Number)) found.push(child, ...descendants(child));
  }
  return found;
}

/** Stops every real VM this process started and has not stopped yet (an after() hook). */
export async function stopAllRealVms(): Promise<void> {
  for (const vm of [...running]) await vm.stop('SIGTERM').catch(() => killTree(vm.pid));
}
