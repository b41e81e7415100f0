// Starts a real VS Code workbench (code-server) for one run: the extension-host test runner,
// the UI test harness and the demo all go through startCodeServer().
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { homedir, hostname, tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerCleanup } from './cleanup';
import { repoRoot } from './paths';
import { accessibleBy, asUserCommand, lookUpUser } from './testUsers';
import { ensureCodeServer, ensureCodeServerFor } from './tools';

export interface CodeServerOptions {
  /** Folder the workbench opens (absolute or relative to the current directory). */
  folder: string;
  /**
   * The extension under development, loaded into the Node extension host from this folder.
   * Undefined to run only installed extensions (e.g. the .vsix after --install-extension).
   */
  extensionDevelopmentPath: string | undefined;
  /**
   * More extensions to load from their folders next to it, e.g. the test-only LLDB adapter
   * extension (test/lldbExtension). The web workbench keeps only the last
   * `extensionDevelopmentPath` of its URL payload (a Map), so all of them are handed over as
   * one folder of links, which the server scans as several extensions.
   */
  moreDevelopmentExtensions?: string[];
  /** Defaults to a fresh temporary folder, deleted by dispose(). */
  userDataDir?: string;
  /** Defaults to `<userDataDir>/extensions` (empty: only built-in extensions and ours). */
  extensionsDir?: string;
  /** User settings, merged over quietWorkbenchSettings into `<userDataDir>/User/settings.json`. */
  settings?: Record<string, unknown>;
  /** `host:port`; default 127.0.0.1 and a free port. Anything but loopback exposes an unauthenticated IDE. */
  bindAddr?: string;
  /** Keep workspace trust on (the folder then opens in Restricted Mode until trusted). */
  trust?: boolean;
  /** Extra environment for code-server and so for the extension host, which inherits it. */
  env?: Record<string, string>;
  /**
   * Load extensionDevelopmentPath as an installed extension (an entry of the extensions folder's
   * extensions.json that points at the folder) instead of through the URL's payload, and start
   * without the smoke-test driver, which the payload needs and which hides notification toasts:
   * the workbench as users see it. (No extension tests can run in it: they need the payload.)
   */
  asInstalled?: boolean;
  /**
   * Run code-server (and so the extension host) as this user instead of the runner's; needs
   * root. See startCodeServer for what that takes. ensureTestUser() (testUsers.ts) makes users
   * with sudo rights for it.
   */
  runAs?: RunAs;
}

/** An unprivileged user for CodeServerOptions.runAs. */
export interface RunAs {
  uid: number;
  gid: number;
  /** HOME for code-server: it keeps state under ~/.local/share/code-server, so it must be the user's. */
  home: string;
}

/** What a workbench URL may carry besides the extension under development. */
export interface WorkbenchPayload {
  /** Module exporting `async run()`, run in the extension host; its outcome ends the session. */
  extensionTestsPath?: string;
}

export interface CodeServer {
  /** The workbench URL: opens `folder` with the extension under development loaded. */
  url(payload?: WorkbenchPayload): string;
  readonly port: number;
  readonly userDataDir: string;
  /** `<userDataDir>/logs`: one `<timestamp>/` folder per server start, `exthostN/remoteexthost.log` inside. */
  readonly logsDir: string;
  /** code-server's own stdout and stderr. */
  readonly serverLog: string;
  /** The code-server process; it leads its own process group, which holds the extension host too. */
  readonly process: ChildProcess;
  /** Copies the logs somewhere that outlives dispose() (a failed CI run's artefacts). */
  saveLogs(destination: string): void;
  /** Kills the whole process group (SIGTERM, SIGKILL after 3 s) and deletes the temporary folders. */
  dispose(): Promise<void>;
}

/**
 * Settings that keep a test workbench free of things unrelated to the extension: the welcome
 * page, the chat side bar, tips, update or experiment look-ups that need internet, and Git's
 * offer to open the repository around test/workspace/.
 */
