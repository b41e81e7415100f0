// Unprivileged Linux users with sudo rights, for tests that run VS Code as a person would
// (not as root) against root-owned VMs: one may run anything through `sudo -n` without a
// password, the other must give its password (`sudo -S` on stdin). Made on first use by the
// runner, which runs as root; later calls reuse the users and only refresh what may drift.
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type TestUserKind = 'nopasswd' | 'password';

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Under /home, owned by the user. */
  readonly home: string;
  /** For 'password': what `sudo -S` wants on stdin, fresh on every ensureTestUser() call. Undefined for 'nopasswd'. */
  readonly password: string | undefined;
}

/** The user names, one per kind; each has a drop-in of the same name in /etc/sudoers.d/. */
export const TEST_USER_NAMES: Readonly<Record<TestUserKind, string>> = {
  nopasswd: 'crosvm-guard-nopw',
  password: 'crosvm-guard-pw',
};

const SUDOERS_DIR = '/etc/sudoers.d';

/**
 * Makes sure the test user of this kind exists and has its sudo rights, and returns it. Needs
 * root. Idempotent: creates the user (home under /home, shell /bin/bash, its own group) only if
 * missing, rewrites its sudoers drop-in only if it differs, and checks with the real sudo that
 * `sudo -n true` succeeds ('nopasswd') or is refused for want of a password ('password'). For
 * 'password' it sets a new random password each call and forgets the user's sudo time stamps, so
 * no earlier successful `sudo -S` lets a later `sudo -n` through.
 */
export function ensureTestUser(kind: TestUserKind): TestUser {
  if (process.getuid?.() !== 0) {
    throw new Error(`ensureTestUser('${kind}') must run as root (it adds a user and a sudoers rule); this process runs as uid ${process.getuid?.()}`);
  }
  const name = TEST_USER_NAMES[kind];
  const user = lookUpUser(name) ?? createUser(name);
  // Someone may have deleted the home folder since; code-server needs it (HOME).
  if (!existsSync(user.home)) {
    mkdirSync(user.home, { mode: 0o750 });
    chownSync(user.home, user.uid, user.gid);
  }
  installSudoersDropIn(name, kind === 'nopasswd' ? `${name} ALL=(ALL:ALL) NOPASSWD: ALL` : `${name} ALL=(ALL:ALL) ALL`);

  let password: string | undefined;
  if (kind === 'password') {
    // base64url never holds chpasswd's ':' separator or a newline. Only stdin sees it, never argv.
    password = randomBytes(18).toString('base64url');
    run('chpasswd', [], { input: `${name}:${password}\n` });
    // The password works: `sudo -S` reads it as a line on stdin.
    const result = runAs(user, 'sudo', ['-S', '-p', '', '--', 'true'], { input: `${password}\n`, check: false });
    if (result.status !== 0) throw new Error(`\`sudo -S true\` as ${name} with the password just set failed (exit ${result.status}): ${String(result.stderr).trim()}`);
  }
  // Without a terminal, sudo ties a time stamp to the parent process of the `sudo -S` (here this
  // runner): a later `sudo -n` with the same parent would then get through without a password
  // for 15 minutes. Time stamps also outlive a password change. Forget them all.
  runAs(user, 'sudo', ['-K']);
  checkSudo(user, kind);
  return { ...user, password };
}

/** The command-line prefix that runs a program as `user` with its supplementary groups, from root (util-linux setpriv, which execs in place). */
export function asUserCommand(user: { uid: number; gid: number }): string[] {
  const groups = lookUpUser(user.uid) ? ['--init-groups'] : ['--clear-groups'];
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, ...groups, '--'];
}

/**
 * Whether `user` may access `path` as `test(1)` sees it from that user (each of `modes`: 'r',
 * 'w', 'x'), which includes search permission on every parent folder. Run from root.
 */
export function accessibleBy(user: { uid: number; gid: number }, path: string, modes: string): boolean {
  const tests = [...modes].flatMap((mode, i) => [...(i > 0 ? ['-a'] : []), `-${mode}`, path]);
  const [setpriv, ...prefix] = asUserCommand(user);
  const result = spawnSync(setpriv, [...prefix, 'test', ...tests], { stdio: 'ignore', cwd: '/' });
  if (result.error) throw result.error;
  return result.status === 0;
}

type Account = Omit<TestUser, 'password'>;

