// During a debug session the status-bar item shows, even with visibility "debugging" and no
// VM listed yet, and it says when the session freezes automatically, or when a stop could not
// freeze a VM.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { isRunning } from '../engine/procState';
import { debugWorkspace } from './debugWorkspace';
import { openWorkbench, waitFor } from './workbench';

test('the status bar item appears during a debug session and shows automatic mode', { timeout: 180_000 }, async () => {
  const workbench = await openWorkbench({
    folder: debugWorkspace(),
    // No VM is listed (VMs other test runs start on the host have another name).
    settings: {
      'crosvmGuard.statusBar.visibility': 'debugging',
      'crosvmGuard.debug.autoFreeze': 'onStop',
      'crosvmGuard.processNames': ['crosvm_none'],
    },
  });
  try {
    await workbench.waitForActivation();
    const ours = /^\$\((vm-running|debug-pause)\) crosvm/;
    const crosvmItem = async () => (await workbench.statusBarItems()).find((i) => ours.test(i.text));
    assert.equal(await crosvmItem(), undefined, 'visible before any debug session');
    await workbench.runCommand('Debug: Start Debugging');
    const item = await workbench.waitForStatusBarItem(ours, 30_000);
    assert.match(item.text, /^\$\(vm-running\) crosvm auto$/);
    await workbench.screenshot('debug-session');
    await workbench.page.keyboard.press('Shift+F5'); // Debug: Stop, as a person would
    assert.equal(await waitFor(crosvmItem, (item) => item === undefined, 20_000, 200), undefined, 'still visible after the session ended');
  } finally {
    await workbench.close();
  }
});

test(
  'at a stop, a VM that may not be frozen shows as not frozen in the status bar, with a notification that says why',
  { timeout: 180_000 },
  async () => {
    // Signals forced on a build that dies of them: the stop must leave the VM alone, and say so.
    // Its own name: a stop freezes "all of your VMs", and VMs of other test runs on the host must
    // not be among them.
    const vm = await startFixtureVm({ build: 'default', devices: 2, executableName: 'crosvm_debug_ui' });
    const workbench = await openWorkbench({
      folder: debugWorkspace(),
      settings: {
        'crosvmGuard.debug.autoFreeze': 'onStop',
        'crosvmGuard.method': 'signal',
        'crosvmGuard.processNames': ['crosvm_debug_ui'],
      },
    });
    try {
      await workbench.waitForActivation();
      await workbench.waitForStatusBarItem(/^\$\(vm-running\) crosvm \d+$/, 30_000);
      await workbench.runCommand('Debug: Start Debugging');
      // The debuggee stops at its first `debugger;` statement.
      const warning = await workbench.waitForStatusBarItem(/^\$\(warning\) crosvm auto: not frozen$/, 30_000).catch((error: Error) => {
        throw new Error(`${error.message}\n--- crosvm Guard log ---\n${workbench.extensionLog()}`);
      });
      assert.match(warning.ariaLabel, new RegExp(`the debugger is stopped but VM ${vm.pid} keeps running`));
      const told = async () => (await workbench.notifications()).some((n) => /is stopped, but crosvm VM \d+ keeps running/.test(n.message));
      await waitFor(told, (yes) => yes, 10_000, 200);
      const notifications = await workbench.notifications();
      const notification = notifications.find((n) => /keeps running/.test(n.message));
      assert.equal(notification?.severity, 'warning');
      assert.match(notification?.message ?? '', /would shut the VM down|without the swap feature|swap/i);
      assert.deepEqual(notification?.buttons, ['Open Settings', 'Show Log']);
      assert.ok(vm.isRunning() && vm.devices.every((d) => isRunning(d.pid)), 'a device was stopped at the breakpoint');
      await workbench.screenshot('debug-not-frozen');
      await workbench.page.keyboard.press('Shift+F5'); // Debug: Stop: the warning goes with the stop
      await workbench.waitForStatusBarItem(/^\$\(vm-running\) crosvm \d+$/, 20_000);
      assert.ok(vm.isRunning(), 'the VM shut down');
    } finally {
      await workbench.close();
      await stopAllFixtureVms();
    }
  },
);
