// The cgroup freezer against real cgroups (v2 and the v1 freezer, both mounted on the CI
// machine) with the fixture build that dies when a device stops: frozen, it must survive.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { CrosvmGuard, ProcessIdentity } from '../../src/guard';
import {
  cgroupDirOf,
  CgroupVersion,
  FreezeCgroup,
  freezerHierarchy,
  parseMountinfo,
  releaseFromFreezeCgroup,
  thawAndRestore,
} from '../../src/guard/cgroupfs';
import { freezeInCgroups } from '../../src/guard/methods/cgroupMethod';
import { readJournals, recoverLeftovers } from '../../src/guard/journal';
import { currentIdentity } from '../../src/guard/processTree';
import { FixtureDevice, FixtureVm, pidsOfOwnFixtureVms, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { startHost, tmpJournalDir } from './hostHarness';
import { eventually, sleep } from './procState';

/** Freeze cgroups in `dir` made by this test process (other programs may freeze meanwhile). */
function ours(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.startsWith(`crosvm-guard-${process.pid}-`));
}

/** The pids a cgroup holds, as this pid namespace sees them (another namespace's are left out). */
function cgroupProcs(dir: string): number[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'latin1').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * A failed assertion must not leave frozen tasks behind: a cgroup-frozen task does not even
 * die of SIGKILL until thawed. Thaws and removes the freeze cgroups this test made: those
 * whose every process is of a fixture VM this test started (a host it killed may have made
 * them), or, empty, made by this process. The maker's pid in a cgroup's name means something
 * only in the pid namespace that made it, and a cgroup of another namespace looks empty from
 * here: so a freeze of someone else's, a developer's window beside the tests, is never touched.
 */
