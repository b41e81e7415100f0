// The bench's extension-host rows: loaded by bench/hostRows.ts as the `extensionTestsPath` of
// a real workbench (code-server), so `run()` runs inside the extension host next to crosvm
// Guard, where users meet it. Per fixture VM:
//   command     crosvmGuard.freeze(pid) until it returns (every thread confirmed stopped),
//               crosvmGuard.resume(pid) likewise;
//   crosvm's    crosvm's algorithm (bench/crosvmAlgorithm.ts) run in this same host;
//   js-debug    a js-debug session with autoFreeze onStop stopping at `debugger;` statements:
//               DAP `stopped` → every device thread seen in T, and the `continue` request →
//               every device thread seen running, both seen by bench/sampler.js outside;
//   busy        the same, with the TypeScript server restarted at every stop so that each
//               continue (and the next stop) meets a language server starting;
//   LLDB        lldb-vscode-14 attached to the VM's main process, stepping with `next`.
// Results go to the file named by CROSVM_GUARD_BENCH (JSON) as raw milliseconds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CrosvmGuardApi } from '../src/ui/api';
import type { FreezeReport, GuardEvent } from '../src/guard';
import { FIXTURE_BUILT_IN_LABELS, FixtureVm, startFixtureVm, stopAllFixtureVms } from '../test/fixture/fixtureVm';
import { eventually, isFullyStopped, sleep } from '../test/engine/procState';
import { DapRecorder, msBetween } from '../test/suite/dapRecorder';
import { attachLldb } from '../test/suite/lldbSession';
import { CrosvmProcessesGuard } from './crosvmAlgorithm';
import { Sampler } from './samplerClient';
import { BENCH_CONFIG_VARIABLE, BenchConfig, HostPath, HostRow } from './hostBench';

const repoRoot = path.resolve(__dirname, '..', '..');
const hr = () => process.hrtime.bigint();
const setting = (key: string, value: unknown) =>
  vscode.workspace.getConfiguration('crosvmGuard').update(key, value, vscode.ConfigurationTarget.Global);
const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);

export async function run(): Promise<void> {
  const config = JSON.parse(process.env[BENCH_CONFIG_VARIABLE] ?? 'null') as BenchConfig | null;
  if (!config) throw new Error(`${BENCH_CONFIG_VARIABLE} is not set: run this through npm run bench`);
  progressFile = config.progressFile;
  try {
    fs.writeFileSync(config.resultFile, JSON.stringify(await measureAll(config)));
  } catch (error) {
    log(`failed: ${error instanceof Error ? error.stack : String(error)}`);
    throw error;
  }
}

let progressFile: string | undefined;

function log(message: string): void {
  if (progressFile) fs.appendFileSync(progressFile, `${message}\n`);
}

async function measureAll(config: BenchConfig): Promise<HostRow[]> {
  const api = (await vscode.extensions.getExtension<CrosvmGuardApi>('crosvm-guard.crosvm-guard')?.activate()) as CrosvmGuardApi;
  await setting('debug.autoFreeze', 'onStop');
  const rows: HostRow[] = [];
  try {
    for (const devices of config.sizes) {
      const vm = await startFixtureVm({
        build: 'swap',
        devices: Math.max(0, devices - FIXTURE_BUILT_IN_LABELS.length),
        deviceThreads: 2,
        tickMs: 50,
      });
      try {
        // A debuggee in no VM makes a stop freeze every VM of this user: it must be ours alone.
        const others = api.refresh().vms.filter((v) => v.pid !== vm.pid);
        if (others.length > 0) {
          throw new Error(
            `other crosvm VMs run here (pids ${others.map((v) => v.pid).join(', ')}); the js-debug rows would freeze them too`,
          );
        }
        const measure: Record<HostPath, { what: string; row: () => Promise<HostRow> }> = {
          command: { what: 'command path', row: () => commandPath(vm, config.runs) },
          crosvm: { what: "crosvm's algorithm in the extension host", row: () => crosvmInHost(vm, config.runs) },
          'js-debug': { what: 'js-debug', row: () => jsDebugStops(vm, config.runs, false, api) },
          'js-debug busy': {
            what: 'js-debug, TypeScript server restarting at each stop',
            row: () => jsDebugStops(vm, config.runs, true, api),
          },
          lldb: { what: 'LLDB', row: () => lldbSteps(vm, config.runs, api) },
        };
        for (const which of config.paths) {
          log(`${vm.devices.length} devices: ${measure[which].what}`);
          try {
            rows.push(await measure[which].row());
          } catch (error) {
            // One row's failure costs that row, not the whole run's numbers.
            const failed = error instanceof Error ? error.message : String(error);
            log(`  failed: ${failed}`);
            rows.push({ devices: vm.devices.length, path: which, freezeMs: [], resumeMs: [], missed: 0, failed });
          }
        }
      } finally {
        await vm.stop();
      }
    }
  } finally {
    await setting('debug.autoFreeze', undefined);
    await stopAllFixtureVms();
  }
  return rows;
}

