// Debug sessions with a real debug adapter (the bench's js-debug): the devices freeze at
// every stop, resume on continue and steps, and everything resumes when the session ends.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CrosvmGuardApi } from '../../src/ui/api';
import type { GuardEvent } from '../../src/guard';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning, sleep } from '../engine/procState';

const config = () => vscode.workspace.getConfiguration('crosvmGuard');
const set = (key: string, value: unknown) => config().update(key, value, vscode.ConfigurationTarget.Global);
const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);

/** Counts the `stopped` events of every debug session, as the workbench sees them. */
class StopCounter implements vscode.Disposable {
  stops = 0;
  private readonly registration = vscode.debug.registerDebugAdapterTrackerFactory('*', {
    createDebugAdapterTracker: () => ({
      onDidSendMessage: (m: { type?: string; event?: string }) => {
        if (m.type === 'event' && m.event === 'stopped') this.stops++;
      },
    }),
  });
  async waitFor(count: number): Promise<void> {
    assert.ok(await eventually(() => this.stops >= count, 15_000), `the debugger stopped ${this.stops} times, expected ${count}`);
  }
  dispose(): void {
    this.registration.dispose();
  }
}

async function startSession(program: string, extra: Partial<vscode.DebugConfiguration> = {}): Promise<vscode.DebugSession> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder);
  const started = new Promise<vscode.DebugSession>((resolve) => {
    const subscription = vscode.debug.onDidStartDebugSession((s) => {
      subscription.dispose();
      resolve(s);
    });
  });
  assert.ok(
    await vscode.debug.startDebugging(folder, {
      type: 'node',
      request: 'launch',
      name: 'crosvm Guard test',
      program: path.join(folder.uri.fsPath, program),
      console: 'internalConsole',
      ...extra,
    }),
  );
  return started;
}

/** Debug sessions that started and have not terminated yet. */
const live = new Set<string>();
const tracking = [
  vscode.debug.onDidStartDebugSession((s) => live.add(s.id)),
  vscode.debug.onDidTerminateDebugSession((s) => live.delete(s.id)),
];

async function sessionsEnded(): Promise<void> {
  assert.ok(await eventually(() => live.size === 0, 15_000), `${live.size} debug session(s) did not end`);
}

