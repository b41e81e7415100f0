// `npm run test:electron`: the same extension-host suite (test/suite/) in a desktop VS Code
// that @vscode/test-electron downloads into .vscode-test/. Needs internet for that download
// and, on a machine without a display, xvfb-run; `npm run test:vscode` needs neither.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadAndUnzipVSCode, runTests } from '@vscode/test-electron';
import { repoRoot, suiteIndex, testWorkspace } from './paths';
import { disposeAll } from './cleanup';
import { checkResumedOnDeactivate, startLifecycleVm } from './deactivateCheck';
import { RESULT_FILE_VARIABLE, readSuiteResult, suiteSucceeded } from '../suite/result';

async function main(): Promise<number> {
  let vscodeExecutablePath: string;
  try {
    vscodeExecutablePath = await downloadAndUnzipVSCode();
  } catch (error) {
    console.error(
      `npm run test:electron needs internet to download VS Code (${error instanceof Error ? error.message : String(error)}).\n` +
        'Without internet, use npm run test:vscode: the same suite in code-server, installed from npm.',
    );
    return 1;
  }
  const lifecycle = await startLifecycleVm();
  const resultDir = mkdtempSync(join(tmpdir(), 'crosvm-guard-report-'));
  const resultFile = join(resultDir, 'result.json');
  try {
    const code = await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: repoRoot,
      extensionTestsPath: suiteIndex,
      // Desktop VS Code prints the extension host's console, and so the mocha report, itself.
      extensionTestsEnv: { [RESULT_FILE_VARIABLE]: resultFile, ...lifecycle.env },
      launchArgs: [testWorkspace, '--disable-extensions', '--disable-workspace-trust'],
    }).catch(() => 1); // runTests rejects on a non-zero exit; the counts below say why
    const result = readSuiteResult(resultFile);
    // runTests resolves once VS Code has exited, extension host included.
    if (await checkResumedOnDeactivate(lifecycle, async () => true)) result.passed += 1;
    else result.failed += 1;
    console.log(`electron: ${result.passed} passed, ${result.failed} failed`);
    return suiteSucceeded(code, result) ? 0 : 1;
  } finally {
    rmSync(resultDir, { recursive: true, force: true });
    await disposeAll();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
