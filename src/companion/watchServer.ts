// Watch mode: the companion of an extension host that freezes VMs itself. The host tells it,
// before each SIGSTOP or freeze cgroup, what is about to be frozen (write-ahead), and after
// each resume what runs again. When the host is gone it resumes everything it holds.
//
// Requests (protocol.ts, WatchRequest): hold, release, exit.
// It undoes each freeze by its method's own undo (methods/drivers.ts): SIGCONT only to a
// process whose start time still matches, a thaw only of cgroups named like ours, each a
// child of the cgroup its processes go back to.
import { removeJournal } from '../guard/journal';
import type { FreezeCgroup } from '../guard/cgroupfs';
import { undoFreeze } from '../guard/methods/drivers';
import type { HeldProcess, HeldRecord } from '../guard/methods/methodDriver';
import { identityKey } from '../guard/processTree';
import { exit, idleTimer, listen, log } from './link';
import { parseWatchRequest } from './protocol';

/** What it holds of one VM frozen one way: processes by identity, freeze cgroups by directory. */
interface Held extends Pick<HeldRecord, 'vm' | 'method'> {
  readonly processes: Map<string, HeldProcess>;
  readonly cgroups: Map<string, FreezeCgroup>;
}

/**
 * `journal`: the host's journal, removed once this companion resumed it all. `hostPid`: the
 * host that started it, as the host said. Not `process.ppid`: a host killed before this
 * process has even loaded leaves it orphaned, and its parent is then init.
 */
export function runWatchMode(journal: string | undefined, idleMs: number, hostPid: number): void {
  /** By VM and method, as the host's journal has them. */
  const held = new Map<string, Held>();
  const idle = idleTimer(idleMs, () => exit(0, 'idle'));

  const resumeAllAndExit = (reason: string): void => {
    let thawed = 0;
    const resumed: HeldProcess[] = [];
    let gone = 0;
    for (const { vm, method, processes, cgroups } of held.values()) {
      thawed += cgroups.size;
      // A stop someone else sent while the host held it frozen stays (whether a debugger may
      // stay attached is the host's setting, unknown here: traced ones are resumed as before).
      const record = { vm, method, processes: [...processes.values()], cgroups: [...cgroups.values()] };
      const outcome = undoFreeze(record, { leaveOthers: { leaveTraced: false } });
      for (const p of outcome.leftStopped) log(`left ${p.label} (pid ${p.pid}) stopped: ${p.why}`);
      for (const r of outcome.refused) log(`left ${r.process.label} (pid ${r.process.pid}): ${r.why}`);
      for (const line of [...outcome.problems, ...outcome.notes]) log(line);
      resumed.push(...outcome.resumed);
      gone += outcome.gone.length;
    }
    held.clear();
    log(`${reason}: thawed ${thawed} freeze cgroups, resumed ${resumed.length} (${resumed.map((p) => p.pid).join(' ')}), gone ${gone}`);
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
        exit(0, 'asked to');
      }
      if (request.op === 'hold') {
        const { vm, method } = request;
        const key = `${identityKey(vm)}/${method}`;
        let what = held.get(key);
        if (!what) held.set(key, (what = { vm, method, processes: new Map(), cgroups: new Map() }));
        for (const p of request.processes) what.processes.set(identityKey(p), p);
        for (const g of request.cgroups) what.cgroups.set(g.dir, g);
      } else {
        for (const [key, what] of held) {
          for (const p of request.processes) what.processes.delete(identityKey(p));
          for (const g of request.cgroups) what.cgroups.delete(g.dir);
          if (what.processes.size === 0 && what.cgroups.size === 0) held.delete(key);
        }
      }
      idle(held.size > 0);
    },
    hostGone: resumeAllAndExit,
    crashed: (error) => resumeAllAndExit(`crashed (${error.message})`),
  });
  log('started');
  idle(false);
}
