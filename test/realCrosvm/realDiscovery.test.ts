// Discovery against real crosvm: the engine finds a real sandboxed VM and every one of its
// device processes, by the names the kernel really shows.
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { CrosvmGuard } from '../../src/guard';
import { startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);

describe('real crosvm: discovery', () => {
  it('finds the swap build, its swap monitor and every device; SIGTERM ends it with 143', async () => {
    const vm = await startRealVm({ build: 'swap', swapMonitor: true });
    const guard = new CrosvmGuard();
    try {
      const found = guard.listVms().find((each) => each.main.pid === vm.pid);
      assert.ok(found, `the engine did not list real crosvm ${vm.pid}`);
      const labels = found.devices.map((d) => d.label).sort();
      for (const label of ['swap monitor', 'pcivirtio-conso', 'pcivirtio-block', 'pcivirtio-pmem', 'pcivirtio-rng']) {
        assert.ok(labels.includes(label), `${label} missing from ${labels.join(', ')}`);
      }
      assert.equal(labels.filter((l) => l === 'serial').length, 4, labels.join(', '));
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});
