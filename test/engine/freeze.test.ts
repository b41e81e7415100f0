// The freezing engine against real crosvm-like process trees: real fork()s, real signals,
// real /proc. Every test starts its own fixture VM and stops it afterwards.
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { CrosvmGuard, FreezeError, GuardError, GuardEvent } from '../../src/guard';
import { continueProcesses, stopTree } from '../../src/guard/methods/signalMethod';
import { readSnapshot, selfAndAncestors } from '../../src/guard/processTree';
import { FixtureVm, startFixtureVm, stopAllFixtureVms, waitUntil } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning, sleep, threadStates } from './procState';

after(stopAllFixtureVms);
afterEach(stopAllFixtureVms);

/** Every pid of the VM's device tree as the fixture itself reported it. */
const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);

/** stopTree's options as the guard would pass them for a fresh freeze of the devices. */
const plainOptions = () => ({
  scope: 'devices' as const,
  isExcludedLabel: () => false,
  includeTraced: false,
  stopTimeoutMs: 2000,
  maxRounds: 5,
  childrenSource: 'children-files' as const,
  protectedPids: selfAndAncestors(),
  alreadyFrozen: new Map(),
  alreadySkipped: new Map(),
});
const labelOf = (vm: FixtureVm, label: string) => {
  const device = vm.devices.find((d) => d.label === label);
  assert.ok(device, `fixture has no device "${label}"`);
  return device;
};

/** Counters of every device; equal snapshots prove no device wrote guest memory. */
function counters(vm: FixtureVm, pids: number[]): bigint[] {
  const all = vm.deviceCounters();
  return pids.map((pid) => all.get(pid) ?? -1n);
}

async function assertCountersStill(vm: FixtureVm, pids: number[], ms = 150): Promise<void> {
  const before = counters(vm, pids);
  await sleep(ms);
  assert.deepEqual(counters(vm, pids), before, 'guest memory changed while frozen');
}

async function assertCountersMove(vm: FixtureVm, pids: number[]): Promise<void> {
  const before = counters(vm, pids);
  const moved = await eventually(() => counters(vm, pids).every((c, i) => c > before[i]), 2000);
  assert.ok(moved, 'some device did not write guest memory after resume');
}

describe('discovery', () => {
  it('finds a VM and every device: other-thread children, grandchildren, odd labels', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    const found = guard.listVms().find((v) => v.main.pid === vm.pid);
    assert.ok(found, 'the fixture VM was not found');
    assert.equal(guard.listVms().filter((v) => devicePids(vm).includes(v.main.pid)).length, 0, 'a device was listed as a VM');
    assert.deepEqual(new Set(found.devices.map((d) => d.pid)), new Set(devicePids(vm)));
    const labels = found.devices.map((d) => d.label);
    for (const label of ['pcivirtio-block', 'pcivirtio-conso', 'virtio-net', 'virtio snd', 'weird) dev', 'vhost-user fs', 'mkfs process']) {
      assert.ok(labels.includes(label), `missing ${label}`);
    }
    assert.equal(labels.filter((l) => l === 'serial').length, 4, 'four serial processes, as crosvm has');
    const blk = found.devices.find((d) => d.label === 'pcivirtio-block');
    assert.equal(found.devices.find((d) => d.label === 'mkfs process')?.ppid, blk?.pid, 'the grandchild hangs under its device');
    assert.equal(found.main.uid, process.getuid?.());
    assert.ok(found.main.startTime > 0 && found.main.threads >= 3);
    assert.equal(found.cmdline[1], 'run');
  });

  it('finds the same tree through the ppid fallback for kernels without children files', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const viaFiles = new CrosvmGuard({ childrenSource: 'children-files' }).inspectVm({ pid: vm.pid });
    const viaScan = new CrosvmGuard({ childrenSource: 'ppid-scan' }).inspectVm({ pid: vm.pid });
    assert.deepEqual(new Set(viaScan.devices.map((d) => d.pid)), new Set(viaFiles.devices.map((d) => d.pid)));
    assert.equal(viaScan.devices.length, vm.devices.length);
  });

  it('lists several VMs at once, each with its own devices', async () => {
    const [a, b] = await Promise.all([startFixtureVm({ build: 'swap' }), startFixtureVm({ build: 'default', devices: 3 })]);
    const vms = new CrosvmGuard().listVms();
    const foundA = vms.find((v) => v.main.pid === a.pid);
    const foundB = vms.find((v) => v.main.pid === b.pid);
    assert.equal(foundA?.devices.length, a.devices.length);
    assert.equal(foundB?.devices.length, b.devices.length);
  });

  it('refuses a pid that is not a crosvm VM, a device pid, and nonsense', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    await assert.rejects(guard.freeze({ pid: process.pid }), (e: GuardError) => e.code === 'not-crosvm' && /is not crosvm/.test(e.message));
    const device = labelOf(vm, 'virtio-net');
    await assert.rejects(
      guard.freeze({ pid: device.pid }),
      (e: GuardError) => e.code === 'not-crosvm' && new RegExp(`device process of crosvm VM ${vm.pid}`).test(e.message),
    );
    for (const pid of [1, 0, -4, 1.5, Number.NaN]) {
      await assert.rejects(guard.freeze({ pid }), (e: GuardError) => e.code === 'invalid-argument');
    }
    await assert.rejects(guard.freeze({ pid: vm.pid, startTime: 12 }), (e: GuardError) => e.code === 'vm-gone');
    assert.ok(devicePids(vm).every(isRunning), 'a refused freeze stopped something');
  });
});

