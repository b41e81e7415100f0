// The companion: a small detached Node process that outlives the extension host and resumes
// what is frozen when the host is gone (see link.ts). Two modes (protocol.ts, the arguments):
//   watch (default)  the host freezes; the companion is told what, and resumes it if the host dies
//   --elevated       started as root through sudo or pkexec, it freezes VMs that run as root itself
import { HEARTBEAT_TIMEOUT_MS, IDLE_EXIT_MS, exit } from './link';
import { runElevatedMode } from './elevatedServer';
import { parseCompanionArgv } from './protocol';
import { runWatchMode } from './watchServer';

const args = parseCompanionArgv(process.argv.slice(2));
if (typeof args === 'string') exit(2, args);
else if (args.mode === 'elevated') runElevatedMode(args.names, args.idleMs ?? IDLE_EXIT_MS, args.heartbeatMs ?? HEARTBEAT_TIMEOUT_MS);
// No host pid given (an older host): its parent, read now, before the host can die.
else runWatchMode(args.journal, args.idleMs ?? IDLE_EXIT_MS, args.hostPid ?? process.ppid);
