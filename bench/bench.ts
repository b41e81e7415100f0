// `npm run bench`: how long freezing and resuming a crosvm-like VM takes, measured in one run
// on the same fixture VMs: first in plain Node (this engine with and without its crash safety,
// resumed at once and after a hold as long as a debugger stop,
// the cgroup freezer, crosvm's own algorithm, tree-kill), then where users meet it, inside the
// extension host of a real workbench (bench/inHost.ts: the command, crosvm's algorithm there,
// js-debug and LLDB sessions with autoFreeze onStop, sampled from outside by bench/sampler.ts),
// and on real crosvm VMs, beside crosvm's own `crosvm suspend --full` (bench/realRows.ts).
// Prints one table with ratios against the engine as shipped (with crash safety), the goals of
// issue 15 with this run's ratios, and writes bench/results/bench.json.
//
//   --runs=N        runs per row after one warm-up (default 20)
//   --sizes=11,64   device processes per fixture VM (default 11,64,256; 11 is the fixture's least)
//   --node-only     skip the extension-host rows (--host-only: skip the plain-Node ones)
//   --host-rows=command,js-debug   only these extension-host rows (command, crosvm, js-debug,
//                   js-debug busy, lldb)
//   --real-only     only the real-crosvm rows (needs root, /dev/kvm and ../shared/real-crosvm
//                   or CROSVM_GUARD_REAL_CROSVM; elsewhere they print one line saying why)
//
// As root it runs itself in a private pid namespace (unshare): other sessions' crosvm VMs are
// then invisible, which matters because a debug session whose debuggee is in no VM freezes
// every VM of the user.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { spawn, spawnSync } from 'node:child_process';
import treeKill from 'tree-kill';
import { CrosvmGuard } from '../src/guard';
import { CrashSafety } from '../src/companion/watchClient';
import { confirmStopped, continueProcesses } from '../src/guard/methods/signalMethod';
import type { FrozenProcess } from '../src/guard/types';
import { readSnapshot } from '../src/guard/processTree';
import { isStoppedState } from '../src/guard/procfs';
import { FIXTURE_BUILT_IN_LABELS, startFixtureVm, stopAllFixtureVms, FixtureVm } from '../test/fixture/fixtureVm';
import { sleep } from '../test/engine/procState';
import { ensureSystemPackages } from '../test/runner/systemPackages';
import { CrosvmProcessesGuard } from './crosvmAlgorithm';
import { extensionHostRows } from './hostRows';
import { HOST_PROC_VARIABLE, type HostPath, type HostRow } from './hostBench';
import { measureRealCrosvm, type RealResult, type RealRow } from './realRows';
import { stopAllRealVms } from '../test/realCrosvm/realVm';

const treeKillAsync = promisify(treeKill) as (pid: number, signal: string) => Promise<void>;

interface Method {
  readonly name: string;
  freeze(vm: FixtureVm): Promise<void>;
  resume(vm: FixtureVm): Promise<void>;
  /** How long the VM stays frozen before the timed resume (default: not at all). */
  readonly holdMs?: number;
}

interface Row {
  devices: number;
  method: string;
  runs: number;
  freezeP50: number;
  freezeP95: number;
  resumeP50: number;
  resumeP95: number;
  /** Extension-host rows: which path; samples lost (not counted in `runs`). */
  host?: HostPath;
  missed?: number;
  /** Real-crosvm rows: which VM (ratios against its own base row), and what the guest showed. */
  vm?: string;
  base?: boolean;
  outputP50?: number;
  outputP95?: number;
  stoodStill?: number;
}

const args = process.argv.slice(2);
const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 20);
const sizes = (args.find((a) => a.startsWith('--sizes='))?.slice(8) ?? '11,64,256').split(',').map(Number);
const realOnly = args.includes('--real-only');
const nodeRows = !args.includes('--host-only') && !realOnly;
const hostRows = !args.includes('--node-only') && !realOnly;
const realRows = !args.includes('--host-only');
const hostPaths = args
  .find((a) => a.startsWith('--host-rows='))
  ?.slice(12)
  .split(',') as HostPath[] | undefined;
