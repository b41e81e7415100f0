// The companion: a small detached Node process that outlives the extension host and resumes
// what is frozen when the host is gone (see link.ts). Two modes:
//   watch (default)  the host freezes; the companion is told what, and resumes it if the host dies
//   --elevated       started as root through sudo or pkexec, it freezes VMs that run as root itself
// Arguments: --journal FILE (watch), --names crosvm,… (elevated), --idle-ms N.
import { IDLE_EXIT_MS, exit } from './link';
import { runElevatedMode } from './elevated';
import { runWatchMode } from './watch';

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
}

const idleArg = argument('--idle-ms');
const idleMs = idleArg !== undefined && /^\d{3,7}$/.test(idleArg) ? Number(idleArg) : IDLE_EXIT_MS;

if (process.argv.includes('--elevated')) {
  const names = (argument('--names') ?? 'crosvm').split(',');
  if (names.length === 0 || names.length > 16 || !names.every((n) => /^[A-Za-z0-9._+-]{1,64}$/.test(n))) exit(2, 'invalid --names');
  runElevatedMode(names, idleMs);
} else {
  runWatchMode(argument('--journal'), idleMs);
}
