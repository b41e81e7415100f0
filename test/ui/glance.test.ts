// The UI at a glance, with two VMs: rows that tell them apart, state icons, a VM that cannot
// be frozen marked as such in the tree and in the picker, tooltips that stay open while the
// tree refreshes and show other users' text literally, the entire-VM freeze on its row, and a
// status bar that notices a `kill -STOP` from outside.
import * as assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { openWorkbench, TreeRow, vmRowOf, waitFor, Workbench } from './workbench';

/** Refresh interval of this workbench; "one refresh" below is this plus the time to draw. */
const REFRESH_MS = 500;
/** A name only this test's VMs have, so that VMs other test runs start on the host stay out. */
const NAME = 'crosvm_glance';
/** In the kernel image's name: Markdown that must show literally in the tooltip. */
const HOSTILE = '**x**[y](z)';

let workbench: Workbench;
let alpha: FixtureVm;
let beta: FixtureVm;

const rowsWhen = (accept: (rows: TreeRow[]) => boolean, timeout = 10_000) => waitFor(() => workbench.treeRows(), accept, timeout);

const vmRow = (rows: TreeRow[], vm: FixtureVm) => vmRowOf(rows, vm.pid);
const statusItem = () => workbench.guardStatus();

const waitForStatus = (pattern: RegExp, timeout = 10_000) => workbench.waitForGuardStatus(pattern, timeout);

/** Counts DOM changes inside the side bar's tree for `ms` milliseconds. */
async function treeMutations(ms: number): Promise<number> {
  return workbench.page
    .locator('.part.sidebar .pane-body .monaco-list-rows')
    .first()
    .evaluate(async (root, duration) => {
      // The page's own MutationObserver (this function runs in the browser).
      type Observer = { observe(node: unknown, options: object): void; disconnect(): void };
      const { MutationObserver } = globalThis as unknown as { MutationObserver: new (callback: (records: unknown[]) => void) => Observer };
      let count = 0;
      const observer = new MutationObserver((records) => (count += records.length));
      observer.observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
      await new Promise((resolve) => setTimeout(resolve, duration));
      observer.disconnect();
      return count;
    }, ms);
}

