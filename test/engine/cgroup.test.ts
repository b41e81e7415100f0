// The cgroup freezer against real cgroups (v2 and the v1 freezer, both mounted on the CI
// machine) with the fixture build that dies when a device stops: frozen, it must survive.
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { CrosvmGuard } from '../../src/guard';
import { cgroupDirOf, CgroupVersion, FreezeCgroup, freezeInCgroups, freezerHierarchy, parseMountinfo, thawAndRestore } from '../../src/guard/cgroupFreezer';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, sleep } from './procState';

/**
 * A failed assertion must not leave frozen tasks behind: a cgroup-frozen task does not even
 * die of SIGKILL until thawed. Thaws and removes every freeze cgroup of this process.
 */
function thawLeftovers(): void {
  for (const version of [1, 2] as CgroupVersion[]) {
    const hierarchy = freezerHierarchy(version);
    if (!hierarchy) continue;
    const leftovers: FreezeCgroup[] = [];
    const walk = (dir: string, depth: number) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        const child = path.join(dir, entry.name);
        if (entry.name.startsWith(`crosvm-guard-${process.pid}-`)) leftovers.push({ version, dir: child, originalDir: dir });
        else if (depth < 3) walk(child, depth + 1);
      }
    };
    walk(hierarchy.mountPoint, 0);
    thawAndRestore(leftovers);
  }
}

after(async () => {
  thawLeftovers();
  await stopAllFixtureVms();
});
afterEach(async () => {
  thawLeftovers();
  await stopAllFixtureVms();
});

const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);
const cgroupFile = (pid: number) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1');
const counters = (vm: FixtureVm) => devicePids(vm).map((pid) => vm.deviceCounters().get(pid));

describe('parseMountinfo', () => {
  it('finds cgroup2 and the v1 freezer, unescaping paths, ignoring other controllers', () => {
    const text = [
      '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
      '37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer',
      '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '41 31 0:38 /user.slice /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n');
    assert.deepEqual(parseMountinfo(text), [
      { version: 1, mountPoint: '/sys/fs/cgroup/freezer', root: '/' },
      { version: 2, mountPoint: '/sys/fs/cgroup/uni fied', root: '/user.slice' },
    ]);
  });
});

for (const version of [2, 1] as CgroupVersion[]) {
  describe(`cgroup v${version} freezer`, () => {
    it('freezes a build without the swap feature, which survives; resume puts every process back', async () => {
      const hierarchy = freezerHierarchy(version);
      assert.ok(hierarchy, `no cgroup v${version} freezer is mounted`);
      const vm = await startFixtureVm({ build: 'default', devices: 3, deviceThreads: 2 });
      const before = new Map(devicePids(vm).map((pid) => [pid, cgroupFile(pid)]));
      const originals = new Set(devicePids(vm).map((pid) => cgroupDirOf(pid, hierarchy)));
      const guard = new CrosvmGuard();
      const report = await guard.freeze({ pid: vm.pid }, { method: 'cgroup', cgroupVersion: version });
      assert.equal(report.method, 'cgroup');
      assert.deepEqual(new Set(report.frozen.map((p) => p.pid)), new Set(devicePids(vm)));
      assert.ok(devicePids(vm).every((pid) => cgroupFile(pid) !== before.get(pid)), 'a device is still in its own cgroup');
      const still = counters(vm);
      await sleep(200);
      assert.deepEqual(counters(vm), still, 'guest memory changed while frozen');
      assert.ok(vm.isRunning(), 'the VM shut down: the freeze was noticed');

      await guard.resume();
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'not running after resume');
      for (const pid of devicePids(vm)) assert.equal(cgroupFile(pid), before.get(pid), `pid ${pid} is not back in its cgroup`);
      for (const dir of originals) {
        assert.ok(dir);
        assert.deepEqual(fs.readdirSync(dir).filter((name) => name.startsWith('crosvm-guard-')), [], `a freeze cgroup was left in ${dir}`);
      }
      await sleep(100);
      assert.ok(vm.isRunning(), 'the VM shut down after the thaw');
      assert.doesNotMatch(vm.stderr(), /exited: signo 17/);
    });

    it('rolls back when a target exits half-way: nothing stays frozen or moved, no cgroup is left', async () => {
      const hierarchy = freezerHierarchy(version);
      assert.ok(hierarchy);
      const vm = await startFixtureVm({ build: 'swap' });
      const inspected = new CrosvmGuard().inspectVm({ pid: vm.pid });
      const targets = inspected.devices.map((d) => ({ pid: d.pid, startTime: d.startTime, label: d.label, ppid: d.ppid }));
      // Last in line, a process that has exited and been reaped by the time its turn comes.
      const exited = spawnSync('true').pid as number;
      targets.push({ pid: exited, startTime: 1, label: 'exited-dev', ppid: vm.pid });
      const before = new Map(targets.map((t) => [t.pid, t.pid === exited ? '' : cgroupFile(t.pid)]));
      await assert.rejects(freezeInCgroups(targets, { hierarchy, stopTimeoutMs: 2000 }), (error: Error & { failures?: Array<{ pid: number; reason: string }> }) =>
        error.failures?.[0]?.pid === exited && /its cgroup could not be read/.test(error.failures[0].reason),
      );
      for (const t of targets) {
        if (t.pid !== exited) assert.equal(cgroupFile(t.pid), before.get(t.pid), `${t.label} was not moved back`);
      }
      const dir = cgroupDirOf(vm.pid, hierarchy);
      assert.ok(dir);
      assert.deepEqual(fs.readdirSync(dir).filter((name) => name.startsWith('crosvm-guard-')), []);
      const still = counters(vm);
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'a device stayed frozen');
    });
  });
}

describe('cgroup method through the guard', () => {
  it('is refused while a crash-safety net is set, which knows only signals', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    const guard = new CrosvmGuard();
    guard.setSafetyNet({ willStop: async () => undefined, didRelease: () => undefined });
    await assert.rejects(guard.freeze({ pid: vm.pid }, { method: 'cgroup' }), /not crash-safe yet/);
    assert.ok(vm.isRunning());
  });
});
