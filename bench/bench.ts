// `npm run bench`: how long freezing and resuming a crosvm-like VM takes, for this engine,
// for crosvm's own algorithm and for tree-kill, measured in the same run on the same trees.
// Prints a table with ratios against the engine and writes bench/results/bench.json.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { spawn } from 'node:child_process';
import treeKill from 'tree-kill';
import { CrosvmGuard } from '../src/guard';
import { confirmStopped, continueProcesses } from '../src/guard/signalFreezer';
import type { FrozenProcess } from '../src/guard/types';
import { readSnapshot } from '../src/guard/processTree';
import { isStoppedState } from '../src/guard/procfs';
import { startFixtureVm, stopAllFixtureVms, FixtureVm } from '../test/fixture/fixtureVm';
import { CrosvmProcessesGuard } from './crosvmAlgorithm';

const treeKillAsync = promisify(treeKill) as (pid: number, signal: string) => Promise<void>;

interface Method {
  readonly name: string;
  freeze(vm: FixtureVm): Promise<void>;
  resume(vm: FixtureVm): Promise<void>;
}

interface Row {
  devices: number;
  method: string;
  runs: number;
  freezeP50: number;
  freezeP95: number;
  resumeP50: number;
  resumeP95: number;
}

const args = process.argv.slice(2);
const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 20);
const sizes = (args.find((a) => a.startsWith('--sizes='))?.slice(8) ?? '8,64,256').split(',').map(Number);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Every process of the VM, root included, as FrozenProcess records for the shared confirmation. */
function treeOf(vm: FixtureVm, withRoot: boolean): FrozenProcess[] {
  const guard = new CrosvmGuard();
  const snapshot = guard.inspectVm({ pid: vm.pid });
  const all = withRoot ? [snapshot.main, ...snapshot.devices] : snapshot.devices;
  return all.map((p) => ({ pid: p.pid, startTime: p.startTime, label: p.label, ppid: p.ppid }));
}

function engine(): Method {
  const guard = new CrosvmGuard();
  return {
    name: 'crosvm Guard (this engine)',
    freeze: async (vm) => void (await guard.freeze({ pid: vm.pid })),
    resume: async () => void (await guard.resume()),
  };
}

/** The engine with the kernel's cgroup freezer (v2 where usable) instead of signals. */
function engineCgroup(): Method {
  const guard = new CrosvmGuard();
  return {
    name: 'crosvm Guard, cgroup freezer',
    freeze: async (vm) => void (await guard.freeze({ pid: vm.pid }, { method: 'cgroup' })),
    resume: async () => void (await guard.resume()),
  };
}

function crosvm(): Method {
  let guard: CrosvmProcessesGuard | undefined;
  return {
    name: "crosvm's ProcessesGuard¹",
    freeze: async (vm) => {
      guard = new CrosvmProcessesGuard(vm.pid, false);
      await guard.stopTheWorld();
    },
    resume: async () => guard?.continueTheWorld(),
  };
}

function treeKillMethod(): Method {
  return {
    name: 'tree-kill SIGSTOP + confirmation',
    freeze: async (vm) => {
      // tree-kill signals the root too; it asks `ps` for each process's children.
      await treeKillAsync(vm.pid, 'SIGSTOP');
      const failures = await confirmStopped(treeOf(vm, true), performance.now() + 5000, 5000);
      if (failures.length > 0) throw new Error(`tree-kill left processes running: ${JSON.stringify(failures)}`);
    },
    resume: async (vm) => treeKillAsync(vm.pid, 'SIGCONT'),
  };
}

/** After each resume every process must run again, or the numbers would lie. */
function assertAllRunning(vm: FixtureVm): void {
  for (const p of treeOf(vm, true)) {
    const state = readSnapshot(p.pid)?.state;
    if (state === 'T' || state === 't') {
      continueProcesses(treeOf(vm, true));
      throw new Error(`process ${p.pid} (${p.label}) is still stopped after resume`);
    }
  }
}

