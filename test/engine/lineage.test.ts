// A pid reused between the walk that lists a VM's processes and the read of each one: the
// newcomer must never be frozen or moved, by either method, in any round. Made deterministic
// with the walk hook (processTree.walkHooks, which production code never sets): at that very
// moment a device that the VM survives losing is killed and reaped, and its pid is handed to a
// process outside the VM through /proc/sys/kernel/ns_last_pid (root only, as on CI).
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { CrosvmGuard, FreezeReport } from '../../src/guard';
import { cgroupDirOf, freezerHierarchy } from '../../src/guard/cgroupfs';
import { currentIdentity, walkHooks } from '../../src/guard/processTree';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { isRunning, threadStates } from './procState';

const outsiders: ChildProcess[] = [];
let guard: CrosvmGuard | undefined;

afterEach(async () => {
  walkHooks.afterListing = undefined;
  await guard?.resume();
  guard = undefined;
  for (const child of outsiders.splice(0)) child.kill('SIGKILL');
  await stopAllFixtureVms();
});

/** Sleeps without yielding: the walk hook runs inside a synchronous walk. */
function waitSync(predicate: () => boolean, timeoutMs: number): boolean {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) return false;
    Atomics.wait(cell, 0, 0, 1);
  }
  return true;
}

/** A `sleep` outside every VM, started with exactly `pid` (free now), or undefined if another process took it first. */
function takePid(pid: number): ChildProcess | undefined {
  for (let attempt = 0; attempt < 50; attempt++) {
    fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    if (child.pid === pid) {
      outsiders.push(child);
      return child;
    }
    child.kill('SIGKILL');
    if (fs.existsSync(`/proc/${pid}`)) return undefined;
  }
  return undefined;
}

/**
 * On the `listing`-th walk of `vm` (1: the walk of the freeze call, 2: its first re-scan),
 * kills `ephemeral-dev` and gives its pid to an outsider. Returns that outsider once made, or
 * undefined when another process on the host took the pid first.
 */
function reuseDevicePidAtListing(vm: FixtureVm, listing: number): () => ChildProcess | undefined {
  const device = vm.devices.find((d) => d.label === 'ephemeral-dev');
  assert.ok(device, 'the fixture has no ephemeral-dev');
  let walks = 0;
  let outsider: ChildProcess | undefined;
  walkHooks.afterListing = (root, pids) => {
    if (root !== vm.pid || ++walks !== listing) return;
    assert.ok(pids.includes(device.pid), `walk ${walks} did not list ephemeral-dev`);
    const deviceStart = currentIdentity(device.pid)?.startTime;
    process.kill(device.pid, 'SIGKILL');
    assert.ok(
      waitSync(() => !fs.existsSync(`/proc/${device.pid}`), 3000),
      'the VM did not reap ephemeral-dev',
    );
    // Start times count 10 ms clock ticks: a newcomer in the device's own tick would be the
    // same (pid, start time), indistinguishable by any reader of /proc. Let the tick pass.
    waitSync(() => false, 25);
    outsider = takePid(device.pid);
    assert.notEqual(outsider && currentIdentity(device.pid)?.startTime, deviceStart);
  };
  return () => outsider;
}

/**
 * Starts a VM and freezes it while its ephemeral-dev's pid is reused at the `listing`-th
 * walk. A busy host may take the freed pid first (nothing to test then): up to 3 attempts.
 */
async function freezeWithReusedPid(
  fixture: Parameters<typeof startFixtureVm>[0],
  listing: number,
  method: 'signal' | 'cgroup',
): Promise<{ vm: FixtureVm; report: FreezeReport; pid: number }> {
  for (let attempt = 1; ; attempt++) {
    const vm = await startFixtureVm({ ...fixture, ephemeralDevice: true });
    const outsider = reuseDevicePidAtListing(vm, listing);
    guard = new CrosvmGuard({ method });
    const report = await guard.freeze({ pid: vm.pid }, method === 'cgroup' ? { cgroupVersion: 2 } : {});
    const pid = outsider()?.pid;
    if (pid !== undefined) return { vm, report, pid };
    assert.ok(attempt < 3, 'three times another process took the freed pid first');
    await guard.resume();
    await stopAllFixtureVms();
  }
}

