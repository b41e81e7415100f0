// Bad input and failure on real crosvm, where they can be provoked: a VM that exits in the
// middle of a freeze, and a VM whose executable was deleted or replaced after it started
// (run-vm.sh runs crosvm through a hard link under its run folder, which a test may remove or
// replace, as a rebuild replaces target/release/crosvm under a running VM).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { CrosvmGuard, GuardError } from '../../src/guard';
import { walkHooks } from '../../src/guard/processTree';
import { isFullyStopped, threadStates } from '../engine/procState';
import { readProcStat, waitUntil } from '../fixture/fixtureVm';
import { requireRealCrosvm, startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);
afterEach(() => {
  walkHooks.afterListing = undefined;
});

const STILL_MS = 1500;
const stoppedThreads = (pid: number) => threadStates(pid).some((s) => s === 'T' || s === 't');

describe('real crosvm: failure in the middle of a freeze', () => {
  it('a VM that exits mid-freeze: nothing is left stopped, its devices end, exit 143', async (t) => {
    const vm = await startRealVm({ build: 'swap', swapMonitor: true });
    const guard = new CrosvmGuard();
    const devices = guard.inspectVm({ pid: vm.pid }).devices.map((d) => ({ pid: d.pid, startTime: d.startTime }));
    const fresh = new CrosvmGuard(); // no earlier walk: its freeze walks, then re-scans after the stop
    let listings = 0;
    let stoppedWhenKilled = 0;
    walkHooks.afterListing = (root) => {
      // The re-scan after the stop: the devices are stopped, the freeze is not done yet.
      if (root !== vm.pid || ++listings !== 2) return;
      stoppedWhenKilled = devices.filter((d) => isFullyStopped(d.pid)).length;
      process.kill(vm.pid, 'SIGTERM');
    };
    try {
      const outcome = await fresh.freeze({ pid: vm.pid }).then(
        (report) => `frozen ${report.frozen.length}`,
        (error: GuardError) => `failed: ${error.message}`,
      );
      walkHooks.afterListing = undefined;
      t.diagnostic(`${stoppedWhenKilled} of ${devices.length} devices stopped when crosvm was killed; the freeze: ${outcome}`);
      assert.ok(listings >= 2, `the freeze never re-scanned (${outcome})`);
      assert.ok(stoppedWhenKilled > 0, `nothing was stopped yet when crosvm was killed (${outcome})`);
      // Whatever the freeze reported, its resume leaves nothing of the VM stopped.
      await fresh.resume();
      const still = devices.filter((d) => readProcStat(d.pid)?.startTime === String(d.startTime) && stoppedThreads(d.pid));
      assert.deepEqual(still, [], `left stopped after the freeze (${outcome})`);
      // With the main process gone, each device ends on its own once it runs (a zombie until
      // whatever adopted it reaps it: in the tests' pid namespace, Node, which does not).
      const ended = (d: { pid: number; startTime: number }) => {
        const stat = readProcStat(d.pid);
        return stat?.startTime !== String(d.startTime) || stat.state === 'Z';
      };
      await waitUntil(() => devices.every(ended), 10_000, 'the devices to end');
    } finally {
      walkHooks.afterListing = undefined;
      await fresh.dispose();
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});

describe('real crosvm: its executable deleted or replaced after the start', () => {
  it('deleted: still found; the running executable still proves signals safe; frozen and resumed; exit 143', async () => {
    const vm = await startRealVm({ build: 'swap' });
    fs.rmSync(path.join(vm.runDir, 'bin', 'crosvm'));
    const guard = new CrosvmGuard();
    try {
      const found = guard.listVms().find((each) => each.main.pid === vm.pid);
      assert.ok(found, 'a VM whose executable was deleted is not listed');
      assert.match(found.exe ?? '', / \(deleted\)$/);
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.method, 'signal');
      assert.match(report.swapBuild.evidence, /its executable contains vmm-swap code/);
      const frozenAt = vm.tick();
      assert.ok(await vm.standsStill(STILL_MS), 'the guest ticked while frozen');
      await guard.resume();
      assert.ok((await vm.waitForTick(frozenAt, 10_000)) > frozenAt);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });

  it('a default build replaced by the swap build: the running one is judged, signals refused, the cgroup freezer used; exit 143', async () => {
    const vm = await startRealVm({ build: 'default' });
    const link = path.join(vm.runDir, 'bin', 'crosvm');
    fs.rmSync(link);
    fs.linkSync(requireRealCrosvm().binary('swap'), link); // a file with the swap markers now has its name
    const guard = new CrosvmGuard();
    try {
      const found = guard.inspectVm({ pid: vm.pid });
      assert.notEqual(guard.swapBuildOf(found).tolerant, true, 'the replacement on disk was taken for the running build');
      await assert.rejects(guard.freeze({ pid: vm.pid }, { method: 'signal' }), (e: GuardError) => e.code === 'unsafe-build');
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.method, 'cgroup');
      const frozenAt = vm.tick();
      assert.ok(await vm.standsStill(STILL_MS), 'the guest ticked while frozen');
      await guard.resume();
      assert.ok((await vm.waitForTick(frozenAt, 10_000)) > frozenAt);
      assert.doesNotMatch(vm.crosvmLog(), /exited: signo 17/);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});