function thawLeftovers(): void {
  const own = pidsOfOwnFixtureVms();
  for (const version of [1, 2] as CgroupVersion[]) {
    const hierarchy = freezerHierarchy(version);
    if (!hierarchy) continue;
    const leftovers: FreezeCgroup[] = [];
    const walk = (dir: string, depth: number) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        const child = path.join(dir, entry.name);
        const maker = /^crosvm-guard-(\d+)-/.exec(entry.name)?.[1];
        const procs = maker ? cgroupProcs(child) : [];
        const made = procs.length > 0 ? procs.every((pid) => own.has(pid)) : Number(maker) === process.pid;
        if (maker && made) {
          leftovers.push({ version, dir: child, originalDir: dir });
        } else if (depth < 3) walk(child, depth + 1);
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
      assert.ok(
        devicePids(vm).every((pid) => cgroupFile(pid) !== before.get(pid)),
        'a device is still in its own cgroup',
      );
      const still = counters(vm);
      await sleep(200);
      assert.deepEqual(counters(vm), still, 'guest memory changed while frozen');
      assert.ok(vm.isRunning(), 'the VM shut down: the freeze was noticed');

      await guard.resume();
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'not running after resume');
      for (const pid of devicePids(vm)) assert.equal(cgroupFile(pid), before.get(pid), `pid ${pid} is not back in its cgroup`);
      for (const dir of originals) {
        assert.ok(dir);
        assert.deepEqual(ours(dir), [], `a freeze cgroup was left in ${dir}`);
      }
      await sleep(100);
      assert.ok(vm.isRunning(), 'the VM shut down after the thaw');
      assert.doesNotMatch(vm.stderr(), /exited: signo 17/);
      // Alive is not enough (crosvm hangs alive after a crash): it ran on and ends normally.
      assert.deepEqual(await vm.stop(), { code: 0, signal: null }, vm.stderr());
    });

    it('rolls back when a target exits half-way: nothing stays frozen or moved, no cgroup is left', async () => {
      const hierarchy = freezerHierarchy(version);
      assert.ok(hierarchy);
      const vm = await startFixtureVm({ build: 'swap' });
      const inspected = new CrosvmGuard().inspectVm({ pid: vm.pid });
      const targets = inspected.devices.map((d) => ({ pid: d.pid, startTime: d.startTime, label: d.label, ppid: d.ppid }));
      // Last in line, a process that dies just before its move, when every device is moved.
      const doomed = spawn('sleep', ['60']);
      const doomedStat = currentIdentity(doomed.pid as number);
      assert.ok(doomedStat);
      targets.push({ pid: doomedStat.pid, startTime: doomedStat.startTime, label: 'doomed-dev', ppid: process.pid });
      const before = new Map(targets.map((t) => [t.pid, cgroupFile(t.pid)]));
      const dies = (target: { pid: number }) => {
        if (target.pid !== doomedStat.pid) return;
        process.kill(target.pid, 'SIGKILL');
        // Synchronous here: wait until the kernel has made it a zombie.
        const until = Date.now() + 2000;
        while (Date.now() < until && !/\) Z /.test(fs.readFileSync(`/proc/${target.pid}/stat`, 'latin1'))) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        }
      };
      await assert.rejects(
        freezeInCgroups(targets, { hierarchy, stopTimeoutMs: 2000, beforeMove: dies }),
        (error: Error & { failures?: Array<{ pid: number; reason: string }> }) =>
          error.failures?.[0]?.pid === doomedStat.pid && /moving it into \S+ failed: it exited/.test(error.failures[0].reason),
      );
      for (const t of targets) {
        if (t.pid !== doomedStat.pid) assert.equal(cgroupFile(t.pid), before.get(t.pid), `${t.label} was not moved back`);
      }
      for (const pid of [vm.pid, doomedStat.pid]) {
        const dir = cgroupDirOf(vm.pid, hierarchy);
        assert.ok(dir, `no cgroup for ${pid}`);
        assert.deepEqual(ours(dir), []);
      }
      const still = counters(vm);
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'a device stayed frozen');
    });

    it('rolls back when something throws after the first move (a hook here), naming the step', async () => {
      const hierarchy = freezerHierarchy(version);
      assert.ok(hierarchy);
      const vm = await startFixtureVm({ build: 'swap' });
      const inspected = new CrosvmGuard().inspectVm({ pid: vm.pid });
      const targets = inspected.devices.map((d) => ({ pid: d.pid, startTime: d.startTime, label: d.label, ppid: d.ppid }));
      const before = new Map(targets.map((t) => [t.pid, cgroupFile(t.pid)]));
      await assert.rejects(
        freezeInCgroups(targets, {
          hierarchy,
          stopTimeoutMs: 2000,
          afterMove: () => {
            throw new Error('injected after the moves');
          },
        }),
        (error: Error & { failures?: Array<{ reason: string }> }) =>
          /freezing failed: injected after the moves/.test(error.failures?.[0]?.reason ?? ''),
      );
      for (const t of targets) assert.equal(cgroupFile(t.pid), before.get(t.pid), `${t.label} was not moved back`);
      const dir = cgroupDirOf(vm.pid, hierarchy);
      assert.ok(dir);
      assert.deepEqual(ours(dir), []);
    });

    it('fails and rolls back when devices keep appearing past the last re-scan round', async () => {
      const vm = await startFixtureVm({ build: 'default' });
      // One round: a device hot-plugged while the first round freezes (here: while its
      // write-ahead runs, before any cgroup exists) is never frozen, so the freeze must fail.
      const guard = new CrosvmGuard({ maxRounds: 1 });
      const released: number[] = [];
      guard.setSafetyNet({
        willStop: async () => void (await vm.hotplugNow()),
        didRelease: (processes) => void released.push(...processes.map((p) => p.pid)),
      });
      await assert.rejects(guard.freeze({ pid: vm.pid }, { method: 'cgroup', cgroupVersion: version }), (error: Error) =>
        /new processes kept being forked/.test(error.message),
      );
      assert.equal(guard.frozenVms.length, 0);
      assert.ok(released.length > 0, 'the safety net still holds what was rolled back');
      const hierarchy = freezerHierarchy(version);
      assert.ok(hierarchy);
      const dir = cgroupDirOf(vm.pid, hierarchy);
      assert.ok(dir);
      assert.deepEqual(ours(dir), []);
      const still = counters(vm);
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'a device stayed frozen');
      assert.ok(vm.isRunning());
    });

    it('keeps holding a freeze cgroup it could not remove, and removes it on the next resume', async () => {
      const vm = await startFixtureVm({ build: 'default' });
      const guard = new CrosvmGuard();
      const report = await guard.freeze({ pid: vm.pid }, { method: 'cgroup', cgroupVersion: version });
      const group = report.cgroups?.[0];
      assert.ok(group);
      // A child cgroup inside the freeze cgroup makes its rmdir fail with EBUSY, for real.
      const blocker = path.join(group.dir, 'blocker');
      fs.mkdirSync(blocker);
      const first = await guard.resume();
      assert.ok(
        first.problems?.some((p) => p.includes(`remove ${group.dir}`) && /EBUSY/.test(p)),
        JSON.stringify(first.problems),
      );
      assert.ok(fs.existsSync(group.dir));
      assert.equal(guard.frozenVms.length, 1, 'the engine forgot a freeze cgroup that is still there');
      assert.deepEqual(
        guard.frozenVms[0].cgroups?.map((g) => g.dir),
        [group.dir],
      );
      // The devices themselves were moved back and run.
      const still = counters(vm);
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'a device stayed frozen');
      fs.rmdirSync(blocker);
      const second = await guard.resume();
      assert.equal(second.problems, undefined);
      assert.equal(fs.existsSync(group.dir), false);
      assert.equal(guard.frozenVms.length, 0);
    });
  });
}

