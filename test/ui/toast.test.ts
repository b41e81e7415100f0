// A refusal seen as a person sees it: a toast, in the workbench as `npm run demo` serves it
// (the extension installed, no smoke-test driver). The other UI tests read the notification
// centre, which would pass even if no toast ever showed.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { isRunning } from '../engine/procState';
import { EXTENSION_ID, openWorkbench, waitFor, Workbench } from './workbench';

const NAME = 'crosvm_toast';

test('freezing a build without the swap feature with signals shows a toast that says why', { timeout: 240_000 }, async () => {
  const unsafe = await startFixtureVm({ build: 'default', executableName: NAME });
  let workbench: Workbench | undefined;
  try {
    workbench = await openWorkbench({
      asInstalled: true,
      settings: { 'crosvmGuard.method': 'signal', 'crosvmGuard.processNames': [NAME] },
    });
    await workbench.waitForActivation(EXTENSION_ID, 1, 120_000);
    assert.doesNotMatch(await workbench.page.title(), /Extension Development Host/, 'loaded as under development, not installed');
    await workbench.waitForStatusBarItem(/^\$\(vm-running\) crosvm \d+$/);
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    const isRefusal = (n: { message: string }) => /Not freezing crosvm VM/.test(n.message);
    const toast = (
      await waitFor(
        () => workbench!.toasts(),
        (all) => all.some(isRefusal),
        10_000,
        200,
      )
    ).find(isRefusal);
    assert.ok(toast, 'no toast about the unsafe build');
    assert.equal(toast.severity, 'warning');
    assert.match(toast.message, /--features swap/);
    // Short, plain text: the evidence and every way out are in the log.
    assert.ok(toast.message.split(/\s+/).length <= 40, `${toast.message.split(/\s+/).length} words: ${toast.message}`);
    assert.doesNotMatch(toast.message, /`/);
    assert.deepEqual(toast.buttons, ['Open Settings', 'Show Log']);
    await workbench.screenshot('refusal-toast');
    const log = await waitFor(
      () => workbench!.extensionLog(),
      (text) => text.includes('Or set crosvmGuard.method'),
      10_000,
      200,
    );
    assert.match(log, new RegExp(`Not freezing crosvm VM ${unsafe.pid}: .*Or set crosvmGuard\\.method`));
    // Discovery: one line for the VM, the evidence said once in it.
    const found = log.split('\n').filter((line) => line.includes(`Discovery: VM ${unsafe.pid} `));
    assert.equal(found.length, 1, found.join('\n'));
    const evidence = /signals unsafe: (.*?); freeze method/.exec(found[0])?.[1] ?? '';
    assert.ok(evidence.length > 10, found[0]);
    assert.equal(found[0].split(evidence).length - 1, 1, found[0]);
    // Open Settings opens the tab where this machine-scoped setting can be set: Remote, in code-server.
    await workbench.page
      .locator('.notifications-toasts .notification-list-item')
      .filter({ hasText: 'Not freezing crosvm VM' })
      .locator('.monaco-button', { hasText: 'Open Settings' })
      .click();
    const editor = workbench.page.locator('.settings-editor');
    await editor.waitFor({ timeout: 20_000 });
    const tab = await waitFor(
      () => editor.locator('.settings-tabs-widget .action-label.checked').innerText(),
      (text) => /Remote/.test(text),
      10_000,
      200,
    );
    assert.match(tab, /Remote/, 'Open Settings did not open the Remote tab');
    const method = editor.locator('.setting-item-contents', {
      has: workbench.page.locator('.setting-item-label', { hasText: /^Method$/ }),
    });
    await method.first().waitFor({ timeout: 10_000 });
    // (The editor keeps a hidden "No Settings Found" element; it must not show.)
    assert.ok(!(await editor.getByText('No Settings Found').first().isVisible()), 'the settings editor says "No Settings Found"');
    await workbench.screenshot('open-settings-remote');
    assert.ok(unsafe.isRunning() && unsafe.devices.every((d) => isRunning(d.pid)));
  } finally {
    await workbench?.close();
    await stopAllFixtureVms();
  }
});
