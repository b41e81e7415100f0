// What users get: `npm run demo` (a workbench whose palette freezes the demo VM, and Ctrl-C
// that stops it all), and the packaged .vsix installed into code-server and activated there.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { eventually, isFullyStopped, isRunning, threadStates } from '../engine/procState';
import { launchBrowser } from '../runner/browser';
import { repoRoot } from '../runner/paths';
import { ensureCodeServer } from '../runner/tools';
import { EXTENSION_ID, openWorkbench, waitForWorkbench, Workbench } from './workbench';

/**
 * Still there, and not a zombie: a real crosvm's devices outlive its main process by a moment,
 * are reparented to pid 1 and wait there to be reaped, which a Node pid 1 (a test run in its own
 * pid namespace) never does. A zombie runs nothing and holds nothing.
 */
const exists = (pid: number) => {
  const states = threadStates(pid);
  return states.length > 0 && !states.every((s) => s === 'Z');
};

test('npm run demo serves a workbench whose palette freezes the demo VM; Ctrl-C stops everything', { timeout: 180_000 }, async () => {
  // The compiled demo script, as `npm run demo` runs it after building.
  const demo = spawn(process.execPath, [path.join(repoRoot, 'out', 'scripts', 'demo.js')], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  demo.stdout.on('data', (chunk) => (output += chunk));
  demo.stderr.on('data', (chunk) => (output += chunk));
  const exited = once(demo, 'exit');
  let workbench: Workbench | undefined;
  try {
    assert.ok(await eventually(() => /Ctrl-C stops/.test(output), 120_000), `the demo printed no URL:\n${output}`);
    const url = /Open (http:\/\/127\.0\.0\.1:\d+\/\S+)/.exec(output)?.[1];
    const logsDir = /VS Code logs: (\S+)/.exec(output)?.[1];
    const vmLine = /Demo VM (\d+) \(swap build\): (.*)/.exec(output);
    assert.ok(url && logsDir && vmLine, output);
    const vmPid = Number(vmLine[1]);
    const devicePids = [...vmLine[2].matchAll(/ (\d+)(?:,|$)/g)].map((m) => Number(m[1]));
    assert.ok(devicePids.length >= 6, vmLine[2]);

    const browser = await launchBrowser();
    await browser.page.goto(url);
    await waitForWorkbench(browser.page);
    workbench = new Workbench({ logsDir, process: demo, dispose: async () => undefined }, browser);
    await workbench.waitForActivation();
    assert.doesNotMatch(
      await workbench.page.title(),
      /Extension Development Host/,
      'the demo loads the extension as under development, not installed',
    );
    await workbench.runCommand('crosvm: Freeze crosvm devices');
    assert.ok(await eventually(() => devicePids.every(isFullyStopped), 10_000), 'the demo VM was not frozen');
    await workbench.waitForStatusBarItem(/crosvm \d+ frozen/);
    await workbench.clickStatusBarItem(/crosvm \d+ frozen/);
    assert.ok(await eventually(() => devicePids.every(isRunning), 10_000), 'the demo VM was not resumed');

    // One click (F5) debugs the demo's stand-in; its stops freeze the demo VM, and the status
    // bar's tooltip says which VMs the session freezes and why.
    await workbench.page.keyboard.press('F5');
    if (!(await eventually(() => devicePids.every(isFullyStopped), 30_000))) {
      await workbench.screenshot('demo-debug');
      assert.fail(`a stop of the demo debug session did not freeze the demo VM\n--- crosvm Guard log ---\n${workbench.extensionLog()}`);
    }
    const status = await workbench.waitForStatusBarItem(/crosvm \d+ frozen \d:\d\d auto/);
    await workbench.page.locator(`.part.statusbar [id="${status.id}"] .statusbar-item-label`).hover();
    const tooltip = workbench.hover();
    await tooltip.waitFor({ timeout: 10_000 });
    assert.match(
      await tooltip.innerText(),
      /Debug session "[^"]*Stand-in debuggee \(Node\)" freezes your VMs? \([\d, ]+\) at each stop: (its debugger has not reported the debuggee's pid|the debuggee \(pid \d+\) is no crosvm VM)/,
    );
    await workbench.page.keyboard.press('Shift+F5');
    assert.ok(await eventually(() => devicePids.every(isRunning), 20_000), 'the end of the debug session did not resume the demo VM');

    demo.kill('SIGINT');
    await exited;
    assert.ok(await eventually(() => !exists(vmPid) && devicePids.every((pid) => !exists(pid)), 10_000), 'Ctrl-C left the demo VM behind');
  } finally {
    await workbench?.close();
    if (demo.exitCode === null) demo.kill('SIGKILL');
  }
});

test('the .vsix holds only what users need, installs into code-server and activates there', { timeout: 180_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-vsix-'));
  let workbench: Workbench | undefined;
  try {
    const vsix = path.join(tmp, 'crosvm-guard.vsix');
    const vsce = path.join(repoRoot, 'node_modules', '.bin', 'vsce');
    const flags = ['--no-dependencies', '--allow-missing-repository'];
    const packed = spawnSync(vsce, ['package', ...flags, '--no-rewrite-relative-links', '--out', vsix], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    assert.equal(packed.status, 0, packed.stderr + packed.stdout);
    const listed = spawnSync(vsce, ['ls', '--no-dependencies'], { cwd: repoRoot, encoding: 'utf8' }).stdout.trim().split('\n').sort();
    assert.deepEqual(
      listed.filter((f) => !/^(README\.md|LICENSE|package\.json|dist\/(extension|companion)\.js|media\/.+\.(svg|png))$/.test(f)),
      [],
      'the .vsix carries files users do not need',
    );
    assert.ok(listed.includes('dist/extension.js') && listed.includes('dist/companion.js'));

    const extensionsDir = path.join(tmp, 'extensions');
    const { node, entry } = ensureCodeServer();
    const config = path.join(tmp, 'config.yaml');
    fs.writeFileSync(config, 'auth: none\n'); // else code-server writes a password config to ~/.config
    const installed = spawnSync(node, [entry, '--extensions-dir', extensionsDir, '--install-extension', vsix], {
      encoding: 'utf8',
      env: { ...process.env, CODE_SERVER_CONFIG: config },
    });
    assert.equal(installed.status, 0, installed.stderr + installed.stdout);
    assert.ok(
      fs.readdirSync(extensionsDir).some((name) => name.startsWith(`${EXTENSION_ID}-`)),
      fs.readdirSync(extensionsDir).join(', '),
    );

    workbench = await openWorkbench({ extensionDevelopmentPath: null, extensionsDir });
    await workbench.runCommand('crosvm: Show Log');
    await workbench.waitForActivation();
    assert.doesNotMatch(workbench.extensionHostLog(), /Activating extension crosvm-guard\.crosvm-guard failed/);
  } finally {
    await workbench?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