describe('a child forked while frozen', () => {
  it('is born in the freeze cgroup, frozen with it, and moved back on resume', async () => {
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy);
    const vm = await startFixtureVm({ build: 'default', devices: 1 });
    const original = cgroupDirOf(vm.pid, hierarchy);
    const main = new CrosvmGuard().inspectVm({ pid: vm.pid }).main;
    let child: FixtureDevice | undefined;
    // Only the main process is moved; it forks a device after the move, before the freeze.
    const groups = await freezeInCgroups([{ pid: main.pid, startTime: main.startTime, label: 'main', ppid: main.ppid }], {
      hierarchy,
      stopTimeoutMs: 2000,
      afterMove: async () => {
        child = await vm.hotplugNow();
      },
    });
    assert.ok(child);
    const born = child;
    assert.equal(cgroupDirOf(born.pid, hierarchy), groups[0].dir, 'the child was not born in the freeze cgroup');
    const still = vm.deviceCounters().get(born.pid);
    await sleep(200);
    assert.equal(vm.deviceCounters().get(born.pid), still, 'the child ran while its cgroup was frozen');
    assert.deepEqual(thawAndRestore(groups), []);
    assert.equal(cgroupDirOf(born.pid, hierarchy), original, 'the child was not moved back');
    assert.equal(cgroupDirOf(vm.pid, hierarchy), original);
    assert.ok(!fs.existsSync(groups[0].dir), 'the freeze cgroup was left behind');
    assert.ok(
      await eventually(() => (vm.deviceCounters().get(born.pid) ?? 0n) > (still ?? 0n), 3000),
      'the child did not run after the thaw',
    );
    assert.ok(vm.isRunning());
  });
});

describe('a process born in a freeze cgroup that the freeze must leave alone', () => {
  it('is moved back out, which thaws it, while the rest stays frozen', async () => {
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy);
    const vm = await startFixtureVm({ build: 'default', devices: 1 });
    const original = cgroupDirOf(vm.pid, hierarchy);
    const main = new CrosvmGuard().inspectVm({ pid: vm.pid }).main;
    let child: FixtureDevice | undefined;
    const groups = await freezeInCgroups([{ pid: main.pid, startTime: main.startTime, label: 'main', ppid: main.ppid }], {
      hierarchy,
      stopTimeoutMs: 2000,
      afterMove: async () => {
        child = await vm.hotplugNow();
      },
    });
    try {
      assert.ok(child);
      const born = child;
      assert.equal(cgroupDirOf(born.pid, hierarchy), groups[0].dir);
      // What the guard does for a skipped process (excluded, traced, the debuggee) found there.
      assert.equal(releaseFromFreezeCgroup(born.pid, groups, hierarchy), true);
      assert.equal(cgroupDirOf(born.pid, hierarchy), original, 'not moved back to where its group came from');
      const still = vm.deviceCounters().get(born.pid);
      assert.ok(await eventually(() => (vm.deviceCounters().get(born.pid) ?? 0n) > (still ?? 0n), 3000), 'it did not run once moved out');
      assert.equal(cgroupDirOf(vm.pid, hierarchy), groups[0].dir, 'the main process left the frozen group');
      assert.equal(releaseFromFreezeCgroup(vm.pid, [], hierarchy), false, 'released from a group that is not listed');
    } finally {
      assert.deepEqual(thawAndRestore(groups), []);
    }
    assert.ok(vm.isRunning());
  });
});