export const quietWorkbenchSettings: Record<string, unknown> = {
  'git.openRepositoryInParentFolders': 'never',
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'chat.disableAIFeatures': true,
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'telemetry.telemetryLevel': 'off',
  // A revealed JavaScript file starts the TypeScript server, whose type acquisition runs
  // `npm install` for typings: offline it fails and tries again, taking a core meanwhile.
  'typescript.disableAutomaticTypeAcquisition': true,
};

/**
 * Variables that change what code-server does when inherited: from a VS Code or code-server
 * terminal, VSCODE_IPC_HOOK_CLI makes it hand the folder to that editor instead of starting;
 * PORT, PASSWORD and friends override the flags below; NODE_OPTIONS (a debugger's auto-attach)
 * and NODE_TEST_CONTEXT (set by `node --test`) are meant for the runner's Node, not Node 24.
 */
function isInheritedVariableToDrop(name: string): boolean {
  return (
    /^(VSCODE_|ELECTRON_|CODE_SERVER_|CS_)/.test(name) ||
    ['PORT', 'PASSWORD', 'HASHED_PASSWORD', 'GITHUB_TOKEN', 'NODE_OPTIONS', 'NODE_TEST_CONTEXT'].includes(name)
  );
}

/**
 * Starts code-server on a free loopback port (or `bindAddr`) and waits until it answers.
 *
 * With `runAs`, code-server runs as that uid and gid with the user's supplementary groups
 * (util-linux setpriv, which execs in place: the process group and extensionHostPids work as
 * without), HOME, USER and LOGNAME set, XDG_RUNTIME_DIR a fresh 0700 folder of that user's, and
 * no variable pointing into root's home. Node 24 and code-server come from a world-readable
 * hard-linked copy of the cache (ensureCodeServerFor); the user data and extensions folders
 * (settings.json included) are handed to the user with `chown -R`. The folder to open and the
 * extension under development must already be readable by the user: that is checked, never
 * arranged (no chmod of a repository).
 */
