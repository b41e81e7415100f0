// Crash safety on real crosvm: a plain Node host (test/engine/hostProcess.ts: the engine with
// the crash safety the extension ships, its companion and journal) freezes a real VM and is
// SIGKILLed while it is frozen. Its companion resumes the VM, and the guest ticks again. The
// extension host itself is killed in the workbench tests; this is the same engine and
// companion without VS Code around them.
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { CrosvmGuard } from '../../src/guard';
import { startHost, tmpJournalDir } from '../engine/hostHarness';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);

const STILL_MS = 1500;

function devicePids(vmPid: number): number[] {
  return new CrosvmGuard().inspectVm({ pid: vmPid }).devices.map((d) => d.pid);
}

describe('real crosvm: the host killed while frozen', () => {
  it('swap build, signals: the companion resumes every device, the guest ticks again; exit 143', async () => {
    const vm = await startRealVm({ build: 'swap', swapMonitor: true });
    const devices = devicePids(vm.pid);
    const host = startHost(vm, tmpJournalDir(), 'signal');
    const frozen = await host.next('frozen', 15_000);
    assert.deepEqual(new Set(frozen.pids as number[]), new Set(devices));
    assert.ok(devices.every(isFullyStopped));
    const frozenAt = vm.tick();
    assert.ok(await vm.standsStill(STILL_MS), 'the guest ticked while frozen');
    host.child.kill('SIGKILL');
    assert.ok(await eventually(() => devices.every(isRunning), 2000), 'devices still stopped 2 s after the host was killed');
    assert.ok((await vm.waitForTick(frozenAt, 10_000)) > frozenAt);
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });

  it('default build, the cgroup freezer: the companion thaws it, the guest ticks again; exit 143, not 33', async () => {
    const vm = await startRealVm({ build: 'default' });
    const host = startHost(vm, tmpJournalDir(), 'cgroup');
    const frozen = await host.next('frozen', 15_000);
    assert.equal((frozen.pids as number[]).length, devicePids(vm.pid).length);
    const frozenAt = vm.tick();
    assert.ok(await vm.standsStill(STILL_MS), 'the guest ticked while frozen');
    host.child.kill('SIGKILL');
    assert.ok((await vm.waitForTick(frozenAt, 10_000)) > frozenAt, 'the guest did not tick after the host was killed');
    assert.doesNotMatch(vm.crosvmLog(), /exited: signo 17/);
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});
