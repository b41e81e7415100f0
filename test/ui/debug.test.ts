// During a debug session the status-bar item shows, even with visibility "debugging" and no
// VM listed yet, and it says when the session freezes automatically.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { testWorkspace } from '../runner/paths';
import { openWorkbench } from './workbench';

function debugWorkspace(): string {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-debug-'));
  fs.copyFileSync(path.join(testWorkspace, 'debuggee.js'), path.join(folder, 'debuggee.js'));
  fs.mkdirSync(path.join(folder, '.vscode'));
  const launch = { version: '0.2.0', configurations: [{ type: 'node', request: 'launch', name: 'debuggee', program: '${workspaceFolder}/debuggee.js' }] };
  fs.writeFileSync(path.join(folder, '.vscode', 'launch.json'), JSON.stringify(launch));
  return folder;
}

test('the status bar item appears during a debug session and shows automatic mode', { timeout: 180_000 }, async () => {
  const workbench = await openWorkbench({
    folder: debugWorkspace(),
    settings: { 'crosvmGuard.statusBar.visibility': 'debugging', 'crosvmGuard.debug.autoFreeze': 'onStop' },
  });
  try {
    await workbench.waitForActivation();
    const ours = /^\$\(debug-(pause|continue)\) crosvm/;
    const crosvmItem = async () => (await workbench.statusBarItems()).find((i) => ours.test(i.text));
    assert.equal(await crosvmItem(), undefined, 'visible before any debug session');
    await workbench.runCommand('Debug: Start Debugging');
    const item = await workbench.waitForStatusBarItem(ours, 30_000);
    assert.match(item.text, /^\$\(debug-pause\) crosvm auto$/);
    await workbench.screenshot('debug-session');
    await workbench.page.keyboard.press('Shift+F5'); // Debug: Stop, as a person would
    const deadline = Date.now() + 20_000;
    while ((await crosvmItem()) && Date.now() < deadline) await workbench.page.waitForTimeout(200);
    assert.equal(await crosvmItem(), undefined, 'still visible after the session ended');
  } finally {
    await workbench.close();
  }
});