async function measure(method: Method, vm: FixtureVm, devices: number): Promise<Row> {
  const freezeMs: number[] = [];
  const resumeMs: number[] = [];
  // One warm-up run, not counted: the first call pays for JIT and the exe marker scan.
  for (let i = -1; i < runs; i++) {
    let t = performance.now();
    await method.freeze(vm);
    const frozen = performance.now() - t;
    t = performance.now();
    await method.resume(vm);
    const resumed = performance.now() - t;
    assertAllRunning(vm);
    if (i >= 0) {
      freezeMs.push(frozen);
      resumeMs.push(resumed);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    devices,
    method: method.name,
    runs,
    freezeP50: percentile(freezeMs, 50),
    freezeP95: percentile(freezeMs, 95),
    resumeP50: percentile(resumeMs, 50),
    resumeP95: percentile(resumeMs, 95),
  };
}

const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
const ratio = (value: number, base: number) => `${(value / base).toFixed(1)}×`;

/**
 * Runs crosvm's algorithm exactly as it is once, and says how it fares on the fixture: the
 * weak points are correctness bugs, not just slowness.
 */
async function faithfulCrosvmCheck(vm: FixtureVm): Promise<string> {
  const guard = new CrosvmProcessesGuard(vm.pid);
  const started = performance.now();
  let outcome: string;
  try {
    await guard.stopTheWorld();
    outcome = 'succeeded';
  } catch (error) {
    outcome = `failed with "${(error as Error).message}"`;
  }
  const ms = (performance.now() - started).toFixed(0);
  guard.continueTheWorld();
  const engineCount = new CrosvmGuard().inspectVm({ pid: vm.pid }).devices.length;
  return `crosvm's algorithm as written ${outcome} after ${ms} ms; it found ${guard.found} of ${engineCount} device processes.`;
}

/**
 * A debugger step as the debug follower handles it: on `stopped`, freeze the VM chosen at the
 * last stop (pid and start time known); on the `next` request, resume it.
 */
async function stepLatency(vm: FixtureVm): Promise<string> {
  const guard = new CrosvmGuard();
  const ref = { pid: vm.pid, startTime: guard.inspectVm({ pid: vm.pid }).main.startTime };
  const stops: number[] = [];
  const continues: number[] = [];
  for (let i = -1; i < runs * 3; i++) {
    let t = performance.now();
    await guard.freeze(ref);
    const stop = performance.now() - t;
    t = performance.now();
    await guard.resume(ref);
    if (i >= 0) {
      stops.push(stop);
      continues.push(performance.now() - t);
    }
  }
  return `debugger step, ${vm.devices.length} devices: stopped → all confirmed stopped p50 ${fmt(percentile(stops, 50))} ms, p95 ${fmt(percentile(stops, 95))} ms; next → resumed p50 ${fmt(percentile(continues, 50))} ms, p95 ${fmt(percentile(continues, 95))} ms (${runs * 3} steps)`;
}

/**
 * From SIGKILL of a process that froze a VM (the engine with crash safety, as in an extension
 * host) until every device runs again, resumed by the companion.
 */
async function crashResume(vm: FixtureVm): Promise<string> {
  const journalDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-bench-'));
  const host = path.join(__dirname, '..', 'test', 'engine', 'hostProcess.js');
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const child = spawn(process.execPath, [host, String(vm.pid), journalDir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    while (!out.includes('"frozen"')) await new Promise((r) => setTimeout(r, 5));
    const pids = treeOf(vm, false).map((p) => p.pid);
    const killed = performance.now();
    child.kill('SIGKILL');
    while (pids.some((pid) => isStoppedState(readSnapshot(pid)?.state ?? ''))) await new Promise((r) => setImmediate(r));
    times.push(performance.now() - killed);
    await exited;
  }
  fs.rmSync(journalDir, { recursive: true, force: true });
  return `host SIGKILL → all ${vm.devices.length} devices resumed by the companion: p50 ${fmt(percentile(times, 50))} ms, p95 ${fmt(percentile(times, 95))} ms (${runs} runs)`;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const devices of sizes) {
    // `devices` processes in all: the fixture's 6 built-in devices plus extra two-thread ones.
    const vm = await startFixtureVm({ build: 'swap', devices: Math.max(0, devices - 6), deviceThreads: 2, tickMs: 50 });
    process.stderr.write(`${devices} device processes (pid ${vm.pid})...\n`);
    notes.push(`${vm.devices.length} devices: ${await faithfulCrosvmCheck(vm)}`);
    continueProcesses(treeOf(vm, true));
    const methods = [engine(), ...(process.getuid?.() === 0 ? [engineCgroup()] : []), crosvm(), treeKillMethod()];
    for (const method of methods) {
      rows.push(await measure(method, vm, vm.devices.length));
      process.stderr.write(`  ${method.name} done\n`);
    }
    if (devices === 64) notes.push(await stepLatency(vm), await crashResume(vm));
    await vm.stop();
  }

  const lines = [
    '| devices | method | freeze p50 ms | freeze p95 ms | resume p50 ms | resume p95 ms | freeze p50 vs engine | freeze p95 vs engine |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const base = rows.find((r) => r.devices === row.devices && r.method.startsWith('crosvm Guard')) as Row;
    lines.push(
      `| ${row.devices} | ${row.method} | ${fmt(row.freezeP50)} | ${fmt(row.freezeP95)} | ${fmt(row.resumeP50)} | ${fmt(row.resumeP95)} | ${ratio(row.freezeP50, base.freezeP50)} | ${ratio(row.freezeP95, base.freezeP95)} |`,
    );
  }
  console.log(`\n${runs} runs per row after one warm-up; ${process.version}; ${os.cpus().length} cores\n`);
  console.log(lines.join('\n'));
  console.log(
    "\n¹ timed with one fix, the state parsed after the last ')' (weak point 3): as written it never sees `weird) dev` stop." +
      '\n  It still walks only the main thread\'s children (weak point 1), so it freezes fewer processes than the others.',
  );
  for (const note of notes) console.log(`- ${note}`);
  const out = path.join(__dirname, '..', '..', 'bench', 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'bench.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, runs, rows, notes }, null, 2));
  console.log(`\nwritten: bench/results/bench.json`);
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => stopAllFixtureVms());
