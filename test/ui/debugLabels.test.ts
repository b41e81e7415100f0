// The status bar during a debug session, in the folder `npm run demo` opens: at a stop that
// froze one VM and could not freeze the other it is red and says "1 of 2 VMs not frozen"; its
// tooltip lists one session for one F5 and names the VM that keeps running; after Continue
// the demo's debuggee runs long enough to be seen running; a click takes manual control and
// says so.
import * as assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { makeDemoWorkspace } from '../../scripts/demoWorkspace';
import { EXTENSION_ID, openWorkbench, waitFor, Workbench } from './workbench';

const NAME = 'crosvm_debug_labels';

let workbench: Workbench;
let alpha: FixtureVm;
let gamma: FixtureVm;

const statusItem = () => workbench.guardStatus();

const waitForStatus = (pattern: RegExp, timeout = 30_000) =>
  workbench.waitForGuardStatus(pattern, timeout, () => `--- crosvm Guard log ---\n${workbench.extensionLog()}`);

async function statusTooltip(): Promise<string> {
  const id = (await statusItem())?.id ?? '';
  await workbench.page.locator(`.part.statusbar [id="${id}"] .statusbar-item-label`).hover();
  const text = await workbench.hover().innerText({ timeout: 10_000 });
  await workbench.page.mouse.move(600, 300);
  await workbench.hover().waitFor({ state: 'hidden' });
  return text;
}

describe('the status bar during a debug session of the demo folder', { timeout: 400_000 }, () => {
  before(async () => {
    alpha = await startFixtureVm({ build: 'swap', executableName: NAME, devices: 1, disk: '/var/vms/alpha.img' });
    // Signals forced on a default build: a stop must leave it running, and say so.
    gamma = await startFixtureVm({ build: 'default', executableName: NAME, devices: 1, disk: '/var/vms/gamma.img' });
    workbench = await openWorkbench({
      folder: makeDemoWorkspace({ pid: alpha.pid, binary: alpha.binary }, undefined),
      settings: { 'crosvmGuard.processNames': [NAME], 'crosvmGuard.method': 'signal' },
    });
    await workbench.waitForActivation(EXTENSION_ID, 1, 120_000);
    await waitForStatus(/^\$\(vm-running\) crosvm \d+$/, 60_000);
  });

  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('at a stop: red "1 of 2 VMs not frozen", one session in the tooltip, the VM that keeps running named, one click action', async () => {
    await workbench.runCommand('Debug: Start Debugging');
    await waitForStatus(/^\$\(warning\) crosvm auto: 1 of 2 VMs not frozen$/, 60_000);
    assert.ok(await eventually(() => alpha.devices.every((d) => isFullyStopped(d.pid)), 5000), 'the VM that can be frozen is not');
    assert.ok(gamma.isRunning() && gamma.devices.every((d) => isRunning(d.pid)), 'the VM that cannot be frozen was touched');
    const tip = await statusTooltip();
    assert.equal(tip.split('at each stop').length - 1, 1, `one F5, one session:\n${tip}`);
    assert.match(tip, new RegExp(`freezes your VMs \\(${Math.min(alpha.pid, gamma.pid)}, ${Math.max(alpha.pid, gamma.pid)}\\)`), tip);
    assert.match(tip, new RegExp(`VM ${gamma.pid} cannot be frozen and keeps running`), tip);
    assert.doesNotMatch(tip, /debuggee is unknown|all of your VMs/, tip);
    assert.equal(tip.split(/Click/).length - 1, 1, `one sentence for what a click does:\n${tip}`);
  });

  test('after Continue the debuggee runs, and the VM with it, for seconds before it stops again', async () => {
    await workbench.runCommand('Debug: Continue');
    await waitForStatus(/^\$\(vm-running\) crosvm \d+ auto$/, 10_000);
    const seen: string[] = [];
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      seen.push((await statusItem())?.text ?? '');
      await workbench.page.waitForTimeout(100);
    }
    assert.ok(
      seen.every((t) => /^\$\(vm-running\) crosvm \d+ auto$/.test(t)),
      `stopped again within 3 s of Continue: ${[...new Set(seen)].join(' | ')}`,
    );
    assert.ok(alpha.devices.every((d) => isRunning(d.pid)));
  });

  test('a click at a stop resumes, takes manual control, and says so: a notice, "manual" in the status bar and its tooltip', async () => {
    await waitForStatus(/^\$\(warning\) crosvm auto: 1 of 2 VMs not frozen$/, 30_000);
    await workbench.clickStatusBarItem(/not frozen/);
    assert.ok(await eventually(() => alpha.devices.every((d) => isRunning(d.pid)), 5000), 'the click did not resume');
    await waitForStatus(/^\$\(vm-running\) crosvm \d+ manual$/, 10_000);
    const told = await waitFor(
      async () => (await workbench.notifications()).find((n) => /manual control/.test(n.message)),
      (n) => n !== undefined,
      10_000,
      200,
    );
    assert.match(told?.message ?? '', /no longer freezes VMs at its stops/);
    const tip = await statusTooltip();
    assert.match(tip, /manual control \(you clicked the status bar\)/, tip);
    assert.doesNotMatch(tip, /autoFreeze/, tip);
    await workbench.page.keyboard.press('Shift+F5');
    await waitForStatus(/^\$\(vm-running\) crosvm \d+$/, 20_000);
    // The session's end resumed nothing (the click had): the log does not say it resumed "0 processes".
    const log = await waitFor(
      () => workbench.extensionLog(),
      (text) => /Automatic freezing off/.test(text),
      5000,
      200,
    );
    assert.match(log, /Auto-freeze on DAP event "stopped"/);
    assert.doesNotMatch(log, /Auto-resume[^\n]*: 0 processes/, log);
    assert.doesNotMatch(log, /on the debug session ends/, log);
  });
});
