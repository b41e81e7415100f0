// Unprivileged Linux users with administrator rights, for tests that run VS Code as a person
// would (not as root) against root-owned VMs: one may run anything through `sudo -n` without a
// password, one must give its password (`sudo -S` on stdin), and one has no sudo rights at all
// but is a polkit administrator, so it reaches root only through `pkexec` and a polkit agent
// that asks for its password. Made on first use by the runner, which runs as root; later calls
// reuse the users and only refresh what may drift.
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type TestUserKind = 'nopasswd' | 'password' | 'polkit';

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Under /home, owned by the user. */
  readonly home: string;
  /**
   * For 'password': what `sudo -S` wants on stdin; for 'polkit': what a polkit agent must answer
   * for pkexec. Fresh on every ensureTestUser() call. Undefined for 'nopasswd'.
   */
  readonly password: string | undefined;
}

/** The user names, one per kind; the sudo kinds have a drop-in of the same name in /etc/sudoers.d/. */
export const TEST_USER_NAMES: Readonly<Record<TestUserKind, string>> = {
  nopasswd: 'crosvm-guard-nopw',
  password: 'crosvm-guard-pw',
  polkit: 'crosvm-guard-pk',
};

const SUDOERS_DIR = '/etc/sudoers.d';
/** polkitd reads every `*.rules` file here (0700 polkitd:root, from the polkitd package) and watches the folder. */
const POLKIT_RULES_DIR = '/etc/polkit-1/rules.d';
/** Ours, read before 50-default.rules (which makes group sudo the administrators). */
export const POLKIT_RULE_FILE = join(POLKIT_RULES_DIR, '49-crosvm-guard-test.rules');

/**
 * Makes sure the test user of this kind exists and has its administrator rights, and returns
 * it. Needs root. Idempotent: creates the user (home under /home, shell /bin/bash, its own
 * group) only if missing, rewrites its sudoers drop-in or polkit rule only if it differs, and
 * checks with the real sudo that `sudo -n true` succeeds ('nopasswd'), is refused for want of
 * a password ('password'), or that sudo gives the user no rights at all ('polkit'). For
 * 'password' and 'polkit' it sets a new random password each call; for 'password' it also
 * forgets the user's sudo time stamps, so no earlier successful `sudo -S` lets a later
 * `sudo -n` through.
 */
export function ensureTestUser(kind: TestUserKind): TestUser {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `ensureTestUser('${kind}') must run as root (it adds a user and a sudoers or polkit rule); this process runs as uid ${process.getuid?.()}`,
    );
  }
  const name = TEST_USER_NAMES[kind];
  const user = lookUpUser(name) ?? createUser(name);
  // Someone may have deleted the home folder since; code-server needs it (HOME).
  if (!existsSync(user.home)) {
    mkdirSync(user.home, { mode: 0o750 });
    chownSync(user.home, user.uid, user.gid);
  }
  if (kind === 'polkit') {
    // pkexec must be the only way up: were sudo to work, a test could pass through sudo.
    rmSync(join(SUDOERS_DIR, name), { force: true });
    installPolkitRule(name);
    const password = setRandomPassword(name);
    checkNoSudo(user);
    return { ...user, password };
  }
  installSudoersDropIn(name, kind === 'nopasswd' ? `${name} ALL=(ALL:ALL) NOPASSWD: ALL` : `${name} ALL=(ALL:ALL) ALL`);

  let password: string | undefined;
  if (kind === 'password') {
    password = setRandomPassword(name);
    // The password works: `sudo -S` reads it as a line on stdin.
    const result = runAs(user, 'sudo', ['-S', '-p', '', '--', 'true'], { input: `${password}\n`, check: false });
    if (result.status !== 0) {
      throw new Error(
        `\`sudo -S true\` as ${name} with the password just set failed (exit ${result.status}): ${String(result.stderr).trim()}`,
      );
    }
  }
  // Without a terminal, sudo ties a time stamp to the parent process of the `sudo -S` (here this
  // runner): a later `sudo -n` with the same parent would then get through without a password
  // for 15 minutes. Time stamps also outlive a password change. Forget them all.
  runAs(user, 'sudo', ['-K']);
  checkSudo(user, kind);
  return { ...user, password };
}

