// Discovery against real crosvm: the engine finds a real sandboxed VM and every one of its
// device processes, by the names the kernel really shows, and the view names them as crosvm
// does (the kernel's 15-byte cut undone, the four `serial` processes numbered).
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { CrosvmGuard } from '../../src/guard';
import { processName } from '../../src/ui/viewModel';
import { taskStates } from '../fixture/fixtureVm';
import { startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);

const DEVICES = ['pcivirtio-conso', 'pcivirtio-block', 'pcivirtio-pmem', 'pcivirtio-rng', 'serial', 'serial', 'serial', 'serial'];

describe('real crosvm: discovery', () => {
  it('finds the swap build, its swap monitor and every device; names them as crosvm does; SIGTERM ends it with 143', async () => {
    const vm = await startRealVm({ build: 'swap', swapMonitor: true });
    const guard = new CrosvmGuard();
    try {
      const found = guard.listVms().find((each) => each.main.pid === vm.pid);
      assert.ok(found, `the engine did not list real crosvm ${vm.pid}`);
      const labels = found.devices.map((d) => d.label).sort();
      assert.deepEqual(labels, [...DEVICES, 'swap monitor'].sort());
      const monitor = found.devices.find((d) => d.label === 'swap monitor');
      assert.ok(monitor);
      assert.equal(monitor.threads, 3);
      assert.equal(taskStates(monitor.pid).size, 3);
      // Every device is a child of the main process (forked by its main thread).
      assert.ok(found.devices.every((d) => d.ppid === vm.pid));
      const swap = guard.swapBuildOf(found);
      assert.equal(swap.tolerant, true);
      assert.match(swap.evidence, new RegExp(`"swap monitor" process \\(pid ${monitor.pid}\\)`));

      const shown = found.devices.map((d) => processName(found, d).shown).sort();
      assert.deepEqual(shown, [
        'pcivirtio-block',
        'pcivirtio-console',
        'pcivirtio-pmem',
        'pcivirtio-rng',
        'serial #1',
        'serial #2',
        'serial #3',
        'serial #4',
        'swap monitor',
      ]);
      // Numbered by start time, then pid.
      const serials = found.devices
        .filter((d) => d.label === 'serial')
        .sort((a, b) => a.startTime - b.startTime || a.pid - b.pid)
        .map((d) => processName(found, d).shown);
      assert.deepEqual(serials, ['serial #1', 'serial #2', 'serial #3', 'serial #4']);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });

  it('finds the default build and its devices; its executable proves no swap feature; SIGTERM ends it with 143', async () => {
    const vm = await startRealVm({ build: 'default' });
    const guard = new CrosvmGuard();
    try {
      const found = guard.listVms().find((each) => each.main.pid === vm.pid);
      assert.ok(found, `the engine did not list real crosvm ${vm.pid}`);
      assert.deepEqual(found.devices.map((d) => d.label).sort(), [...DEVICES].sort());
      const swap = guard.swapBuildOf(found);
      assert.notEqual(swap.tolerant, true, swap.evidence);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });

  it('finds a copy named after its build (crosvm-swap) with the default processNames', async () => {
    const vm = await startRealVm({ build: 'swap', name: 'crosvm-swap' });
    const guard = new CrosvmGuard();
    try {
      const found = guard.listVms().find((each) => each.main.pid === vm.pid);
      assert.ok(found, 'a crosvm named crosvm-swap is invisible with the default processNames');
      assert.match(found.exe ?? '', /\/crosvm-swap$/);
      assert.equal(found.devices.length, DEVICES.length);
      // Exactly `crosvm`, as before: not found.
      assert.ok(!new CrosvmGuard({ processNames: ['crosvm'] }).listVms().some((each) => each.main.pid === vm.pid));
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});
