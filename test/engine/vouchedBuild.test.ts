// crosvmGuard.assumeSwapBuild vouches for the executables a user names, and for nothing else
// (issue 21): a swap build the user vouches for and a default build beside it, frozen together
// as "All VMs" does, must leave the default build untouched. The old boolean vouched for every
// crosvm of the machine and made exactly that freeze shut the default build's VM down.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { CrosvmGuard, GuardError } from '../../src/guard';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning, sleep } from './procState';

afterEach(stopAllFixtureVms);

/**
 * A VM whose build tolerates stopped children but carries no vmm-swap markers, as a swap build
 * whose strings were stripped would: Node, started through a link named `crosvm`, with two
 * `sleep` devices. Node ignores a child's stop, as a swap build's run loop does.
 */
async function startUnmarkedSwapLikeVm(): Promise<{ pid: number; devices: number[]; stop(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-vouched-'));
  const link = path.join(dir, 'crosvm');
  fs.symlinkSync(process.execPath, link);
  const program = `
    const { spawn } = require('node:child_process');
    const devices = [spawn('sleep', ['60']), spawn('sleep', ['60'])];
    console.log(devices.map((d) => d.pid).join(' '));
    setInterval(() => {}, 1000);`;
  const child = spawn(link, ['-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  const devices = line.trim().split(' ').map(Number);
  return {
    pid: child.pid as number,
    devices,
    stop() {
      for (const pid of [...devices, child.pid as number]) {
        try {
          process.kill(pid, 'SIGCONT');
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('assumeSwapBuild vouches for the executables listed, and no other', () => {
  it('a vouched build and a default build frozen together: the default build survives', async () => {
    const vouched = await startUnmarkedSwapLikeVm();
    const defaultBuild = await startFixtureVm({ build: 'default' });
    // The executable the kernel names for the Node VM: the link resolved.
    const guard = new CrosvmGuard({ assumeSwapBuild: [fs.realpathSync(process.execPath)] });
    try {
      const verdict = (pid: number) => guard.swapBuildOf(guard.inspectVm({ pid }));
      assert.equal(verdict(vouched.pid).tolerant, true);
      assert.match(verdict(vouched.pid).evidence, /assumeSwapBuild vouches for its executable/);
      assert.equal(verdict(defaultBuild.pid).tolerant, false, verdict(defaultBuild.pid).evidence);

      // "All VMs" with signals, as a debug stop with `target: all` and `method: signal` does.
      const results = await Promise.allSettled([vouched.pid, defaultBuild.pid].map((pid) => guard.freeze({ pid }, { method: 'signal' })));
      assert.equal(results[0].status, 'fulfilled', String((results[0] as PromiseRejectedResult).reason));
      assert.ok(await eventually(() => vouched.devices.every(isFullyStopped)), 'the vouched VM was not frozen');
      assert.equal(results[1].status, 'rejected');
      assert.equal(((results[1] as PromiseRejectedResult).reason as GuardError).code, 'unsafe-build');
      assert.ok(
        defaultBuild.devices.every((d) => isRunning(d.pid)),
        'a device of the default build was stopped',
      );

      await guard.resume();
      assert.ok(vouched.devices.every(isRunning));
      // Survived, not merely alive: it logged no stopped child and keeps running.
      await sleep(300);
      assert.ok(defaultBuild.isRunning());
      assert.doesNotMatch(defaultBuild.stderr(), /exited: signo 17/);
    } finally {
      await guard.dispose();
      vouched.stop();
    }
  });

  it('a default build is vouched for only when its own executable is listed', async () => {
    const defaultBuild = await startFixtureVm({ build: 'default' });
    const other = new CrosvmGuard({ assumeSwapBuild: ['/usr/local/bin/crosvm'] });
    const own = new CrosvmGuard({ assumeSwapBuild: [defaultBuild.binary] });
    assert.equal(other.swapBuildOf(other.inspectVm({ pid: defaultBuild.pid })).tolerant, false);
    assert.equal(own.swapBuildOf(own.inspectVm({ pid: defaultBuild.pid })).tolerant, true);
  });
});
