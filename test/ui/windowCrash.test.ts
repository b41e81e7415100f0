// A VM is never left frozen by a crash of VS Code: the extension host killed, the browser
// gone, code-server killed, both host and companion killed, and two windows on one VM.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { extensionHostPids } from '../runner/codeServer';
import { openWorkbench, waitFor, Workbench } from './workbench';

let journalDir: string;
let vm: FixtureVm;
const devices = () => vm.devices.map((d) => d.pid);
/** VMs of other test runs on the host stay out of these windows (and their pickers). */
const NAME = 'crosvm_crash';
const ONLY_OURS = { 'crosvmGuard.processNames': [NAME] };
const exists = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));

/** A workbench whose windows share this test's journal folder, with the VM frozen from the palette. */
async function frozenWorkbench(): Promise<Workbench> {
  const workbench = await openWorkbench({ env: { CROSVM_GUARD_JOURNAL_DIR: journalDir }, settings: ONLY_OURS });
  try {
    await workbench.waitForActivation();
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    assert.ok(await eventually(() => devices().every(isFullyStopped), 10_000), 'the palette did not freeze the VM');
    return workbench;
  } catch (error) {
    await workbench.close(); // a failed set-up must not leave code-server running
    throw error;
  }
}

function companionPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('dist/companion.js') && exists(pid);
      } catch {
        return false;
      }
    });
}

describe('never left frozen by a crash of VS Code', { timeout: 300_000 }, () => {
  before(async () => {
    journalDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-ui-journal-'));
    vm = await startFixtureVm({ build: 'swap', devices: 4, executableName: NAME });
  });
  after(async () => {
    await stopAllFixtureVms();
    fs.rmSync(journalDir, { recursive: true, force: true });
  });

  test('SIGKILL of the extension host: every device runs again within 1 s', async () => {
    const workbench = await frozenWorkbench();
    try {
      const [host] = extensionHostPids(workbench.server.process.pid as number);
      assert.ok(host, 'no extension host found');
      const killed = performance.now();
      process.kill(host, 'SIGKILL');
      assert.ok(await eventually(() => devices().every(isRunning), 1000), 'still frozen 1 s after the host died');
      console.log(`# resumed ${(performance.now() - killed).toFixed(0)} ms after SIGKILL of the extension host`);
      assert.ok(await eventually(() => companionPids().length === 0, 3000), 'a companion kept running');
    } finally {
      await workbench.close();
    }
  });

  test('the browser closed abruptly: the window stops answering and the VM is resumed', async () => {
    const workbench = await frozenWorkbench();
    try {
      await workbench.page.context().browser()?.close();
      // The extension host waits hours for the client to reconnect; the watchdog does not.
      assert.ok(await eventually(() => devices().every(isRunning), 10_000), 'still frozen 10 s after the browser closed');
    } finally {
      await workbench.close().catch(() => undefined);
    }
  });

  test('code-server killed with its whole process group: the companion resumes', async () => {
    const workbench = await frozenWorkbench();
    try {
      process.kill(-(workbench.server.process.pid as number), 'SIGKILL');
      assert.ok(await eventually(() => devices().every(isRunning), 2000), 'still frozen after code-server was killed');
    } finally {
      await workbench.close().catch(() => undefined);
    }
  });

  test('host and companion killed together: the next window resumes the leftovers and says so', async () => {
    const workbench = await frozenWorkbench();
    try {
      const [host] = extensionHostPids(workbench.server.process.pid as number);
      const [companion] = companionPids();
      assert.ok(host && companion);
      process.kill(companion, 'SIGSTOP'); // it cannot act on the host's death...
      process.kill(host, 'SIGKILL');
      await eventually(() => !exists(host), 3000);
      process.kill(companion, 'SIGKILL'); // ...and then dies too
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(devices().every(isFullyStopped), 'something resumed the VM although both were killed');
      await workbench.reload();
      await workbench.waitForActivation(undefined, 2);
      assert.ok(await eventually(() => devices().every(isRunning), 10_000), 'the new window did not resume the leftovers');
      let told;
      for (let i = 0; !told && i < 50; i++) {
        told = (await workbench.notifications()).find((n) => /resumed \d+ device process/.test(n.message));
        if (!told) await workbench.page.waitForTimeout(200);
      }
      assert.ok(told, 'the user was not told');
      assert.match(told.message, new RegExp(`VM ${vm.pid}`));
    } finally {
      await workbench.close();
    }
  });

  test('two windows: the second shows the VM frozen by another window and asks before taking over', async () => {
    const first = await frozenWorkbench();
    const second = await openWorkbench({ env: { CROSVM_GUARD_JOURNAL_DIR: journalDir }, settings: ONLY_OURS });
    try {
      await second.waitForActivation();
      await second.openView('crosvm Guard');
      let rows = await second.treeRows();
      for (let i = 0; !rows.some((r) => /frozen by another window/.test(r.description)) && i < 50; i++) {
        await second.page.waitForTimeout(200);
        rows = await second.treeRows();
      }
      assert.match(rows.find((r) => r.level === 1)?.description ?? '', /frozen by another window/);
      assert.match(rows.find((r) => r.label === 'virtio-net')?.description ?? '', /frozen by another window/);
      // The status bar does not look like running, and its label says what a click does.
      const status = await second.waitForStatusBarItem(/^\$\(debug-pause\) crosvm frozen by another window$/, 15_000);
      assert.match(status.ariaLabel, /Click to resume it here \(you are asked first\)/);
      assert.doesNotMatch(status.ariaLabel, /Click to freeze/);
      await second.runCommand('crosvm: Resume crosvm devices');
      const dialog = second.page.locator('.monaco-dialog-box');
      await dialog.waitFor({ timeout: 10_000 });
      assert.match(await dialog.innerText(), /frozen by another VS Code window/);
      assert.ok(devices().every(isFullyStopped), 'resumed before the user agreed');
      await dialog.locator('.monaco-button', { hasText: 'Resume VM' }).click();
      assert.ok(await eventually(() => devices().every(isRunning), 5000));
      // The first window notices and lets go.
      await first.waitForStatusBarItem(/^\$\(vm-running\) crosvm \d+$/, 15_000);
      // And says so: the freeze it held is lost.
      const notices = await waitFor(
        () => first.notifications(),
        (all) => all.some((n) => new RegExp(`crosvm VM ${vm.pid} .*runs again: it was resumed outside this window`).test(n.message)),
        10_000,
        200,
      );
      assert.ok(
        notices.some((n) => n.severity === 'warning' && /resumed outside this window/.test(n.message)),
        JSON.stringify(notices),
      );
    } finally {
      await second.close();
      await first.close();
    }
  });
});