describe('freeze and resume with signals', () => {
  it('stops every thread of every device, keeps guest memory still, and resumes it', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 6, deviceThreads: 3 });
    const guard = new CrosvmGuard();
    const report = await guard.freeze({ pid: vm.pid });
    assert.deepEqual(new Set(report.frozen.map((p) => p.pid)), new Set(devicePids(vm)));
    assert.ok(report.frozen.every((p) => p.label.length > 0 && p.startTime > 0));
    assert.equal(report.swapBuild.tolerant, true);
    assert.ok(report.elapsedMs > 0 && report.elapsedMs < 2000);
    for (const pid of devicePids(vm)) assert.ok(isFullyStopped(pid), `device ${pid} is not stopped: ${threadStates(pid)}`);
    assert.ok(isRunning(vm.pid), 'scope "devices" must leave the main process (vCPUs) running');
    await assertCountersStill(vm, devicePids(vm));

    const resumed = await guard.resume();
    assert.deepEqual(new Set(resumed.resumed.map((p) => p.pid)), new Set(devicePids(vm)));
    assert.ok(devicePids(vm).every(isRunning));
    await assertCountersMove(vm, devicePids(vm));
    assert.ok(vm.isRunning());
    assert.deepEqual((await guard.resume()).resumed, [], 'resume is idempotent');
  });

  it('freezes the whole VM, vCPU threads included, with scope "vm"', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    const report = await guard.freeze({ pid: vm.pid }, { scope: 'vm' });
    assert.ok(report.frozen.some((p) => p.pid === vm.pid));
    assert.ok(isFullyStopped(vm.pid));
    const vcpus = vm.vcpuCounters();
    await sleep(100);
    assert.deepEqual(vm.vcpuCounters(), vcpus, 'a vCPU wrote guest memory while frozen');
    await guard.resume();
    assert.ok(await eventually(() => vm.vcpuCounters().every((c, i) => c > vcpus[i])));
  });

  it('refuses signals on a build without the swap feature, and the VM lives on', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    const guard = new CrosvmGuard();
    assert.equal(guard.swapBuildOf(guard.inspectVm({ pid: vm.pid })).tolerant, false);
    await assert.rejects(
      guard.freeze({ pid: vm.pid }, { method: 'signal' }),
      (e: GuardError) => e.code === 'unsafe-build' && /--features swap/.test(e.message),
    );
    await sleep(200);
    assert.ok(vm.isRunning(), 'the VM left its run loop although nothing should have been signalled');
    assert.ok(devicePids(vm).every(isRunning));
    assert.deepEqual(await vm.stop(), { code: 0, signal: null }, `the VM did not end normally: ${vm.stderr()}`);
  });

  it('shows the hazard is real: forcing signals on that build crashes the VM (it dies at the resume)', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    const guard = new CrosvmGuard();
    await guard.freeze({ pid: vm.pid }, { allowUnsafeSignals: true, method: 'signal' });
    await waitUntil(() => vm.crashed(), 2000, 'the crash line');
    assert.match(vm.stderr(), /child (?:.+ \(pid \d+\)|pid \d+) exited: signo 17, status 19, code 5/);
    // Like real crosvm it hangs in teardown, alive in /proc, while the devices stay stopped...
    await sleep(200);
    assert.ok(isRunning(vm.pid), 'the main process should hang in teardown, alive');
    assert.ok(devicePids(vm).every(isFullyStopped));
    // ...and dies the moment they run again.
    await guard.resume();
    assert.deepEqual(await vm.exited, { code: 33, signal: null });
    assert.match(vm.stderr(), /^exiting with crash$/m);
  });

  it('trusts the user override and the swap monitor as evidence', async () => {
    const withMonitor = await startFixtureVm({ build: 'swap', swapMonitor: true });
    const guard = new CrosvmGuard();
    assert.match(guard.swapBuildOf(guard.inspectVm({ pid: withMonitor.pid })).evidence, /swap monitor" process \(pid \d+\)/);
    const plain = await startFixtureVm({ build: 'default' });
    const overridden = new CrosvmGuard({ assumeSwapBuild: [plain.binary] });
    assert.equal(overridden.swapBuildOf(overridden.inspectVm({ pid: plain.pid })).tolerant, true);
  });

  it('catches a device forked while freezing with the re-scan', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const main = readSnapshot(vm.pid);
    assert.ok(main);
    let hotplugged: Promise<unknown> | undefined;
    const result = await stopTree(main, undefined, {
      ...plainOptions(),
      maxRounds: 5,
      // After the first round is chosen and before its SIGSTOPs, the VM hot-plugs a device.
      beforeStop: () => {
        if (!hotplugged) {
          hotplugged = vm.hotplugNow();
          spawnSync('sleep', ['0.2']);
        }
      },
    });
    const device = (await hotplugged) as { pid: number };
    assert.ok(result.rounds >= 2, `expected a second round, got ${result.rounds}`);
    assert.ok(
      result.stopped.some((p) => p.pid === device.pid),
      'the hot-plugged device was not frozen',
    );
    assert.ok(isFullyStopped(device.pid));
    continueProcesses(result.stopped);
  });

  it('gives up after a bounded number of rounds when forks never stop, leaving nothing stopped', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const main = readSnapshot(vm.pid);
    assert.ok(main);
    const plugged: Promise<unknown>[] = [];
    await assert.rejects(
      stopTree(main, undefined, {
        ...plainOptions(),
        maxRounds: 3,
        beforeStop: () => {
          plugged.push(vm.hotplugNow());
          spawnSync('sleep', ['0.1']);
        },
      }),
      /stop failed/,
    );
    await Promise.all(plugged);
    const inspected = new CrosvmGuard().inspectVm({ pid: vm.pid });
    assert.ok(
      inspected.devices.every((d) => isRunning(d.pid)),
      'a device was left stopped',
    );
  });

  it('rolls back everything when the write-ahead fails in a later round', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const main = readSnapshot(vm.pid);
    assert.ok(main);
    let round = 0;
    await assert.rejects(
      stopTree(main, undefined, {
        ...plainOptions(),
        maxRounds: 5,
        beforeStop: async () => {
          round++;
          if (round === 1) {
            await vm.hotplugNow(); // forces a second round
            return;
          }
          throw new Error('journal disk full');
        },
      }),
      (error: Error & { failures?: Array<{ reason: string }> }) =>
        /could not be recorded for crash safety \(journal disk full\)/.test(error.failures?.[0]?.reason ?? ''),
    );
    assert.equal(round, 2);
    const inspected = new CrosvmGuard().inspectVm({ pid: vm.pid });
    assert.ok(
      inspected.devices.every((d) => isRunning(d.pid)),
      'a device stopped in round 1 was left stopped',
    );
  });

  it('freezing again stops only what is new', async () => {
    const vm = await startFixtureVm({ build: 'swap', hotplugMs: 400 });
    const guard = new CrosvmGuard();
    const first = await guard.freeze({ pid: vm.pid });
    const plugged = await vm.waitForHotplug();
    assert.ok(!first.frozen.some((p) => p.pid === plugged.pid));
    assert.ok(isRunning(plugged.pid));
    const second = await guard.freeze({ pid: vm.pid });
    assert.deepEqual(
      second.frozen.map((p) => p.pid),
      [plugged.pid],
    );
    assert.equal(guard.frozenVm(vm.pid)?.processes.length, first.frozen.length + 1);
    const resumed = await guard.resume({ pid: vm.pid });
    assert.equal(resumed.resumed.length, first.frozen.length + 1);
    assert.ok([...devicePids(vm), plugged.pid].every(isRunning));
  });

  it('leaves a process that was stopped before the freeze stopped after resume', async () => {
    const vm = await startFixtureVm({ build: 'swap', selfStop: true });
    const stopped = labelOf(vm, 'stopped-dev');
    assert.ok(await eventually(() => isFullyStopped(stopped.pid)));
    const guard = new CrosvmGuard();
    const report = await guard.freeze({ pid: vm.pid });
    const skip = report.skipped.find((s) => s.pid === stopped.pid);
    assert.equal(skip?.reason, 'already-stopped');
    assert.ok(!report.frozen.some((p) => p.pid === stopped.pid));
    await guard.resume();
    await sleep(50);
    assert.ok(isFullyStopped(stopped.pid), 'resume woke a process it had not stopped');
    assert.ok(
      devicePids(vm)
        .filter((p) => p !== stopped.pid)
        .every(isRunning),
    );
  });

  it('skips excluded labels', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard({ excludeLabels: ['virtio*', 'weird) dev'] });
    const report = await guard.freeze({ pid: vm.pid });
    const excluded = report.skipped
      .filter((s) => s.reason === 'excluded')
      .map((s) => s.label)
      .sort();
    assert.deepEqual(excluded, ['virtio snd', 'virtio-net', 'weird) dev']);
    assert.ok(isRunning(labelOf(vm, 'virtio-net').pid));
    assert.ok(isFullyStopped(labelOf(vm, 'pcivirtio-block').pid));
    await guard.resume();
  });

  it('skips a process under a debugger unless asked, and counts tracing stop as stopped', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const net = labelOf(vm, 'virtio-net');
    // strace attaches with ptrace and lets the process run: TracerPid becomes non-zero.
    const tracer = spawn('strace', ['-qq', '-e', 'trace=none', '-p', String(net.pid)], { stdio: 'ignore' });
    try {
      assert.ok(await eventually(() => (readSnapshot(net.pid)?.tracerPid ?? 0) !== 0), 'strace did not attach');
      const guard = new CrosvmGuard();
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.skipped.find((s) => s.pid === net.pid)?.reason, 'traced');
      assert.ok(!isFullyStopped(net.pid));
      await guard.resume();

      const opted = new CrosvmGuard({ includeTracedProcesses: true });
      const second = await opted.freeze({ pid: vm.pid });
      assert.ok(second.frozen.some((p) => p.pid === net.pid));
      // A tracee first shows "t" in signal-delivery-stop; the tracer then passes SIGSTOP on
      // and it enters the group stop, also "t". In between it runs for a moment.
      assert.ok(await eventually(() => isFullyStopped(net.pid), 2000));
      await opted.resume();
    } finally {
      tracer.kill('SIGKILL');
    }
  });

  it('fails all-or-nothing when a device cannot stop in time (state D), naming it', async () => {
    const vm = await startFixtureVm({ build: 'swap', stuckDevice: true });
    const stuck = labelOf(vm, 'stuck-dev');
    assert.ok(await eventually(() => threadStates(stuck.pid).includes('D')), 'the stuck device is not in state D');
    const guard = new CrosvmGuard({ stopTimeoutMs: 300 });
    await assert.rejects(guard.freeze({ pid: vm.pid }), (e: FreezeError) => {
      assert.ok(e instanceof FreezeError);
      assert.match(
        e.message,
        new RegExp(
          `stuck-dev \\(pid ${stuck.pid}\\): it did not stop within 300 ms: thread \\d+ is in uninterruptible sleep \\(state D\\)`,
        ),
      );
      assert.ok(e.resumedPids.length > 0);
      return true;
    });
    const inspected = guard.inspectVm({ pid: vm.pid });
    assert.ok(
      inspected.devices.every((d) => !isFullyStopped(d.pid)),
      'a device was left stopped after the failed freeze',
    );
    assert.equal(guard.frozenVms.length, 0);
  });

  it('never signals a pid whose start time changed (pid reuse)', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    const report = await guard.freeze({ pid: vm.pid });
    const victim = report.frozen[0];
    const { resumed, gone } = continueProcesses([{ ...victim, startTime: victim.startTime + 1 }]);
    assert.deepEqual(resumed, []);
    assert.equal(gone.length, 1);
    assert.ok(isFullyStopped(victim.pid), 'SIGCONT went to a pid with a different start time');
    await guard.resume();
    assert.ok(isRunning(victim.pid));
  });

  it('reports a device that exited while frozen as gone, not as an error', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    await guard.freeze({ pid: vm.pid });
    const victim = labelOf(vm, 'mkfs process');
    process.kill(victim.pid, 'SIGKILL');
    assert.ok(await eventually(() => threadStates(victim.pid).length === 0 || threadStates(victim.pid).every((s) => s === 'Z')));
    const report = await guard.resume();
    assert.ok(report.gone.some((p) => p.pid === victim.pid) || report.resumed.some((p) => p.pid === victim.pid));
  });

  it('serialises calls and reports every change of state to listeners', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const guard = new CrosvmGuard();
    const events: GuardEvent['type'][] = [];
    guard.onDidChangeState((e) => events.push(e.type));
    const calls = [guard.freeze({ pid: vm.pid }), guard.resume(), guard.freeze({ pid: vm.pid })];
    await Promise.all(calls);
    assert.deepEqual(events, ['freezing', 'frozen', 'resumed', 'freezing', 'frozen']);
    assert.ok(devicePids(vm).every(isFullyStopped));
    await guard.dispose();
    assert.ok(devicePids(vm).every(isRunning), 'dispose must resume everything');
  });

  it('survives 100 freeze/resume cycles and leaves nothing stopped', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 8, deviceThreads: 2 });
    const guard = new CrosvmGuard();
    for (let i = 0; i < 100; i++) {
      const report = await guard.freeze({ pid: vm.pid });
      assert.equal(report.frozen.length, vm.devices.length);
      await guard.resume();
    }
    assert.ok(devicePids(vm).every(isRunning));
    await assertCountersMove(vm, devicePids(vm));
    assert.ok(vm.isRunning());
  });
});