export async function startCodeServer(options: CodeServerOptions): Promise<CodeServer> {
  const { runAs } = options;
  if (runAs && process.getuid?.() !== 0) {
    throw new Error(`startCodeServer({ runAs: { uid: ${runAs.uid} } }) must run as root, not as uid ${process.getuid?.()}`);
  }
  const { node, entry } = runAs ? ensureCodeServerFor(runAs) : ensureCodeServer();
  const folder = resolve(options.folder);
  const extensionDevelopmentPath = options.extensionDevelopmentPath && resolve(options.extensionDevelopmentPath);
  if (runAs) {
    assertAccessible(runAs, folder, 'rx', 'the folder to open');
    if (extensionDevelopmentPath) {
      assertAccessible(runAs, extensionDevelopmentPath, 'rx', 'the extension under development');
      assertAccessible(runAs, join(extensionDevelopmentPath, 'package.json'), 'r', 'the extension under development');
    }
  }
  const ownUserDataDir = options.userDataDir === undefined;
  const userDataDir = options.userDataDir ? resolve(options.userDataDir) : mkdtempSync(join(tmpdir(), 'crosvm-guard-vscode-'));
  const extensionsDir = options.extensionsDir ? resolve(options.extensionsDir) : join(userDataDir, 'extensions');
  const [bindHost, port] = options.bindAddr ? parseBindAddr(options.bindAddr) : ['127.0.0.1', await freePort()];
  const developmentPath =
    extensionDevelopmentPath && options.moreDevelopmentExtensions?.length
      ? linkedExtensions(join(userDataDir, 'development-extensions'), [
          extensionDevelopmentPath,
          ...options.moreDevelopmentExtensions.map((p) => resolve(p)),
        ])
      : extensionDevelopmentPath;

  // code-server reads user settings from <user-data-dir>/User/settings.json (and, taking
  // precedence, machine settings from <user-data-dir>/Machine/settings.json). A workbench that
  // counts as remote, as code-server's does, applies `machine` scoped settings from the machine
  // file only: it drops them from the user file a moment after start (seen: crosvmGuard.method
  // flipping to its default 1.3 s after activation), so they go to both.
  writeSettings(join(userDataDir, 'User', 'settings.json'), options.settings ?? {});
  const machine = Object.entries(options.settings ?? {}).filter(([key]) => MACHINE_SCOPED.has(key));
  if (machine.length > 0) writeSettings(join(userDataDir, 'Machine', 'settings.json'), Object.fromEntries(machine), false);
  // Without CODE_SERVER_CONFIG, code-server writes ~/.config/code-server/config.yaml with a
  // password. The file must not be empty: an empty YAML document is an error.
  const configFile = join(userDataDir, 'code-server.yaml');
  writeFileSync(configFile, 'auth: none\n');
  const serverLog = join(userDataDir, 'code-server.log');
  const logFd = openSync(serverLog, 'a');

  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !isInheritedVariableToDrop(name)));
  // The user's own XDG_RUNTIME_DIR (VS Code puts its IPC sockets there), removed by dispose().
  let runtimeDir: string | undefined;
  const removeOwnFolders = (): void => {
    if (ownUserDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
  };
  if (runAs) {
    try {
      mkdirSync(extensionsDir, { recursive: true });
      runtimeDir = mkdtempSync(join(tmpdir(), 'crosvm-guard-runtime-')); // 0700
      // Everything root wrote there (settings.json, the config, the log) becomes the user's.
      chownRecursively(runAs, [userDataDir, extensionsDir, runtimeDir]);
      assertAccessible(runAs, userDataDir, 'rwx', 'the user data folder');
      assertAccessible(runAs, extensionsDir, 'rwx', 'the extensions folder');
      assertAccessible(runAs, runtimeDir, 'rwx', 'XDG_RUNTIME_DIR');
    } catch (error) {
      closeSync(logFd);
      removeOwnFolders();
      throw error;
    }
    Object.assign(env, userEnvironment(runAs, env, runtimeDir));
  }
  Object.assign(env, { CODE_SERVER_CONFIG: configFile }, options.env);
  if (options.asInstalled && extensionDevelopmentPath) registerInstalledExtension(extensionsDir, extensionDevelopmentPath, runAs);

  const args = [
    entry,
    '--auth',
    'none',
    '--bind-addr',
    `${bindHost}:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    ...(options.trust ? [] : ['--disable-workspace-trust']),
    // The web workbench honours the URL's `payload` (extension development, tests) only with this.
    ...(options.asInstalled ? [] : ['--vscode-option', 'enable-smoke-test-driver']),
    '--user-data-dir',
    userDataDir,
    '--extensions-dir',
    extensionsDir,
    folder,
  ];
  // detached: code-server leads a new process group holding everything it starts (its server
  // child, the extension host, file watcher, agent host), so one signal to the group stops all
  // (root may signal another user's processes). setpriv execs node in place: same pid.
  const [command, ...commandArgs] = runAs ? [...asUserCommand(runAs), node, ...args] : [node, ...args];
  const child = spawn(command, commandArgs, { env, detached: true, stdio: ['ignore', logFd, logFd], cwd: runAs?.home });
  closeSync(logFd);
  // Not keeping the runner alive is deliberate: cleanup's 'exit' handler still kills the group.
  child.unref();
  const pgid = child.pid;
  if (pgid === undefined) {
    removeOwnFolders();
    throw new Error(`could not start code-server (${command} ${commandArgs.slice(0, commandArgs.indexOf(entry) + 1).join(' ')})`);
  }

  const dispose = registerCleanup({
    async dispose() {
      await killProcessGroup(pgid);
      removeOwnFolders();
    },
    disposeSync() {
      signalGroup(pgid, 'SIGKILL');
      removeOwnFolders();
    },
  });

  const localHost = bindHost === '0.0.0.0' || bindHost === '::' ? '127.0.0.1' : bindHost;
  try {
    await waitForHttp(`http://${localHost}:${port}/healthz`, child, serverLog);
  } catch (error) {
    await dispose();
    throw error;
  }

  // Seen from a browser elsewhere, a wildcard address is this machine's name.
  const urlHost = localHost === bindHost ? bindHost : hostname();
  const authority = `${urlHost}:${port}`;
  // Paths in the payload are files of the code-server machine, addressed as the remote they are.
  const remoteUri = (path: string): string => `vscode-remote://${authority}${resolve(path)}`;

  return {
    url(payload: WorkbenchPayload = {}): string {
      const entries: [string, string][] = [];
      if (developmentPath && !options.asInstalled) entries.push(['extensionDevelopmentPath', remoteUri(developmentPath)]);
      if (payload.extensionTestsPath) entries.push(['extensionTestsPath', remoteUri(payload.extensionTestsPath)]);
      const query = `folder=${encodeURIComponent(folder)}&payload=${encodeURIComponent(JSON.stringify(entries))}`;
      return `http://${authority}/?${query}`;
    },
    port,
    userDataDir,
    logsDir: join(userDataDir, 'logs'),
    serverLog,
    process: child,
    saveLogs(destination: string): void {
      mkdirSync(destination, { recursive: true });
      cpSync(serverLog, join(destination, 'code-server.log'));
      if (existsSync(join(userDataDir, 'logs'))) cpSync(join(userDataDir, 'logs'), join(destination, 'logs'), { recursive: true });
    },
    dispose,
  };
}

