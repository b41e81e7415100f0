// The root companion against real crosvm: it acts only on a VM whose executable holds crosvm's
// own strings and on processes that run that same file (src/guard/crosvmExecutable.ts); real
// crosvm's sandboxed devices (own pid, user and mount namespaces) must pass both, by either
// method. Started here by root itself (its invoker is then root), as the sudo tests cannot
// start real VMs for another user.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { CROSVM_MARKERS, crosvmFile } from '../../src/guard/crosvmExecutable';
import { currentIdentity } from '../../src/guard/processTree';
import { jsonLines } from '../engine/hostHarness';
import { requireRealCrosvm, startRealVm, stopAllRealVms } from './realVm';

after(stopAllRealVms);

const companionScript = path.resolve(__dirname, '..', '..', '..', 'dist', 'companion.js');

describe('real crosvm: the root companion proves the executable', () => {
  it(`both real builds hold every marker (${CROSVM_MARKERS.join(', ')})`, () => {
    const assets = requireRealCrosvm();
    for (const build of ['swap', 'default'] as const) assert.ok('file' in crosvmFile(assets.binary(build)), build);
  });

  for (const [build, method] of [
    ['swap', 'signal'],
    ['default', 'cgroup'],
  ] as const) {
    it(`freezes a real ${build} build (${method}): every sandboxed device runs the main process's file`, async () => {
      const vm = await startRealVm({ build });
      const companion = spawn(process.execPath, [companionScript, '--elevated', '--idle-ms', '60000'], { stdio: ['pipe', 'pipe', 'pipe'] });
      try {
        const lines = jsonLines(companion);
        await lines.next((e) => e.event === 'ready');
        const startTime = currentIdentity(vm.pid)?.startTime;
        companion.stdin?.write(JSON.stringify({ op: 'freeze', id: 1, pid: vm.pid, startTime }) + '\n');
        const answer = await lines.next((e) => e.id === 1);
        assert.equal(answer.ok, true, JSON.stringify(answer));
        const report = answer.report as { method: string; frozen: unknown[] };
        assert.equal(report.method, method);
        assert.ok(report.frozen.length >= 8, JSON.stringify(report));
        assert.ok(await vm.standsStill(1000), 'the guest ran while frozen');
        companion.stdin?.write(JSON.stringify({ op: 'resume', id: 2 }) + '\n');
        assert.equal((await lines.next((e) => e.id === 2)).ok, true);
        await vm.waitForTick(vm.tick(), 10_000);
      } finally {
        companion.kill('SIGKILL');
      }
      assert.equal(await vm.stop(), 143, vm.crosvmLog().slice(-600));
    });
  }
});
