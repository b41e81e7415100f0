// Watch mode: the companion of an extension host that freezes VMs itself. The host tells it,
// before each SIGSTOP or freeze cgroup, what is about to be frozen (write-ahead), and after
// each resume what runs again. When the host is gone it resumes everything it holds.
//
// Requests:
//   {"op":"hold","processes":[{"pid":1234,"startTime":5678,"label":"virtio-net"}, ...],
//    "cgroups":[{"version":2,"dir":"/sys/fs/cgroup/x/crosvm-guard-77-a1b2c3","originalDir":"/sys/fs/cgroup/x"}]}
//   {"op":"release","processes":[...],"cgroups":[...]}
//   {"op":"exit"}                      resume nothing, exit (the host resumed everything)
// It signals nothing but SIGCONT, and only to a process whose start time still matches; it
// thaws only cgroups named like ours, each a child of the cgroup its processes go back to.
import { removeJournal } from '../guard/journal';
import { FreezeCgroup, mountedHierarchies, thawAndRestore, validateFreezeCgroup } from '../guard/cgroupFreezer';
import { identityKey } from '../guard/processTree';
import { continueProcesses, FrozenProcess } from '../guard/signalFreezer';
import { exit, idleTimer, listen, log } from './link';

function parseProcesses(value: unknown): FrozenProcess[] | undefined {
  if (!Array.isArray(value) || value.length > 4096) return undefined;
  const out: FrozenProcess[] = [];
  for (const p of value) {
    if (typeof p !== 'object' || p === null) return undefined;
    const { pid, startTime, label } = p as Record<string, unknown>;
    if (!Number.isSafeInteger(pid) || (pid as number) <= 1 || !Number.isSafeInteger(startTime) || (startTime as number) < 0) return undefined;
    out.push({ pid: pid as number, startTime: startTime as number, label: typeof label === 'string' ? label.slice(0, 64) : '', ppid: 0 });
  }
  return out;
}

/** `hostPid`: the only process whose freeze cgroups it takes (see runWatchMode). */
function parseCgroups(value: unknown, hostPid: number): FreezeCgroup[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > 256) return undefined;
  const mounted = mountedHierarchies();
  const out: FreezeCgroup[] = [];
  for (const raw of value) {
    const group = validateFreezeCgroup(raw, mounted, hostPid);
    if (typeof group === 'string') {
      log(`refused a freeze cgroup: ${group}`);
      return undefined;
    }
    out.push(group);
  }
  return out;
}

/**
 * `journal`: the host's journal, removed once this companion resumed it all. `hostPid`: the
 * host that started it, as the host said. Not `process.ppid`: a host killed before this
 * process has even loaded leaves it orphaned, and its parent is then init.
 */
export function runWatchMode(journal: string | undefined, idleMs: number, hostPid: number): void {
  const held = new Map<string, FrozenProcess>();
  /** Freeze cgroups by directory. */
  const heldCgroups = new Map<string, FreezeCgroup>();
  const idle = idleTimer(idleMs, () => exit(0, 'idle'));

  const resumeAllAndExit = (reason: string): void => {
    const problems = thawAndRestore([...heldCgroups.values()]);
    const thawed = heldCgroups.size;
    heldCgroups.clear();
    const { resumed, gone } = continueProcesses([...held.values()]);
    held.clear();
    for (const problem of problems) log(problem);
    log(`${reason}: thawed ${thawed} freeze cgroups, resumed ${resumed.length} (${resumed.map((p) => p.pid).join(' ')}), gone ${gone.length}`);
    // Nothing is left for a later window to resume. Only a file named like a journal.
    if (journal && /\/window-\d+-\d+\.json$/.test(journal)) removeJournal(journal);
    exit(0, reason);
  };

  listen({
    request(request) {
      if (request.op === 'exit') {
        held.clear();
        heldCgroups.clear();
        exit(0, 'asked to');
      }
      const processes = parseProcesses(request.processes);
      const cgroups = parseCgroups(request.cgroups, hostPid);
      if (!processes || !cgroups || (request.op !== 'hold' && request.op !== 'release')) {
        log(`ignored an invalid request (${String(request.op).slice(0, 32)})`);
        return;
      }
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
