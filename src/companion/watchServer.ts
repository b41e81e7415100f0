// Watch mode: the companion of an extension host that freezes VMs itself. The host tells it,
// before each SIGSTOP or freeze cgroup, what is about to be frozen (write-ahead), and after
// each resume what runs again. When the host is gone it resumes everything it holds.
//
// Requests (protocol.ts, WatchRequest): hold, release, exit.
// It signals nothing but SIGCONT, and only to a process whose start time still matches; it
// thaws only cgroups named like ours, each a child of the cgroup its processes go back to.
import { removeJournal } from '../guard/journal';
import { FreezeCgroup, thawAndRestore } from '../guard/cgroupfs';
import { identityKey } from '../guard/processTree';
import { continueProcesses } from '../guard/signalFreezer';
import { exit, idleTimer, listen, log } from './link';
import { HeldProcess, parseWatchRequest } from './protocol';

/**
 * `journal`: the host's journal, removed once this companion resumed it all. `hostPid`: the
 * host that started it, as the host said. Not `process.ppid`: a host killed before this
 * process has even loaded leaves it orphaned, and its parent is then init.
 */
export function runWatchMode(journal: string | undefined, idleMs: number, hostPid: number): void {
  const held = new Map<string, HeldProcess>();
  /** Freeze cgroups by directory. */
  const heldCgroups = new Map<string, FreezeCgroup>();
  const idle = idleTimer(idleMs, () => exit(0, 'idle'));

  const resumeAllAndExit = (reason: string): void => {
    const problems = thawAndRestore([...heldCgroups.values()]);
    const thawed = heldCgroups.size;
    heldCgroups.clear();
    // A stop someone else sent while the host held it frozen stays (whether a debugger may
    // stay attached is the host's setting, unknown here: traced ones are resumed as before).
    const { resumed, gone, leftStopped } = continueProcesses(
      [...held.values()].map((p) => ({ ...p, ppid: 0 })),
      { leaveTraced: false },
    );
    for (const p of leftStopped) log(`left ${p.label} (pid ${p.pid}) stopped: ${p.why}`);
    held.clear();
    for (const problem of problems) log(problem);
    log(
      `${reason}: thawed ${thawed} freeze cgroups, resumed ${resumed.length} (${resumed.map((p) => p.pid).join(' ')}), gone ${gone.length}`,
    );
    // Nothing is left for a later window to resume. Only a file named like a journal.
    if (journal && /\/window-\d+-\d+\.json$/.test(journal)) removeJournal(journal);
    exit(0, reason);
  };

  listen({
    request(raw) {
      const request = parseWatchRequest(raw, hostPid);
      if (typeof request === 'string') {
        log(`ignored an invalid request: ${request}`);
        return;
      }
      if (request.op === 'exit') {
        held.clear();
        heldCgroups.clear();
        exit(0, 'asked to');
      }
      const { processes, cgroups } = request;
      for (const p of processes) {
        if (request.op === 'hold') held.set(identityKey(p), p);
        else held.delete(identityKey(p));
      }
      for (const g of cgroups) {
        if (request.op === 'hold') heldCgroups.set(g.dir, g);
        else heldCgroups.delete(g.dir);
      }
      idle(held.size > 0 || heldCgroups.size > 0);
    },
    hostGone: resumeAllAndExit,
    crashed: (error) => resumeAllAndExit(`crashed (${error.message})`),
  });
  log('started');
  idle(false);
}