suite('debug sessions', () => {
  let api: CrosvmGuardApi;
  suiteTeardown(() => tracking.forEach((d) => d.dispose()));
  suiteSetup(async () => {
    api = (await vscode.extensions.getExtension<CrosvmGuardApi>('crosvm-guard.crosvm-guard')?.activate()) as CrosvmGuardApi;
  });
  teardown(async () => {
    await vscode.debug.stopDebugging();
    await sessionsEnded();
    for (const key of ['debug.autoFreeze', 'debug.target', 'assumeSwapBuild', 'excludeLabels']) await set(key, undefined);
    await vscode.commands.executeCommand('crosvmGuard.resume');
    await stopAllFixtureVms();
  });

  test('autoFreeze onStop: frozen at every stop and step, running after, resumed when the session ends', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 4 });
    await set('debug.autoFreeze', 'onStop');
    const events: GuardEvent['type'][] = [];
    const listening = api.onDidChangeState((e) => events.push(e.type));
    const stops = new StopCounter();
    try {
      await startSession('debuggee.js');
      await stops.waitFor(1);
      assert.ok(await eventually(() => devicePids(vm).every(isFullyStopped), 5000), 'not frozen at the first stop');
      const counters = [...vm.deviceCounters().values()];
      await sleep(100);
      assert.deepEqual([...vm.deviceCounters().values()], counters, 'guest memory moved while the debugger was stopped');
      for (let step = 0; step < 3; step++) {
        await vscode.commands.executeCommand('workbench.action.debug.stepOver');
        await stops.waitFor(2 + step);
        assert.ok(await eventually(() => devicePids(vm).every(isFullyStopped), 5000), `not frozen after step ${step + 1}`);
      }
      const resumedBefore = events.filter((e) => e === 'resumed').length;
      assert.ok(resumedBefore >= 3, `every step resumes first: ${events.join(' ')}`);
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      await stops.waitFor(5);
      assert.ok(await eventually(() => devicePids(vm).every(isFullyStopped), 5000), 'not frozen at the second debugger statement');
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      await sessionsEnded();
      assert.ok(await eventually(() => devicePids(vm).every(isRunning), 5000), 'still frozen after the session ended');
      // Strictly alternating: never two freezes without a resume between them.
      const changes = events.filter((e) => e === 'frozen' || e === 'resumed');
      assert.ok(
        changes.every((e, i) => i === 0 || e !== changes[i - 1]),
        changes.join(' '),
      );
    } finally {
      listening.dispose();
      stops.dispose();
    }
  });

  test("target auto, a debuggee in no VM: only this user's VMs freeze, never another user's", async () => {
    const mine = await startFixtureVm({ build: 'swap', devices: 2 });
    const others = await startFixtureVm({ build: 'swap', devices: 2, uid: 65534, gid: 65534 });
    await set('debug.autoFreeze', 'onStop');
    const stops = new StopCounter();
    try {
      await startSession('debuggee.js');
      await stops.waitFor(1);
      assert.ok(await eventually(() => devicePids(mine).every(isFullyStopped), 5000), "this user's VM is not frozen at the stop");
      await sleep(200);
      assert.ok(devicePids(others).every(isRunning), 'a VM of uid 65534 was frozen by a debug session of uid 0');
      await vscode.debug.stopDebugging();
    } finally {
      stops.dispose();
    }
  });

  test('target "ask" asks once per session which VMs to freeze', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    await set('debug.autoFreeze', 'onStop');
    await set('debug.target', 'ask');
    const stops = new StopCounter();
    try {
      await startSession('debuggee.js');
      await stops.waitFor(1);
      await sleep(800); // the quick pick opens: this VM first
      assert.ok(devicePids(vm).every(isRunning), 'frozen before the user answered');
      await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
      assert.ok(await eventually(() => devicePids(vm).every(isFullyStopped), 5000), 'not frozen after the answer');
      await vscode.commands.executeCommand('workbench.action.debug.stepOver');
      await stops.waitFor(2);
      // Asked once: the second stop freezes the same VM without a dialog.
      assert.ok(await eventually(() => devicePids(vm).every(isFullyStopped), 5000), 'not frozen at the second stop');
      await vscode.debug.stopDebugging();
    } finally {
      stops.dispose();
    }
  });

  test('toggling by hand during a session takes manual control: later stops freeze nothing', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    await set('debug.autoFreeze', 'onStop');
    const stops = new StopCounter();
    try {
      await startSession('debuggee.js');
      await stops.waitFor(1);
      assert.ok(await eventually(() => api.getState().frozen.length === 1, 5000), 'the stop froze nothing');
      await vscode.commands.executeCommand('crosvmGuard.toggle'); // resumes, and ends automatic mode
      assert.ok(devicePids(vm).every(isRunning));
      await vscode.commands.executeCommand('workbench.action.debug.stepOver');
      await stops.waitFor(2);
      await sleep(300);
      assert.ok(devicePids(vm).every(isRunning), 'automatic mode froze again after manual control');
      await vscode.debug.stopDebugging();
    } finally {
      stops.dispose();
    }
  });

  test('autoFreeze off: a stopped debugger signals nothing', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const stops = new StopCounter();
    try {
      await startSession('debuggee.js');
      await stops.waitFor(1);
      await sleep(300);
      assert.ok(devicePids(vm).every(isRunning), 'something was frozen with autoFreeze off');
      await vscode.debug.stopDebugging();
      await sessionsEnded();
    } finally {
      stops.dispose();
    }
  });

  test('a debuggee that is itself a crosvm main process is never signalled; its devices freeze', async () => {
    // js-debug starts the program through a link named `crosvm`: argv[0] makes it a VM.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-node-'));
    const link = path.join(dir, 'crosvm');
    fs.symlinkSync(process.execPath, link);
    await set('debug.autoFreeze', 'onStop');
    // Node carries no vmm-swap markers: the user vouches for this executable, and no other.
    await set('assumeSwapBuild', [fs.realpathSync(process.execPath)]);
    // js-debug's own helper runs as a child of the debuggee; freezing it would stall the
    // debugger itself. (gdb and LLDB have no such helper.)
    await set('excludeLabels', ['MainThread', 'node']);
    const stops = new StopCounter();
    try {
      await startSession('crosvmLikeMain.js', { runtimeExecutable: link });
      await stops.waitFor(1);
      const state = api.refresh();
      const vm = state.vms.find((v) => v.name.startsWith('crosvm'));
      assert.ok(vm, JSON.stringify(state.vms));
      assert.ok(await eventually(() => (api.getState().frozen.find((f) => f.vm.pid === vm.pid)?.processes.length ?? 0) >= 2, 5000));
      const frozen = api.getState().frozen.find((f) => f.vm.pid === vm.pid);
      assert.ok(
        frozen && frozen.processes.length === 2 && frozen.processes.every((p) => p.label === 'sleep'),
        JSON.stringify(api.getState().frozen),
      );
      assert.ok(frozen.processes.every((p) => isFullyStopped(p.pid)));
      assert.ok(!frozen.processes.some((p) => p.pid === vm.pid));
      assert.ok(isRunning(vm.pid), 'the debuggee itself was stopped');
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      await sessionsEnded();
    } finally {
      stops.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