describe('processes the engine may not touch', () => {
  const runAs = (uid: number, script: string, args: string[]) =>
    new Promise<{ stdout: string; code: number | null }>((resolve) => {
      const child = spawn(process.execPath, [script, ...args], { uid, gid: uid, stdio: ['ignore', 'pipe', 'inherit'] });
      let stdout = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.on('close', (code) => resolve({ stdout, code }));
    });

  // Needs root (as on CI): the fixture must belong to root and the engine run as another uid.
  it('fails with a clear error and stops nothing when crosvm runs as root and we do not', async () => {
    assert.equal(process.getuid?.(), 0, 'run the engine tests as root: they start a root-owned VM and drop to uid 65534');
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true });
    const { stdout } = await runAs(65534, path.join(__dirname, 'freezeAsChild.js'), [String(vm.pid)]);
    const result = JSON.parse(stdout) as { code?: string; message?: string };
    assert.equal(result.code, 'freeze-failed');
    assert.match(result.message ?? '', /crosvm runs as root; this window runs as uid 65534 and may not signal it/);
    assert.match(result.message ?? '', /Nothing was stopped/);
    assert.ok(devicePids(vm).every(isRunning));
    assert.ok(vm.isRunning());
  });

  it('never stops itself or its ancestors, even inside a crosvm-named tree', async () => {
    // A Node process with argv[0] "crosvm" plays the VM; the engine runs as its child.
    const host = spawn(process.execPath, [path.join(__dirname, 'freezeAsChild.js'), '--spawn-self-test'], {
      argv0: 'crosvm',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    host.stdout.on('data', (chunk) => (stdout += chunk));
    await new Promise((resolve) => host.on('close', resolve));
    const report = JSON.parse(stdout) as { frozen: unknown[]; skipped: Array<{ reason: string }> };
    assert.deepEqual(report.frozen, []);
    assert.ok(
      report.skipped.some((s) => s.reason === 'self'),
      stdout,
    );
  });
});
