// Locations shared by the runners, the UI harness and the demo. Every caller runs as
// compiled JavaScript under out/, so the repository root is found from this file's place
// in out/test/runner/ rather than from the current directory.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(__dirname, '..', '..', '..');
if (!existsSync(join(repoRoot, 'package.json'))) {
  throw new Error(`${__filename} must run from out/test/runner/ (repository root not found at ${repoRoot})`);
}

/** The folder every test workbench opens: a small committed workspace, not the repository. */
export const testWorkspace = join(repoRoot, 'test', 'workspace');

/** The extension-host test module (`export async function run()`), built by `node esbuild.mjs --tests`. */
export const suiteIndex = join(repoRoot, 'out', 'test', 'suite', 'suiteMain.js');

/** A test-only extension contributing Debian's native DAP adapter, lldb-vscode-14, as debug type `lldb-vscode`. */
export const lldbTestExtension = join(repoRoot, 'test', 'lldbExtension');

/** Where screenshots and other artefacts of a test run go (git-ignored). */
export const testResultsDir = join(repoRoot, 'test-results');
