// Inside the extension host, next to crosvm Guard (mocha, tdd): a crosvm developer's LLDB
// session on real crosvm, and the API refusing signals for a build they would crash.
//
// LLDB (Debian's lldb-vscode-14, debug type `lldb-vscode` from test/lldbExtension) attaches to
// the real main process of a swap build with its `swap monitor`, with a function breakpoint on
// crosvm's own `devices::bus::Bus::read` (vCPU thread, the guest's next device access). LLDB
// holds every thread of main, the vCPU included, so at a stop the guest stands still whatever
// happens to the devices: the freeze itself is proven in /proc (every thread of every device in
// `T`); that resume happened is proven by the guest, which ticks only when its vCPU and every
// device it touches run again.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CrosvmGuardApi } from '../../../src/ui/api';
import type { GuardEvent } from '../../../src/guard';
import { eventually, isFullyStopped, isRunning, threadStates } from '../../engine/procState';
import { DapRecorder } from '../../suite/dapRecorder';
import { startRealVm, stopAllRealVms, guestDevicesOf } from '../realVm';
import { HOST_VM_NAME } from './realHostMain';

const STILL_MS = 2000;
const config = () => vscode.workspace.getConfiguration('crosvmGuard');
const set = (key: string, value: unknown) => config().update(key, value, vscode.ConfigurationTarget.Global);
const cgroupOf = (pid: number) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1');

/**
 * The symbol LLDB 14 resolves for a Rust function. Its demangler keeps the legacy hash
 * (`devices::bus::Bus::read::h09c8…`), so the plain path resolves to nothing (tried: `-n`, `-F`,
 * an anchored regex); the mangled name does, as does a regex typed in the debug console
 * (`` `breakpoint set -r devices::bus::Bus::read ``, lldb-vscode's command escape; tried by hand).
 * A developer finds it the same way, with `nm`.
 */
