// A refusal seen as a person sees it: a toast, in the workbench as `npm run demo` serves it
// (the extension installed, no smoke-test driver). The other UI tests read the notification
// centre, which would pass even if no toast ever showed.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { isRunning } from '../engine/procState';
import { openWorkbench, waitFor, Workbench } from './workbench';

const NAME = 'crosvm_toast';

test('freezing a build without the swap feature with signals shows a toast that says why', { timeout: 240_000 }, async () => {
  const unsafe = await startFixtureVm({ build: 'default', executableName: NAME });
  let workbench: Workbench | undefined;
  try {
    workbench = await openWorkbench({
      asInstalled: true,
      settings: { 'crosvmGuard.method': 'signal', 'crosvmGuard.processNames': [NAME] },
    });
    await workbench.waitForActivation();
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
    assert.deepEqual(toast.buttons, ['Open Settings', 'Show Log']);
    await workbench.screenshot('refusal-toast');
    assert.ok(unsafe.isRunning() && unsafe.devices.every((d) => isRunning(d.pid)));
  } finally {
    await workbench?.close();
    await stopAllFixtureVms();
  }
});
