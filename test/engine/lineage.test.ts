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
import { cgroupDirOf, freezerHierarchy } from '../../src/guard/cgroupFreezer';
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
 * kills `ephemeral-dev` and gives its pid to an outsider. Returns that outsider once made.
 */
function reuseDevicePidAtListing(vm: FixtureVm, listing: number): () => ChildProcess {
  const device = vm.devices.find((d) => d.label === 'ephemeral-dev');
  assert.ok(device, 'the fixture has no ephemeral-dev');
  let walks = 0;
  let outsider: ChildProcess | undefined;
  walkHooks.afterListing = (root, pids) => {
    if (root !== vm.pid || ++walks !== listing) return;
    assert.ok(pids.includes(device.pid), `walk ${walks} did not list ephemeral-dev`);
    process.kill(device.pid, 'SIGKILL');
    assert.ok(waitSync(() => !fs.existsSync(`/proc/${device.pid}`), 3000), 'the VM did not reap ephemeral-dev');
    outsider = takePid(device.pid);
  };
  return () => {
    assert.ok(outsider, `pid ${device.pid} could not be handed to an outsider (walks: ${walks})`);
    return outsider;
  };
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
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, ephemeralDevice: true, devices: 2 });
    const outsider = reuseDevicePidAtListing(vm, 1);
    guard = new CrosvmGuard({ method: 'signal' });
    const report = await guard.freeze({ pid: vm.pid });
    const pid = outsider().pid as number;
    assertSkippedAsOutsider(report, pid);
    assert.ok(isRunning(pid), `the outsider is stopped: ${threadStates(pid).join('')}`);
    const others = vm.devices.filter((d) => d.label !== 'ephemeral-dev').map((d) => d.pid);
    assert.ok(others.every((p) => threadStates(p).every((s) => s === 'T')), 'a device of the VM runs');
  });

  it('cgroup freezer: the newcomer listed in the first walk is never moved', async () => {
    const vm = await startFixtureVm({ build: 'default', ephemeralDevice: true, devices: 2 });
    const outsider = reuseDevicePidAtListing(vm, 1);
    guard = new CrosvmGuard({ method: 'cgroup' });
    const report = await guard.freeze({ pid: vm.pid });
    const pid = outsider().pid as number;
    assertSkippedAsOutsider(report, pid);
    assert.doesNotMatch(fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1'), /crosvm-guard-/, 'the outsider was moved into a freeze cgroup');
  });

  it('cgroup freezer: a newcomer that a re-scan round lists is never moved either', async () => {
    const vm = await startFixtureVm({ build: 'default', ephemeralDevice: true, devices: 2 });
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy, 'no cgroup v2 freezer on this host');
    const before = cgroupDirOf(process.pid, hierarchy);
    // Walk 2 is the re-scan after round 1 froze every device, ephemeral-dev included.
    const outsider = reuseDevicePidAtListing(vm, 2);
    guard = new CrosvmGuard({ method: 'cgroup' });
    const report = await guard.freeze({ pid: vm.pid }, { cgroupVersion: 2 });
    const pid = outsider().pid as number;
    assert.ok(report.rounds >= 2, `no re-scan round: ${report.rounds}`);
    assertSkippedAsOutsider(report, pid);
    assert.equal(cgroupDirOf(pid, hierarchy), before, 'the outsider was moved into a freeze cgroup');
  });
});