describe('crash of the host while frozen by cgroup', () => {
  for (const method of ['cgroup', 'cgroup-v1'] as const) {
    it(`${method}: the companion thaws, moves every process back and removes the freeze cgroups`, async () => {
      const hierarchy = freezerHierarchy(method === 'cgroup-v1' ? 1 : 2);
      assert.ok(hierarchy);
      const vm = await startFixtureVm({ build: 'default', devices: 4 });
      const before = new Map(devicePids(vm).map((pid) => [pid, cgroupFile(pid)]));
      const host = startHost(vm, tmpJournalDir(), method);
      const frozen = await host.next('frozen');
      const groups = frozen.cgroups as FreezeCgroup[];
      assert.ok(groups.length > 0 && groups.every((g) => fs.existsSync(g.dir)), JSON.stringify(frozen));
      const still = counters(vm);
      await sleep(150);
      assert.deepEqual(counters(vm), still, 'guest memory changed while frozen');
      const companion = frozen.companionPid as number;
      host.child.kill('SIGKILL');
      assert.ok(
        await eventually(() => groups.every((g) => !fs.existsSync(g.dir)), 1000),
        'freeze cgroups still there 1 s after the host died',
      );
      for (const pid of devicePids(vm)) assert.equal(cgroupFile(pid), before.get(pid), `pid ${pid} is not back in its cgroup`);
      assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'not running after the crash');
      assert.ok(await eventually(() => !fs.existsSync(`/proc/${companion}`), 2000), 'the companion kept running');
      assert.ok(!fs.existsSync(frozen.journal as string), 'the companion left the journal behind');
      assert.ok(vm.isRunning(), 'the VM noticed the freeze');
    });
  }

  it('a host killed before its companion has loaded: the companion still thaws what the host froze', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2 });
    const before = new Map(devicePids(vm).map((pid) => [pid, cgroupFile(pid)]));
    const host = startHost(vm, tmpJournalDir(), 'cgroup', true);
    const frozen = await host.next('frozen');
    const groups = frozen.cgroups as FreezeCgroup[];
    // The companion sleeps 500 ms before it loads: it wakes up orphaned, its parent is init.
    host.child.kill('SIGKILL');
    assert.ok(
      await eventually(() => groups.every((g) => !fs.existsSync(g.dir)), 3000),
      'freeze cgroups still there 3 s after the host died',
    );
    for (const pid of devicePids(vm)) assert.equal(cgroupFile(pid), before.get(pid), `pid ${pid} is not back in its cgroup`);
    assert.ok(vm.isRunning(), 'the VM noticed the freeze');
  });

  it('when host and companion die together, the next window thaws from the journal', async () => {
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy);
    const vm = await startFixtureVm({ build: 'default', devices: 2 });
    const before = new Map(devicePids(vm).map((pid) => [pid, cgroupFile(pid)]));
    const dir = tmpJournalDir();
    const host = startHost(vm, dir, 'cgroup');
    const frozen = await host.next('frozen');
    const groups = frozen.cgroups as FreezeCgroup[];
    const companion = frozen.companionPid as number;
    process.kill(companion, 'SIGSTOP');
    host.child.kill('SIGKILL');
    await eventually(() => !fs.existsSync(`/proc/${host.child.pid}`), 2000);
    process.kill(companion, 'SIGKILL');
    await sleep(200);
    assert.ok(
      groups.every((g) => fs.existsSync(g.dir)),
      'nobody should have thawed yet',
    );
    const recovery = recoverLeftovers(dir, ['crosvm'], currentIdentity(process.pid) as ProcessIdentity);
    assert.equal(recovery.vms.length, 1, JSON.stringify(recovery));
    assert.equal(recovery.vms[0].method, 'cgroup');
    assert.deepEqual(new Set(recovery.vms[0].resumed.map((p) => p.pid)), new Set(devicePids(vm)));
    assert.ok(
      groups.every((g) => !fs.existsSync(g.dir)),
      'a freeze cgroup was left behind',
    );
    for (const pid of devicePids(vm)) assert.equal(cgroupFile(pid), before.get(pid));
    assert.deepEqual(readJournals(dir), []);
  });

  it('a journal naming cgroups that are not ours is refused whole, and nothing is thawed or moved', async () => {
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy);
    const dir = tmpJournalDir();
    const hostile = [
      { version: 2, dir: hierarchy.mountPoint, originalDir: path.dirname(hierarchy.mountPoint) },
      { version: 2, dir: path.join(hierarchy.mountPoint, 'system.slice'), originalDir: hierarchy.mountPoint },
      { version: 2, dir: '/tmp/crosvm-guard-1-abcdef', originalDir: '/tmp' },
      { version: 2, dir: `${hierarchy.mountPoint}/x/../crosvm-guard-1-abcdef`, originalDir: hierarchy.mountPoint },
    ];
    hostile.forEach((group, n) =>
      fs.writeFileSync(
        path.join(dir, `window-${999_000 + n}-1.json`),
        JSON.stringify({
          version: 1,
          owner: { pid: 999_000 + n, startTime: 1 },
          vms: [{ pid: 2, startTime: 0, name: 'x', since: 0, method: 'cgroup', processes: [], cgroups: [group] }],
        }),
      ),
    );
    const recovery = recoverLeftovers(dir, ['crosvm'], currentIdentity(process.pid) as ProcessIdentity);
    assert.deepEqual(recovery.vms, []);
    assert.equal(recovery.invalid.length, hostile.length, JSON.stringify(recovery.invalid));
    assert.ok(
      recovery.invalid.every((line) => /invalid freeze cgroup/.test(line)),
      JSON.stringify(recovery.invalid),
    );
  });
});