/** Freeze then resume, timed each until it returns, after one warm-up cycle. */
async function cycles(
  vm: FixtureVm,
  path: HostPath,
  runs: number,
  freeze: () => Promise<void>,
  resume: () => Promise<void>,
): Promise<HostRow> {
  const row: HostRow = { devices: vm.devices.length, path, freezeMs: [], resumeMs: [], missed: 0 };
  for (let i = -1; i < runs; i++) {
    let t = hr();
    await freeze();
    const frozen = msBetween(t, hr());
    t = hr();
    await resume();
    const resumed = msBetween(t, hr());
    if (i >= 0) {
      row.freezeMs.push(frozen);
      row.resumeMs.push(resumed);
    }
    await sleep(5);
  }
  return row;
}

/** crosvmGuard.freeze and crosvmGuard.resume with the VM's pid, as another extension or a keybinding calls them. */
function commandPath(vm: FixtureVm, runs: number): Promise<HostRow> {
  const resume = async () => void (await vscode.commands.executeCommand('crosvmGuard.resume', vm.pid));
  const freeze = async () => {
    const report = await vscode.commands.executeCommand<FreezeReport | undefined>('crosvmGuard.freeze', vm.pid);
    if (report?.frozen.length === vm.devices.length) return;
    await resume();
    throw new Error(`crosvmGuard.freeze did not freeze all ${vm.devices.length} devices: ${JSON.stringify(report?.skipped)}`);
  };
  return cycles(vm, 'command', runs, freeze, resume);
}

function crosvmInHost(vm: FixtureVm, runs: number): Promise<HostRow> {
  let guard: CrosvmProcessesGuard | undefined;
  const freeze = () => (guard = new CrosvmProcessesGuard(vm.pid, false)).stopTheWorld();
  return cycles(vm, 'crosvm', runs, freeze, async () => guard?.continueTheWorld());
}

/** crosvm Guard's state events as the extension host sees them, stamped on arrival. */
class EngineEvents {
  readonly seen: { type: GuardEvent['type']; at: bigint }[] = [];
  /** Freezes that stopped nothing, each with why every process was left alone. */
  readonly empty: string[] = [];
  private readonly subscription: { dispose(): void };
  constructor(api: CrosvmGuardApi) {
    this.subscription = api.onDidChangeState((e) => {
      this.seen.push({ type: e.type, at: hr() });
      if (e.type === 'frozen' && e.report.frozen.length === 0) {
        this.empty.push([...new Set(e.report.skipped.map((p) => `${p.reason}: ${p.detail}`))].join('; ') || 'nothing to freeze');
      }
    });
  }

  /** A note for the row when some stop froze nothing (the stop's sample then measures someone else's stop). */
  note(): string | undefined {
    return this.empty.length > 0 ? `${this.empty.length} stop(s) froze nothing: ${[...new Set(this.empty)].join(' | ')}` : undefined;
  }
  /** The first event of `type` at or after `from`. */
  after(type: GuardEvent['type'], from: bigint): bigint | undefined {
    return this.seen.find((e) => e.type === type && e.at >= from)?.at;
  }
  dispose(): void {
    this.subscription.dispose();
  }
}

/**
 * Splits one stop and the resume after it into spans: the DAP message → crosvm Guard starts
 * freezing (queue, choice of VM) → frozen (the engine, all threads confirmed) → the sampler
 * saw it; and the resuming request → resumed → the sampler saw it.
 */
