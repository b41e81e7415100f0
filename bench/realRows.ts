// The bench's real-crosvm rows: the engine as shipped and crosvm's own `crosvm suspend --full` /
// `resume --full`, side by side on the same real, sandboxed VM (test/realCrosvm/realVm.ts), for
// the swap build (the engine uses signals) and the default build (the cgroup freezer, as root).
//
// What is timed, for both peers alike:
// - freeze: from the call (the command's start) until the peer says the devices are stopped —
//   the engine once every thread of every device is confirmed stopped (frozen) in /proc, crosvm
//   once its main process acknowledged that every device put itself to sleep (the command exits);
// - then the guest is watched for a window several tick intervals long: not one byte may reach
//   its serial console (a vCPU blocks in its next round trip to a stopped device, or is paused);
// - resume: from the call until it returns, and until the guest's first byte after it (inotify
//   on the serial log). The guest's pacing adds nothing there: its 200 ms wait is long over after
//   the window, so it prints as soon as its blocked or paused vCPU goes on; then one full tick,
//   which touches every device, must follow before the next freeze.
// The two peers alternate run by run, so that the machine's noise falls on both.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CrosvmGuard } from '../src/guard';
import type { FreezeCgroup } from '../src/guard/cgroupfs';
import { findRealCrosvm, startRealVm, type RealBuild, type RealVm } from '../test/realCrosvm/realVm';
import { sleep } from '../test/engine/procState';

export interface RealRow {
  /** Which real VM: every ratio is taken against the engine's row of the same VM. */
  vm: string;
  devices: number;
  method: string;
  /** The engine's row: the base of this VM's ratios. */
  base: boolean;
  runs: number;
  freezeMs: number[];
  resumeMs: number[];
  /** Resume's start → the guest's first byte on its serial console. */
  outputMs: number[];
  /** Runs in which the guest wrote nothing for the whole window after the freeze. */
  stoodStill: number;
  /** What the first few runs that did not stand still looked like. */
  notStill: string[];
}

export interface RealResult {
  rows: RealRow[];
  notes: string[];
  /** Why no real rows were measured, in one line. */
  skipped?: string;
}

interface Peer {
  readonly name: string;
  readonly base: boolean;
  freeze(): Promise<void>;
  resume(): Promise<void>;
}

/** The guest's vCPU quota, in a cpu cgroup of the VM's own (see RealVmOptions.ownThrottle). */
const VCPU_PERCENT = 5;

/** Runs the VM's own crosvm binary as a user would, and fails on anything but exit 0. */
function crosvmCommand(vm: RealVm, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(vm.executable, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`crosvm ${args.join(' ')} exited ${code ?? signal}: ${stderr.slice(-400)}`)),
    );
  });
}

interface Seen {
  method?: string;
  frozen?: number;
  skipped?: string;
  cgroups?: readonly FreezeCgroup[];
}

function enginePeer(guard: CrosvmGuard, vm: RealVm, engineName: string, seen: Seen): Peer {
  return {
    name: engineName,
    base: true,
    async freeze() {
      const report = await guard.freeze({ pid: vm.pid });
      seen.method = report.method;
      seen.frozen = report.frozen.length;
      seen.skipped = report.skipped.map((p) => `${p.label} (${p.reason})`).join(', ');
      seen.cgroups = report.cgroups;
    },
    resume: async () => void (await guard.resume()),
  };
}

function suspendPeer(vm: RealVm): Peer {
  const socket = vm.socketPath!;
  return {
    name: 'crosvm suspend --full / resume --full (the CLI, as a user runs it)',
    base: false,
    freeze: () => crosvmCommand(vm, ['suspend', '--full', socket]),
    resume: () => crosvmCommand(vm, ['resume', '--full', socket]),
  };
}

/** The longest gap between the guest's ticks over a few of them, to size the stand-still window. */
async function longestTickGap(vm: RealVm, ticks: number): Promise<number> {
  let longest = 0;
  let last = (await vm.watchForOutput()).at;
  for (let i = 0; i < ticks; i++) {
    const next = (await vm.watchForOutput()).at;
    longest = Math.max(longest, next - last);
    last = next;
  }
  return longest;
}

