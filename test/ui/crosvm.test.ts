// The extension as a person uses it: palette commands, the status bar, the tree view, the
// welcome view, against a real fixture VM, in a real workbench in a real browser.
import * as assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { repoRoot } from '../runner/paths';
import { openWorkbench, TreeRow, waitFor, Workbench } from './workbench';

const STATUS = /crosvm/;
/** VMs of other test runs on the host stay out of these workbenches: only this name is crosvm here. */
const NAME = 'crosvm_ui';
const ONLY_OURS = { 'crosvmGuard.processNames': [NAME] };
let workbench: Workbench;
let vm: FixtureVm;
const devicePids = () => vm.devices.map((d) => d.pid);

async function statusText(): Promise<string> {
  return (await workbench.waitForStatusBarItem(STATUS)).text;
}

async function waitForStatus(pattern: RegExp, timeout = 10_000): Promise<string> {
  const read = async () => (await workbench.statusBarItems()).find((i) => STATUS.test(i.text))?.text ?? '';
  const text = await waitFor(read, (t) => pattern.test(t), timeout);
  assert.match(text, pattern, `status bar says "${text}"`);
  return text;
}

describe('crosvm Guard in the workbench', { timeout: 240_000 }, () => {
  before(async () => {
    vm = await startFixtureVm({ build: 'swap', devices: 3, executableName: NAME });
    workbench = await openWorkbench({ settings: { 'crosvmGuard.refreshIntervalMs': 500, ...ONLY_OURS } });
    await workbench.waitForActivation();
  });

  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('the status bar shows the running VM and its device count', async () => {
    assert.equal(
      await waitForStatus(new RegExp(`^\\$\\(vm-running\\) crosvm ${vm.devices.length}$`)),
      `$(vm-running) crosvm ${vm.devices.length}`,
    );
  });

  test('the tree view lists the VM and its devices in their parent/child shape', async () => {
    await workbench.openView('crosvm Guard');
    const rows = await waitFor(
      () => workbench.treeRows(),
      (all) => all.some((r) => r.label === 'mkfs process'),
    );
    const vmRow = rows.find((r) => r.level === 1);
    assert.ok(vmRow, JSON.stringify(rows));
    assert.equal(vmRow.label, `${NAME} run`);
    assert.equal(vmRow.description, `running · pid ${vm.pid}`);
    assert.equal(vmRow.icon, 'vm-running');
    const blk = rows.find((r) => r.label === 'pcivirtio-block');
    // crosvm's names as the tree shows them: the kernel's cut undone, identical siblings numbered.
    assert.ok(
      rows.some((r) => r.label === 'pcivirtio-console' && r.level === 2),
      JSON.stringify(rows),
    );
    assert.deepEqual(
      rows.filter((r) => r.label.startsWith('serial')).map((r) => r.label),
      ['serial #1', 'serial #2', 'serial #3', 'serial #4'],
    );
    const mkfs = rows.find((r) => r.label === 'mkfs process');
    assert.equal(blk?.level, 2);
    assert.equal(mkfs?.level, 3, 'the grandchild hangs below its device');
    assert.match(blk?.description ?? '', /^running · \d+$/);
    assert.ok(rows.some((r) => r.label === 'weird) dev'));
  });

  test('palette "Freeze crosvm devices" freezes the VM; status bar and tree say so', async () => {
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    assert.ok(await eventually(() => devicePids().every(isFullyStopped), 5000), 'devices are not stopped in /proc');
    assert.ok(isRunning(vm.pid));
    await waitForStatus(new RegExp(`^\\$\\(debug-pause\\) crosvm ${vm.devices.length} frozen \\d:\\d\\d$`));
    const rows = await waitFor(
      () => workbench.treeRows(),
      (all) => all.some((r) => r.label === 'virtio-net' && /frozen/.test(r.description)),
      5000,
    );
    const net = rows.find((r) => r.label === 'virtio-net');
    assert.match(net?.description ?? '', /frozen/);
    assert.equal(net?.icon, 'debug-pause');
    assert.equal(rows.find((r) => r.level === 1)?.icon, 'debug-pause');
    // The README's screenshot: the tree with a frozen VM and the status bar.
    const shot = await workbench.screenshot('frozen');
    copyFileSync(shot, join(repoRoot, 'test-results', 'screenshot-frozen.png'));
  });

  test('the elapsed time in the status bar ticks', async () => {
    const first = await statusText();
    await workbench.page.waitForTimeout(2100);
    assert.notEqual(await statusText(), first);
  });

  test('clicking the status bar item resumes', async () => {
    await workbench.clickStatusBarItem(/frozen/);
    assert.ok(await eventually(() => devicePids().every(isRunning), 5000), 'devices still stopped after the click');
    await waitForStatus(/^\$\(vm-running\) crosvm \d+$/);
  });

  test('"Resume crosvm devices" is offered only while something is frozen', async () => {
    await workbench.page.keyboard.press('F1');
    await workbench.page.keyboard.type('crosvm: ');
    // First a row that must be there: an empty count proves nothing of a list never drawn.
    const row = (title: string) => workbench.page.locator('.quick-input-list .monaco-list-row', { hasText: title });
    await row('Freeze crosvm devices').first().waitFor({ timeout: 10_000 });
    assert.equal(await row('Resume crosvm devices').count(), 0, 'resume is offered although nothing is frozen');
    await workbench.page.keyboard.press('Escape');
  });

  test('a build that dies on signals is frozen by the cgroup freezer, and the tree says so', async () => {
    await stopAllFixtureVms();
    vm = await startFixtureVm({ build: 'default', devices: 2, executableName: NAME });
    const cgroupsBefore = devicePids().map((pid) => readFileSync(`/proc/${pid}/cgroup`, 'latin1'));
    const deviceRow = async (pattern: RegExp) => {
      const matches = (r: TreeRow) => r.level === 2 && pattern.test(r.description);
      const rows = await waitFor(
        () => workbench.treeRows(),
        (all) => all.some(matches),
      );
      return { rows, found: rows.find(matches) };
    };
    const running = await deviceRow(new RegExp(`^running · ${vm.devices[0].pid}$`));
    assert.ok(running.found, JSON.stringify(running.rows));
    assert.match(running.rows.find((r) => r.level === 1)?.description ?? '', new RegExp(`^running · pid ${vm.pid}$`));
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    const frozen = await deviceRow(/frozen \(cgroup\)/);
    assert.ok(frozen.found, JSON.stringify(frozen.rows));
    assert.equal(frozen.found.icon, 'lock');
    // The VM row may be drawn a frame after its devices.
    const vmFrozen = new RegExp(`^frozen since \\d\\d:\\d\\d:\\d\\d · pid ${vm.pid}$`);
    let vmDescription = frozen.rows.find((r) => r.level === 1)?.description ?? '';
    for (let i = 0; !vmFrozen.test(vmDescription) && i < 20; i++) {
      await workbench.page.waitForTimeout(100);
      vmDescription = (await workbench.treeRows()).find((r) => r.level === 1)?.description ?? '';
    }
    assert.match(vmDescription, vmFrozen);
    assert.ok(vm.isRunning(), 'the VM noticed the freeze');
    await workbench.clickStatusBarItem(/frozen/);
    await waitForStatus(/^\$\(vm-running\) crosvm \d+$/);
    assert.deepEqual(
      devicePids().map((pid) => readFileSync(`/proc/${pid}/cgroup`, 'latin1')),
      cgroupsBefore,
      'a device is not back in its cgroup',
    );
    assert.ok(vm.isRunning());
  });
});

