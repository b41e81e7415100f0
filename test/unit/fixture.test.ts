// Self-check of the crosvm-like fixture (test/fixture): the process tree, the counters and
// the SIGCHLD behaviour of both builds that the engine tests and the benchmark rely on.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { isFullyStopped } from '../engine/procState';
import {
  buildFixture,
  FIXTURE_BUILT_IN_LABELS,
  FixtureVm,
  processState,
  readProcStat,
  startFixtureVm,
  stopAllFixtureVms,
  taskStates,
  waitUntil,
} from '../fixture/fixtureVm';

after(stopAllFixtureVms);

const MARKERS = ['launch vmm-swap monitor process', 'swap staging memory'];
// What real crosvm shows (shared/real-crosvm/README.md): the console's label cut to 15 bytes by
// the kernel, four identical `serial` processes; and the fixture's own parsing cases.
const BUILT_IN = FIXTURE_BUILT_IN_LABELS;

function device(vm: FixtureVm, label: string) {
  const found = vm.devices.find((d) => d.label === label);
  assert.ok(found, `no device "${label}" in ${JSON.stringify(vm.devices)}`);
  return found;
}

const comm = (pid: number, tid = pid) => fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trimEnd();
const childrenFile = (pid: number, tid: number) =>
  fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
const allStopped = (pid: number) => {
  const states = [...taskStates(pid).values()];
  return states.length > 0 && states.every((s) => s === 'T');
};

/** Waits until every counter of `slots` has grown past its value now. */
async function countersMove(vm: FixtureVm, slots: number[]): Promise<void> {
  const before = slots.map((slot) => vm.readSlot(slot));
  await waitUntil(() => slots.every((slot, i) => vm.readSlot(slot) > before[i]), 2000, `slots ${slots} to move`);
}

/** Start times of the whole tree, to prove later that none of these processes is left. */
function identities(vm: FixtureVm): Map<number, string> {
  const ids = new Map<number, string>();
  for (const pid of [vm.pid, ...vm.devices.map((d) => d.pid)]) {
    const stat = readProcStat(pid);
    assert.ok(stat, `process ${pid} is gone already`);
    ids.set(pid, stat.startTime);
  }
  return ids;
}

/** None of them exists any more, not even as a zombie (a reused pid has another start time). */
function assertAllGone(ids: Map<number, string>): void {
  for (const [pid, startTime] of ids) {
    const stat = readProcStat(pid);
    assert.ok(!stat || stat.startTime !== startTime, `process ${pid} is still there (state ${stat?.state})`);
  }
}