function addSpans(
  row: HostRow,
  events: EngineEvents,
  stop: bigint,
  allStopped: bigint | undefined,
  request: bigint | undefined,
  allRunning: bigint | undefined,
): void {
  const spans = (row.spans ??= {});
  const add = (name: string, from: bigint | undefined, to: bigint | undefined) => {
    if (from !== undefined && to !== undefined) (spans[name] ??= []).push(msBetween(from, to));
  };
  const freezing = events.after('freezing', stop);
  const frozen = freezing && events.after('frozen', freezing);
  add('stopped → freezing event', stop, freezing);
  add('freezing → frozen event', freezing, frozen);
  add('frozen event → sampler all T', frozen, allStopped);
  add('stopped → resuming request (the hold)', stop, request);
  const resumed = request && events.after('resumed', request);
  add('request → resumed event', request, resumed);
  add('resumed event → sampler all running', resumed, allRunning);
}

/** Debug sessions (js-debug starts a parent and a child session) that have not ended. */
const live = new Map<string, string>();
vscode.debug.onDidStartDebugSession((s) => live.set(s.id, s.name));
vscode.debug.onDidTerminateDebugSession((s) => live.delete(s.id));

async function sessionsEnded(): Promise<void> {
  if (!(await eventually(() => live.size === 0, 15_000))) throw new Error(`debug sessions did not end: ${[...live.values()].join(', ')}`);
}

/** Pids of TypeScript servers (started by the built-in TypeScript extension) running now. */
function tsServers(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tsserver');
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The share of the machine's CPU time spent busy over the next second, in %. */
async function machineBusyPercent(): Promise<number> {
  const ticks = () => {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { total: fields.reduce((a, b) => a + b, 0), idle: fields[3] + fields[4] }; // idle + iowait
  };
  const before = ticks();
  await sleep(1000);
  const after = ticks();
  return Math.round(100 * (1 - (after.idle - before.idle) / Math.max(1, after.total - before.total)));
}

/**
 * Opens `file`, if given, until the TypeScript server has answered for it, then waits (up to
 * 20 s) for a second in which the machine's CPUs are less than a third busy: the rows that are
 * not meant to be busy start on a quiet machine. Returns that last figure.
 */
async function settle(file?: string): Promise<number> {
  if (file) {
    const uri = vscode.Uri.file(file);
    await vscode.window.showTextDocument(uri);
    // Answered by the TypeScript server once it has loaded the file's project.
    await vscode.commands.executeCommand('vscode.executeHoverProvider', uri, new vscode.Position(0, 3));
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  }
  const deadline = Date.now() + 20_000;
  let busy = await machineBusyPercent();
  while (busy >= 33 && Date.now() < deadline) busy = await machineBusyPercent();
  return busy;
}

/**
 * Stops of a js-debug session (test/workspace/stopsInALoop.js: a `debugger;` statement, then
 * 100 ms of running, again and again), continued with the workbench's Continue command once
 * the stop is shown. The first stop is a warm-up.
 */
async function jsDebugStops(vm: FixtureVm, runs: number, busy: boolean, api: CrosvmGuardApi): Promise<HostRow> {
  const row: HostRow = { devices: vm.devices.length, path: busy ? 'js-debug busy' : 'js-debug', freezeMs: [], resumeMs: [], missed: 0 };
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('no workspace folder');
  if (busy) {
    // The TypeScript extension starts its server for this project (src, test, bench and their types).
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(path.join(repoRoot, 'src', 'guard', 'guard.ts')));
  }
  let restartsSeen = 0;
  const program = path.join(folder.uri.fsPath, 'stopsInALoop.js');
  // The first stop reveals the program, and a revealed JavaScript file starts the TypeScript
  // server: the quiet row waits for that to be over (the busy row restarts it on purpose).
  if (!busy) row.busyBeforePercent = await settle(program);
  const sampler = await Sampler.start(devicePids(vm));
  row.sampledBy = sampler.how;
  const dap = new DapRecorder();
  const events = new EngineEvents(api);
  try {
    const launch = {
      type: 'node',
      request: 'launch',
      name: 'bench: stops in a loop',
      program,
      args: [String(runs + 1)],
      console: 'internalConsole',
    };
    if (!(await vscode.debug.startDebugging(folder, launch))) throw new Error('js-debug did not start');
    for (let k = 1; k <= runs + 1; k++) {
      await dap.waitForShownStop(k);
      const allStopped = await sampler.next('stopped', 5000);
      if (busy) {
        void vscode.commands.executeCommand('typescript.restartTsServer');
        await sleep(100); // the new server is loading the project when the debuggee continues
      }
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      await dap.until(() => dap.resumes.length >= k, `continue request ${k}`);
      const allRunning = await sampler.next('running', 5000);
      if (busy && tsServers().length > 0) restartsSeen++;
      if (allStopped === undefined || allRunning === undefined) {
        // Out of step (a sample lost under load): count it and watch afresh.
        row.missed++;
        await eventually(() => devicePids(vm).every((pid) => !isFullyStopped(pid)), 5000);
        sampler.resync('stopped');
        continue;
      }
      if (k === 1) continue;
      row.freezeMs.push(msBetween(dap.stops[k - 1].at, allStopped));
      row.resumeMs.push(msBetween(dap.resumes[k - 1].at, allRunning));
      addSpans(row, events, dap.stops[k - 1].at, allStopped, dap.resumes[k - 1].at, allRunning);
    }
    await sessionsEnded();
  } finally {
    events.dispose();
    dap.dispose();
    sampler.close();
    await vscode.debug.stopDebugging();
    if (busy) await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  }
  const notes = [busy ? `a TypeScript server process ran at ${restartsSeen} of ${runs + 1} continues` : undefined, events.note()];
  if (notes.some((n) => n)) row.note = notes.filter((n) => n).join('; ');
  return row;
}

