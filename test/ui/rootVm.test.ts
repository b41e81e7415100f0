// A VM that runs as root, and VS Code run by a developer who is not root (code-server and the
// extension host as a real unprivileged user with sudo rights; the VM as root). The plain
// freeze explains itself and stops nothing; "Freeze with administrator rights…" asks for the
// sudo password in a password box, and the password ends up nowhere but in sudo; killing the
// extension host resumes the root VM; `never` turns elevation off. Needs root, as on CI.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { extensionHostPids } from '../runner/codeServer';
import { ensureTestUser, TestUser } from '../runner/testUsers';
import { debugWorkspace } from './debugWorkspace';
import { openWorkbench, waitFor, Workbench } from './workbench';

/** The root companions running (elevated mode, as root). */
const companionPids = () =>
  readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n) && uidOf(Number(n)) === 0 && /companion\.js\0--elevated/.test(safeRead(`/proc/${n}/cmdline`)))
    .map(Number);

const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(safeRead(`/proc/${pid}/status`))?.[1]);

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return ''; // exited meanwhile
  }
}

async function waitForNotification(workbench: Workbench, message: RegExp, timeout = 15_000) {
  const all = await waitFor(
    () => workbench.notifications(),
    (list) => list.some((n) => message.test(n.message)),
    timeout,
    200,
  );
  return all.find((n) => message.test(n.message));
}

/** Every file below `dirs` that holds `secret`, and every /proc/<pid>/{cmdline,environ} that does. */
function placesHolding(secret: string, dirs: string[]): string[] {
  const grep = spawnSync('grep', ['-rlF', '--', secret, ...dirs], { encoding: 'utf8' });
  const places = grep.stdout.split('\n').filter(Boolean);
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    for (const file of ['cmdline', 'environ']) {
      try {
        if (readFileSync(`/proc/${name}/${file}`, 'latin1').includes(secret)) places.push(`/proc/${name}/${file}`);
      } catch {
        // exited meanwhile
      }
    }
  }
  return places;
}

describe('a root VM from an unprivileged VS Code, with a sudo password', { timeout: 300_000 }, () => {
  let user: TestUser;
  let workbench: Workbench;
  let vm: FixtureVm;
  const devices = () => vm.devices.map((d) => d.pid);

  before(async () => {
    user = ensureTestUser('password');
    vm = await startFixtureVm({ build: 'swap', devices: 3 });
    workbench = await openWorkbench({ runAs: user, settings: { 'crosvmGuard.refreshIntervalMs': 500 } });
    await workbench.waitForActivation();
  });
  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('the extension host runs as the user; the tree marks the VM as needing admin and shows uids', async () => {
    const [host] = extensionHostPids(workbench.server.process.pid as number);
    assert.equal(uidOf(host), user.uid);
    assert.equal(uidOf(vm.pid), 0);
    await workbench.openView('crosvm Guard');
    let rows = await workbench.treeRows();
    for (let i = 0; !rows.some((r) => r.level === 2) && i < 50; i++) {
      await workbench.page.waitForTimeout(200);
      rows = await workbench.treeRows();
    }
    const vmRow = rows.find((r) => r.level === 1);
    assert.match(vmRow?.description ?? '', new RegExp(`^needs admin \\(uid 0\\) · pid ${vm.pid}$`), JSON.stringify(rows));
    assert.equal(vmRow?.icon, 'shield');
    assert.match(rows.find((r) => r.level === 2)?.description ?? '', /^running · \d+ · uid 0$/);
  });

  test('the plain freeze says why it cannot, offers administrator rights, and stops nothing', async () => {
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    const notification = await waitForNotification(workbench, /runs as root/);
    assert.ok(notification, 'no notification');
    assert.match(
      notification.message,
      new RegExp(`crosvm VM ${vm.pid} runs as root; this window runs as uid ${user.uid} and may not signal it`),
    );
    assert.deepEqual(notification.buttons, ['Freeze with administrator rights…', 'Open Settings', 'Show Log']);
    assert.ok(devices().every(isRunning));
  });

  test('"Freeze with administrator rights…" asks for the password in a password box, then freezes', async () => {
    await workbench.clickNotificationButton(/runs as root/, 'Freeze with administrator rights…');
    const box = workbench.page.locator('.quick-input-widget input[type="password"]');
    await box.waitFor({ timeout: 15_000 });
    assert.match(
      await workbench.page.locator('.quick-input-widget').innerText(),
      /Password for sudo \(user crosvm-guard-pw\)\. crosvm Guard starts a small helper as root/,
    );
    await box.fill(user.password as string);
    await workbench.page.keyboard.press('Enter');
    assert.ok(await eventually(() => devices().every(isFullyStopped), 15_000), 'the root VM was not frozen');
    assert.ok(isRunning(vm.pid));
    await workbench.waitForStatusBarItem(new RegExp(`crosvm ${vm.devices.length} frozen`));
  });

  test('the password is in no log, process list or file', () => {
    const places = placesHolding(user.password as string, [dirname(workbench.server.logsDir), user.home, '/tmp', '/var/log', '/var/tmp']);
    assert.deepEqual(places, []);
  });

  test('resume from the status bar', async () => {
    await workbench.clickStatusBarItem(/frozen/);
    assert.ok(await eventually(() => devices().every(isRunning), 5000), 'still frozen after the click');
  });

  test('killing the extension host resumes the root VM', async () => {
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    assert.ok(await eventually(() => devices().every(isFullyStopped), 15_000), 'the second freeze did not happen');
    const [host] = extensionHostPids(workbench.server.process.pid as number);
    process.kill(host, 'SIGKILL');
    assert.ok(await eventually(() => devices().every(isRunning), 2000), 'the root VM stayed frozen after the extension host died');
    assert.ok(vm.isRunning());
  });
});

