// Nothing stays frozen when the process that froze it dies: the companion resumes at once,
// and what a crash of both host and companion leaves is resumed from the journal. Real
// processes, real SIGKILL, real /proc.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { journalFile, readJournals, recoverLeftovers, writeJournal } from '../../src/guard/journal';
import { currentIdentity } from '../../src/guard/processTree';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { startHost, tmpJournalDir } from './hostHarness';
import { eventually, isFullyStopped, isRunning, sleep } from './procState';

after(stopAllFixtureVms);
afterEach(stopAllFixtureVms);

const self = currentIdentity(process.pid) as { pid: number; startTime: number };
const exists = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));

const devices = (vm: FixtureVm) => vm.devices.map((d) => d.pid);

describe('crash safety', () => {
  it('resumes every device within 1 s of the host being SIGKILLed, and the companion exits', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 8 });
    const host = startHost(vm, tmpJournalDir());
    const frozen = await host.next('frozen');
    assert.ok(devices(vm).every(isFullyStopped));
    const companion = frozen.companionPid as number;
    assert.ok(companion > 0 && exists(companion));
    const killed = performance.now();
    host.child.kill('SIGKILL');
    assert.ok(await eventually(() => devices(vm).every(isRunning), 1000), 'devices still stopped 1 s after the host died');
    const ms = performance.now() - killed;
    assert.ok(ms < 1000, `resumed after ${ms} ms`);
    assert.ok(await eventually(() => !exists(companion), 2000), 'the companion kept running');
    assert.ok(!fs.existsSync(frozen.journal as string), 'the companion left the journal behind');
  });

  it('a killed companion is replaced, and the new one resumes when the host dies', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const host = startHost(vm, tmpJournalDir());
    const frozen = await host.next('frozen');
    process.kill(frozen.companionPid as number, 'SIGKILL');
    const replaced = await host.next('log');
    assert.match(String(replaced.message), /ended .* starting a new one/);
    const restarted = await host.next('log');
    assert.match(String(restarted.message), /Started the companion/);
    const second = restarted.companionPid as number;
    assert.ok(second !== frozen.companionPid && exists(second));
    await sleep(100);
    assert.ok(devices(vm).every(isFullyStopped), 'replacing the companion must not resume anything');
    host.child.kill('SIGKILL');
    assert.ok(await eventually(() => devices(vm).every(isRunning), 1000), 'the new companion did not resume');
  });

  it('when host and companion die together, the next window resumes the leftovers from the journal', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const dir = tmpJournalDir();
    const host = startHost(vm, dir);
    const frozen = await host.next('frozen');
    const companion = frozen.companionPid as number;
    // Stop the companion first so that it cannot act on the host's death, then kill both.
    process.kill(companion, 'SIGSTOP');
    host.child.kill('SIGKILL');
    await eventually(() => !exists(host.child.pid as number), 2000);
    process.kill(companion, 'SIGKILL');
    await sleep(200);
    assert.ok(devices(vm).every(isFullyStopped), 'nobody should have resumed yet');
    const recovery = recoverLeftovers(dir, ['crosvm'], self);
    assert.equal(recovery.vms.length, 1);
    assert.equal(recovery.vms[0].pid, vm.pid);
    assert.deepEqual(new Set(recovery.vms[0].resumed.map((p) => p.pid)), new Set(devices(vm)));
    assert.ok(devices(vm).every(isRunning));
    assert.deepEqual(readJournals(dir), [], 'the journal is removed once handled');
  });

  it('a journal leftover whose pid now belongs to another process, or that is not crosvm, is not touched', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const dir = tmpJournalDir();
    // A stopped process that is not crosvm, recorded with its true start time, and a stopped
    // crosvm device recorded with a wrong start time (its pid "reused").
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    const strangerId = await (async () => {
      await eventually(() => currentIdentity(stranger.pid as number) !== undefined);
      return currentIdentity(stranger.pid as number) as { pid: number; startTime: number };
    })();
    process.kill(strangerId.pid, 'SIGSTOP');
    const device = vm.devices[0];
    process.kill(device.pid, 'SIGSTOP');
    try {
      assert.ok(await eventually(() => isFullyStopped(strangerId.pid) && isFullyStopped(device.pid)));
      const deviceStart = (currentIdentity(device.pid) as { startTime: number }).startTime;
      writeJournal(journalFile(dir, { pid: 999_999, startTime: 1 }), {
        version: 1,
        owner: { pid: 999_999, startTime: 1 },
        companion: undefined,
        vms: [
          {
            pid: vm.pid,
            startTime: 0,
            name: 'hostile',
            since: 0,
            method: 'signal',
            cgroups: [],
            processes: [
              { ...strangerId, label: 'sleep' },
              { pid: device.pid, startTime: deviceStart + 7, label: device.label },
            ],
          },
        ],
      });
      const recovery = recoverLeftovers(dir, ['crosvm'], self);
      assert.deepEqual(recovery.vms, []);
      assert.equal(recovery.untouched.length, 2, JSON.stringify(recovery));
      assert.ok(isFullyStopped(strangerId.pid), 'SIGCONT went to a process that is not crosvm');
      assert.ok(isFullyStopped(device.pid), 'SIGCONT went to a pid whose start time differs');
    } finally {
      stranger.kill('SIGKILL');
      process.kill(device.pid, 'SIGCONT');
    }
  });

  it('hostile journals (garbage, huge, wrong types, symlinks) are removed without signalling or throwing', async () => {
    const dir = tmpJournalDir();
    const write = (name: string, text: string) => fs.writeFileSync(path.join(dir, name), text);
    write('window-1-1.json', '{ not json');
    write('window-2-2.json', JSON.stringify({ version: 1, owner: { pid: 'x', startTime: 1 }, vms: [] }));
    write(
      'window-3-3.json',
      JSON.stringify({
        version: 1,
        owner: { pid: 999_998, startTime: 1 },
        vms: [{ pid: 1, startTime: 0, name: 'init', since: 0, processes: [{ pid: 1, startTime: 0, label: 'init' }] }],
      }),
    );
    write(
      'window-4-4.json',
      JSON.stringify({
        version: 1,
        owner: { pid: 999_997, startTime: 1 },
        vms: [{ pid: 5, startTime: -1, name: 'x', since: 0, processes: [] }],
      }),
    );
    write('window-5-5.json', 'x'.repeat(300 * 1024));
    write('window-6-6.json', JSON.stringify({ version: 2, owner: { pid: 999_996, startTime: 1 }, vms: [] }));
    write('window-7-7.json', JSON.stringify({ version: 1, owner: { pid: 999_995, startTime: 1 }, vms: new Array(100).fill({}) }));
    fs.symlinkSync('/etc/passwd', path.join(dir, 'window-8-8.json'));
    write('unrelated.txt', 'left alone');
    const recovery = recoverLeftovers(dir, ['crosvm'], self);
    assert.deepEqual(recovery.vms, []);
    assert.equal(recovery.invalid.length, 8, JSON.stringify(recovery.invalid));
    assert.deepEqual(fs.readdirSync(dir), ['unrelated.txt']);
    assert.ok(fs.existsSync('/etc/passwd'), 'a symlinked journal must not take its target with it');
  });

  it('50 freeze/kill-host cycles leave no process stopped and no companion running', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 4 });
    const dir = tmpJournalDir();
    const companions: number[] = [];
    for (let cycle = 0; cycle < 50; cycle++) {
      const host = startHost(vm, dir);
      const frozen = await host.next('frozen');
      companions.push(frozen.companionPid as number);
      host.child.kill('SIGKILL');
      assert.ok(await eventually(() => devices(vm).every(isRunning), 1000), `cycle ${cycle}: still stopped 1 s after the kill`);
    }
    assert.ok(await eventually(() => companions.every((pid) => !exists(pid)), 3000), 'a companion kept running');
    assert.deepEqual(readJournals(dir), [], 'journals left behind');
    assert.ok(vm.isRunning());
  });
});
