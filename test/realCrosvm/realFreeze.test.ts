// Freezing real crosvm, both builds, as root. The guest's TICK counter is the proof: it stands
// still exactly while a device process is stopped or frozen. Every VM is stopped at the end
// and its exit code checked: 143 after SIGTERM for a VM that survived, 33 for one that
// crashed ("exiting with crash", crosvm's --extended-status).
import { strict as assert } from 'node:assert';
import { after, describe, it } from 'node:test';
import { CrosvmGuard, GuardError } from '../../src/guard';
import { isFullyStopped, isRunning, sleep } from '../engine/procState';
import { waitUntil } from '../fixture/fixtureVm';
import { RealVm, startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);

/** Still for this long while frozen: about ten ticks of the guest. */
const STILL_MS = 2000;

// crosvm names the child by its label where it has one (`child pcivirtio-block (pid 691)`),
// else by its pid alone (`child pid 694`, a serial device): which device it sees first varies.
const CRASH_LINE = /child (?:\S+ \(pid \d+\)|pid \d+) exited: signo 17, status 19, code 5/;

async function assertStillThenTicks(vm: RealVm, resume: () => Promise<unknown>): Promise<void> {
  const frozenAt = vm.tick();
  assert.ok(await vm.standsStill(STILL_MS), `the guest ticked while frozen (from ${frozenAt} to ${vm.tick()})`);
  await resume();
  const next = await vm.waitForTick(frozenAt, 10_000);
  assert.ok(next > frozenAt);
}

describe('real crosvm: the swap build, with signals', () => {
  it('freezes every device, the swap monitor too, every thread in T; the guest stands still, then ticks; exit 143', async (t) => {
    const vm = await startRealVm({ build: 'swap', swapMonitor: true });
    const guard = new CrosvmGuard();
    try {
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.method, 'signal');
      assert.equal(report.swapBuild.tolerant, true);
      assert.match(report.methodReason, /swap monitor/);
      t.diagnostic(`signals: ${report.frozen.length} processes frozen in ${report.elapsedMs.toFixed(1)} ms, ${report.rounds} rounds`);
      const found = guard.inspectVm({ pid: vm.pid });
      assert.deepEqual(new Set(report.frozen.map((p) => p.pid)), new Set(found.devices.map((d) => d.pid)));
      assert.ok(
        report.frozen.some((p) => p.label === 'swap monitor'),
        'the swap monitor was not frozen',
      );
      for (const d of found.devices) assert.ok(isFullyStopped(d.pid), `${d.label} ${d.pid} is not stopped in every thread`);
      assert.ok(isRunning(vm.pid), 'the main process (vCPUs) must run');
      await assertStillThenTicks(vm, () => guard.resume());
      for (const d of found.devices) assert.ok(isRunning(d.pid), `${d.label} ${d.pid} still stopped`);
      assert.doesNotMatch(vm.crosvmLog(), CRASH_LINE);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });

  it('without a swap monitor the strings of its executable prove signals safe', async () => {
    const vm = await startRealVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    try {
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.method, 'signal');
      assert.match(report.swapBuild.evidence, /its executable contains vmm-swap code/);
      await assertStillThenTicks(vm, () => guard.resume());
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});

describe('real crosvm: excludeLabels', () => {
  it("matches crosvm's whole label where the kernel cut it; identical siblings by their name; exit 143", async () => {
    const vm = await startRealVm({ build: 'swap' });
    const guard = new CrosvmGuard({ excludeLabels: ['pcivirtio-console', 'serial'] });
    try {
      const report = await guard.freeze({ pid: vm.pid });
      const excluded = report.skipped.filter((s) => s.reason === 'excluded').map((s) => s.label);
      assert.deepEqual(excluded.sort(), ['pcivirtio-conso', 'serial', 'serial', 'serial', 'serial']);
      for (const s of report.skipped) assert.ok(isRunning(s.pid), `${s.label} ${s.pid} was stopped although excluded`);
      assert.deepEqual(report.frozen.map((p) => p.label).sort(), ['pcivirtio-block', 'pcivirtio-pmem', 'pcivirtio-rng']);
      for (const p of report.frozen) assert.ok(isFullyStopped(p.pid), `${p.label} ${p.pid} is not stopped`);
      await guard.resume();
      await vm.waitForTick(vm.tick(), 10_000);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});

describe('real crosvm: the default build', () => {
  it('refuses signals; auto takes the cgroup freezer as root; the guest stands still, ticks after; exit 143, not 33', async (t) => {
    const vm = await startRealVm({ build: 'default' });
    const guard = new CrosvmGuard();
    try {
      await assert.rejects(
        guard.freeze({ pid: vm.pid }, { method: 'signal' }),
        (e: GuardError) => e.code === 'unsafe-build' && /--features swap/.test(e.message),
      );
      const found = guard.inspectVm({ pid: vm.pid });
      assert.ok(
        found.devices.every((d) => isRunning(d.pid)),
        'a refused freeze stopped something',
      );
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.method, 'cgroup');
      assert.equal(report.frozen.length, found.devices.length);
      t.diagnostic(`cgroup freezer: ${report.frozen.length} processes frozen in ${report.elapsedMs.toFixed(1)} ms`);
      await assertStillThenTicks(vm, () => guard.resume());
      // Survived, not merely alive: it goes on ticking, logged no crash, and ends normally.
      await vm.waitForTick(vm.tick(), 10_000);
      assert.doesNotMatch(vm.crosvmLog(), CRASH_LINE);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });

  it('the hazard itself: forced signals make it log the crash line, hang while stopped and exit 33 at the resume', async () => {
    const vm = await startRealVm({ build: 'default' });
    const guard = new CrosvmGuard();
    try {
      const report = await guard.freeze({ pid: vm.pid }, { method: 'signal', allowUnsafeSignals: true });
      assert.equal(report.method, 'signal');
      await waitUntil(() => CRASH_LINE.test(vm.crosvmLog()), 20_000, 'crosvm to log the stopped child', 50).catch((error: Error) => {
        const states = report.frozen.map((p) => `${p.label} ${p.pid} ${isFullyStopped(p.pid) ? 'T' : 'not stopped'}`);
        throw new Error(`${error.message}; frozen: ${states.join(', ')}; crosvm's log ends: ${vm.crosvmLog().slice(-800)}`);
      });
      // It hangs in teardown: alive, while the devices stay stopped.
      await sleep(500);
      assert.equal(vm.exitCode(), undefined, 'crosvm exited while its devices were stopped');
      assert.ok(isRunning(vm.pid), 'the main process should hang in teardown, alive');
      await guard.resume();
      await waitUntil(() => vm.exitCode() !== undefined, 10_000, 'crosvm to exit after the resume', 50);
      assert.equal(vm.exitCode(), 33, vm.crosvmLog().slice(-600));
      assert.match(vm.crosvmLog(), /exiting with crash/);
    } finally {
      await guard.dispose();
    }
    assert.equal(await vm.stop(), 33);
  });
});
