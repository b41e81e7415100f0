// The companion: a small detached Node process that outlives the extension host. The host
// tells it, before each SIGSTOP or freeze cgroup, what is about to be frozen (write-ahead),
// and after each resume what runs again. When its standard input closes — the host exited,
// crashed or was SIGKILLed — it resumes everything it holds and exits. It exits too when it
// has held nothing for a while, so it is never left running for nothing.
//
// Requests, one JSON object per line on stdin:
//   {"op":"hold","processes":[{"pid":1234,"startTime":5678,"label":"virtio-net"}, ...],
//    "cgroups":[{"version":2,"dir":"/sys/fs/cgroup/x/crosvm-guard-77-a1b2c3","originalDir":"/sys/fs/cgroup/x"}]}
//   {"op":"release","processes":[...],"cgroups":[...]}
//   {"op":"exit"}                      resume nothing, exit (the host resumed everything)
// It signals nothing but SIGCONT, and only to a process whose start time still matches; it
// thaws only cgroups named like ours, each a child of the cgroup its processes go back to.
import * as fs from 'node:fs';
import { FreezeCgroup, mountedHierarchies, thawAndRestore, validateFreezeCgroup } from '../guard/cgroupFreezer';
import { continueProcesses, FrozenProcess } from '../guard/signalFreezer';
import { identityKey } from '../guard/processTree';

/** The host's journal (argv: --journal FILE): removed once this companion resumed it all. */
const journalArg = process.argv.indexOf('--journal');
const journal = journalArg > 0 ? process.argv[journalArg + 1] : undefined;

/** How long an idle companion waits for the next freeze before it exits. */
const IDLE_EXIT_MS = Number(process.env.CROSVM_GUARD_COMPANION_IDLE_MS) || 10_000;
const MAX_LINE = 1 << 20;

const held = new Map<string, FrozenProcess>();
/** Freeze cgroups by directory. */
const heldCgroups = new Map<string, FreezeCgroup>();
let idleTimer: NodeJS.Timeout | undefined;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} companion ${process.pid}: ${message}\n`);
}

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

function parseCgroups(value: unknown): FreezeCgroup[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > 256) return undefined;
  const mounted = mountedHierarchies();
  const out: FreezeCgroup[] = [];
  for (const raw of value) {
    const group = validateFreezeCgroup(raw, mounted);
    if (typeof group === 'string') {
      log(`refused a freeze cgroup: ${group}`);
      return undefined;
    }
    out.push(group);
  }
  return out;
}

function scheduleIdleExit(): void {
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = held.size === 0 && heldCgroups.size === 0 ? setTimeout(() => exit(0, 'idle'), IDLE_EXIT_MS) : undefined;
}

function resumeAllAndExit(reason: string): void {
  const problems = thawAndRestore([...heldCgroups.values()]);
  const thawed = heldCgroups.size;
  heldCgroups.clear();
  const { resumed, gone } = continueProcesses([...held.values()]);
  held.clear();
  for (const problem of problems) log(problem);
  log(`${reason}: thawed ${thawed} freeze cgroups, resumed ${resumed.length} (${resumed.map((p) => p.pid).join(' ')}), gone ${gone.length}`);
  // Nothing is left for a later window to resume. Only a file named like a journal.
  if (journal && /\/window-\d+-\d+\.json$/.test(journal)) fs.rmSync(journal, { force: true });
  exit(0, reason);
}

function exit(code: number, reason: string): void {
  log(`exiting (${reason})`);
  process.exit(code);
}

function handle(line: string): void {
  let request: Record<string, unknown>;
  try {
    request = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log('ignored a line that is not JSON');
    return;
  }
  if (request.op === 'exit') {
    held.clear();
    heldCgroups.clear();
    exit(0, 'asked to');
  }
  const processes = parseProcesses(request.processes);
  const cgroups = parseCgroups(request.cgroups);
  if (!processes || !cgroups || (request.op !== 'hold' && request.op !== 'release')) {
    log(`ignored an invalid request (${String(request.op)})`);
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
  scheduleIdleExit();
}

let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
    handle(pending.slice(0, newline));
    pending = pending.slice(newline + 1);
  }
  if (pending.length > MAX_LINE) pending = '';
});
// The link to the extension host: its end is the host's end.
process.stdin.on('end', () => resumeAllAndExit('the extension host is gone'));
process.stdin.on('error', () => resumeAllAndExit('the link to the extension host broke'));
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => resumeAllAndExit(signal));
log('started');
scheduleIdleExit();
