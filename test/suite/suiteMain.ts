// The extension-host test entry point (`extensionTestsPath`). Whichever runner loads it
// (test/runner/runExtensionTests.ts in code-server, runElectronTests.ts in a desktop VS Code)
// calls `run()` inside the extension host, where `require('vscode')` works.
// A runner outside the host follows the run through the files named in ./result.ts.
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';
import Mocha from 'mocha';
import { OUTPUT_FILE_VARIABLE, RESULT_FILE_VARIABLE, type SuiteResult, type TestOutcome, writeSuiteResult } from './result';

export async function run(): Promise<void> {
  await runSuite(__dirname, '.test.js');
}

/**
 * Runs every compiled mocha file below `dir` whose name ends with `suffix` in this extension
 * host, and reports through the files named in ./result.ts. Other suites that must run in an
 * extension host (test/realCrosvm/host) use it with a suffix `node --test` does not pick up.
 */
export async function runSuite(dir: string, suffix: string): Promise<void> {
  const outputFile = process.env[OUTPUT_FILE_VARIABLE];
  const resultFile = process.env[RESULT_FILE_VARIABLE];
  // CROSVM_GUARD_TEST_GREP (inherited from the runner): only the tests whose title matches.
  const mocha = new Mocha({ ui: 'tdd', timeout: 20_000, color: false, grep: process.env.CROSVM_GUARD_TEST_GREP || undefined });
  for (const file of testFiles(dir, suffix)) mocha.addFile(file);

  // Every reporter line goes through Base.consoleLog (mocha's seam for exactly this); copying
  // each line to the output file is what lets a runner outside the extension host stream it.
  const Base = Mocha.reporters.Base;
  const consoleLog = Base.consoleLog;
  Base.consoleLog = (...data: unknown[]) => {
    consoleLog(...data);
    if (outputFile) appendFileSync(outputFile, `${format(...data)}\n`);
  };
  let result: SuiteResult;
  try {
    result = await new Promise<SuiteResult>((resolve) => {
      const tests: TestOutcome[] = [];
      const runner = mocha.run(() => {
        const stats = runner.stats;
        resolve({ passed: stats?.passes ?? 0, failed: stats?.failures ?? 0, pending: stats?.pending ?? 0, tests });
      });
      runner.on('pass', (test) => tests.push({ title: test.fullTitle() }));
      runner.on('fail', (test, error: Error) => tests.push({ title: test.fullTitle(), error: error.stack ?? String(error) }));
    });
  } catch (error) {
    // A test file that fails to load: mocha throws before running anything.
    Base.consoleLog(`could not load the tests: ${error instanceof Error ? error.stack : String(error)}`);
    result = { passed: 0, failed: 1, pending: 0 };
  } finally {
    Base.consoleLog = consoleLog;
  }
  if (resultFile) writeSuiteResult(resultFile, result);
  if (result.failed > 0) throw new Error(`${result.failed} extension-host test(s) failed`);
  if (result.passed === 0) throw new Error('no extension-host test ran');
}

/** Every compiled `*<suffix>` below `dir`, in a stable order. */
function testFiles(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith(suffix))
    .sort()
    .map((file) => join(dir, file));
}