/** The outsider is in the report as skipped, never as frozen (by identity: in a re-scan round the device it replaced was frozen under the same pid). */
function assertSkippedAsOutsider(report: FreezeReport, pid: number): void {
  const startTime = currentIdentity(pid)?.startTime;
  const isOutsider = (p: { pid: number; startTime: number }) => p.pid === pid && p.startTime === startTime;
  assert.ok(!report.frozen.some(isOutsider), `the outsider ${pid} was frozen: ${JSON.stringify(report.frozen)}`);
  const skip = report.skipped.find(isOutsider);
  assert.equal(skip?.reason, 'left-vm', JSON.stringify(report.skipped));
  assert.match(skip.detail, new RegExp(`no longer a descendant of VM ${report.vm.pid} \\(its parent is pid ${process.pid}\\)`));
}

describe('a pid reused between listing and reading', () => {
  it('signals: the newcomer listed in the first walk is skipped, never stopped; the VM is frozen', async () => {
    const { vm, report, pid } = await freezeWithReusedPid({ build: 'swap', swapMonitor: true, devices: 2 }, 1, 'signal');
    assertSkippedAsOutsider(report, pid);
    assert.ok(isRunning(pid), `the outsider is stopped: ${threadStates(pid).join('')}`);
    const others = vm.devices.filter((d) => d.label !== 'ephemeral-dev').map((d) => d.pid);
    assert.ok(
      others.every((p) => threadStates(p).every((s) => s === 'T')),
      'a device of the VM runs',
    );
  });

  it('cgroup freezer: the newcomer listed in the first walk is never moved', async () => {
    const { report, pid } = await freezeWithReusedPid({ build: 'default', devices: 2 }, 1, 'cgroup');
    assertSkippedAsOutsider(report, pid);
    assert.doesNotMatch(fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1'), /crosvm-guard-/, 'the outsider was moved into a freeze cgroup');
  });

  it('cgroup freezer: a newcomer that a re-scan round lists is never moved either', async () => {
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy, 'no cgroup v2 freezer on this host');
    const before = cgroupDirOf(process.pid, hierarchy);
    // Walk 2 is the re-scan after round 1 froze every device, ephemeral-dev included.
    const { report, pid } = await freezeWithReusedPid({ build: 'default', devices: 2 }, 2, 'cgroup');
    assert.ok(report.rounds >= 2, `no re-scan round: ${report.rounds}`);
    assertSkippedAsOutsider(report, pid);
    assert.equal(cgroupDirOf(pid, hierarchy), before, 'the outsider was moved into a freeze cgroup');
  });
});

/**
 * Kills and reaps the VM's ephemeral-dev now and gives its pid to an outsider; undefined
 * when another process on the host took the pid first.
 */
async function reuseDevicePidNow(vm: FixtureVm): Promise<ChildProcess | undefined> {
  const device = vm.devices.find((d) => d.label === 'ephemeral-dev');
  assert.ok(device, 'the fixture has no ephemeral-dev');
  process.kill(device.pid, 'SIGKILL');
  assert.ok(
    waitSync(() => !fs.existsSync(`/proc/${device.pid}`), 3000),
    'the VM did not reap ephemeral-dev',
  );
  waitSync(() => false, 25); // a start time of its own (see reuseDevicePidAtListing)
  return takePid(device.pid);
}