describe('crosvm fixture', () => {
  it('compiles the marker strings into the swap build only', () => {
    const binaries = buildFixture();
    const swap = fs.readFileSync(binaries.swap);
    const plain = fs.readFileSync(binaries.default);
    for (const marker of MARKERS) {
      assert.ok(swap.includes(marker), `swap build lacks "${marker}"`);
      assert.ok(!plain.includes(marker), `default build contains "${marker}"`);
    }
  });

  it('swap build: every device with its label, parent and threads; counters move; stop() cleans up', async () => {
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, selfStop: true, hotplugMs: 100 });
    assert.equal(vm.build, 'swap');
    assert.deepEqual(
      [...BUILT_IN],
      ['pcivirtio-block', 'mkfs process', 'pcivirtio-conso', 'virtio-net', 'virtio snd', 'weird) dev', 'vhost-user fs'].concat(
        Array(4).fill('serial'),
      ),
    );
    // stderr is another pipe than the ready line's: it may arrive a little later.
    await waitUntil(() => vm.stderr().includes('launch vmm-swap monitor process'), 1000, 'the swap log line');
    const labels = vm.devices.map((d) => d.label);
    assert.deepEqual(labels, [...BUILT_IN, 'stopped-dev', 'swap monitor']);

    for (const d of vm.devices) {
      assert.equal(comm(d.pid), d.label, `comm of ${d.pid}`);
      assert.equal(taskStates(d.pid).size, d.threads, `threads of ${d.label}`);
      assert.equal(d.ppid, d.label === 'mkfs process' ? device(vm, 'pcivirtio-block').pid : vm.pid, `ppid of ${d.label}`);
      assert.equal(readProcStat(d.pid)?.ppid, d.ppid, `ppid of ${d.label} in /proc`);
    }
    assert.equal(device(vm, 'pcivirtio-block').threads, 2);
    assert.equal(device(vm, 'swap monitor').threads, 3);
    assert.equal(new Set(vm.devices.map((d) => d.slot)).size, vm.devices.length, 'slots are distinct');

    // vhost-user fs is a child of the main process, but only vCPU 0's children file lists it.
    const vhost = device(vm, 'vhost-user fs');
    assert.deepEqual(
      vm.vcpuTids.map((tid) => comm(vm.pid, tid)),
      ['crosvm_vcpu0', 'crosvm_vcpu1'],
    );
    assert.ok(!childrenFile(vm.pid, vm.pid).includes(vhost.pid), 'the main thread lists vhost-user fs');
    assert.ok(childrenFile(vm.pid, vm.vcpuTids[0]).includes(vhost.pid), 'vCPU 0 does not list vhost-user fs');

    // The self-stopped device wrote once and is stopped; everything else writes.
    const stopped = device(vm, 'stopped-dev');
    assert.ok(allStopped(stopped.pid), `stopped-dev: ${[...taskStates(stopped.pid).values()]}`);
    assert.equal(vm.readSlot(stopped.slot), 1n);
    const writers = vm.devices.filter((d) => d !== stopped);
    await countersMove(vm, [0, 1, ...writers.map((d) => d.slot)]);
    assert.equal(vm.vcpuCounters().length, 2);
    assert.equal(vm.deviceCounters().get(stopped.pid), 1n);

    // The swap build ignores a device stopping and continuing.
    const net = device(vm, 'virtio-net');
    process.kill(net.pid, 'SIGSTOP');
    await waitUntil(() => allStopped(net.pid), 1000, 'virtio-net to stop');
    const frozen = vm.readSlot(net.slot);
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(vm.readSlot(net.slot), frozen, 'a stopped device wrote guest memory');
    process.kill(net.pid, 'SIGCONT');
    await countersMove(vm, [net.slot]);
    assert.ok(vm.isRunning());
    assert.doesNotMatch(vm.stderr(), /exited/);
    assert.ok(!vm.crashed());

    // Hot-plug: on a timer and on request, both forked by the main thread.
    const timed = await vm.waitForHotplug();
    const requested = await Promise.all([vm.hotplugNow(), vm.hotplugNow()]);
    assert.deepEqual(
      [timed, ...requested].map((d) => d.label),
      ['hotplug-dev', 'hotplug-dev-0', 'hotplug-dev-1'],
    );
    for (const d of [timed, ...requested]) {
      assert.equal(d.ppid, vm.pid);
      assert.ok(childrenFile(vm.pid, vm.pid).includes(d.pid));
      assert.ok(vm.devices.includes(d));
    }
    await countersMove(
      vm,
      requested.map((d) => d.slot),
    );

    assert.equal(fs.statSync(vm.memPath).mode & 0o777, 0o644);
    process.kill(device(vm, 'virtio snd').pid, 'SIGSTOP'); // stop() must cope with a frozen device
    const ids = identities(vm);
    assert.deepEqual(await vm.stop(), { code: 0, signal: null }, 'a healthy VM ends with code 0 on SIGTERM');
    await vm.stop(); // idempotent
    assert.ok(!vm.isRunning());
    assertAllGone(ids);
    assert.ok(!fs.existsSync(vm.memPath), 'the guest memory file is left');
  });

  it('default build: a stopped device crashes the VM as crosvm does: teardown hangs while it is stopped, exit 33 after', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    assert.deepEqual(
      vm.devices.map((d) => d.label),
      BUILT_IN,
    );
    await countersMove(
      vm,
      vm.devices.map((d) => d.slot),
    );
    const ids = identities(vm);
    // The child forked by a vCPU thread counts as well: SIGCHLD goes to the whole process.
    const vhost = device(vm, 'vhost-user fs');
    process.kill(vhost.pid, 'SIGSTOP');
    await waitUntil(() => vm.crashed(), 2000, 'the crash line');
    assert.match(vm.stderr(), new RegExp(`^child vhost-user fs \\(pid ${vhost.pid}\\) exited: signo 17, status 19, code 5$`, 'm'));
    // Left its run loop: the vCPUs stand still, the main process hangs alive (not a zombie)
    // and no device is killed while the stopped one stays stopped; SIGTERM changes nothing.
    process.kill(vm.pid, 'SIGTERM');
    const vcpus = vm.vcpuCounters();
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(vm.vcpuCounters(), vcpus, 'the vCPUs ran after the crash');
    assert.ok(!vm.isRunning(), 'a VM that left its run loop counts as not running');
    assert.match(processState(vm.pid) ?? 'gone', /^[SR]$/, 'the main process no longer hangs in teardown');
    for (const d of vm.devices) assert.ok(readProcStat(d.pid), `${d.label} was killed during teardown`);
    process.kill(vhost.pid, 'SIGCONT');
    assert.deepEqual(await vm.exited, { code: 33, signal: null });
    assert.match(vm.stderr(), /^exiting with crash$/m);
    assertAllGone(ids); // the main process killed and reaped every device on its way out
    await vm.stop();
  });

  it('default build: it logs the label crosvm knows, not the name the kernel cut', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    const cons = device(vm, 'pcivirtio-conso');
    process.kill(cons.pid, 'SIGSTOP');
    await waitUntil(() => vm.crashed(), 2000, 'the crash line');
    // As real crosvm logs it (shared/real-crosvm/README.md).
    assert.match(vm.stderr(), new RegExp(`^child pcivirtio-console \\(pid ${cons.pid}\\) exited: signo 17, status 19, code 5$`, 'm'));
    process.kill(cons.pid, 'SIGCONT');
    assert.equal((await vm.exited).code, 33);
  });

  it('default build: a serial device it names by its pid alone, as crosvm does', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    const serial = device(vm, 'serial');
    process.kill(serial.pid, 'SIGSTOP');
    await waitUntil(() => vm.crashed(), 2000, 'the crash line');
    // crosvm's pid_debug_label_map has no entry for its serial devices (seen on the real build).
    assert.match(vm.stderr(), new RegExp(`^child pid ${serial.pid} exited: signo 17, status 19, code 5$`, 'm'));
    process.kill(serial.pid, 'SIGCONT');
    assert.equal((await vm.exited).code, 33);
  });

  it('swap build: an exit coalesced with an ignored stop still crashes it (no event lost)', async () => {
    // SIGCHLD is a standard signal: the second one is dropped while the first is pending, so
    // the signalfd may only show the (ignored) stop; waitid must still find the exit.
    for (let round = 0; round < 3; round++) {
      const vm = await startFixtureVm({ build: 'swap' });
      const snd = device(vm, 'virtio snd');
      const net = device(vm, 'virtio-net');
      process.kill(net.pid, 'SIGSTOP');
      // Stopped before the exit comes (on a busy machine a signal takes a moment to land);
      // else the teardown finds nothing stopped to wait for, and ends the device first.
      await waitUntil(() => isFullyStopped(net.pid), 2000, 'virtio-net to stop');
      process.kill(snd.pid, 'SIGKILL');
      await waitUntil(() => vm.crashed(), 2000, 'the crash line');
      assert.match(vm.stderr(), new RegExp(`^child virtio snd \\(pid ${snd.pid}\\) exited: signo 17, status 9, code 2$`, 'm'));
      // Its teardown waits for the stopped device, as crosvm's does.
      process.kill(net.pid, 'SIGCONT');
      assert.equal((await vm.exited).code, 33);
      await vm.stop();
    }
  });

  it('both builds: a device that dies crashes the VM; the default build refuses --swap', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const net = device(vm, 'virtio-net');
    process.kill(net.pid, 'SIGKILL');
    assert.equal((await vm.exited).code, 33);
    assert.match(vm.stderr(), new RegExp(`child virtio-net \\(pid ${net.pid}\\) exited: signo 17, status 9, code 2`));
    await vm.stop();
    await assert.rejects(startFixtureVm({ build: 'default', swapMonitor: true }), /swap is not supported by this build/);
  });

  it('a stuck device sits in state D; stop() still ends it', async () => {
    const vm = await startFixtureVm({ build: 'swap', stuckDevice: true });
    const stuck = device(vm, 'stuck-dev');
    const child = device(vm, 'stuck-dev child');
    assert.equal(child.ppid, stuck.pid);
    await waitUntil(() => processState(stuck.pid) === 'D', 1000, 'stuck-dev to be in state D');
    process.kill(stuck.pid, 'SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(processState(stuck.pid), 'D', 'SIGSTOP took effect on the stuck device');
    await countersMove(vm, [child.slot]);
    const ids = identities(vm);
    await vm.stop();
    assertAllGone(ids);
  });

  it('starts 64 extra two-thread devices quickly', async () => {
    const started = Date.now();
    const vm = await startFixtureVm({ build: 'swap', devices: 64, deviceThreads: 2 });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2000, `took ${elapsed} ms`);
    assert.equal(vm.devices.length, BUILT_IN.length + 64);
    const extra = vm.devices.filter((d) => d.label.startsWith('virtio-dev-'));
    assert.deepEqual(
      extra.map((d) => d.label),
      Array.from({ length: 64 }, (_, k) => `virtio-dev-${k}`),
    );
    for (const d of extra) assert.equal(taskStates(d.pid).size, 2, `${d.label} threads`);
    await countersMove(
      vm,
      extra.map((d) => d.slot),
    );
    const ids = identities(vm);
    await vm.stop();
    assertAllGone(ids);
  });
});