describe('crosvm Guard at a glance, two VMs', { timeout: 300_000 }, () => {
  before(async () => {
    alpha = await startFixtureVm({ build: 'swap', executableName: NAME, devices: 2, socket: '/run/crosvm/alpha.sock', kernel: HOSTILE });
    // Signals forced on a build that dies of them: this VM cannot be frozen.
    beta = await startFixtureVm({ build: 'default', executableName: NAME, devices: 1, disk: '/var/vms/beta.img' });
    workbench = await openWorkbench({
      settings: {
        'crosvmGuard.refreshInterval': REFRESH_MS,
        'crosvmGuard.processNames': [NAME],
        'crosvmGuard.method': 'signal',
        'crosvmGuard.excludeLabels': ['virtio snd'],
      },
    });
    await workbench.waitForActivation();
    await workbench.openView('crosvm Guard');
  });

  after(async () => {
    await workbench?.close();
    await stopAllFixtureVms();
  });

  test('each VM is named by what tells it apart, with a state icon; the one that cannot be frozen has its own icon and colour', async () => {
    const rows = await rowsWhen((r) => vmRow(r, alpha) !== undefined && vmRow(r, beta) !== undefined);
    const a = vmRow(rows, alpha);
    const b = vmRow(rows, beta);
    assert.equal(a?.label, `alpha.sock · ${HOSTILE}`, JSON.stringify(rows));
    assert.equal(a?.description, `running · pid ${alpha.pid}`);
    assert.equal(a?.icon, 'vm-running');
    assert.equal(b?.label, 'beta.img');
    assert.equal(b?.description, `cannot be frozen · pid ${beta.pid}`);
    assert.equal(b?.icon, 'circle-slash');
    assert.notDeepEqual(a?.iconClasses, b?.iconClasses);
    assert.ok(
      rows.filter((r) => r.level > 1).every((r) => r.icon === 'circle-filled' && /^running · /.test(r.description)),
      JSON.stringify(rows),
    );
    // Icons show state: running is not the pause glyph a click would mean.
    assert.match((await statusItem())?.text ?? '', /^\$\(vm-running\) crosvm \d+$/);
  });

  test('the picker marks the VM that cannot be frozen', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
    const items = await workbench.quickPickRows();
    await workbench.page.keyboard.press('Escape');
    const a = items.find((i) => i.description === `pid ${alpha.pid}`);
    const b = items.find((i) => i.description === `pid ${beta.pid}`);
    assert.equal(a?.icon, 'vm-running', JSON.stringify(items));
    assert.equal(b?.icon, 'circle-slash', JSON.stringify(items));
    assert.match(b?.detail ?? '', /cannot be frozen/);
    assert.ok(beta.isRunning() && beta.devices.every((d) => isRunning(d.pid)));
  });

  test("a VM's tooltip shows its command line literally and stays open while the tree refreshes", async () => {
    const label = `alpha.sock · ${HOSTILE}`;
    const hover = await workbench.hoverTreeRow(label);
    const text = await hover.innerText();
    assert.ok(text.includes(`crosvm VM ${alpha.pid} · alpha.sock · ${HOSTILE}`), text);
    assert.equal(await hover.locator('strong', { hasText: /^x$/ }).count(), 0, 'the name was rendered as Markdown');
    assert.equal(await hover.locator('a', { hasText: 'y' }).count(), 0, 'the name was rendered as a link');
    // Nothing changes: nothing is redrawn.
    const idle = await treeMutations(3 * REFRESH_MS);
    assert.equal(idle, 0, `${idle} DOM changes in the tree in three refreshes with nothing changed`);
    // Another row changes (a device stopped from a terminal; the swap build tolerates it):
    // this row's tooltip stays.
    const device = alpha.devices[alpha.devices.length - 1];
    process.kill(device.pid, 'SIGSTOP');
    try {
      await rowsWhen((r) => r.some((row) => row.description === `stopped, not by us · ${device.pid}`));
      await workbench.page.waitForTimeout(2 * REFRESH_MS);
      assert.ok(await hover.isVisible(), 'the tooltip closed when another row changed');
      assert.ok((await hover.innerText()).includes(`crosvm VM ${alpha.pid}`));
    } finally {
      process.kill(device.pid, 'SIGCONT');
    }
  });

  test('the status bar counts a device stopped from outside within one refresh', async () => {
    await workbench.page.mouse.move(600, 400); // away from the tree: nothing hovered
    const before = await waitForStatus(/^\$\(vm-running\) crosvm \d+$/);
    const running = Number(/(\d+)$/.exec(before)?.[1]);
    const device = alpha.devices.find((d) => d.label === 'virtio-net') ?? alpha.devices[0];
    process.kill(device.pid, 'SIGSTOP');
    try {
      const started = Date.now();
      const after = await waitForStatus(/· 1 stopped$/, 3 * REFRESH_MS);
      assert.equal(after, `$(vm-running) crosvm ${running - 1} · 1 stopped`, `after ${Date.now() - started} ms`);
      assert.match((await statusItem())?.ariaLabel ?? '', /1 stopped by someone else/);
    } finally {
      process.kill(device.pid, 'SIGCONT');
    }
    await waitForStatus(new RegExp(`^\\$\\(vm-running\\) crosvm ${running}$`), 3 * REFRESH_MS);
  });

  test('"Show process details" opens the details rendered, dated, and re-read while open', async () => {
    await workbench.treeRow(`alpha.sock · ${HOSTILE}`).click({ button: 'right' });
    const item = workbench.page.locator('.monaco-menu .action-label', { hasText: 'Show process details' });
    await item.click();
    // A click during the menu's opening animation only focuses the item (seen): Enter runs it.
    if (await item.isVisible()) await workbench.page.keyboard.press('Enter');
    const tab = workbench.page.locator('.tabs-container .tab', { hasText: `crosvm VM ${alpha.pid}` });
    // The Markdown preview's extension activates on first use: slow on a busy machine.
    await tab.waitFor({ timeout: 45_000 }).catch(async (error: Error) => {
      await workbench.screenshot('details-not-open');
      throw new Error(`${error.message}\n--- crosvm Guard log ---\n${workbench.extensionLog()}`);
    });
    assert.match(await tab.innerText(), /^Preview /, 'not a rendered preview');
    const preview = async (): Promise<string> => {
      for (const frame of workbench.page.frames()) {
        const text = await frame
          .locator('body')
          .innerText({ timeout: 1000 })
          .catch(() => '');
        if (text.includes(`crosvm VM ${alpha.pid}`) && text.includes('Device processes')) return text;
      }
      return '';
    };
    const previewWhen = async (accept: (text: string) => boolean): Promise<string> => {
      let shown = await preview();
      for (let i = 0; !accept(shown) && i < 50; i++) {
        await workbench.page.waitForTimeout(200);
        shown = await preview();
      }
      return shown;
    };
    let text = await previewWhen((t) => t !== '');
    assert.match(text, /Read from \/proc at \d\d:\d\d:\d\d/);
    assert.doesNotMatch(text, /```|\| pid \|/, 'Markdown source, not rendered');
    assert.doesNotMatch(text, /\b1 threads\b/);
    // A device stopped and continued from a terminal: the open details follow.
    const device = alpha.devices[0];
    const line = (state: string) => new RegExp(`${device.label.replace(/[()]/g, '\\$&')} pid ${device.pid}, parent \\d+, state ${state}`);
    process.kill(device.pid, 'SIGSTOP');
    try {
      text = await previewWhen((t) => line('T').test(t));
      assert.match(text, line('T'));
    } finally {
      process.kill(device.pid, 'SIGCONT');
    }
    text = await previewWhen((t) => !line('T').test(t));
    assert.match(text, line('[SR]'));
    await workbench.page.keyboard.press('ControlOrMeta+W');
  });

  test('"Freeze entire crosvm VM" with an excluded device: partly frozen on the row; the tooltip of a device stays open while frozen', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze entire crosvm VM (vCPUs too)');
    await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
    await workbench.page.keyboard.type(String(alpha.pid));
    await workbench.page.keyboard.press('Enter');
    assert.ok(await eventually(() => isFullyStopped(alpha.pid), 5000), 'the main process (vCPUs) is not stopped');
    // The excluded device runs on (and writes guest memory): the VM is partly frozen, and says so.
    const rows = await rowsWhen((r) => /^partly frozen/.test(vmRow(r, alpha)?.description ?? ''));
    assert.match(
      vmRow(rows, alpha)?.description ?? '',
      new RegExp(`^partly frozen, 1 left running since \\d\\d:\\d\\d:\\d\\d · pid ${alpha.pid}$`),
    );
    assert.equal(vmRow(rows, alpha)?.icon, 'warning');
    const net = rows.find(
      (r) => r.label === 'virtio-net' && r.description.includes(` · ${alpha.devices.find((d) => d.label === 'virtio-net')?.pid}`),
    );
    assert.match(net?.description ?? '', /^frozen · /);
    assert.equal(net?.icon, 'debug-pause');
    // The status bar: one of two VMs, partly frozen (its own look), the action in the tooltip.
    await waitForStatus(/^\$\(warning\) crosvm 1 of 2 VMs partly frozen \d:\d\d$/);
    // Its tooltip: each VM once, the frozen time by the status bar's one clock, what a click does.
    const item = (await statusItem())?.id ?? '';
    await workbench.page.locator(`.part.statusbar [id="${item}"] .statusbar-item-label`).hover();
    const tip = await workbench.hover().innerText({ timeout: 10_000 });
    assert.match(
      tip,
      new RegExp(
        `VM ${alpha.pid} alpha\\.sock.*: \\d+ device processes, partly frozen \\d:\\d\\d with signals, vCPUs too; still running: virtio snd \\d+`,
      ),
      tip,
    );
    assert.match(tip, /Click to resume every frozen VM\./);
    assert.doesNotMatch(tip, /\(\d+ processes, signals\)/);
    await workbench.page.mouse.move(600, 400);
    await workbench.hover().waitFor({ state: 'hidden' });
    // The freeze's notification names what it left running (an excluded device), in words.
    const told = await waitFor(
      async () => (await workbench.notifications()).find((n) => /only partly frozen/.test(n.message)),
      (n) => n !== undefined,
      10_000,
      200,
    );
    assert.match(told?.message ?? '', /virtio snd \d+ left running: excluded by crosvmGuard\.excludeLabels/);
    // While frozen, the tooltip of a device row stays open through refreshes.
    const hover = await workbench.hoverTreeRow('virtio-net');
    assert.match(await hover.innerText(), /Frozen by this window with SIGSTOP/);
    await workbench.page.waitForTimeout(2 * REFRESH_MS + 500);
    assert.ok(await hover.isVisible(), 'the tooltip closed while the VM was frozen');
    await workbench.page.mouse.move(600, 400);
  });

  test('"Freeze crosvm devices" on a VM already frozen says so and freezes nothing', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
    const items = await workbench.quickPickRows();
    // Partly frozen (its excluded device runs): the picker shows it with the row's icon.
    assert.equal(items.find((i) => i.description === `pid ${alpha.pid}`)?.icon, 'warning', JSON.stringify(items));
    assert.ok(!items.some((i) => /All VMs/.test(i.label)), 'offers "All VMs" with one VM frozen and the other unfreezable');
    await workbench.page.keyboard.type(String(alpha.pid));
    await workbench.page.keyboard.press('Enter');
    let told;
    for (let i = 0; !told && i < 50; i++) {
      told = (await workbench.notifications()).find((n) => new RegExp(`VM ${alpha.pid} is already frozen`).test(n.message));
      if (!told) await workbench.page.waitForTimeout(200);
    }
    assert.ok(told, 'no word that the VM is already frozen');
    await workbench.clickStatusBarItem(/frozen/);
    assert.ok(await eventually(() => isRunning(alpha.pid) && alpha.devices.every((d) => isRunning(d.pid)), 5000));
    await waitForStatus(/^\$\(vm-running\) crosvm \d+$/);
  });

  test('the settings read well: headers without "Ms", and "machine scoped" said once', async () => {
    await workbench.runCommand('Preferences: Open Settings (UI)');
    const editor = workbench.page.locator('.settings-editor');
    await editor.waitFor({ timeout: 15_000 });
    await workbench.page.keyboard.type('@ext:crosvm-guard.crosvm-guard');
    /** Every setting shown, scrolling through the (virtualised) list as a person would. */
    const read = async () => {
      await workbench.page.waitForTimeout(1000);
      const seen = new Map<string, { label: string; description: string }>();
      const list = editor.locator('.settings-tree-container');
      await list.hover();
      for (let i = 0; i < 10; i++) {
        const items = await editor.locator('.setting-item-contents').evaluateAll((elements) =>
          elements.map((item) => ({
            label: item.querySelector('.setting-item-label')?.textContent ?? '',
            description: item.querySelector('.setting-item-description')?.textContent ?? '',
          })),
        );
        for (const item of items) seen.set(item.label, item);
        await workbench.page.mouse.wheel(0, 300);
        await workbench.page.waitForTimeout(300);
      }
      return [...seen.values()];
    };
    const user = await read();
    assert.ok(
      user.some((i) => i.label === 'Refresh Interval'),
      JSON.stringify(user),
    );
    assert.ok(
      user.some((i) => i.label === 'Stop Timeout'),
      JSON.stringify(user),
    );
    assert.ok(!user.some((i) => / Ms$/.test(i.label)), JSON.stringify(user.map((i) => i.label)));
    // Machine-scoped settings are on the Remote tab in code-server (as over Remote-SSH).
    await editor.locator('.settings-tabs-widget .action-label', { hasText: /Remote/ }).click();
    const remote = await read();
    const said = remote.filter((i) => /machine scoped/i.test(i.description));
    assert.equal(said.length, 1, JSON.stringify(remote.map((i) => i.label)));
    assert.match(said[0].description, /Remote/);
    await workbench.page.keyboard.press('ControlOrMeta+W');
  });
});