// The engine keeps the /proc files of a VM open from one freeze or resume to the next (a
// debugger stepping): a file kept open for a process that has died must not describe, nor
// lead to a signal for, the process that took its pid.
describe('a pid reused between two calls, with /proc files kept open', () => {
  it('the next freeze, from the earlier walk, never stops the newcomer', async () => {
    for (let attempt = 1; ; attempt++) {
      const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, devices: 2, ephemeralDevice: true });
      guard = new CrosvmGuard();
      await guard.freeze({ pid: vm.pid });
      await guard.resume();
      const pid = (await reuseDevicePidNow(vm))?.pid;
      if (pid !== undefined) {
        const report = await guard.freeze({ pid: vm.pid });
        assert.ok(!report.frozen.some((p) => p.pid === pid), `the outsider was frozen: ${JSON.stringify(report.frozen)}`);
        assert.ok(isRunning(pid), `the outsider is stopped: ${threadStates(pid).join('')}`);
        assert.equal(report.frozen.length, vm.devices.length - 1, 'every other device is frozen');
        return;
      }
      assert.ok(attempt < 3, 'three times another process took the freed pid first');
      await guard.resume();
      await stopAllFixtureVms();
    }
  });

  it('the resume never continues the newcomer that took a frozen device pid', async () => {
    for (let attempt = 1; ; attempt++) {
      const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, devices: 2, ephemeralDevice: true });
      guard = new CrosvmGuard();
      await guard.freeze({ pid: vm.pid });
      const pid = (await reuseDevicePidNow(vm))?.pid; // SIGKILL ends a stopped process too
      if (pid !== undefined) {
        // Stopped by someone else: a SIGCONT meant for the device would wake it.
        process.kill(pid, 'SIGSTOP');
        assert.ok(
          waitSync(() => threadStates(pid).every((s) => s === 'T'), 3000),
          'the outsider did not stop',
        );
        const report = await guard.resume();
        assert.ok(!report.resumed.some((p) => p.pid === pid), `the outsider was resumed: ${JSON.stringify(report.resumed)}`);
        assert.ok(
          report.gone.some((p) => p.pid === pid),
          'the dead device is not reported gone',
        );
        waitSync(() => false, 50); // a SIGCONT would have taken effect by now
        assert.ok(
          threadStates(pid).every((s) => s === 'T'),
          'the outsider runs again',
        );
        process.kill(pid, 'SIGCONT');
        return;
      }
      assert.ok(attempt < 3, 'three times another process took the freed pid first');
      await guard.resume();
      await stopAllFixtureVms();
    }
  });
});

/** Waits until every thread of `pid` is stopped (T, or t under a tracer). */
const stoppedNow = (pid: number) => threadStates(pid).every((s) => s === 'T' || s === 't');

