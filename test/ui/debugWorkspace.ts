// A folder with the debug-session test program and a launch configuration for it, for UI
// tests that start debugging the way a person would (Debug: Start Debugging, F5).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { testWorkspace } from '../runner/paths';
import type { TestUser } from '../runner/testUsers';

/**
 * A fresh folder; with `owner`, handed to that user (a workbench run as the user opens it);
 * with `settings`, a `.vscode/settings.json` of the workspace.
 */
export function debugWorkspace(owner?: TestUser, settings?: Record<string, unknown>): string {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-debug-'));
  fs.copyFileSync(path.join(testWorkspace, 'debuggee.js'), path.join(folder, 'debuggee.js'));
  fs.mkdirSync(path.join(folder, '.vscode'));
  const launch = {
    version: '0.2.0',
    configurations: [{ type: 'node', request: 'launch', name: 'debuggee', program: '${workspaceFolder}/debuggee.js' }],
  };
  const files = { 'launch.json': launch, ...(settings ? { 'settings.json': settings } : {}) };
  for (const [name, content] of Object.entries(files)) fs.writeFileSync(path.join(folder, '.vscode', name), JSON.stringify(content));
  if (owner) {
    const written = Object.keys(files).map((name) => path.join(folder, '.vscode', name));
    for (const file of [folder, path.join(folder, 'debuggee.js'), path.join(folder, '.vscode'), ...written]) {
      fs.chownSync(file, owner.uid, owner.gid);
    }
  }
  return folder;
}
