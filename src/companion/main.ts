// The companion: a small detached Node process that outlives the extension host and resumes
// what is frozen when the host is gone (see link.ts). Two modes:
//   watch (default)  the host freezes; the companion is told what, and resumes it if the host dies
//   --elevated       started as root through sudo or pkexec, it freezes VMs that run as root itself
// Arguments: --journal FILE and --host-pid P (watch), --names crosvm,… and --heartbeat-ms N (elevated), --idle-ms N.
import { HEARTBEAT_TIMEOUT_MS, IDLE_EXIT_MS, exit } from './link';
import { ELEVATED_NAME, runElevatedMode } from './elevated';
import { runWatchMode } from './watch';

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

/** `--NAME-ms N`, when given as 3 to 7 digits; else `fallback`. */
function milliseconds(name: string, fallback: number): number {
  const value = argument(`--${name}-ms`);
  return value !== undefined && /^\d{3,7}$/.test(value) ? Number(value) : fallback;
}

const idleMs = milliseconds('idle', IDLE_EXIT_MS);

if (process.argv.includes('--elevated')) {
  // The names come from the unprivileged side: as root, only names of crosvm builds count,
  // so that no setting can point root at sshd or any other program.
  const names = (argument('--names') ?? 'crosvm').split(',');
  if (names.length === 0 || names.length > 16 || !names.every((n) => ELEVATED_NAME.test(n))) exit(2, 'invalid --names: only names that start with "crosvm"');
  runElevatedMode(names, idleMs, milliseconds('heartbeat', HEARTBEAT_TIMEOUT_MS));
} else {
  const host = argument('--host-pid');
  runWatchMode(argument('--journal'), idleMs, host !== undefined && /^\d{1,7}$/.test(host) ? Number(host) : process.ppid);
}