/**
 * Makes the extension in `folder` an installed extension of `extensionsDir`, in place: VS Code
 * reads the installed extensions of the default profile from extensions.json there, and an
 * entry may point anywhere. The folder's dist/ is what runs, as with extensionDevelopmentPath.
 */
function registerInstalledExtension(extensionsDir: string, folder: string, runAs: RunAs | undefined): void {
  const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as { publisher: string; name: string; version: string };
  const id = `${manifest.publisher}.${manifest.name}`;
  mkdirSync(extensionsDir, { recursive: true });
  const file = join(extensionsDir, 'extensions.json');
  const entries = (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { identifier: { id: string } }[]) : []).filter(
    (e) => e.identifier.id !== id,
  );
  entries.push({
    identifier: { id },
    version: manifest.version,
    location: { $mid: 1, path: folder, scheme: 'file' },
    metadata: { installedTimestamp: Date.now(), source: 'vsix' },
  } as { identifier: { id: string } });
  writeFileSync(file, JSON.stringify(entries));
  if (runAs) chownRecursively(runAs, [file]);
}

/**
 * Pids of the extension hosts started by the code-server whose pid is given: Node processes
 * anywhere below it (code-server runs VS Code's server in a child process) with
 * `--type=extensionHost` on their command line. Crash tests kill one to see the extension recover.
 */
export function extensionHostPids(codeServerPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const parent = parentPid(Number(name));
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), Number(name)]);
  }
  const found: number[] = [];
  const queue = [...(children.get(codeServerPid) ?? [])];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    queue.push(...(children.get(pid) ?? []));
    if (commandLine(pid).includes('--type=extensionHost')) found.push(pid);
  }
  return found;
}

function parentPid(pid: number): number | undefined {
  try {
    // Field 4 of /proc/<pid>/stat, counted after the parenthesised command name (which may hold spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // exited meanwhile
  }
}

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Throws, naming the first folder on the way that stops it, unless `user` may access `path` in `modes`. */
function assertAccessible(user: RunAs, path: string, modes: string, what: string): void {
  if (accessibleBy(user, path, modes)) return;
  const who = `uid ${user.uid}${describeUser(user.uid)}`;
  // The first parent folder the user may not search, if one is the cause.
  const parents: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    parents.unshift(dir);
    if (dir === dirname(dir)) break;
  }
  const blocked = parents.find((dir) => !accessibleBy(user, dir, 'x'));
  const describe = (p: string): string => {
    try {
      const stat = lstatSync(p);
      return `${p} (mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${stat.uid}:${stat.gid})`;
    } catch {
      return `${p} (missing)`;
    }
  };
  const reason = blocked
    ? `${describe(blocked)} is not searchable by ${who}`
    : `${describe(path)} lacks ${[...modes].join('+')} for ${who}`;
  throw new Error(
    `${what}, ${path}, must be accessible (${modes}) to the user code-server runs as: ${reason}. ` +
      'Use a checkout or folder that user can read (e.g. not under /root or a 0700 mktemp folder); this harness does not change its permissions.',
  );
}