/** Sets a new random password and returns it. base64url never holds chpasswd's ':' separator or a newline; only stdin sees it, never argv. */
function setRandomPassword(name: string): string {
  const password = randomBytes(18).toString('base64url');
  run('chpasswd', [], { input: `${name}:${password}\n` });
  return password;
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
  if (result.status !== 0) {
    throw new Error(`getent passwd ${nameOrUid} failed: ${result.error?.message ?? `exit ${result.status}`} ${result.stderr}`);
  }
  const [name, , uid, gid, , home] = result.stdout.trim().split('\n')[0].split(':');
  return { name, uid: Number(uid), gid: Number(gid), home };
}

function createUser(name: string): Account {
  // --user-group: its own group of the same name; no supplementary groups (so no %sudo rule applies).
  run('useradd', [
    '--create-home',
    '--home-dir',
    join('/home', name),
    '--shell',
    '/bin/bash',
    '--user-group',
    '--comment',
    'crosvm Guard test user',
    name,
  ]);
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
    throw new Error(
      `\`sudo -n true\` as ${user.name} should be refused for want of a password, but exited ${result.status}: ${stderr.trim()}`,
    );
  }
}

/**
 * Writes POLKIT_RULE_FILE (root, 0644) unless it already holds exactly this rule: `name`, and
 * only `name`, is its own polkit administrator, so pkexec asks for its own password (one
 * identity: the agent shows no identity menu). Everyone else falls through to the distribution's
 * rules. Staged under a name without `.rules`, which polkitd ignores, then renamed: polkitd
 * watches the folder and never reads a half-written file.
 */
function installPolkitRule(name: string): void {
  if (!existsSync(POLKIT_RULES_DIR)) {
    throw new Error(`${POLKIT_RULES_DIR} is missing: install the Debian package pkexec (it brings polkitd)`);
  }
  const text = [
    `// crosvm Guard's test user (test/runner/testUsers.ts); remove with: userdel -r ${name} && rm ${POLKIT_RULE_FILE}`,
    'polkit.addAdminRule(function (action, subject) {',
    `  if (subject.user == ${JSON.stringify(name)}) return [${JSON.stringify(`unix-user:${name}`)}];`,
    '  return null;',
    '});',
    '',
  ].join('\n');
  if (existsSync(POLKIT_RULE_FILE)) {
    const stat = lstatSync(POLKIT_RULE_FILE);
    if (stat.isFile() && stat.uid === 0 && (stat.mode & 0o7777) === 0o644 && readFileSync(POLKIT_RULE_FILE, 'utf8') === text) return;
  }
  const staging = join(POLKIT_RULES_DIR, `.crosvm-guard-test.${process.pid}`);
  rmSync(staging, { force: true }); // left by a killed run that had this pid
  writeFileSync(staging, text, { mode: 0o644, flag: 'wx' });
  try {
    chmodSync(staging, 0o644); // whatever the umask
    renameSync(staging, POLKIT_RULE_FILE);
  } finally {
    rmSync(staging, { force: true });
  }
}

/** Proves sudo gives the 'polkit' user nothing, asking sudo itself (as root, so no password is involved). */
function checkNoSudo(user: Account): void {
  const result = run('sudo', ['-n', '-l', '-U', user.name], { check: false });
  const stdout = result.stdout.toString();
  if (!/is not allowed to run sudo/.test(stdout)) {
    throw new Error(
      `${user.name} should have no sudo rights, but \`sudo -l -U ${user.name}\` says (exit ${result.status}): ${stdout.trim()} ${result.stderr.toString().trim()}`,
    );
  }
}

function runAs(
  user: Account,
  command: string,
  args: string[],
  options: SpawnSyncOptions & { check?: boolean } = {},
): ReturnType<typeof spawnSync> {
  const [setpriv, ...prefix] = asUserCommand(user);
  return run(setpriv, [...prefix, command, ...args], {
    ...options,
    cwd: '/',
    // What a login gives; sudo's env_reset keeps little of it anyway.
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      HOME: user.home,
      USER: user.name,
      LOGNAME: user.name,
      LANG: process.env.LANG ?? 'C.UTF-8',
    },
  });
}

function run(command: string, args: string[], options: SpawnSyncOptions & { check?: boolean } = {}): ReturnType<typeof spawnSync> {
  const { check = true, ...spawnOptions } = options;
  const result = spawnSync(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000, ...spawnOptions });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(
      `${command} not found: install the Debian packages sudo (sudo, visudo), passwd (useradd, chpasswd) and util-linux (setpriv)`,
    );
  }
  if (check && result.status !== 0) {
    const detail = result.error?.message ?? `exit ${result.status ?? result.signal}: ${String(result.stderr ?? '').trim()}`;
    // Never the input: it may hold a password.
    throw new Error(`${command} ${args.join(' ')} failed (${detail})`);
  }
  return result;
}
