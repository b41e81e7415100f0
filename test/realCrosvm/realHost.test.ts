// Runs ./host/*.host.ts inside the extension host of a real workbench (code-server and headless
// Chromium, as the extension-host suite runs, with the test-only LLDB extension next to crosvm
// Guard) and reports each of its tests here, so that the real-crosvm stage counts them.
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { launchBrowser } from '../runner/browser';
import { startCodeServer } from '../runner/codeServer';
import { requireIsolation } from '../runner/isolation';
import { lldbTestExtension, repoRoot, testResultsDir, testWorkspace } from '../runner/paths';
import { HOST_VM_NAME } from './host/realHostMain';
import { OUTPUT_FILE_VARIABLE, RESULT_FILE_VARIABLE, readSuiteResult } from '../suite/result';

const HOST_SUITE = join(repoRoot, 'out', 'test', 'realCrosvm', 'host', 'realHostMain.js');
const TIMEOUT_MS = 10 * 60_000;

describe('real crosvm in the extension host', { timeout: TIMEOUT_MS + 60_000 }, () => {
  it('runs the host suite: LLDB on the swap build, the API on the default build', async (t) => {
    requireIsolation('The real-crosvm extension-host suite');
    const dir = mkdtempSync(join(tmpdir(), 'crosvm-guard-real-host-'));
    const outputFile = join(dir, 'output.log');
    const resultFile = join(dir, 'result.json');
    const server = await startCodeServer({
      folder: testWorkspace,
      extensionDevelopmentPath: repoRoot,
      moreDevelopmentExtensions: [lldbTestExtension],
      // The journal folder of this run alone: other test runs on the machine keep theirs.
      env: { [OUTPUT_FILE_VARIABLE]: outputFile, [RESULT_FILE_VARIABLE]: resultFile, CROSVM_GUARD_JOURNAL_DIR: join(dir, 'journal') },
      // Only the host suite's own VMs: no other VM on the machine is listed or frozen.
      settings: { 'crosvmGuard.processNames': [HOST_VM_NAME] },
    });
    let code: number | string;
    try {
      let reportExit: (exitCode: number) => void = () => undefined;
      const exited = new Promise<number>((resolve) => (reportExit = resolve));
      const browser = await launchBrowser((exitCode) => reportExit(exitCode));
      try {
        await browser.page.goto(server.url({ extensionTestsPath: HOST_SUITE }));
        code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), TIMEOUT_MS).unref())]);
      } finally {
        await browser.close();
      }
    } finally {
      if (existsSync(outputFile)) process.stdout.write(readFileSync(outputFile, 'utf8').replace(/^/gm, '# '));
      const saved = join(testResultsDir, 'real-crosvm-host-logs');
      rmSync(saved, { recursive: true, force: true });
      server.saveLogs(saved);
      await server.dispose();
    }
    const result = readSuiteResult(resultFile);
    rmSync(dir, { recursive: true, force: true });
    for (const test of result.tests ?? []) {
      await t.test(test.title, () => {
        if (test.error) throw new Error(test.error);
      });
    }
    assert.equal(code, 0, `the extension host ended with ${code}`);
    assert.ok(result.passed > 0 && result.failed === 0, JSON.stringify({ passed: result.passed, failed: result.failed }));
  });
});
