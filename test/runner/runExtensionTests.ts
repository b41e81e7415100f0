// `npm run test:vscode`: runs test/suite/ inside the Node extension host of a real VS Code
// workbench (code-server, driven by headless Chromium), with the extension loaded from this
// repository. Works without internet once the tool cache exists (see tools.ts).
//
//   CROSVM_GUARD_TEST_TIMEOUT  seconds for the whole run (default 600)
//   CROSVM_GUARD_VERBOSE       also print the browser console (workbench and extension host)
//   CROSVM_GUARD_TEST_GREP     run only the tests whose full title matches (a mocha grep)
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { launchBrowser } from './browser';
import { disposeAll, registerCleanup } from './cleanup';
import { CodeServer, extensionHostPids, startCodeServer } from './codeServer';
import { lldbTestExtension, repoRoot, suiteIndex, testResultsDir, testWorkspace } from './paths';
import { chromiumPath, ensureCodeServer } from './tools';
import { OUTPUT_FILE_VARIABLE, RESULT_FILE_VARIABLE, readSuiteResult, suiteSucceeded } from '../suite/result';
import { eventually } from '../engine/procState';
import { checkResumedOnDeactivate, startLifecycleVm } from './deactivateCheck';
import { requireIsolation } from './isolation';

async function main(): Promise<number> {
  const timeoutSeconds = Number(process.env.CROSVM_GUARD_TEST_TIMEOUT || 600);
  requireIsolation('The extension-host suite');
  if (!existsSync(suiteIndex)) throw new Error(`${suiteIndex} is missing: run \`node esbuild.mjs --tests\` first`);
  // Before the clock starts: a first run installs the tools, which takes minutes.
  ensureCodeServer();
  chromiumPath();

  const reportDir = mkdtempSync(join(tmpdir(), 'crosvm-guard-report-'));
  registerCleanup({
    dispose: async () => rmSync(reportDir, { recursive: true, force: true }),
    disposeSync: () => rmSync(reportDir, { recursive: true, force: true }),
  });
  const outputFile = join(reportDir, 'output.log');
  const resultFile = join(reportDir, 'result.json');

  const lifecycle = await startLifecycleVm();

  const started = Date.now();
  let server: CodeServer | undefined;
  let output: { stop(): void } | undefined;
  const run = async (): Promise<number> => {
    server = await startCodeServer({
      folder: testWorkspace,
      extensionDevelopmentPath: repoRoot,
      moreDevelopmentExtensions: [lldbTestExtension],
      // The extension host inherits these from code-server.
      env: { [OUTPUT_FILE_VARIABLE]: outputFile, [RESULT_FILE_VARIABLE]: resultFile, ...lifecycle.env },
    });
    let reportExit: (code: number) => void = () => undefined;
    const exited = new Promise<number>((resolve) => (reportExit = resolve));
    const { page } = await launchBrowser((code) => reportExit(code));
    output = followFile(outputFile, (text) => process.stdout.write(text));
    await page.goto(server.url({ extensionTestsPath: suiteIndex }));
    return exited;
  };
  // The timeout covers everything, start-up included; what is still starting when it fires
  // is stopped by the cleanup that follows.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutSeconds * 1000)));
  const running = run();
  // After a timeout, run() may still fail as cleanup pulls things from under it; nobody waits for it then.
  running.catch(() => undefined);
  const exitCode = await Promise.race([running, timedOut]).finally(() => clearTimeout(timer));
  output?.stop();

  const result = readSuiteResult(resultFile);
  if (exitCode !== 'timeout' && server) {
    const shutDown = server;
    const resumed = await checkResumedOnDeactivate(lifecycle, () => extensionHostShutDown(shutDown));
    if (resumed) result.passed += 1;
    else result.failed += 1;
  }
  const ok = suiteSucceeded(exitCode, result);
  if (exitCode === 'timeout') {
    console.error(`\nThe extension-host tests did not finish within ${timeoutSeconds} s (CROSVM_GUARD_TEST_TIMEOUT).`);
  } else if (!ok) console.error(`\nThe extension-host test run ended with code ${exitCode}.`);
  if (!ok && server) {
    const saved = join(testResultsDir, 'vscode-logs');
    rmSync(saved, { recursive: true, force: true });
    server.saveLogs(saved);
    console.error(`VS Code logs saved to ${saved} (extension host: logs/*/exthost*/remoteexthost.log).`);
  }
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`vscode: ${result.passed} passed, ${result.failed} failed`);
  return ok ? 0 : 1;
}

/**
 * When the tests end the workbench shuts the extension host down the way a closing window
 * does. If the host is still there after 10 s, code-server itself is asked to stop (SIGTERM to
 * it alone, not its process group: it then closes its extension hosts gracefully).
 */
async function extensionHostShutDown(server: CodeServer): Promise<boolean> {
  const codeServerPid = server.process.pid as number;
  const hostsGone = () => extensionHostPids(codeServerPid).length === 0;
  if (!(await eventually(hostsGone, 10_000))) process.kill(codeServerPid, 'SIGTERM');
  return eventually(hostsGone, 15_000);
}

/**
 * Copies what is appended to `file` (which may not exist yet) to `write`, polling: the writer
 * is another process, and polling a small file is simpler and sturdier than fs.watch.
 */
function followFile(file: string, write: (text: string) => void): { stop(): void } {
  let offset = 0;
  const buffer = Buffer.alloc(64 * 1024);
  const decoder = new StringDecoder('utf8'); // a read may end inside a multi-byte character
  const drain = (): void => {
    if (!existsSync(file)) return;
    const fd = openSync(file, 'r');
    try {
      for (let read; (read = readSync(fd, buffer, 0, buffer.length, offset)) > 0; offset += read) {
        write(decoder.write(buffer.subarray(0, read)));
      }
    } finally {
      closeSync(fd);
    }
  };
  const interval = setInterval(drain, 100);
  return {
    stop() {
      clearInterval(interval);
      drain();
    },
  };
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    console.log('vscode: 0 passed, 0 failed');
    return 1;
  })
  .then(async (code) => {
    await disposeAll();
    process.exit(code);
  });
