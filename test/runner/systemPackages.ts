// Debian packages the tests and the demo need. On a fresh machine `npm test` and `npm run
// demo` install what is missing (as root, the way CI and this project's machines run), so the
// README's two set-up commands stay true; as another user they print the one command to run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

interface Requirement {
  /** A file whose presence proves the package is installed. */
  readonly file: string;
  readonly pkg: string;
  readonly why: string;
}

const REQUIREMENTS: readonly Requirement[] = [
  { file: '/usr/bin/chromium', pkg: 'chromium', why: 'the browser that shows the real VS Code workbench' },
  { file: '/usr/include/gssapi/gssapi.h', pkg: 'libkrb5-dev', why: "code-server's kerberos module compiles against it" },
  { file: '/usr/bin/cc', pkg: 'gcc', why: 'compiles the crosvm-like fixture' },
  { file: '/usr/include/stdio.h', pkg: 'libc6-dev', why: 'compiles the crosvm-like fixture' },
  { file: '/usr/bin/strace', pkg: 'strace', why: 'attaches a real tracer in the "traced by a debugger" tests' },
  {
    file: '/usr/bin/sudo',
    pkg: 'sudo',
    why: 'the unprivileged test users reach root VMs through it (its visudo checks their sudoers rules)',
  },
  { file: '/usr/sbin/chpasswd', pkg: 'passwd', why: 'useradd and chpasswd make the unprivileged test users (testUsers.ts)' },
  {
    file: '/usr/bin/lldb-vscode-14',
    pkg: 'lldb-14',
    why: 'its native DAP adapter, lldb-vscode-14, attaches to the fixture VM in the debugger tests and the bench',
  },
  {
    file: '/usr/bin/pkexec',
    pkg: 'pkexec',
    why: 'the pkexec elevation test runs the real pkexec; it brings polkitd (the daemon and pkttyagent, the stand-in password dialog) and the system D-Bus',
  },
];

export function missingSystemPackages(): Requirement[] {
  return REQUIREMENTS.filter((r) => !existsSync(r.file));
}

export function ensureSystemPackages(): void {
  const missing = missingSystemPackages();
  if (missing.length === 0) return;
  const names = missing.map((r) => r.pkg);
  const command = `apt-get update && apt-get install -y ${names.join(' ')}`;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    throw new Error(
      `Missing Debian packages: ${missing.map((r) => `${r.pkg} (${r.why})`).join(', ')}. Install them with: sudo sh -c '${command}'`,
    );
  }
  console.error(`Installing Debian packages: ${names.join(', ')}...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', ...names],
  ]) {
    const result = spawnSync('apt-get', args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    if (result.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${result.status}); run: ${command}`);
  }
}