// Someone else's stop (the VM's owner typing kill -STOP, a debugger attaching) must survive our
// resume: SIGCONT would cancel it. The proof right before each SIGSTOP re-reads state and
// tracer; the resume leaves a process alone where it can tell that someone stopped or traced
// it since (a stop signal pending on a stopped process, a tracer now).
describe("a stop or a debugger that is someone else's", () => {
  it('signals: a device stopped by its owner between the walk and our signal is left alone, and stays stopped after resume', async () => {
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, devices: 2 });
    const device = vm.devices.find((d) => d.label === 'virtio-dev-0')?.pid as number;
    guard = new CrosvmGuard({ method: 'signal' });
    // The seam between the walk that chose the targets and the first SIGSTOP is the awaited
    // write-ahead (crash safety: the companion and the journal); the stop lands there. In the
    // extension it takes a pipe write and a file write, time enough for a kill from a terminal.
    let stopped = false;
    guard.setSafetyNet({
      willStop: async (_vm, { processes }) => {
        if (stopped || !processes.some((p) => p.pid === device)) return;
        stopped = true;
        process.kill(device, 'SIGSTOP');
        assert.ok(
          waitSync(() => stoppedNow(device), 3000),
          'the device did not stop',
        );
      },
      didRelease: () => undefined,
    });
    const report = await guard.freeze({ pid: vm.pid });
    assert.ok(stopped, 'the write-ahead never ran for the device');
    assert.ok(!report.frozen.some((p) => p.pid === device), `the device was taken as ours: ${JSON.stringify(report.frozen)}`);
    assert.equal(report.skipped.find((p) => p.pid === device)?.reason, 'already-stopped', JSON.stringify(report.skipped));
    await guard.resume();
    waitSync(() => false, 50); // a SIGCONT would have taken effect by now
    assert.ok(stoppedNow(device), `the owner's stop was undone: ${threadStates(device).join('')}`);
    const others = [vm.pid, ...vm.devices.map((d) => d.pid).filter((p) => p !== device)];
    assert.ok(others.every(isRunning), 'a process of the VM did not resume');
    process.kill(device, 'SIGCONT');
  });

  it('signals: a device stopped by its owner while frozen stays stopped after resume; the others run', async () => {
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, devices: 2 });
    const device = vm.devices.find((d) => d.label === 'virtio-dev-1')?.pid as number;
    guard = new CrosvmGuard({ method: 'signal' });
    await guard.freeze({ pid: vm.pid });
    process.kill(device, 'SIGSTOP');
    const report = await guard.resume();
    waitSync(() => false, 50);
    assert.ok(stoppedNow(device), `the owner's stop was undone: ${threadStates(device).join('')}`);
    const left = report.leftStopped?.find((p) => p.pid === device);
    assert.match(left?.why ?? '', /someone else stopped it while it was frozen/, JSON.stringify(report));
    assert.ok(!report.resumed.some((p) => p.pid === device));
    const others = vm.devices.map((d) => d.pid).filter((p) => p !== device);
    assert.ok(others.every(isRunning), 'another device did not resume');
    process.kill(device, 'SIGCONT');
  });

  it('signals: a debugger that attached while frozen keeps its process; no SIGCONT wakes it', async () => {
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, devices: 1 });
    const device = vm.devices.find((d) => d.label === 'virtio-dev-0')?.pid as number;
    guard = new CrosvmGuard({ method: 'signal' });
    await guard.freeze({ pid: vm.pid });
    // strace, a real ptrace debugger: it attaches to the stopped device and keeps it stopped.
    const tracer = spawn('strace', ['-p', String(device), '-o', '/dev/null'], { stdio: 'ignore' });
    outsiders.push(tracer);
    try {
      const tracerPid = () => Number(/^TracerPid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${device}/status`, 'latin1'))?.[1]);
      assert.ok(
        waitSync(() => tracerPid() === tracer.pid, 5000),
        'strace did not attach',
      );
      const report = await guard.resume();
      waitSync(() => false, 100);
      assert.match(report.leftStopped?.find((p) => p.pid === device)?.why ?? '', /a debugger \(pid \d+\) attached while it was frozen/);
      assert.ok(stoppedNow(device), `the device runs under the debugger: ${threadStates(device).join('')}`);
    } finally {
      tracer.kill('SIGKILL');
    }
    assert.ok(waitSync(() => stoppedNow(device), 2000));
    process.kill(device, 'SIGCONT');
  });

  it('cgroup freezer: a device stopped by its owner while frozen stays stopped after the thaw (which sends no SIGCONT)', async () => {
    // A swap build: a default one would shut down at the owner's stop, whoever froze it.
    const vm = await startFixtureVm({ build: 'swap', devices: 2 });
    const device = vm.devices.find((d) => d.label === 'virtio-dev-0')?.pid as number;
    guard = new CrosvmGuard({ method: 'cgroup' });
    await guard.freeze({ pid: vm.pid }, { cgroupVersion: 2 });
    process.kill(device, 'SIGSTOP');
    await guard.resume();
    assert.ok(
      waitSync(() => stoppedNow(device), 2000),
      `the owner's stop was undone: ${threadStates(device).join('')}`,
    );
    waitSync(() => false, 50);
    assert.ok(stoppedNow(device), `the owner's stop was undone: ${threadStates(device).join('')}`);
    process.kill(device, 'SIGCONT');
  });
});
