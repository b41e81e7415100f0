// How the extension-host suite reports to a runner outside the extension host. The host
// inherits its environment from the process that started VS Code, so a runner sets these
// variables there (on code-server, or through test-electron's extensionTestsEnv).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** File the mocha report is appended to, line by line, as the tests run. */
export const OUTPUT_FILE_VARIABLE = 'CROSVM_GUARD_TEST_OUTPUT';
/** Pid of a fixture VM the runner started; the suite leaves it frozen for the deactivate check. */
export const DEACTIVATE_VM_VARIABLE = 'CROSVM_GUARD_DEACTIVATE_VM';
/** The executable name of that VM: not `crosvm`, so only the lifecycle test looks for it. */
export const LIFECYCLE_VM_NAME = 'crosvm_lifecycle';
/** File that receives the counts (SuiteResult as JSON) once the run ends. */
export const RESULT_FILE_VARIABLE = 'CROSVM_GUARD_TEST_RESULT';

export interface SuiteResult {
  passed: number;
  failed: number;
  pending: number;
  /** Each test that ran, by its full title, with the error of a failure. */
  tests?: TestOutcome[];
}

export interface TestOutcome {
  title: string;
  error?: string;
}

export function writeSuiteResult(file: string, result: SuiteResult): void {
  writeFileSync(file, JSON.stringify(result));
}

/** The counts, or all zeros when the suite never got to write them (did not load, timed out). */
export function readSuiteResult(file: string): SuiteResult {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SuiteResult) : { passed: 0, failed: 0, pending: 0 };
}

/** A run succeeded only if the host reported success, nothing failed and something passed. */
export function suiteSucceeded(exitCode: number | string, result: SuiteResult): boolean {
  return exitCode === 0 && result.failed === 0 && result.passed > 0;
}
