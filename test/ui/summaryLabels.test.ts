// The summary labels (VM rows, the status bar, the picker, the freeze's message and toast)
// checked against /proc with three VMs: one that cannot be frozen, a device under a real
// debugger (strace), a device stopped from a terminal (kill -STOP). Each test here failed on
// the labels before issue 25.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { readSnapshot } from '../../src/guard';
import { EXTENSION_ID, openWorkbench, TreeRow, vmRowOf, waitFor, Workbench } from './workbench';

const REFRESH_MS = 500;
/** A name only this test's VMs have: VMs other test runs start stay out. */
const NAME = 'crosvm_summary';

let workbench: Workbench;
/** Two VMs that can be frozen (swap builds) and one that cannot (signals forced on a default build). */
let alpha: FixtureVm;
let beta: FixtureVm;
let gamma: FixtureVm;

const rowsWhen = (accept: (rows: TreeRow[]) => boolean, timeout = 20_000) => waitFor(() => workbench.treeRows(), accept, timeout);
const vmRow = (rows: TreeRow[], vm: FixtureVm) => vmRowOf(rows, vm.pid);
const statusItem = () => workbench.guardStatus();

const waitForStatus = (pattern: RegExp, timeout = 20_000) => workbench.waitForGuardStatus(pattern, timeout);

/** The open picker's rows, and which one Enter would take (the focused one). */
async function pickerRows(): Promise<{ label: string; description: string; detail: string; focused: boolean }[]> {
  const widget = workbench.page.locator('.quick-input-widget');
  await widget.locator('.monaco-list-row').first().waitFor({ timeout: 20_000 });
  // The active item is set right after the items: give the list a moment to draw it.
  await workbench.page.waitForTimeout(300);
  return widget.locator('.monaco-list-row').evaluateAll((rows) =>
    rows.map((row) => ({
      label: (row.querySelector('.label-name')?.textContent ?? '').trim(),
      description: row.querySelector('.label-description')?.textContent ?? '',
      detail: row.querySelector('.quick-input-list-label-meta .monaco-icon-label, .quick-input-list-detail')?.textContent ?? '',
      focused: row.classList.contains('focused'),
    })),
  );
}

async function openPicker(): Promise<void> {
  await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
  await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
}

/** Freezes one VM from the picker, as a person would: its pid typed, Enter. */
async function freezeFromPicker(vm: FixtureVm): Promise<void> {
  await openPicker();
  await workbench.page.keyboard.type(String(vm.pid));
  await workbench.page.keyboard.press('Enter');
}

async function resumeAll(): Promise<void> {
  await workbench.runCommand('crosvm: Resume crosvm devices');
  const all = [alpha, beta, gamma].flatMap((vm) => vm.devices.map((d) => d.pid));
  assert.ok(await eventually(() => all.every(isRunning), 5000), 'not every device runs again');
  await waitForStatus(/^\$\(vm-running\) crosvm \d+$/);
}

