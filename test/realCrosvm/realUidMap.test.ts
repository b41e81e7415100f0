// A real root VM with a device that runs under a uid of its own, frozen through the real root
// companion, started with `sudo -n` by an unprivileged test user, as the extension starts it.
// crosvm's `--shared-dir …:uidmap=0 4242 1` jails its fs device in a user namespace that maps
// uid 4242 (neither root nor the invoker): the VM mapped that uid itself, so the device is the
// VM's (see mappedByVm, and the fixture's foreign-dev in elevated.test.ts, a setuid() in the
// VM's own namespace, which stays refused).
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { CrosvmGuard } from '../../src/guard';
import { jsonLines, spawnElevatedHost } from '../engine/hostHarness';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { readProcStat } from '../fixture/fixtureVm';
import { ensureTestUser } from '../runner/testUsers';
import { startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);

const MAPPED_UID = 4242;
const hosts: ChildProcess[] = [];
afterEach(() => {
  for (const host of hosts.splice(0)) host.kill('SIGKILL');
});

describe('real crosvm: a device under a uid the VM mapped, through the root companion', () => {
  it('freezes the uid-mapped pcivirtio-fs with the rest for a user who is neither root nor that uid; exit 143', async () => {
    const user = ensureTestUser('nopasswd');
    assert.notEqual(user.uid, MAPPED_UID);
    const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'real-crosvm-shared-'));
    fs.chmodSync(shared, 0o755);
    const map = `uidmap=0 ${MAPPED_UID} 1:gidmap=0 ${MAPPED_UID} 1`;
    const vm = await startRealVm({ build: 'swap', swapMonitor: true, extraArgs: ['--shared-dir', `${shared}:tag:type=fs:${map}`] });
    try {
      const found = new CrosvmGuard().inspectVm({ pid: vm.pid });
      const fsDevice = found.devices.find((d) => d.label === 'pcivirtio-fs');
      assert.ok(fsDevice, found.devices.map((d) => d.label).join(', '));
      assert.equal(fsDevice.uid, MAPPED_UID);
      assert.equal(found.main.uid, 0);
      assert.match(fs.readFileSync(`/proc/${fsDevice.pid}/uid_map`, 'utf8'), new RegExp(`^\\s*0\\s+${MAPPED_UID}\\s+1\\s*$`));

      const host = spawnElevatedHost(user, vm.pid, Number(readProcStat(vm.pid)?.startTime));
      hosts.push(host);
      host.stdin?.write('\n'); // passwordless sudo: no password
      const events = jsonLines(host);
      const elevated = await events.next((e) => e.event === 'elevated' || e.event === 'error', 20_000);
      assert.equal(elevated.event, 'elevated', JSON.stringify(events.all));
      const frozen = await events.next((e) => e.event === 'frozen' || e.event === 'error', 20_000);
      assert.equal(frozen.event, 'frozen', JSON.stringify(frozen));
      assert.equal(frozen.method, 'signal');
      assert.ok((frozen.pids as number[]).includes(fsDevice.pid), 'the uid-mapped device was left running');
      assert.deepEqual(new Set(frozen.pids as number[]), new Set(found.devices.map((d) => d.pid)));
      assert.ok(found.devices.every((d) => isFullyStopped(d.pid)));
      const frozenAt = vm.tick();
      assert.ok(await vm.standsStill(1500), 'the guest ticked while frozen');

      host.stdin?.write('resume\n');
      await events.next((e) => e.event === 'resumed', 10_000);
      assert.ok(await eventually(() => found.devices.every((d) => isRunning(d.pid)), 2000));
      assert.ok((await vm.waitForTick(frozenAt, 10_000)) > frozenAt);
      host.stdin?.write('end\n');
      await events.next((e) => e.event === 'ended', 10_000);
    } finally {
      fs.rmSync(shared, { recursive: true, force: true });
    }
    assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
  });
});