describe('crosvm Guard with no VM', { timeout: 240_000 }, () => {
  let empty: Workbench;
  after(() => empty?.close());

  test('the view shows its welcome content', async () => {
    empty = await openWorkbench({ settings: { 'crosvmGuard.processNames': ['no-such-crosvm'] } });
    await empty.waitForActivation();
    await empty.openView('crosvm Guard');
    const welcome = empty.page.locator('.welcome-view-content', { hasText: 'No crosvm VM is running on this host' });
    await welcome.first().waitFor({ timeout: 15_000 });
    assert.match(await welcome.first().innerText(), /executable or argv\[0\] is named/);
    await empty.screenshot('welcome');
  });
});

describe('crosvm Guard errors and dangerous actions', { timeout: 240_000 }, () => {
  let bench: Workbench;
  after(async () => {
    await bench?.close();
    await stopAllFixtureVms();
  });

  test('freezing a build without the swap feature explains why, offers a way out, and stops nothing', async () => {
    const unsafe = await startFixtureVm({ build: 'default', executableName: NAME });
    // With the default method `auto`, root would freeze it with the cgroup freezer instead.
    bench = await openWorkbench({ settings: { 'crosvmGuard.method': 'signal', ...ONLY_OURS } });
    await bench.waitForActivation();
    await bench.runCommand('crosvm: Freeze crosvm devices');
    let notification;
    for (let tries = 0; !notification && tries < 50; tries++) {
      notification = (await bench.notifications()).find((n) => /Not freezing crosvm VM/.test(n.message));
      if (!notification) await bench.page.waitForTimeout(200);
    }
    assert.ok(notification, 'no notification about the unsafe build');
    assert.equal(notification.severity, 'warning');
    assert.match(notification.message, /--features swap.*shut the VM down/);
    assert.deepEqual(notification.buttons, ['Open Settings', 'Show Log']);
    assert.ok(unsafe.isRunning());
    assert.ok(unsafe.devices.every((d) => isRunning(d.pid)));
  });

  test('"Kill crosvm VM…" asks first, then kills the whole tree', async () => {
    await stopAllFixtureVms();
    const doomed = await startFixtureVm({ build: 'swap', executableName: NAME });
    await bench.runCommand('crosvm: Refresh crosvm VMs');
    await bench.runCommand('crosvm: Kill crosvm VM…');
    const dialog = bench.page.locator('.monaco-dialog-box');
    await dialog.waitFor({ timeout: 10_000 });
    assert.match(await dialog.innerText(), new RegExp(`Kill crosvm VM ${doomed.pid}`));
    await dialog.locator('.monaco-button', { hasText: 'Kill VM' }).click();
    // Main and devices all get SIGKILL; main may notice a dead device first and exit itself.
    await doomed.exited;
    const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
    assert.ok(await eventually(() => doomed.devices.every((d) => !alive(d.pid)), 5000), 'a device of the killed VM still runs');
    // And it is said where the click was: a message in the status bar.
    const said = await waitFor(
      () => bench.statusBarItems(),
      (items) => items.some((i) => new RegExp(`Killed VM ${doomed.pid} `).test(i.text)),
      10_000,
      200,
    );
    assert.ok(
      said.some((i) => new RegExp(`Killed VM ${doomed.pid} `).test(i.text)),
      JSON.stringify(said.map((i) => i.text)),
    );
  });
});