describe('summary labels that tell the truth', { timeout: 400_000 }, () => {
  before(async () => {
    alpha = await startFixtureVm({ build: 'swap', executableName: NAME, devices: 1, disk: '/var/vms/alpha.img' });
    beta = await startFixtureVm({ build: 'swap', executableName: NAME, devices: 1, disk: '/var/vms/beta.img' });
    gamma = await startFixtureVm({ build: 'default', executableName: NAME, devices: 1, disk: '/var/vms/gamma.img' });
    workbench = await openWorkbench({
      settings: { 'crosvmGuard.refreshInterval': REFRESH_MS, 'crosvmGuard.processNames': [NAME], 'crosvmGuard.method': 'signal' },
    });
    // Slow on a loaded machine (other test runs share its cores).
    await workbench.waitForActivation(EXTENSION_ID, 1, 120_000);
    await workbench.openView('crosvm Guard');
  });

  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('each row says its state first, where the default side-bar width does not cut it off', async () => {
    const rows = await rowsWhen((r) => [alpha, beta, gamma].every((vm) => vmRow(r, vm)));
    const devices = rows.filter((r) => r.level > 1);
    assert.ok(devices.length >= 3, JSON.stringify(rows));
    for (const row of devices) assert.match(row.description, /^running · \d+$/, JSON.stringify(row));
    assert.equal(vmRow(rows, gamma)?.icon, 'circle-slash');
    assert.match(vmRow(rows, gamma)?.description ?? '', /^cannot be frozen · /);
  });

  test('"All VMs" freezes the VMs that can be frozen and says which it leaves; the status bar says 2 of 3, each row its own time', async () => {
    await openPicker();
    const rows = await pickerRows();
    const all = rows.find((r) => /All VMs/.test(r.label));
    assert.ok(all, JSON.stringify(rows));
    assert.match(all.description, /^2 VMs that can be frozen$/);
    assert.match(all.detail, new RegExp(`not VM ${gamma.pid} .*cannot be frozen`));
    await workbench.page.keyboard.type('All VMs');
    await workbench.page.keyboard.press('Enter');
    const frozenDevices = [alpha, beta].flatMap((vm) => vm.devices.map((d) => d.pid));
    assert.ok(await eventually(() => frozenDevices.every(isFullyStopped), 5000), 'All VMs did not freeze the two VMs that can be frozen');
    assert.ok(gamma.isRunning() && gamma.devices.every((d) => isRunning(d.pid)), 'the VM that cannot be frozen was touched');
    await waitForStatus(/^\$\(debug-pause\) crosvm 2 of 3 VMs frozen$/);
    const tree = await rowsWhen((r) => [alpha, beta].every((vm) => /^frozen since /.test(vmRow(r, vm)?.description ?? '')));
    for (const vm of [alpha, beta]) assert.match(vmRow(tree, vm)?.description ?? '', /^frozen since \d\d:\d\d:\d\d · pid \d+$/);
    await resumeAll();
  });

  test('the picker preselects a VM that a freeze would change, not one already frozen', async () => {
    await freezeFromPicker(alpha);
    assert.ok(await eventually(() => alpha.devices.every((d) => isFullyStopped(d.pid)), 5000));
    // One of three VMs, and its own clock: not the count of every frozen process.
    await waitForStatus(/^\$\(debug-pause\) crosvm 1 of 3 VMs frozen \d:\d\d$/);
    await openPicker();
    const rows = await pickerRows();
    await workbench.page.keyboard.press('Escape');
    const focused = rows.find((r) => r.focused);
    assert.equal(focused?.description, `pid ${beta.pid}`, JSON.stringify(rows));
    await resumeAll();
  });

  test('a device under a debugger left running: "partly frozen" on the row, in the status bar, in a notification naming it', async () => {
    const device = alpha.devices[0];
    // strace attaches with ptrace and lets the process run: a freeze leaves a traced process to its debugger.
    const tracer = spawn('strace', ['-qq', '-e', 'trace=none', '-p', String(device.pid)], { stdio: 'ignore' });
    try {
      assert.ok(await eventually(() => (readSnapshot(device.pid)?.tracerPid ?? 0) !== 0, 5000), 'strace did not attach');
      await freezeFromPicker(alpha);
      await waitForStatus(/^\$\(warning\) crosvm 1 of 3 VMs partly frozen \d:\d\d$/);
      // The device does run (its counter in guest memory climbs): the label is the truth.
      const before = alpha.readSlot(device.slot);
      assert.ok(await eventually(() => alpha.readSlot(device.slot) > before, 3000), 'the traced device does not run');
      const rows = await rowsWhen((r) => /^partly frozen/.test(vmRow(r, alpha)?.description ?? ''));
      assert.match(vmRow(rows, alpha)?.description ?? '', /^partly frozen, 1 left running since \d\d:\d\d:\d\d · pid \d+$/);
      assert.equal(vmRow(rows, alpha)?.icon, 'warning');
      assert.match((await statusItem())?.ariaLabel ?? '', new RegExp(`still running: ${device.label} ${device.pid}`));
      const told = await waitFor(
        async () => (await workbench.notifications()).find((n) => /only partly frozen/.test(n.message)),
        (n) => n !== undefined,
        10_000,
        200,
      );
      assert.match(told?.message ?? '', new RegExp(`${device.label} ${device.pid} left running: a debugger \\(pid \\d+\\) is attached`));
      assert.equal(told?.severity, 'warning');
    } finally {
      tracer.kill('SIGKILL');
    }
    await resumeAll();
  });

  test('a device stopped before the freeze: skipped "already stopped (stays stopped)", in words; the VM is frozen, not partly', async () => {
    const device = beta.devices[0];
    process.kill(device.pid, 'SIGSTOP');
    try {
      await rowsWhen((r) => r.some((row) => row.description === `stopped, not by us · ${device.pid}`));
      await freezeFromPicker(beta);
      const message = await waitFor(
        async () => (await workbench.statusBarItems()).find((i) => /froze \d+ process/.test(i.text))?.text ?? '',
        (t) => t !== '',
        10_000,
        100,
      );
      assert.match(message, new RegExp(`${device.label} ${device.pid} skipped, already stopped \\(stays stopped\\)`));
      assert.doesNotMatch(message, /already-stopped|left running/);
      const rows = await rowsWhen((r) => /^frozen/.test(vmRow(r, beta)?.description ?? ''));
      assert.match(vmRow(rows, beta)?.description ?? '', /^frozen since /);
      await workbench.runCommand('crosvm: Resume crosvm devices');
      // A resume leaves a process it did not stop as it found it.
      await waitForStatus(/^\$\(vm-running\) crosvm \d+ · 1 stopped$/);
      assert.ok(isFullyStopped(device.pid), 'the resume continued a device it had not stopped');
    } finally {
      process.kill(device.pid, 'SIGCONT');
    }
  });
});