/** The passwd entry of a user name or uid, through NSS (getent), or undefined. */
export function lookUpUser(nameOrUid: string | number): Account | undefined {
  const result = spawnSync('getent', ['passwd', String(nameOrUid)], { encoding: 'utf8' });
  if (result.status === 2) return undefined; // "key not found"
  if (result.status !== 0) throw new Error(`getent passwd ${nameOrUid} failed: ${result.error?.message ?? `exit ${result.status}`} ${result.stderr}`);
  const [name, , uid, gid, , home] = result.stdout.trim().split('\n')[0].split(':');
  return { name, uid: Number(uid), gid: Number(gid), home };
}

function createUser(name: string): Account {
  // --user-group: its own group of the same name; no supplementary groups (so no %sudo rule applies).
  run('useradd', ['--create-home', '--home-dir', join('/home', name), '--shell', '/bin/bash', '--user-group', '--comment', 'crosvm Guard test user', name]);
  const user = lookUpUser(name);
  if (!user) throw new Error(`useradd ${name} succeeded but getent passwd ${name} finds no such user`);
  return user;
}

/**
 * Writes `/etc/sudoers.d/<name>` (root, 0440) unless it already holds exactly this rule. The new
 * text goes to a temporary file in the same folder whose name has a dot, which sudo ignores,
 * is checked with `visudo -cf`, and only then renamed over the drop-in: a broken rule never
 * becomes part of the sudo configuration, and sudo never sees a half-written file.
 */
function installSudoersDropIn(name: string, rule: string): void {
  const file = join(SUDOERS_DIR, name);
  const text = `# crosvm Guard's test user (test/runner/testUsers.ts); remove with: userdel -r ${name} && rm ${file}\n${rule}\n`;
  if (existsSync(file)) {
    const stat = lstatSync(file);
    if (stat.isFile() && stat.uid === 0 && (stat.mode & 0o7777) === 0o440 && readFileSync(file, 'utf8') === text) return;
  }
  const staging = join(SUDOERS_DIR, `.${name}.${process.pid}`);
  rmSync(staging, { force: true }); // left by a killed run that had this pid
  writeFileSync(staging, text, { mode: 0o440, flag: 'wx' });
  try {
    chmodSync(staging, 0o440); // whatever the umask
    run('visudo', ['-c', '-q', '-f', staging]);
    renameSync(staging, file);
  } finally {
    rmSync(staging, { force: true });
  }
}

/** Proves the drop-in works the way its kind promises, with the real sudo and no terminal. */
function checkSudo(user: Account, kind: TestUserKind): void {
  const result = runAs(user, 'sudo', ['-n', 'true'], { check: false });
  const stderr = result.stderr.toString();
  if (kind === 'nopasswd' && result.status !== 0) {
    throw new Error(`\`sudo -n true\` as ${user.name} failed (exit ${result.status}): ${stderr.trim()}`);
  }
  if (kind === 'password' && !(result.status !== 0 && /a password is required/.test(stderr))) {
    throw new Error(`\`sudo -n true\` as ${user.name} should be refused for want of a password, but exited ${result.status}: ${stderr.trim()}`);
  }
}

function runAs(user: Account, command: string, args: string[], options: SpawnSyncOptions & { check?: boolean } = {}): ReturnType<typeof spawnSync> {
  const [setpriv, ...prefix] = asUserCommand(user);
  return run(setpriv, [...prefix, command, ...args], {
    ...options,
    cwd: '/',
    // What a login gives; sudo's env_reset keeps little of it anyway.
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: user.home, USER: user.name, LOGNAME: user.name, LANG: process.env.LANG ?? 'C.UTF-8' },
  });
}

function run(command: string, args: string[], options: SpawnSyncOptions & { check?: boolean } = {}): ReturnType<typeof spawnSync> {
  const { check = true, ...spawnOptions } = options;
  const result = spawnSync(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000, ...spawnOptions });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(`${command} not found: install the Debian packages sudo (sudo, visudo), passwd (useradd, chpasswd) and util-linux (setpriv)`);
  }
  if (check && result.status !== 0) {
    const detail = result.error?.message ?? `exit ${result.status ?? result.signal}: ${String(result.stderr ?? '').trim()}`;
    // Never the input: it may hold a password.
    throw new Error(`${command} ${args.join(' ')} failed (${detail})`);
  }
  return result;
}