const ISOLATED_VARIABLE = 'CROSVM_GUARD_BENCH_ISOLATED';
const resultsDir = path.join(__dirname, '..', '..', 'bench', 'results');

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
    name: 'crosvm Guard engine, no crash safety',
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

/** The engine as the extension ships it: write-ahead to the companion and the journal before every stop. */
function shippedGuard(journalDir: string): CrosvmGuard {
  const guard = new CrosvmGuard();
  guard.setSafetyNet(
    new CrashSafety({ journalDir, companionScript: path.join(__dirname, '..', '..', 'dist', 'companion.js'), log: () => undefined }),
  );
  return guard;
}

function engineWithCrashSafety(journalDir: string): Method {
  const guard = shippedGuard(journalDir);
  return {
    name: BASE_METHOD,
    freeze: async (vm) => void (await guard.freeze({ pid: vm.pid })),
    resume: async () => void (await guard.resume()),
  };
}

/** The row every ratio is taken against: the engine with crash safety, as shipped. */
const BASE_METHOD = 'crosvm Guard engine + crash safety (as shipped)';

/**
 * How long a debugger stop holds the devices in the bench's debugger rows, about. A resume
 * then finds every device's timer expired and all of them due to run at once: more work for
 * the kernel and the two CPUs than a resume right after the freeze, which finds them idle.
 */
const DEBUGGER_HOLD_MS = 200;
const HELD_METHOD = `crosvm Guard engine + crash safety, resumed after a ${DEBUGGER_HOLD_MS} ms hold`;