describe('a root VM from an unprivileged VS Code, elevation "never"', { timeout: 300_000 }, () => {
  let workbench: Workbench;
  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('the freeze says elevation is off, offers no administrator rights, and stops nothing', async () => {
    const user = ensureTestUser('nopasswd');
    const vm = await startFixtureVm({ build: 'swap' });
    workbench = await openWorkbench({ runAs: user, settings: { 'crosvmGuard.elevation': 'never' } });
    await workbench.waitForActivation();
    await workbench.runCommand('crosvm: Refresh crosvm VMs');
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    const notification = await waitForNotification(workbench, /runs as root/);
    assert.ok(notification, 'no notification');
    assert.match(notification.message, /turned off \(setting crosvmGuard.elevation is "never"\)/);
    assert.deepEqual(notification.buttons, ['Open Settings', 'Show Log']);
    assert.ok(vm.devices.every((d) => isRunning(d.pid)));
  });
});

describe('your own VM whose build dies on signals, outside a delegated cgroup, elevation "sudo"', { timeout: 300_000 }, () => {
  let workbench: Workbench;
  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('is frozen by root with the cgroup freezer, without a prompt, and survives', async () => {
    const user = ensureTestUser('nopasswd');
    const vm = await startFixtureVm({ build: 'default', devices: 2, uid: user.uid, gid: user.gid });
    const devices = vm.devices.map((d) => d.pid);
    const cgroups = () => devices.map((pid) => readFileSync(`/proc/${pid}/cgroup`, 'latin1'));
    const before = cgroups();
    workbench = await openWorkbench({ runAs: user, settings: { 'crosvmGuard.elevation': 'sudo' } });
    await workbench.waitForActivation();
    await workbench.openView('crosvm Guard');
    let rows = await workbench.treeRows();
    for (let i = 0; !rows.some((r) => r.level === 1) && i < 50; i++) {
      await workbench.page.waitForTimeout(200);
      rows = await workbench.treeRows();
    }
    assert.match(rows.find((r) => r.level === 1)?.description ?? '', /^needs admin \(cgroup freezer\) · pid/, JSON.stringify(rows));
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    const counters = () => devices.map((pid) => vm.deviceCounters().get(pid) ?? 0n);
    assert.ok(
      await eventually(() => cgroups().every((c, i) => c !== before[i]), 15_000),
      'the devices were not moved into a freeze cgroup',
    );
    const still = counters();
    await workbench.page.waitForTimeout(200);
    assert.deepEqual(counters(), still, 'a device ran while frozen');
    assert.ok(vm.isRunning(), 'the VM noticed the freeze');
    await workbench.clickStatusBarItem(/frozen/);
    assert.ok(await eventually(() => counters().every((c, i) => c > still[i]), 5000), 'still frozen after resume');
    assert.deepEqual(cgroups(), before, 'a device is not back in its cgroup');
    // Survived, not merely alive (crosvm hangs alive after a crash): it ends normally.
    assert.deepEqual(await vm.stop(), { code: 0, signal: null }, vm.stderr());
  });
});