function mangledName(binary: string, rustPath: string): string {
  const prefix = `_ZN${rustPath
    .split('::')
    .map((part) => `${part.length}${part}`)
    .join('')}17h`;
  const symbols = execFileSync('nm', ['--defined-only', binary], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  const found = symbols
    .split('\n')
    .map((line) => line.split(' ')[2])
    .filter((name) => name?.startsWith(prefix));
  if (found.length !== 1) throw new Error(`${rustPath}: ${found.length} symbols in ${binary} start with ${prefix}`);
  return found[0];
}

suite('real crosvm: LLDB attached to the main process', () => {
  let api: CrosvmGuardApi;
  suiteSetup(async () => {
    api = (await vscode.extensions.getExtension<CrosvmGuardApi>('crosvm-guard.crosvm-guard')?.activate()) as CrosvmGuardApi;
  });
  teardown(async () => {
    await vscode.debug.stopDebugging();
    vscode.debug.removeBreakpoints(vscode.debug.breakpoints);
    await set('debug.autoFreeze', undefined);
    await vscode.commands.executeCommand('crosvmGuard.resume');
    await stopAllRealVms();
  });

  test('each stop in Bus::read freezes the devices, each step and continue resumes them; main is left to LLDB', async function () {
    this.timeout(240_000);
    const vm = await startRealVm({ build: 'swap', swapMonitor: true, name: HOST_VM_NAME });
    const binary = path.join(vm.runDir, 'bin', HOST_VM_NAME);
    const devices = guestDevicesOf(vm);
    assert.equal(devices.length, 8);
    await set('debug.autoFreeze', 'onStop');
    const events: GuardEvent[] = [];
    const listening = api.onDidChangeState((e) => events.push(e));
    const dap = new DapRecorder('lldb-vscode');
    const breakpoint = () => new vscode.FunctionBreakpoint(mangledName(binary, 'devices::bus::Bus::read'));
    let hit = breakpoint();
    vscode.debug.addBreakpoints([hit]);
    try {
      const folder = vscode.workspace.workspaceFolders?.[0];
      const attach = { type: 'lldb-vscode', request: 'attach', name: 'crosvm (LLDB attach)', pid: vm.pid, program: binary };
      assert.ok(await vscode.debug.startDebugging(folder, attach), `LLDB could not attach to ${vm.pid}`);
      await dap.until(() => dap.processIds.length > 0, 'the process event', 60_000);
      assert.deepEqual(dap.processIds, [vm.pid]);
      const session = vscode.debug.activeDebugSession as vscode.DebugSession;

      /** At a stop: every device frozen, every thread of main in LLDB's tracing stop, never ours. */
      const assertFrozenAtStop = async (what: string) => {
        const last = events.filter((e) => e.type === 'frozen').pop();
        const report = last?.type === 'frozen' ? JSON.stringify({ frozen: last.report.frozen, skipped: last.report.skipped }) : 'no report';
        assert.ok(await eventually(() => devices.every(isFullyStopped), 5000), `the devices are not frozen at ${what}: ${report}`);
        assert.ok(
          threadStates(vm.pid).every((s) => s === 't'),
          `main at ${what}: ${threadStates(vm.pid).join('')}`,
        );
      };

      // Stop 1: the breakpoint, on the vCPU thread, in crosvm's own code.
      await dap.waitForShownStop(1, 60_000);
      const stopped = dap.stops[0].message as { body?: { threadId?: number } };
      const threads = (await session.customRequest('threads')) as { threads: { id: number; name: string }[] };
      const vcpu = threads.threads.find((t) => t.id === stopped.body?.threadId);
      assert.match(vcpu?.name ?? '', /crosvm_vcpu0/, JSON.stringify(threads));
      const stack = (await session.customRequest('stackTrace', { threadId: vcpu?.id, levels: 1 })) as { stackFrames: { name: string }[] };
      assert.match(stack.stackFrames[0]?.name ?? '', /devices::bus::Bus::read/, JSON.stringify(stack));
      await assertFrozenAtStop('the breakpoint');
      const tick = vm.tick();
      assert.ok(await vm.standsStill(STILL_MS), 'the guest ticked at the breakpoint');

      // Steps (instruction steps: the binary has symbols, no line tables): each resumes, then freezes again.
      for (let step = 1; step <= 3; step++) {
        const resumedBefore = events.filter((e) => e.type === 'resumed').length;
        await vscode.commands.executeCommand('workbench.action.debug.stepOver');
        await dap.waitForShownStop(1 + step, 30_000);
        assert.ok(events.filter((e) => e.type === 'resumed').length > resumedBefore, `step ${step} did not resume the devices first`);
        await assertFrozenAtStop(`step ${step}`);
      }

      // Continue without the breakpoint: the devices resume and the guest ticks on.
      vscode.debug.removeBreakpoints([hit]);
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      await vm.waitForTick(tick, 10_000);
      assert.ok(devices.every(isRunning), 'a device is still stopped after continue');

      // The breakpoint again, set while crosvm runs: the next device access stops, and freezes.
      hit = breakpoint();
      vscode.debug.addBreakpoints([hit]);
      await dap.waitForShownStop(5, 30_000);
      await assertFrozenAtStop('the second breakpoint stop');
      const again = vm.tick();
      assert.ok(await vm.standsStill(STILL_MS), 'the guest ticked at the second breakpoint stop');
      vscode.debug.removeBreakpoints([hit]);
      await vscode.commands.executeCommand('workbench.action.debug.continue');
      await vm.waitForTick(again, 10_000);
      assert.ok(devices.every(isRunning), 'a device is still stopped after the second continue');

      await vscode.debug.stopDebugging(session); // attach: LLDB detaches
      assert.ok(await eventually(() => isRunning(vm.pid), 5000), `main after detach: ${threadStates(vm.pid).join('')}`);
      await vm.waitForTick(vm.tick(), 10_000);

      // The debuggee was never signalled by us: a SIGSTOP or SIGCONT to a traced process
      // reaches LLDB first, which would report it as a stop of its own (reason "exception"). LLDB 14
      // reports its function breakpoints as "breakpoint".
      assert.deepEqual([...new Set(dap.stops.map((s) => s.message.body?.reason))].sort(), ['breakpoint', 'step']);
      const reports = events.flatMap((e) => (e.type === 'frozen' ? [e.report] : []));
      assert.equal(reports.length, 5, events.map((e) => e.type).join(' '));
      for (const report of reports) {
        assert.equal(report.method, 'signal');
        assert.ok(!report.frozen.some((p) => p.pid === vm.pid), 'the debuggee is in a freeze report');
        assert.deepEqual(
          devices.filter((pid) => !report.frozen.some((p) => p.pid === pid)),
          [],
          'a device was left running',
        );
      }
      assert.doesNotMatch(vm.crosvmLog(), /exited: signo|exiting with crash/);
      assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
    } finally {
      listening.dispose();
      dap.dispose();
    }
  });
});

suite('real crosvm: the default build through the API', () => {
  let api: CrosvmGuardApi;
  suiteSetup(async () => {
    api = (await vscode.extensions.getExtension<CrosvmGuardApi>('crosvm-guard.crosvm-guard')?.activate()) as CrosvmGuardApi;
  });
  teardown(async () => {
    await vscode.commands.executeCommand('crosvmGuard.resume');
    await stopAllRealVms();
  });

  test('signals are refused and stop nothing; root freezes it with the cgroup freezer and it survives', async function () {
    this.timeout(120_000);
    const vm = await startRealVm({ build: 'default', name: HOST_VM_NAME });
    const devices = guestDevicesOf(vm);
    const summary = api.refresh().vms.find((v) => v.pid === vm.pid);
    assert.equal(summary?.signalsSafe, false, JSON.stringify(summary));
    assert.equal(summary?.method, 'cgroup');
    await assert.rejects(api.freeze(vm.pid, { method: 'signal' }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'unsafe-build');
      assert.match(error.message, /shut the VM down/);
      return true;
    });
    assert.ok(devices.every(isRunning), 'the refused freeze stopped a device');
    await vm.waitForTick(vm.tick(), 5000);
    const report = await api.freeze(vm.pid);
    assert.equal(report.method, 'cgroup');
    assert.deepEqual(report.frozen.map((p) => p.pid).sort(), [...devices].sort());
    const frozenIn = devices.map(cgroupOf);
    const still = await vm.standsStill(STILL_MS);
    // pid namespaces do not separate cgroups: a test run elsewhere on the machine that thaws
    // freeze cgroups whose maker it cannot see (test/engine/cgroup.test.ts does) thaws ours.
    const moved = devices.filter((pid, i) => cgroupOf(pid) !== frozenIn[i]);
    assert.deepEqual(moved, [], 'devices left their freeze cgroup while frozen, moved by another process');
    assert.ok(still, 'the guest ticked while frozen');
    const tick = vm.tick();
    await api.resume(vm.pid);
    await vm.waitForTick(tick, 10_000);
    assert.doesNotMatch(vm.crosvmLog(), /exited: signo|exiting with crash/);
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});