/** Runs freezeAsChild.js as `uid`; returns its one JSON line. */
function runEngineAs(uid: number, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'freezeAsChild.js'), ...args], {
      uid,
      gid: uid,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.on('close', () => {
      try {
        resolve(JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        reject(new Error(`freezeAsChild printed no JSON: ${stdout}`));
      }
    });
  });
}

const NOBODY = 65534;
let delegations = 0;

/**
 * A cgroup v2 subtree delegated to `uid` the way systemd delegates one to a user session:
 * the directory and its cgroup.procs, cgroup.threads and cgroup.subtree_control belong to
 * the user. `dispose` moves everything back to the parent and removes it.
 */
function delegateCgroup(uid: number): { dir: string; adopt(pids: number[]): void; dispose(): void } {
  const hierarchy = freezerHierarchy(2);
  assert.ok(hierarchy, 'no cgroup v2 hierarchy is mounted');
  const dir = path.join(hierarchy.mountPoint, `guard-test-delegated-${process.pid}-${delegations++}`);
  fs.mkdirSync(dir);
  for (const file of ['', 'cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control']) fs.chownSync(path.join(dir, file), uid, uid);
  const pidsIn = (d: string) => fs.readFileSync(path.join(d, 'cgroup.procs'), 'latin1').split('\n').filter(Boolean);
  return {
    dir,
    adopt: (pids) => pids.forEach((pid) => fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(pid))),
    dispose() {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        if (entry.isDirectory()) thawAndRestore([{ version: 2, dir: path.join(dir, entry.name), originalDir: dir }]);
      }
      for (const pid of pidsIn(dir)) {
        try {
          fs.writeFileSync(path.join(hierarchy.mountPoint, 'cgroup.procs'), pid);
        } catch {
          // exited meanwhile
        }
      }
      fs.rmdirSync(dir);
    },
  };
}

