// How tools.ts installs an npm package into the tools cache: a nested `npm install` with a clean
// environment, all-or-nothing (a staging folder renamed into place), its output streamed to the
// user and, when it fails, one message that says what failed and what to do, quoting npm's own
// last error lines rather than guessing a cause.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * The environment for a nested `npm install`: ours without the `npm_*` / `npm_config_*`
 * variables an outer `npm test` or `npm run` sets. npm reads them as its own configuration, and
 * install scripts read them too: code-server's postinstall takes the Node version from
 * `npm_config_user_agent`, which names the outer npm's Node 20. The user's own npm settings
 * (registry, proxy, cafile in ~/.npmrc or the global npmrc) are not lost: the nested npm reads
 * those files itself. Only a setting given to the outer npm as a variable or flag is.
 */
export function installEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !/^npm_/i.test(name)));
}

/**
 * `npm install --no-save --prefix <prefix>.partial-<pid> <pkg>`, then renames that staging
 * folder to `prefix`. The rename makes the install all-or-nothing: an interrupted install never
 * leaves a half-filled cache that a later run would mistake for a complete one (`installed` is
 * the file whose presence marks a complete install), and of two concurrent installs one simply
 * wins. Staging folders of runs that died (killed mid-way) are removed first.
 */
export function installIntoCache(prefix: string, pkg: string, env: NodeJS.ProcessEnv, installed: string): void {
  removeStaleStaging(prefix);
  const staging = `${prefix}.partial-${process.pid}`;
  try {
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
  } catch (error) {
    throw new Error(cacheNotWritable(pkg, staging, error));
  }
  console.error(`Installing ${pkg} into ${prefix} (first run only; code-server takes a few minutes)...`);
  const run = npmInstall(pkg, staging, env);
  if (run.error || run.signal || run.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(installFailed(pkg, run));
  }
  rmSync(run.log, { force: true });
  if (existsSync(installed)) {
    // Another run finished the same install first; its copy is as good as ours.
    rmSync(staging, { recursive: true, force: true });
    return;
  }
  try {
    rmSync(prefix, { recursive: true, force: true }); // an incomplete leftover, not made by this code
    renameSync(staging, prefix);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(cacheNotWritable(pkg, prefix, error));
  }
}

interface NpmRun {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error?: Error;
  /** stdout and stderr together, as the user saw them... */
  readonly output: string;
  /** ...and the file they were kept in. */
  readonly log: string;
}

/**
 * Runs npm with its output going to our stderr as it comes (a code-server install takes
 * minutes) and, through `tee`, to a log file so that a failure can quote it. The log is in the
 * staging folder: whatever ends the run, it goes with that folder.
 */
function npmInstall(pkg: string, staging: string, env: NodeJS.ProcessEnv): NpmRun {
  const log = join(staging, 'crosvm-guard-install.log');
  const npm = ['npm', 'install', '--no-save', '--no-audit', '--no-fund', '--prefix', staging, pkg];
  // pipefail: the exit status is npm's, not tee's.
  const script = 'log=$1; shift; "$@" 2>&1 | tee "$log" >&2';
  const { status, signal, error } = spawnSync('bash', ['-o', 'pipefail', '-c', script, 'install', log, ...npm], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return { status, signal, error, log, output: existsSync(log) ? readFileSync(log, 'utf8') : '' };
}

/** The `npm error code …` with which npm says that it could not talk to the registry. */
const NETWORK_CODES = [
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_SOCKET_TIMEOUT',
  'FETCH_ERROR',
];
const NETWORK_ERROR = new RegExp(`^npm error (code|errno) (${NETWORK_CODES.join('|')})$`, 'm');

/** One line where the cause is known (interrupted, no registry), else npm's last errors quoted. */
function installFailed(pkg: string, run: NpmRun): string {
  if (run.error) return `npm install ${pkg} could not start (${run.error.message}): is npm on PATH?`;
  if (run.signal) return `npm install ${pkg} was interrupted (${run.signal}): nothing was kept, the next run installs it again.`;
  const lines = run.output
    .split('\n')
    .map((line) => line.trimEnd())
    .filter(Boolean);
  const npmLog = /complete log of this run can be found in:?\s*(\S+)/.exec(run.output)?.[1];
  const seeLog = npmLog ? ` (npm's log: ${npmLog})` : '';
  const networkCode = NETWORK_ERROR.exec(run.output)?.[2];
  if (networkCode) {
    const request = lines.find((line) => /^npm error .*request to/i.test(line))?.replace(/^npm error (FetchError: )?/, '');
    return (
      `npm install ${pkg} could not reach the npm registry (${request ?? networkCode}): check the network and ` +
      `the registry npm uses (\`npm config get registry\`; set it in ~/.npmrc), then run again${seeLog}.`
    );
  }
  const failed = `npm install ${pkg} failed (exit code ${run.status})${seeLog}`;
  const errors = lines.filter((line) => /^npm error /.test(line) && !/complete log of this run/.test(line));
  const quoted = (errors.length > 0 ? errors : lines).slice(-8).map((line) => `  ${line}`);
  return quoted.length === 0 ? `${failed} and printed nothing.` : [`${failed}; its last lines:`, ...quoted].join('\n');
}

function cacheNotWritable(pkg: string, path: string, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  return (
    `Cannot install ${pkg} into the tools cache (${reason}): make ${dirname(path)} writable, ` +
    'or set CROSVM_GUARD_CACHE to a folder you can write, then run again.'
  );
}

/** Removes `<prefix>.partial-<pid>` folders whose run is gone; a live run's is left alone. */
function removeStaleStaging(prefix: string): void {
  const parent = dirname(prefix);
  const pattern = new RegExp(`^${basename(prefix).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.partial-(\\d+)$`);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return; // no cache yet: nothing left over
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!pid || pid === process.pid || isAlive(pid)) continue;
    console.error(`Removing ${join(parent, name)}, left by an install that did not finish (process ${pid} is gone).`);
    try {
      rmSync(join(parent, name), { recursive: true, force: true });
    } catch {
      // Not ours to remove (a cache we may not write): installIntoCache says so when it tries.
    }
  }
}

/** Signal 0 sends nothing: it only asks whether the pid exists. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}