/**
 * LLDB attached to the VM's main process, stopped at the breakpoint in its run loop, then
 * stepped with the workbench's Step Over (`next`) once each stop is shown: stop → every
 * device thread seen stopped, and `next` → every device thread seen running. The first stop
 * is a warm-up. Each step lets the devices run only for the few milliseconds LLDB needs to
 * step a line, so the sampler may miss such a window under load: those steps are counted as
 * missed, and so is the stop after them.
 */
async function lldbSteps(vm: FixtureVm, runs: number, api: CrosvmGuardApi): Promise<HostRow> {
  const row: HostRow = { devices: vm.devices.length, path: 'lldb', freezeMs: [], resumeMs: [], missed: 0 };
  row.busyBeforePercent = await settle(); // after the busy row's language server
  const sampler = await Sampler.start(devicePids(vm));
  row.sampledBy = sampler.how;
  const dap = new DapRecorder('lldb-vscode');
  const events = new EngineEvents(api);
  const lldb = await attachLldb(vm);
  // Announced once the session ends, after every step: 20 steps of 256 devices can take 30 s.
  const announced = lldb.wake(300_000);
  let lostStop = false;
  try {
    for (let k = 1; k <= runs + 1; k++) {
      await dap.waitForShownStop(k, 30_000);
      const allStopped = lostStop ? undefined : await sampler.next('stopped', 5000);
      if (k > 1 && allStopped !== undefined) row.freezeMs.push(msBetween(dap.stops[k - 1].at, allStopped));
      if (k > 1 && allStopped === undefined) row.missed++;
      lostStop = false;
      if (k === runs + 1) break;
      await vscode.commands.executeCommand('workbench.action.debug.stepOver');
      await dap.until(() => dap.resumes.length >= k, `next request ${k}`);
      const allRunning = await sampler.next('running', 3000);
      if (k > 1) addSpans(row, events, dap.stops[k - 1].at, allStopped, dap.resumes[k - 1].at, allRunning);
      if (allRunning !== undefined) {
        if (k > 1) row.resumeMs.push(msBetween(dap.resumes[k - 1].at, allRunning));
        continue;
      }
      // The devices ran too briefly for the sampler: the next stop has frozen them already.
      row.missed++;
      lostStop = true;
      await dap.waitForShownStop(k + 1, 30_000);
      await eventually(() => api.getState().frozen.some((f) => f.vm.pid === vm.pid), 5000);
      sampler.resync('running');
    }
    lldb.dispose();
    await vscode.commands.executeCommand('workbench.action.debug.continue');
    await announced;
    await vscode.debug.stopDebugging(lldb.session);
    await sessionsEnded();
  } finally {
    events.dispose();
    lldb.dispose();
    dap.dispose();
    sampler.close();
    await vscode.debug.stopDebugging();
  }
  row.note = [
    'the VM hot-plugs one device at the first stop (what wakes its run loop); the sampler watches the devices it had before',
    events.note(),
  ]
    .filter((n) => n)
    .join('; ');
  return row;
}
