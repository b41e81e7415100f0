// Smoke test of the UI harness itself against built-in parts of the workbench, so that a
// failure in the extension's own UI tests points at the extension, not at the harness.
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { extensionHostPids } from '../runner/codeServer';
import { EXTENSION_ID, openWorkbench, waitFor, Workbench } from './workbench';

const WINDOW_TITLE = 'crosvm Guard UI smoke';
let workbench: Workbench;

before(
  async () => {
    // A distinctive window title proves the settings file is where code-server reads it.
    workbench = await openWorkbench({ settings: { 'window.title': `${WINDOW_TITLE} \${rootName}` } });
  },
  { timeout: 120_000 },
);

after(() => workbench?.close());

test('user settings reach the workbench', async () => {
  assert.match(await workbench.page.title(), new RegExp(`${WINDOW_TITLE} workspace`));
});

test('the extension under development is activated and listed as running', { timeout: 60_000 }, async () => {
  await workbench.waitForActivation();
  // A browser connection retried under load can start a second host while the first shuts
  // down: what must hold is that one remains.
  const hosts = () => extensionHostPids(workbench.server.process.pid ?? 0);
  await waitFor(hosts, (pids) => pids.length === 1, 10_000, 200);
  assert.equal(
    hosts().length,
    1,
    `one extension host below code-server, found ${hosts()
      .map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ').slice(0, 200))
      .join(' | ')}`,
  );
  await workbench.runCommand('Developer: Show Running Extensions');
  // A modal editor listing activated extensions, virtualised: scroll until our row is rendered.
  const list = workbench.page.locator('.runtime-extensions-editor .monaco-list');
  const ours = list.locator('.monaco-list-row', { hasText: EXTENSION_ID });
  await list.locator('.monaco-list-row').first().waitFor();
  for (let scrolls = 0; (await ours.count()) === 0 && scrolls < 20; scrolls++) {
    await list.hover();
    await workbench.page.mouse.wheel(0, 300);
    await workbench.page.waitForTimeout(100);
  }
  await ours.waitFor({ timeout: 1_000 });
  await workbench.page.keyboard.press('Escape');
  await list.waitFor({ state: 'hidden' });
});

test('the palette runs a built-in command', { timeout: 60_000 }, async () => {
  const statusBar = workbench.page.locator('.part.statusbar');
  await workbench.runCommand('View: Toggle Status Bar Visibility');
  await statusBar.waitFor({ state: 'hidden' });
  await workbench.runCommand('View: Toggle Status Bar Visibility');
  await statusBar.waitFor({ state: 'visible' });
});

test('status bar items and tree rows are readable', { timeout: 60_000 }, async () => {
  const bell = (await workbench.statusBarItems()).find((item) => item.id === 'status.notifications');
  assert.match(bell?.text ?? '', /^\$\(bell(-dot)?\)$/); // bell-dot: there are unread notifications
  await workbench.openView('Explorer');
  const readme = (await workbench.treeRows()).find((row) => row.label === 'README.md');
  assert.equal(readme?.level, 1);
  assert.ok(Array.isArray(await workbench.notifications()));
  assert.equal(await workbench.page.locator('.notifications-center').isVisible(), false, 'the notification centre is left closed');
});

test('a screenshot is saved', async () => {
  const path = await workbench.screenshot('workbench-smoke');
  assert.deepEqual([...readFileSync(path).subarray(1, 4)], [...Buffer.from('PNG')]);
});