describe('method auto', () => {
  let delegated: ReturnType<typeof delegateCgroup> | undefined;
  afterEach(async () => {
    await stopAllFixtureVms();
    delegated?.dispose();
    delegated = undefined;
  });

  it('as root: signals for a build that tolerates them, the cgroup freezer for one that does not', async () => {
    assert.equal(process.getuid?.(), 0, 'run the engine tests as root');
    const tolerant = await startFixtureVm({ build: 'swap' });
    const intolerant = await startFixtureVm({ build: 'default' });
    const guard = new CrosvmGuard();
    const bySignal = await guard.freeze({ pid: tolerant.pid });
    assert.equal(bySignal.method, 'signal');
    assert.match(bySignal.methodReason, /signals: its executable contains vmm-swap code/);
    const byCgroup = await guard.freeze({ pid: intolerant.pid });
    assert.equal(byCgroup.method, 'cgroup');
    assert.match(byCgroup.methodReason, /cgroup freezer v2 in .* \(root may write it\)/);
    await guard.resume();
    await sleep(100);
    assert.ok(tolerant.isRunning() && intolerant.isRunning());
    assert.deepEqual(await intolerant.stop(), { code: 0, signal: null }, intolerant.stderr());
  });

  it('as an unprivileged user: signals for a tolerant build of its own', async () => {
    const vm = await startFixtureVm({ build: 'swap', uid: NOBODY, gid: NOBODY });
    const result = await runEngineAs(NOBODY, ['--request', String(vm.pid), '{"method":"auto"}']);
    assert.equal(result.method, 'signal', JSON.stringify(result));
    assert.equal((result.frozen as unknown[]).length, vm.devices.length);
  });

  it('as an unprivileged user outside a delegated cgroup: refuses a build that dies on signals, naming both ways out, and touches nothing', async () => {
    const vm = await startFixtureVm({ build: 'default', uid: NOBODY, gid: NOBODY });
    const before = new Map(devicePids(vm).map((pid) => [pid, cgroupFile(pid)]));
    const result = await runEngineAs(NOBODY, ['--request', String(vm.pid), '{"method":"auto"}']);
    assert.equal(result.code, 'unsafe-build', JSON.stringify(result));
    assert.match(
      String(result.message),
      /shut the VM down; and the cgroup freezer, which crosvm does not notice, is not open here: uid 65534 may not write \/\S+/,
    );
    assert.match(String(result.message), /Two ways out: rebuild crosvm with `--features swap`.*or run crosvm in a cgroup delegated to you/);
    const explicit = await runEngineAs(NOBODY, ['--request', String(vm.pid), '{"method":"cgroup"}']);
    assert.equal(explicit.code, 'cgroup-unavailable', JSON.stringify(explicit));
    await sleep(150);
    assert.ok(vm.isRunning());
    for (const pid of devicePids(vm)) assert.equal(cgroupFile(pid), before.get(pid));
  });

  it('as an unprivileged user inside a delegated cgroup: the cgroup freezer, and the VM survives', async () => {
    const vm = await startFixtureVm({ build: 'default', uid: NOBODY, gid: NOBODY });
    delegated = delegateCgroup(NOBODY);
    delegated.adopt([vm.pid, ...devicePids(vm)]);
    const result = await runEngineAs(NOBODY, ['--request', String(vm.pid), '{"method":"auto"}']);
    assert.equal(result.method, 'cgroup', JSON.stringify(result));
    assert.match(String(result.methodReason), new RegExp(`in ${delegated.dir} \\(delegated to uid 65534\\)`));
    assert.equal((result.frozen as unknown[]).length, vm.devices.length);
    await sleep(150);
    assert.ok(vm.isRunning(), 'the VM noticed the freeze');
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy);
    for (const pid of devicePids(vm)) assert.equal(cgroupDirOf(pid, hierarchy), delegated.dir, `pid ${pid} was not moved back`);
    assert.deepEqual(
      fs.readdirSync(delegated.dir).filter((name) => name.startsWith('crosvm-guard-')),
      [],
    );
    assert.deepEqual(await vm.stop(), { code: 0, signal: null }, vm.stderr());
  });

  it('an unwritable cgroup half-way rolls back what was already moved', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2, uid: NOBODY, gid: NOBODY });
    delegated = delegateCgroup(NOBODY);
    const [first, second] = vm.devices;
    // The first device lives in the delegated cgroup, the second in root's: moving the
    // first works, creating a freeze cgroup for the second does not.
    delegated.adopt([first.pid]);
    const secondBefore = cgroupFile(second.pid);
    const inspected = new CrosvmGuard().inspectVm({ pid: vm.pid });
    const targets = [first, second].map((d) => {
      const p = inspected.devices.find((x) => x.pid === d.pid);
      assert.ok(p);
      return { pid: p.pid, startTime: p.startTime, label: p.label, ppid: p.ppid };
    });
    const result = await runEngineAs(NOBODY, ['--cgroup-targets', JSON.stringify(targets)]);
    const failures = result.failures as Array<{ pid: number; reason: string }> | undefined;
    assert.equal(failures?.[0]?.pid, second.pid, JSON.stringify(result));
    assert.match(failures[0].reason, /creating \/\S+\/crosvm-guard-\d+-[0-9a-f]{6} failed: EACCES/);
    const hierarchy = freezerHierarchy(2);
    assert.ok(hierarchy);
    assert.equal(cgroupDirOf(first.pid, hierarchy), delegated.dir, 'the first device was not moved back');
    assert.equal(cgroupFile(second.pid), secondBefore);
    assert.deepEqual(
      fs.readdirSync(delegated.dir).filter((name) => name.startsWith('crosvm-guard-')),
      [],
      'a freeze cgroup was left behind',
    );
    const still = counters(vm);
    assert.ok(await eventually(() => counters(vm).every((c, i) => (c ?? 0n) > (still[i] ?? 0n)), 3000), 'a device stayed frozen');
  });
});
