// A native debugger, as crosvm developers use one: LLDB (lldb-vscode-14) attached to a
// fixture VM's main process, stopped at a breakpoint in its run loop, stepped with `next`,
// continued and detached. The follower must freeze that VM's devices, and only that VM's, at
// every stop, resume them at every step, and leave the debuggee to LLDB.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { CrosvmGuardApi } from '../../src/ui/api';
import type { GuardEvent } from '../../src/guard';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning, sleep, threadStates } from '../engine/procState';
import { DapRecorder } from './dapRecorder';
import { attachLldb } from './lldbSession';

const config = () => vscode.workspace.getConfiguration('crosvmGuard');
const set = (key: string, value: unknown) => config().update(key, value, vscode.ConfigurationTarget.Global);

suite('native debugger (LLDB)', () => {
  let api: CrosvmGuardApi;
  suiteSetup(async () => {
    api = (await vscode.extensions.getExtension<CrosvmGuardApi>('crosvm-guard.crosvm-guard')?.activate()) as CrosvmGuardApi;
  });
  teardown(async () => {
    await vscode.debug.stopDebugging();
    await set('debug.autoFreeze', undefined);
    await vscode.commands.executeCommand('crosvmGuard.resume');
    await stopAllFixtureVms();
  });

  test('attached to a VM: its devices freeze at each stop and step, another VM and the debuggee are left alone', async function () {
    this.timeout(90_000);
    const vm = await startFixtureVm({ build: 'swap', devices: 4 });
    const other = await startFixtureVm({ build: 'swap', devices: 2 });
    const devices = () => vm.devices.filter((d) => d.label !== 'hotplug-dev-0').map((d) => d.pid);
    await set('debug.autoFreeze', 'onStop');
    const events: GuardEvent[] = [];
    const listening = api.onDidChangeState((e) => events.push(e));
    const dap = new DapRecorder('lldb-vscode');
    const lldb = await attachLldb(vm);
    try {
      // The adapter's `process` event reaches the extension host unchanged: the follower picks the VM from it.
      await dap.until(() => dap.processIds.length > 0, 'the process event');
      assert.deepEqual(dap.processIds, [vm.pid]);
      const announced = lldb.wake();
      await dap.waitForShownStop(1, 30_000);
      assert.ok(await eventually(() => devices().every(isFullyStopped), 5000), 'the devices are not frozen at the breakpoint');
      // Every thread of the debuggee is in LLDB's tracing stop `t`, never a job-control stop
      // `T` of ours; the other VM runs.
      assert.ok(
        threadStates(vm.pid).every((s) => s === 't'),
        `main: ${threadStates(vm.pid).join('')}`,
      );
      assert.ok(
        other.devices.every((d) => isRunning(d.pid)),
        'the VM not being debugged was frozen',
      );
      const frozen = api.getState().frozen;
      assert.deepEqual(
        frozen.map((f) => f.vm.pid),
        [vm.pid],
        JSON.stringify(frozen),
      );
      assert.ok(!frozen[0].processes.some((p) => p.pid === vm.pid), 'the debuggee is in the frozen list');

      for (let step = 1; step <= 5; step++) {
        const resumedBefore = events.filter((e) => e.type === 'resumed').length;
        await vscode.commands.executeCommand('workbench.action.debug.stepOver');
        await dap.waitForShownStop(1 + step);
        assert.ok(await eventually(() => devices().every(isFullyStopped), 5000), `not frozen after step ${step}`);
        assert.ok(events.filter((e) => e.type === 'resumed').length > resumedBefore, `step ${step} did not resume the devices first`);
        assert.ok(
          threadStates(vm.pid).every((s) => s === 't'),
          `main after step ${step}: ${threadStates(vm.pid).join('')}`,
        );
      }
      assert.ok(
        other.devices.every((d) => isRunning(d.pid)),
        'the VM not being debugged was frozen while stepping',
      );
      // Had we sent the debuggee SIGSTOP, LLDB would have reported it as a stop of its own.
      assert.deepEqual([...new Set(dap.stops.map((s) => s.message.body?.reason))].sort(), ['breakpoint', 'step']);

      lldb.dispose(); // no breakpoint: `continue` lets the VM run
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      assert.ok(await eventually(() => devices().every(isRunning), 5000), 'still frozen after continue');
      await announced; // the VM ran on: the hot-plugged device is up
      await vscode.debug.stopDebugging(lldb.session); // attach: LLDB detaches
      assert.ok(await eventually(() => isRunning(vm.pid), 5000), `main after detach: ${threadStates(vm.pid).join('')}`);
      const vcpus = vm.vcpuCounters();
      await sleep(200);
      assert.ok(
        vm.vcpuCounters().every((c, i) => c > vcpus[i]),
        'the vCPUs do not run after detach',
      );
      assert.ok(vm.isRunning() && other.isRunning(), 'a VM died');
      const changes = events.filter((e) => e.type === 'frozen' || e.type === 'resumed').map((e) => e.type);
      assert.ok(
        changes.every((e, i) => i === 0 || e !== changes[i - 1]),
        changes.join(' '),
      );
    } finally {
      listening.dispose();
      dap.dispose();
      lldb.dispose();
    }
  });
});