describe('crosvm Guard in Restricted Mode', { timeout: 240_000 }, () => {
  test('an untrusted workspace cannot choose which processes are signalled', async () => {
    const vm2 = await startFixtureVm({ build: 'swap', executableName: NAME });
    // The workspace tries to make every node process (the extension host too) a "crosvm"; the
    // user's value names only this test's VM.
    const restricted = await openWorkbench({ trust: true, folder: hostileWorkspace(['node']), settings: ONLY_OURS });
    try {
      await restricted.waitForActivation();
      await restricted.page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).first().waitFor({ timeout: 15_000 });
      const status = await restricted.waitForStatusBarItem(/crosvm/);
      assert.equal(status.text, `$(vm-running) crosvm ${vm2.devices.length}`, 'the workspace value of processNames was used');
    } finally {
      await restricted.close();
      await stopAllFixtureVms();
    }
  });
});

/** A workspace folder whose .vscode/settings.json names other processes as crosvm. */
function hostileWorkspace(processNames: string[]): string {
  const folder = mkdtempSync(join(tmpdir(), 'crosvm-guard-hostile-'));
  mkdirSync(join(folder, '.vscode'));
  writeFileSync(
    join(folder, '.vscode', 'settings.json'),
    JSON.stringify({ 'crosvmGuard.processNames': processNames, 'crosvmGuard.assumeSwapBuild': ['/usr/bin/sleep', '/bin/sh'] }),
  );
  writeFileSync(join(folder, 'README.md'), 'A workspace that should not be trusted.\n');
  return folder;
}