/** The base engine again, resumed only after the devices were held as long as at a debugger stop. */
function engineHeldLikeAStop(journalDir: string): Method {
  return { ...engineWithCrashSafety(journalDir), name: HELD_METHOD, holdMs: DEBUGGER_HOLD_MS };
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
    if (method.holdMs) await sleep(method.holdMs);
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

const fmt = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '–' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
const ratio = (value: number, base: number) => (Number.isFinite(value / base) ? `${(value / base).toFixed(1)}×` : '–');

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

/** What each extension-host path is called in the table. */
const HOST_METHODS: Record<HostPath, string> = {
  command: 'host: crosvmGuard.freeze / .resume commands',
  crosvm: "host: crosvm's ProcessesGuard¹",
  'js-debug': 'host: js-debug stop → all T / continue → all running²',
  'js-debug busy': 'host: the same, TypeScript server restarting at each stop²',
  lldb: 'host: LLDB stop → all T / next → all running²',
};

function hostRow(row: HostRow): Row {
  return {
    devices: row.devices,
    method: HOST_METHODS[row.path],
    runs: row.freezeMs.length,
    freezeP50: percentile(row.freezeMs, 50),
    freezeP95: percentile(row.freezeMs, 95),
    resumeP50: percentile(row.resumeMs, 50),
    resumeP95: percentile(row.resumeMs, 95),
    host: row.path,
    missed: row.missed,
  };
}

async function measureInNode(rows: Row[], notes: string[]): Promise<void> {
  const journalDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-bench-journal-'));
  try {
    for (const devices of sizes) {
      // `devices` processes in all: the fixture's built-in devices (11, crosvm's names) plus extra two-thread ones.
      const vm = await startFixtureVm({
        build: 'swap',
        devices: Math.max(0, devices - FIXTURE_BUILT_IN_LABELS.length),
        deviceThreads: 2,
        tickMs: 50,
      });
      process.stderr.write(`${devices} device processes (pid ${vm.pid}), plain Node...\n`);
      notes.push(`${vm.devices.length} devices: ${await faithfulCrosvmCheck(vm)}`);
      continueProcesses(treeOf(vm, true));
      const methods = [
        engineWithCrashSafety(journalDir),
        engineHeldLikeAStop(journalDir),
        engine(),
        ...(process.getuid?.() === 0 ? [engineCgroup()] : []),
        crosvm(),
        treeKillMethod(),
      ];
      for (const method of methods) {
        rows.push(await measure(method, vm, vm.devices.length));
        process.stderr.write(`  ${method.name} done\n`);
      }
      if (devices === 64) notes.push(await stepLatency(vm), await crashResume(vm));
      await vm.stop();
    }
  } finally {
    fs.rmSync(journalDir, { recursive: true, force: true });
  }
}

/** The real-crosvm rows, in plain Node, with the engine as shipped as each VM's base. */
async function measureReal(): Promise<RealResult> {
  const journalDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-bench-journal-'));
  try {
    process.stderr.write('real crosvm rows...\n');
    return await measureRealCrosvm(runs, () => shippedGuard(journalDir), BASE_METHOD);
  } finally {
    fs.rmSync(journalDir, { recursive: true, force: true });
  }
}

function realRow(row: RealRow): Row {
  return {
    devices: row.devices,
    method: row.method,
    runs: row.freezeMs.length,
    freezeP50: percentile(row.freezeMs, 50),
    freezeP95: percentile(row.freezeMs, 95),
    resumeP50: percentile(row.resumeMs, 50),
    resumeP95: percentile(row.resumeMs, 95),
    vm: row.vm,
    base: row.base,
    outputP50: percentile(row.outputMs, 50),
    outputP95: percentile(row.outputMs, 95),
    stoodStill: row.stoodStill,
  };
}

/** What the real guests showed: standing still after each freeze, and going on after each resume. */
function guestTable(rows: Row[]): string[] {
  const real = rows.filter((r) => r.vm);
  if (real.length === 0) return [];
  const lines = [
    '| VM | method | guest stood still | resume → guest output p50 ms | p95 ms | p50 / base |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const row of real) {
    const base = real.find((r) => r.vm === row.vm && r.base);
    const vs = base?.outputP50 === undefined ? '–' : ratio(row.outputP50!, base.outputP50);
    lines.push(`| ${row.vm} | ${row.method} | ${row.stoodStill} of ${row.runs} | ${fmt(row.outputP50)} | ${fmt(row.outputP95)} | ${vs} |`);
  }
  return lines;
}

function table(rows: Row[]): string[] {
  const lines = [
    '| devices | method | runs | freeze p50 ms | freeze p95 ms | resume p50 ms | resume p95 ms | freeze p50 / base | freeze p95 / base | resume p50 / base |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const base = rows.find((r) => r.devices === row.devices && r.vm === row.vm && (row.vm ? r.base : r.method === BASE_METHOD));
    const vs = (value: number, of: number | undefined) => (of === undefined ? '–' : ratio(value, of));
    const missed = row.missed ? ` (${row.missed} lost)` : '';
    lines.push(
      `| ${row.vm ? `${row.devices}, ${row.vm}` : row.devices} | ${row.method} | ${row.runs}${missed} | ${fmt(row.freezeP50)} | ${fmt(row.freezeP95)} | ${fmt(row.resumeP50)} | ${fmt(row.resumeP95)} | ` +
        `${vs(row.freezeP50, base?.freezeP50)} | ${vs(row.freezeP95, base?.freezeP95)} | ${vs(row.resumeP50, base?.resumeP50)} |`,
    );
  }
  return lines;
}

/** Issue 15's goals, each with this run's ratio. */
function goals(rows: Row[]): string[] {
  const find = (devices: number, method: string) => rows.find((r) => r.devices === devices && r.method === method);
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const out: string[] = [];
  for (const devices of sizes.filter((n) => n <= 64)) {
    const base = find(devices, BASE_METHOD);
    if (!base) continue;
    // A resume at a debugger's continue comes after a hold: compared with the engine's after one.
    const held = find(devices, HELD_METHOD) ?? base;
    for (const path of ['js-debug', 'js-debug busy', 'lldb'] as const) {
      const row = find(devices, HOST_METHODS[path]);
      if (!row) continue;
      const stop = row.freezeP50 / base.freezeP50;
      const resume = row.resumeP50 / held.resumeP50;
      const what =
        path === 'lldb' ? 'LLDB stop / next' : path === 'js-debug' ? 'debugger stop / continue' : 'stop / continue, workbench busy';
      out.push(
        `${row.devices} devices, ${what} → all devices stopped / running, p50: ${fmt(row.freezeP50)} / ${fmt(row.resumeP50)} ms = ` +
          `${ratio(row.freezeP50, base.freezeP50)} / ${ratio(row.resumeP50, held.resumeP50)} the Node engine's freeze / resume` +
          `${held === base ? '' : ` after a ${DEBUGGER_HOLD_MS} ms hold (${ratio(row.resumeP50, base.resumeP50)} its resume without)`}` +
          ` (goal ≤ 1.5×): ${verdict(stop <= 1.5)} / ${verdict(resume <= 1.5)}`,
      );
    }
  }
  const versus = (ours: Row | undefined, theirs: Row | undefined, label: string) => {
    if (!ours || !theirs) return;
    out.push(
      `${ours.devices} devices, ${label}: freeze p50 ${ratio(ours.freezeP50, theirs.freezeP50)} crosvm's (goal ≤ 1.0×): ${verdict(ours.freezeP50 <= theirs.freezeP50)}; ` +
        `crosvm's p95 is ${ratio(theirs.freezeP95, ours.freezeP95)} ours (goal ≥ 2×): ${verdict(theirs.freezeP95 >= 2 * ours.freezeP95)}`,
    );
  };
  for (const devices of sizes.filter((n) => n >= 64)) {
    versus(
      find(devices, HOST_METHODS.command),
      find(devices, HOST_METHODS.crosvm),
      "extension host, the command against crosvm's algorithm in the same host",
    );
    versus(
      find(devices, BASE_METHOD),
      find(devices, "crosvm's ProcessesGuard¹"),
      "plain Node, the engine as shipped against crosvm's algorithm",
    );
  }
  return out;
}

function spans(results: HostRow[]): string[] {
  const out: string[] = [];
  for (const row of results) {
    if (row.failed) {
      out.push(`- ${row.devices} devices, ${row.path}: FAILED, no numbers: ${row.failed}`);
      continue;
    }
    const named = Object.entries(row.spans ?? {}).map(([name, ms]) => `${name} ${fmt(percentile(ms, 50))} / ${fmt(percentile(ms, 95))}`);
    if (named.length > 0) out.push(`- ${row.devices} devices, ${row.path}: ${named.join('; ')}`);
    const busy = row.busyBeforePercent === undefined ? undefined : `CPUs ${row.busyBeforePercent}% busy in the second before`;
    const about = [row.sampledBy && `sampled by ${row.sampledBy}`, busy, row.note].filter((a) => a);
    if (about.length > 0) out.push(`  (${about.join('; ')})`);
  }
  return out;
}

function isolateAndRerun(): boolean {
  if (process.getuid?.() !== 0 || process.env[ISOLATED_VARIABLE] || !fs.existsSync('/usr/bin/unshare')) return false;
  // The sampler's kernel trace names threads by their pids on the host: the host's /proc stays
  // visible to it (bind-mounted, in the private mount namespace only) to translate ours.
  const hostProc = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-host-proc-'));
  const mountProc = 'mount --bind /proc "$0" && mount -t proc proc /proc && exec "$@"';
  const command = ['/bin/sh', '-c', mountProc, hostProc, process.execPath, __filename, ...args];
  try {
    const result = spawnSync('/usr/bin/unshare', ['--pid', '--fork', '--mount', '--propagation', 'private', '--kill-child', ...command], {
      stdio: 'inherit',
      env: { ...process.env, [ISOLATED_VARIABLE]: '1', [HOST_PROC_VARIABLE]: hostProc },
    });
    process.exitCode = result.status ?? 1;
  } finally {
    fs.rmdirSync(hostProc);
  }
  return true;
}

async function main(): Promise<void> {
  if (isolateAndRerun()) return;
  ensureSystemPackages();
  const rows: Row[] = [];
  const notes: string[] = [];
  if (nodeRows) await measureInNode(rows, notes);
  let real: RealResult | undefined;
  if (realRows) real = await measureReal();
  let hostResults: HostRow[] = [];
  if (hostRows) {
    process.stderr.write('extension-host rows (code-server workbench)...\n');
    hostResults = await extensionHostRows(runs, sizes, hostPaths);
    // Ten minutes of measuring: kept before anything else can fail.
    fs.mkdirSync(resultsDir, { recursive: true });
    fs.writeFileSync(path.join(resultsDir, 'host-rows.json'), JSON.stringify(hostResults, null, 2));
    rows.push(...hostResults.filter((r) => !r.failed).map(hostRow));
  }
  rows.sort((a, b) => a.devices - b.devices); // stable: plain-Node rows first within a size
  // Real VMs last, each group beside its own base.
  rows.push(...(real?.rows.map(realRow) ?? []));

  const isolated = process.env[ISOLATED_VARIABLE] ? 'in a private pid namespace; ' : '';
  console.log(
    `\n${runs} runs per row after one warm-up; ${isolated}${process.version} (extension host: code-server's Node 24); ${os.cpus().length} cores; load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n`,
  );
  if (rows.length > 0) {
    console.log(table(rows).join('\n'));
    console.log(
      `\nbase: "${BASE_METHOD}" of the same VM, plain Node. freeze = the call until every thread is confirmed stopped, resume = until it returns,` +
        '\n  unless the method says otherwise.',
    );
  }
  if (rows.some((r) => !r.vm)) {
    console.log(
      "¹ timed with one fix, the state parsed after the last ')' (weak point 3): as written it never sees `weird) dev` stop." +
        "\n  It still walks only the main thread's children (weak point 1), so it freezes fewer processes than the others." +
        '\n² from the DAP message reaching the extension host (a tracker there stamps it) to the moment the last thread of every' +
        '\n  device stopped (T), or the last was woken, seen outside by bench/sampler.ts; both on CLOCK_MONOTONIC. As root the' +
        "\n  sampler reads it from a kernel trace of these threads' scheduler events; otherwise it polls /proc." +
        '\n  The first stop of each session is a warm-up. "lost": steps where the sampler fell out of step (not counted).',
    );
  }
  for (const note of notes) console.log(`- ${note}`);
  if (real?.skipped) console.log(`\nreal crosvm rows not run: ${real.skipped}`);
  const guest = guestTable(rows);
  if (guest.length > 0) {
    console.log(
      `\nReal crosvm (the rows "N, real … build" above: freeze = until the engine confirmed every device thread stopped, or` +
        `\n  until \`crosvm suspend --full\` returned, crosvm having acknowledged that its devices sleep; resume = until the call` +
        `\n  or command returned), and what the guest showed: no byte on its serial console for a window after each freeze, and` +
        `\n  from resume's start to its first byte (inotify on the log), the same measure for both.\n${guest.join('\n')}`,
    );
  }
  if (real?.notes.length) console.log(real.notes.map((note) => `- ${note}`).join('\n'));
  for (const row of real?.rows ?? []) {
    for (const run of row.notStill) console.log(`- ${row.vm}, ${row.method}: the guest did NOT stand still, ${run}`);
  }
  const spanLines = spans(hostResults);
  if (spanLines.length > 0) {
    console.log(
      `\nWhere a debugger row's time goes, p50 / p95 ms per stop (the extension host's own events, stamped there):\n${spanLines.join('\n')}`,
    );
  }
  const goalLines = goals(rows);
  if (goalLines.length > 0) console.log(`\nGoals of issue 15, this run:\n${goalLines.map((g) => `- ${g}`).join('\n')}`);
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(
    path.join(resultsDir, 'bench.json'),
    JSON.stringify(
      { date: new Date().toISOString(), node: process.version, runs, rows, notes, goals: goalLines, host: hostResults, real },
      null,
      2,
    ),
  );
  console.log(`\nwritten: bench/results/bench.json${hostRows ? ", bench/results/vscode-logs/ (the workbench's logs)" : ''}`);
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => Promise.all([stopAllFixtureVms(), stopAllRealVms()]));
