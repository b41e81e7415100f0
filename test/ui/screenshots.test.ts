// The README's pictures, taken in the real workbench: the tree with two VMs, one of them
// frozen, the status bar, and a VM's tooltip. Saved to test-results/screenshots/ (copy them to
// media/ when the UI changes).
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped } from '../engine/procState';
import { openWorkbench } from './workbench';

const NAME = 'crosvm_shots';

test('the README screenshots: two VMs, one frozen', { timeout: 240_000 }, async () => {
  const dev = await startFixtureVm({
    build: 'swap',
    swapMonitor: true,
    executableName: NAME,
    devices: 2,
    socket: '/run/crosvm/dev-vm.sock',
    kernel: 'bzImage',
  });
  const ci = await startFixtureVm({
    build: 'swap',
    swapMonitor: true,
    executableName: NAME,
    devices: 1,
    socket: '/run/crosvm/ci-vm.sock',
    disk: '/var/vms/rootfs.img',
  });
  const workbench = await openWorkbench({
    asInstalled: true,
    settings: { 'crosvmGuard.processNames': [NAME], 'crosvmGuard.refreshIntervalMs': 500 },
  });
  try {
    await workbench.waitForActivation();
    await workbench.openView('crosvm Guard');
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
    await workbench.page.keyboard.type(String(dev.pid));
    await workbench.page.keyboard.press('Enter');
    assert.ok(await eventually(() => dev.devices.every((d) => isFullyStopped(d.pid)), 10_000));
    // One of the two VMs: the status bar says so.
    await workbench.waitForStatusBarItem(/crosvm 1 of 2 VMs frozen/);
    // The tree follows a moment after the status bar (VS Code batches tree updates).
    let rows = await workbench.treeRows();
    for (let i = 0; !rows.some((r) => r.label === 'dev-vm.sock · bzImage' && /^frozen/.test(r.description)) && i < 50; i++) {
      await workbench.page.waitForTimeout(100);
      rows = await workbench.treeRows();
    }
    assert.ok(
      rows.some((r) => r.label === 'dev-vm.sock · bzImage' && /^frozen/.test(r.description)),
      JSON.stringify(rows),
    );
    assert.ok(
      rows.some((r) => r.label === 'ci-vm.sock · rootfs.img' && r.description === `running · pid ${ci.pid}`),
      JSON.stringify(rows),
    );
    // A side bar wide enough for whole rows.
    const sidebar = await workbench.page.locator('.part.sidebar').boundingBox();
    if (sidebar) {
      const edge = { x: sidebar.x + sidebar.width + 2, y: sidebar.y + sidebar.height / 2 };
      await workbench.page.mouse.move(edge.x, edge.y);
      await workbench.page.mouse.down();
      await workbench.page.mouse.move(edge.x + 160, edge.y, { steps: 8 });
      await workbench.page.mouse.up();
    }
    await workbench.page.mouse.move(900, 600);
    await workbench.page.waitForTimeout(6500); // the freeze's status-bar message goes
    // The side bar and the status bar; the empty editor area is left out.
    const shot = async (name: string, width: number) => {
      const path = await workbench.screenshot(name);
      await workbench.page.screenshot({ path, clip: { x: 0, y: 0, width, height: 800 } });
    };
    await shot('readme-two-vms', 520);
    await workbench.hoverTreeRow('ci-vm.sock · rootfs.img');
    await workbench.page.waitForTimeout(500);
    await shot('readme-tooltip', 900);
  } finally {
    await workbench.close();
    await stopAllFixtureVms();
  }
});