/**
 * A root VM, and a workbench run by the passwordless-sudo test user on a debug workspace (with
 * `folderSettings` in its .vscode/settings.json), debugging started: the VM's devices, the
 * workbench, and its log for failure messages.
 */
async function debugRootVmAsUser(settings: Record<string, unknown>, folderSettings?: Record<string, unknown>) {
  const user = ensureTestUser('nopasswd');
  const vm = await startFixtureVm({ build: 'swap', devices: 2 });
  const workbench = await openWorkbench({ runAs: user, folder: debugWorkspace(user, folderSettings), settings });
  await workbench.waitForActivation();
  await workbench.waitForStatusBarItem(/^\$\(vm-running\) crosvm \d+$/, 30_000);
  await workbench.runCommand('Debug: Start Debugging');
  const why = () => `\n--- crosvm Guard log ---\n${workbench.extensionLog()}`;
  return { user, vm, devices: vm.devices.map((d) => d.pid), workbench, why };
}

describe('a root VM at a debugger stop, from an unprivileged VS Code with passwordless sudo', { timeout: 300_000 }, () => {
  let workbench: Workbench;
  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('each stop freezes it through sudo -n with nothing asked, each continue resumes it', async () => {
    // elevation "ask" (the default): at a stop only what asks nothing may run. The debuggee is
    // in no VM, and target "auto" would then freeze only this user's VMs: "all" takes root's.
    const session = await debugRootVmAsUser({ 'crosvmGuard.debug.autoFreeze': 'onStop', 'crosvmGuard.debug.target': 'all' });
    const { vm, devices, why } = session;
    workbench = session.workbench;
    // The debuggee stops at its first `debugger;`: the root VM freezes through the root companion.
    assert.ok(await eventually(() => devices.every(isFullyStopped), 30_000), `not frozen at the first stop${why()}`);
    assert.equal(await workbench.page.locator('.quick-input-widget input[type="password"]').isVisible(), false, 'a password box at a stop');
    // Nothing refused, so nothing was told (the log says what a notification would).
    assert.doesNotMatch(workbench.extensionLog(), /no automatic freeze|Elevation failed/);
    await workbench.waitForStatusBarItem(/^\$\(debug-pause\) crosvm \d+ frozen \d:\d\d auto$/);
    assert.ok(isRunning(vm.pid), 'the main process was stopped');
    await workbench.page.keyboard.press('F5'); // Continue: resumed, then the second `debugger;` freezes it again
    assert.ok(await eventually(() => devices.every(isFullyStopped), 15_000), `not frozen at the second stop${why()}`);
    await workbench.page.keyboard.press('Shift+F5'); // Stop: everything runs
    assert.ok(await eventually(() => devices.every(isRunning), 15_000), `still frozen after the session ended${why()}`);
    assert.match(workbench.extensionLog(), /Starting the elevated companion with sudo -n \(nothing is asked at a debugger stop\)/);
    assert.ok(vm.isRunning());
  });
});