async function measureVm(build: RealBuild, runs: number, makeGuard: () => CrosvmGuard, engineName: string): Promise<RealResult> {
  const vm = await startRealVm({ build, swapMonitor: build === 'swap', socket: true, ownThrottle: VCPU_PERCENT });
  const guard = makeGuard();
  const notes: string[] = [];
  const label = `real ${build} build`;
  try {
    const devices = guard.inspectVm({ pid: vm.pid }).devices.length;
    const seen: Seen = {};
    const peers = [enginePeer(guard, vm, engineName, seen), suspendPeer(vm)];
    const gap = await longestTickGap(vm, 5);
    // Three of the longest gaps seen, at least a second: a guest that still ran would tick in it.
    const windowMs = Math.max(1000, Math.ceil((3 * gap) / 100) * 100);
    process.stderr.write(`${label} (pid ${vm.pid}, ${devices} device processes): ticks up to ${gap.toFixed(0)} ms apart\n`);
    const rows = peers.map((peer): RealRow => ({
      vm: label,
      devices,
      method: peer.name,
      base: peer.base,
      runs,
      freezeMs: [],
      resumeMs: [],
      outputMs: [],
      stoodStill: 0,
      notStill: [],
    }));
    // One warm-up cycle each, not counted.
    for (let i = -1; i < runs; i++) {
      const order = i % 2 === 0 ? [0, 1] : [1, 0];
      for (const which of order) {
        const peer = peers[which];
        const row = rows[which];
        let t = performance.now();
        await peer.freeze();
        const frozen = performance.now() - t;
        const size = vm.outputSize();
        await sleep(windowMs);
        const still = vm.outputSize() === size;
        if (!still && i >= 0 && row.notStill.length < 3) {
          row.notStill.push(
            `run ${i}: +${vm.outputSize() - size} bytes${peer.base ? ` (froze ${seen.frozen})` : ''}; ${stateOf(guard, vm, peer.base ? seen.cgroups : undefined)}`,
          );
        }
        const output = vm.watchForOutput();
        t = performance.now();
        await peer.resume();
        const resumed = performance.now() - t;
        const { at, tick } = await output;
        // A full tick after it reaches every device: the VM goes on, not just the one it waited for.
        await vm.waitForTick(tick);
        if (i < 0) continue;
        row.freezeMs.push(frozen);
        row.resumeMs.push(resumed);
        row.outputMs.push(at - t);
        if (still) row.stoodStill++;
      }
    }
    notes.push(
      `${label}: the engine froze ${seen.frozen} of ${devices} processes with ${seen.method === 'cgroup' ? 'the cgroup freezer' : 'signals'}` +
        `${seen.skipped ? `, left alone ${seen.skipped}` : ''}; ` +
        `stand-still window ${windowMs} ms (ticks up to ${gap.toFixed(0)} ms apart, vCPU quota ${VCPU_PERCENT}% in a cgroup of its own)`,
    );
    notes.push(`${label}: ${await cliStart(vm)}`);
    return { rows, notes };
  } finally {
    await guard.resume().catch(() => undefined);
    await guard.dispose();
    const code = await vm.stop();
    notes.push(
      `${label}: SIGTERM at the end → exit code ${code}${code === 143 ? ' (alive and healthy)' : ' — NOT 143: the VM did not survive'}`,
    );
  }
}

/** The device processes' states and, for a cgroup freeze, its cgroups' (why a guest did not stand still). */
function stateOf(guard: CrosvmGuard, vm: RealVm, cgroups: readonly FreezeCgroup[] | undefined): string {
  const devices = guard.inspectVm({ pid: vm.pid }).devices.map((d) => `${d.label} ${d.pid} ${d.state}`);
  const groups = (cgroups ?? []).map((g) => {
    const file = g.version === 2 ? 'cgroup.events' : 'freezer.state';
    let state: string;
    try {
      state = fs.readFileSync(path.join(g.dir, file), 'utf8').trim().replace(/\n/g, ' ');
    } catch (error) {
      state = (error as NodeJS.ErrnoException).code ?? String(error);
    }
    return `${g.dir}: ${state}`;
  });
  return [...devices, ...groups].join(', ');
}

/** What starting the CLI costs by itself (`crosvm version`), to read the suspend's time against. */
async function cliStart(vm: RealVm): Promise<string> {
  const times: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    await crosvmCommand(vm, ['version']);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return `the CLI alone (\`crosvm version\`, spawned from Node the same way) takes ${times[5].toFixed(1)} ms (median of 10)`;
}

/**
 * Both builds, or one line saying why real crosvm cannot run here. `makeGuard` gives the
 * engine as shipped (with crash safety), the base the fixture rows use.
 */
export async function measureRealCrosvm(runs: number, makeGuard: () => CrosvmGuard, engineName: string): Promise<RealResult> {
  const found = findRealCrosvm();
  if ('missing' in found) return { rows: [], notes: [], skipped: found.missing };
  const result: RealResult = { rows: [], notes: [] };
  for (const build of ['swap', 'default'] as const) {
    try {
      const one = await measureVm(build, runs, makeGuard, engineName);
      result.rows.push(...one.rows);
      result.notes.push(...one.notes);
    } catch (error) {
      result.notes.push(`real ${build} build: FAILED, no numbers: ${(error as Error).message}`);
    }
  }
  return result;
}