function describeUser(uid: number): string {
  const name = lookUpUser(uid)?.name;
  return name ? ` (${name})` : '';
}

/** `chown -R -h uid:gid` (symbolic links themselves, never what they point to). */
function chownRecursively(user: RunAs, paths: string[]): void {
  const result = spawnSync('chown', ['-R', '-h', `${user.uid}:${user.gid}`, '--', ...paths], { encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`chown -R ${user.uid}:${user.gid} ${paths.join(' ')} failed: ${result.error?.message ?? result.stderr}`);
  }
}

/**
 * What changes in the environment for code-server run as `user`: who it is, its home and runtime
 * folder, and nothing left pointing into root's home (a user could not use it, and npm's or
 * XDG's folders there must not be tried): such variables are dropped, and PATH loses such entries.
 */
function userEnvironment(user: RunAs, inherited: NodeJS.ProcessEnv, runtimeDir: string): NodeJS.ProcessEnv {
  const rootHome = homedir();
  const insideRootHome = (value: string): boolean => value === rootHome || value.startsWith(rootHome + sep);
  const name = lookUpUser(user.uid)?.name ?? String(user.uid);
  const changes: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(inherited)) {
    if (value === undefined) continue;
    if (key === 'PATH') {
      changes.PATH = value
        .split(delimiter)
        .filter((dir) => !insideRootHome(dir))
        .join(delimiter);
    } else if (/^(XDG_[A-Z_]+_(HOME|DIR|DIRS)|SUDO_[A-Z_]+|MAIL|OLDPWD)$/.test(key) || insideRootHome(value)) changes[key] = undefined;
  }
  Object.assign(changes, { HOME: user.home, USER: name, LOGNAME: name, PWD: user.home, XDG_RUNTIME_DIR: runtimeDir });
  return changes;
}

/** A folder holding a link to each extension folder: loaded as a development path, each is one extension. */
function linkedExtensions(folder: string, extensions: string[]): string {
  mkdirSync(folder, { recursive: true });
  extensions.forEach((extension, n) => symlinkSync(extension, join(folder, `${n}-${basename(extension)}`)));
  return folder;
}

function writeSettings(file: string, settings: Record<string, unknown>, quiet = true): void {
  // A reused user-data-dir keeps its own settings; ours are only laid over them.
  const existing = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, JSON.stringify({ ...(quiet ? quietWorkbenchSettings : {}), ...existing, ...settings }, null, 2));
}

/** The extension's settings that package.json declares `machine` scoped. */
const MACHINE_SCOPED: ReadonlySet<string> = new Set(
  Object.entries(
    (
      JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
        contributes: { configuration: { properties: Record<string, { scope?: string }> } };
      }
    ).contributes.configuration.properties,
  )
    .filter(([, property]) => property.scope === 'machine' || property.scope === 'machine-overridable')
    .map(([key]) => key),
);

function parseBindAddr(bindAddr: string): [string, number] {
  const match = /^(.+):(\d+)$/.exec(bindAddr);
  if (!match) throw new Error(`bind address must be host:port, got ${bindAddr}`);
  return [match[1], Number(match[2])];
}

/** A port nothing listens on right now: the kernel's pick for a socket bound to port 0. */
function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, serverLog: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`code-server exited (${child.exitCode ?? child.signalCode}) before answering:\n${readFileSync(serverLog, 'utf8')}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  throw new Error(`code-server did not answer ${url} within 60 s:\n${readFileSync(serverLog, 'utf8')}`);
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: nothing left in the group
  }
}

async function killProcessGroup(pgid: number): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return;
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline) {
    await sleep(100);
    if (!signalGroup(pgid, 0)) return;
  }
  signalGroup(pgid, 'SIGKILL');
}