describe('debug settings from a workspace, from an unprivileged VS Code with passwordless sudo', { timeout: 300_000 }, () => {
  let workbench: Workbench;
  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('a stop never starts elevation for them: the root VM runs on, the status bar says so, no sudo runs', async () => {
    // The folder's own .vscode/settings.json turns automatic freezing on for every VM.
    const session = await debugRootVmAsUser({}, { 'crosvmGuard.debug.autoFreeze': 'onStop', 'crosvmGuard.debug.target': 'all' });
    const { user, vm, devices, why } = session;
    workbench = session.workbench;
    assert.ok(
      await eventually(() => /no automatic freeze of VM \d+ on DAP event "stopped"/.test(workbench.extensionLog()), 30_000),
      `the stop did not try${why()}`,
    );
    assert.match(workbench.extensionLog(), /automatic freezing was turned on by this workspace's settings: a workspace never starts them/);
    assert.doesNotMatch(workbench.extensionLog(), /Starting the elevated companion/);
    await workbench.waitForStatusBarItem(/not frozen/);
    assert.ok(devices.every(isRunning), 'a device of the root VM was frozen');
    const sudos = readdirSync('/proc').filter(
      (n) => /^\d+$/.test(n) && uidOf(Number(n)) === user.uid && /^sudo$/m.test(safeRead(`/proc/${n}/comm`)),
    );
    assert.deepEqual(sudos, [], 'sudo runs for the workspace');
    await workbench.page.keyboard.press('Shift+F5');
    assert.ok(vm.isRunning());
  });

  test('nor uses a root companion the user started: a VM it holds and another root VM both stay as the user left them', async () => {
    await workbench?.close();
    await stopAllFixtureVms(); // the one VM below is the only one: the freeze command asks no pick
    const user = ensureTestUser('nopasswd');
    const settings = { 'crosvmGuard.debug.autoFreeze': 'onStop', 'crosvmGuard.debug.target': 'all' };
    const held = await startFixtureVm({ build: 'swap', devices: 2 });
    workbench = await openWorkbench({ runAs: user, folder: debugWorkspace(user, settings), settings: {} });
    await workbench.waitForActivation();
    await workbench.waitForStatusBarItem(/^\$\(vm-running\) crosvm \d+$/, 30_000);
    const why = () => `\n--- crosvm Guard log ---\n${workbench.extensionLog()}`;
    // The user freezes the one root VM with administrator rights (sudo -n: nothing asked); the
    // root companion runs as long as it holds it.
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    await workbench.clickNotificationButton(/runs as root/, 'Freeze with administrator rights…');
    const heldDevices = held.devices.map((d) => d.pid);
    assert.ok(await eventually(() => heldDevices.every(isFullyStopped), 15_000), `the freeze with administrator rights failed${why()}`);
    const companion = companionPids();
    assert.equal(companion.length, 1, `no root companion${why()}`);
    // A second root VM, and a debug session whose stops freeze every VM by the workspace's settings.
    const other = await startFixtureVm({ build: 'swap', devices: 2 });
    const otherDevices = other.devices.map((d) => d.pid);
    await workbench.runCommand('crosvm: Refresh crosvm VMs');
    await workbench.runCommand('Debug: Start Debugging');
    const refused = (pid: number) => new RegExp(`no automatic freeze of VM ${pid} on DAP event "stopped": .*a workspace never starts them`);
    assert.ok(
      await eventually(() => refused(other.pid).test(workbench.extensionLog()), 30_000),
      `the stop did not refuse VM ${other.pid}${why()}`,
    );
    assert.match(workbench.extensionLog(), refused(held.pid));
    assert.deepEqual(companionPids(), companion, 'the root companion was not running at the stop');
    await workbench.page.waitForTimeout(200);
    assert.ok(otherDevices.every(isRunning), `a device of the other root VM was frozen by the workspace's stop${why()}`);
    assert.ok(heldDevices.every(isFullyStopped), 'the VM the user froze was changed');
    await workbench.page.keyboard.press('Shift+F5');
    await workbench.page.waitForTimeout(500);
    assert.ok(heldDevices.every(isFullyStopped), "the session's end resumed the user's own freeze");
    await workbench.runCommand('crosvm: Resume crosvm devices');
    assert.ok(await eventually(() => heldDevices.every(isRunning), 5000), `still frozen after Resume${why()}`);
    assert.ok(held.isRunning() && other.isRunning());
  });
});
