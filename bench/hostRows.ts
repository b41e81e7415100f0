// Runs bench/inHost.ts inside the extension host of a real workbench (code-server and
// headless Chromium, as the extension-host tests do, with the test-only LLDB extension next
// to crosvm Guard) and returns its rows.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchBrowser } from '../test/runner/browser';
import { startCodeServer } from '../test/runner/codeServer';
import { lldbTestExtension, repoRoot, testWorkspace } from '../test/runner/paths';
import { chromiumPath, ensureCodeServer } from '../test/runner/tools';
import { BENCH_CONFIG_VARIABLE, BenchConfig, HOST_PATHS, HostPath, HostRow } from './hostBench';

const TIMEOUT_MS = 30 * 60_000;

export async function extensionHostRows(runs: number, sizes: number[], paths: HostPath[] = [...HOST_PATHS]): Promise<HostRow[]> {
  const unknown = paths.filter((p) => !HOST_PATHS.includes(p));
  if (unknown.length > 0) throw new Error(`no extension-host row ${unknown.join(', ')}: choose from ${HOST_PATHS.join(', ')}`);
  ensureCodeServer();
  chromiumPath();
  const dir = mkdtempSync(join(tmpdir(), 'crosvm-guard-bench-host-'));
  const config: BenchConfig = { runs, sizes, paths, resultFile: join(dir, 'rows.json'), progressFile: join(dir, 'progress.log') };
  const server = await startCodeServer({
    folder: testWorkspace,
    extensionDevelopmentPath: repoRoot,
    moreDevelopmentExtensions: [lldbTestExtension],
    env: { [BENCH_CONFIG_VARIABLE]: JSON.stringify(config) },
  });
  let printed = 0;
  const printProgress = (): void => {
    if (!existsSync(config.progressFile)) return;
    const text = readFileSync(config.progressFile, 'utf8');
    process.stderr.write(text.slice(printed).replace(/^(?=.)/gm, '  '));
    printed = text.length;
  };
  const progress = setInterval(printProgress, 500);
  try {
    let reportExit: (code: number) => void = () => undefined;
    const exited = new Promise<number>((resolve) => (reportExit = resolve));
    const browser = await launchBrowser((code) => reportExit(code));
    try {
      await browser.page.goto(server.url({ extensionTestsPath: join(repoRoot, 'out', 'bench', 'inHost.js') }));
      const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), TIMEOUT_MS).unref())]);
      // The extension's own log has a line per automatic freeze and resume, with its duration.
      const saved = join(repoRoot, 'bench', 'results', 'vscode-logs');
      rmSync(saved, { recursive: true, force: true });
      server.saveLogs(saved);
      if (code !== 0 || !existsSync(config.resultFile)) {
        throw new Error(`the extension-host bench ended with ${code}; VS Code logs saved to ${saved}`);
      }
      return JSON.parse(readFileSync(config.resultFile, 'utf8')) as HostRow[];
    } finally {
      await browser.close();
    }
  } finally {
    clearInterval(progress);
    printProgress();
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
