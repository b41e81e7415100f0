// The companion: a small detached Node process that outlives the extension host and resumes
// what is frozen when the host is gone (see link.ts). Two modes:
//   watch (default)  the host freezes; the companion is told what, and resumes it if the host dies
//   --elevated       started as root through sudo or pkexec, it freezes VMs that run as root itself
// Arguments: --journal FILE (watch), --names crosvm,… (elevated), --idle-ms N.
import { IDLE_EXIT_MS, exit } from './link';
import { ELEVATED_NAME, runElevatedMode } from './elevated';
import { runWatchMode } from './watch';

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

const idleArg = argument('--idle-ms');
const idleMs = idleArg !== undefined && /^\d{3,7}$/.test(idleArg) ? Number(idleArg) : IDLE_EXIT_MS;

if (process.argv.includes('--elevated')) {
  // The names come from the unprivileged side: as root, only names of crosvm builds count,
  // so that no setting can point root at sshd or any other program.
  const names = (argument('--names') ?? 'crosvm').split(',');
  if (names.length === 0 || names.length > 16 || !names.every((n) => ELEVATED_NAME.test(n))) exit(2, 'invalid --names: only names that start with "crosvm"');
  runElevatedMode(names, idleMs);
} else {
  runWatchMode(argument('--journal'), idleMs);
}
