// The bench's eye outside the extension host: a separate process that watches every thread of
// the device processes given on its command line and reports, on stdout, each moment at which
// all of them were stopped (`T`/`t`), then all running again, and so on:
//   {"watching":<threads>,"how":"kernel trace"|"polling"}   (first, once it watches)
//   {"all":"stopped","at":"<ns>"}   {"all":"running","at":"<ns>"}
// Times are CLOCK_MONOTONIC (process.hrtime in every process of the machine). A line
// `phase stopped` or `phase running` on stdin restarts the watch for that state (after the
// bench lost step with the debugger).
//
// Two ways to watch, the first that works:
// - kernel trace (root, tracefs): a private ftrace instance records, for these threads only,
//   each switch out in state T/t and each wake-up, stamped by the kernel on the monotonic
//   clock. The sampler reads what the kernel recorded every 20 ms, a burst of events in one
//   go: it costs the machine next to nothing, and it sees every stop, however short.
// - polling: thread by thread, re-reading the current one's /proc stat every 0.1 ms until it is
//   in the state awaited (about 10-30% of a core while it waits, which a loaded 2-core machine
//   feels; the moment reported is when the last thread was seen).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { isStoppedState, readStat } from '../src/guard/procfs';
import { HOST_PROC_VARIABLE } from './hostBench';

type Phase = 'stopped' | 'running';
const PHASES: readonly Phase[] = ['stopped', 'running'];
export type SamplerHow = 'kernel trace' | 'polling';

interface Thread {
  readonly pid: number;
  readonly tid: number;
  /** The thread's id on the host, as the kernel trace names it (see hostTids); unknown: no trace. */
  readonly hostTid: number | undefined;
}

interface Control {
  /** [0]: a restart request, 1 + index of the phase in PHASES; 0 when none. [1]: for Atomics.wait. [2]: 1 to stop. */
  readonly shared: Int32Array;
  readonly threads: Thread[];
  /** The ftrace instance to read, in kernel-trace mode. */
  readonly instance?: string;
}

function threadsOf(pids: number[]): Thread[] {
  const threads = pids.flatMap((pid) => fs.readdirSync(`/proc/${pid}/task`).map((tid) => ({ pid, tid: Number(tid) })));
  const host = hostTids(threads.map((t) => t.tid));
  return threads.map((t) => ({ ...t, hostTid: host.get(t.tid) }));
}

/**
 * The host's ids of threads of this pid namespace. Run as root, the bench lives in a pid
 * namespace of its own, and the kernel trace names threads by their host ids: the host's /proc
 * (bind-mounted by bench.ts) lists each thread's ids in every namespace (NSpid) and its namespace.
 */
function hostTids(tids: number[]): Map<number, number> {
  const hostProcDir = process.env[HOST_PROC_VARIABLE];
  if (!hostProcDir) return new Map(tids.map((tid) => [tid, tid]));
  const ownNamespace = fs.readlinkSync('/proc/self/ns/pid');
  const wanted = new Set(tids);
  const found = new Map<number, number>();
  for (const pid of fs.readdirSync(hostProcDir).filter((name) => /^\d+$/.test(name))) {
    try {
      for (const tid of fs.readdirSync(path.join(hostProcDir, pid, 'task'))) {
        const task = path.join(hostProcDir, pid, 'task', tid);
        const ids = /^NSpid:\s*(.*)$/m
          .exec(fs.readFileSync(path.join(task, 'status'), 'latin1'))?.[1]
          .split(/\s+/)
          .map(Number);
        const local = ids?.[ids.length - 1];
        if (local === undefined || ids!.length < 2 || !wanted.has(local)) continue;
        if (fs.readlinkSync(path.join(task, 'ns', 'pid')) === ownNamespace) found.set(local, Number(tid));
      }
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** The thread's state letter, or undefined once it is gone (it then counts as whatever is awaited). */
const stateOf = (pid: number, tid: number): string | undefined => readStat(pid, tid)?.state;

const isStopped = (state: string | undefined) => state !== undefined && isStoppedState(state);

/** Takes a restart request, if any: the phase to watch for from now on. */
function restartRequest(shared: Int32Array): Phase | undefined {
  const restart = Atomics.exchange(shared, 0, 0);
  return restart === 0 ? undefined : PHASES[restart - 1];
}

const CHRT = '/usr/bin/chrt';

function poll({ shared, threads }: Control, report: (phase: Phase, at: bigint) => void): never {
  let phase: Phase = 'stopped';
  for (;;) {
    let i = 0;
    while (i < threads.length) {
      const restart = restartRequest(shared);
      if (restart) {
        phase = restart;
        i = 0;
        continue;
      }
      const state = stateOf(threads[i].pid, threads[i].tid);
      if (state === undefined || isStopped(state) === (phase === 'stopped')) i++;
      else Atomics.wait(shared, 1, 0, 0.1);
    }
    report(phase, process.hrtime.bigint());
    phase = phase === 'stopped' ? 'running' : 'stopped';
  }
}

// ---- kernel trace ----

const TRACEFS_CANDIDATES = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
const INSTANCE_PREFIX = 'crosvm-guard-sampler-';
const EVENTS = ['sched/sched_switch', 'sched/sched_wakeup', 'sched/sched_process_exit'];

/** The tracefs root, mounting it where it belongs if nothing has (root only). */
function tracefsRoot(): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const found = TRACEFS_CANDIDATES.find((dir) => fs.existsSync(path.join(dir, 'instances')));
  if (found) return found;
  try {
    execFileSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS_CANDIDATES[0]], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return fs.existsSync(path.join(TRACEFS_CANDIDATES[0], 'instances')) ? TRACEFS_CANDIDATES[0] : undefined;
}

/** The host's /proc: where the pids in instance names mean something. */
const hostProc = () => process.env[HOST_PROC_VARIABLE] ?? '/proc';

/** Removes instances left by samplers that were killed (their host pid is in the name). */
function removeStaleInstances(root: string): void {
  for (const name of fs.readdirSync(path.join(root, 'instances'))) {
    const pid = Number(name.slice(INSTANCE_PREFIX.length));
    if (name.startsWith(INSTANCE_PREFIX) && !fs.existsSync(path.join(hostProc(), String(pid)))) {
      removeInstance(path.join(root, 'instances', name));
    }
  }
}

function removeInstance(dir: string): void {
  try {
    fs.writeFileSync(path.join(dir, 'tracing_on'), '0');
    fs.rmdirSync(dir);
  } catch {
    // Already gone, or a reader still has it open: the next sampler removes it.
  }
}

/** A private ftrace instance tracing the scheduler events of `tids` only, on the monotonic clock. */
function startTrace(tids: number[]): string | undefined {
  const root = tracefsRoot();
  if (!root) return undefined;
  removeStaleInstances(root);
  const dir = path.join(root, 'instances', `${INSTANCE_PREFIX}${fs.readlinkSync(path.join(hostProc(), 'self'))}`);
  try {
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'trace_clock'), 'mono');
    fs.writeFileSync(path.join(dir, 'set_event_pid'), tids.join(' '));
    // Device threads switch and wake at every tick of their work; of the switches only those
    // into a stop matter (state T = 4, t = 8): the kernel drops the rest before they are written.
    fs.writeFileSync(path.join(dir, 'events', 'sched/sched_switch', 'filter'), 'prev_state & 12');
    for (const event of EVENTS) fs.writeFileSync(path.join(dir, 'events', event, 'enable'), '1');
    fs.writeFileSync(path.join(dir, 'tracing_on'), '1');
  } catch (error) {
    removeInstance(dir);
    console.error(`sampler: no kernel trace (${(error as Error).message}); polling instead`);
    return undefined;
  }
  return dir;
}

/** How often the trace reader takes what the kernel recorded meanwhile. */
const BATCH_MS = 20;

/** The trace reader's message once it has closed the trace (see stopTrace). */
const TRACE_CLOSED = 'trace closed';

/** Stops the trace reader and removes the instance (a killed sampler's is removed by the next one). */
async function stopTrace(instance: string, worker: Worker, shared: Int32Array): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    worker.on('message', (line: string) => line === TRACE_CLOSED && resolve());
    setTimeout(resolve, 1000).unref();
  });
  Atomics.store(shared, 2, 1);
  Atomics.notify(shared, 1);
  try {
    await closed;
  } finally {
    removeInstance(instance);
  }
}

// `   <comm>-<pid> [001] d..2.  9224.519726: sched_switch: prev_comm=… prev_pid=12 … prev_state=T ==> …`
const EVENT_LINE = /\s(\d+)\.(\d+): (sched_switch|sched_wakeup|sched_process_exit): (.*)$/;

/** A trace line as (thread, what happened, when in ns), or undefined for other lines. */
export function parseTraceLine(line: string): { tid: number; change: 'stopped' | 'woken' | 'exited'; at: bigint } | undefined {
  const match = EVENT_LINE.exec(line);
  if (!match) return undefined;
  const at = BigInt(match[1]) * 1_000_000_000n + BigInt(match[2].padEnd(9, '0').slice(0, 9));
  const fields = match[4];
  if (match[3] === 'sched_switch') {
    const prev = /prev_pid=(\d+) .*prev_state=(\S+) ==>/.exec(fields);
    if (!prev || !isStopped(prev[2][0])) return undefined;
    return { tid: Number(prev[1]), change: 'stopped', at };
  }
  const pid = /(?:^|\s)pid=(\d+)/.exec(fields);
  if (!pid) return undefined;
  return { tid: Number(pid[1]), change: match[3] === 'sched_wakeup' ? 'woken' : 'exited', at };
}

/** Everything the trace buffer holds now (a read returns at most a page), without waiting. */
function drain(fd: number, buffer: Buffer): string {
  let text = '';
  for (;;) {
    let count: number;
    try {
      count = fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return text; // empty for now
      throw error;
    }
    if (count === 0) return text;
    text += buffer.toString('latin1', 0, count);
  }
}

function followTrace({ shared, threads, instance }: Control, report: (phase: Phase, at: bigint) => void): never {
  const fd = fs.openSync(path.join(instance!, 'trace_pipe'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  // Read after tracing started: from here on the events keep each thread's state current.
  const stopped = new Map(threads.map(({ pid, tid, hostTid }) => [hostTid!, isStopped(stateOf(pid, tid))]));
  let stoppedCount = [...stopped.values()].filter((s) => s).length;
  let phase: Phase = 'stopped';
  const buffer = Buffer.alloc(1 << 16);
  let partial = '';
  for (;;) {
    // Every BATCH_MS, whatever came meanwhile: woken and parsing at every event, the sampler
    // would compete with what it times (a burst of 64 devices stopping is hundreds of events).
    Atomics.wait(shared, 1, 0, BATCH_MS);
    if (Atomics.load(shared, 2) !== 0) {
      fs.closeSync(fd); // the instance can go once nobody reads it
      parentPort?.postMessage(TRACE_CLOSED);
      for (;;) Atomics.wait(shared, 1, 0); // until the process exits
    }
    const lines = (partial + drain(fd, buffer)).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const restart = restartRequest(shared);
      if (restart) phase = restart;
      const event = parseTraceLine(line);
      const wasStopped = event && stopped.get(event.tid);
      if (!event || wasStopped === undefined) continue;
      if (event.change === 'woken' && !wasStopped) continue; // from a sleep: it ran already
      if (event.change === 'exited') stopped.delete(event.tid);
      else stopped.set(event.tid, event.change === 'stopped');
      stoppedCount += (event.change === 'stopped' ? 1 : 0) - (wasStopped ? 1 : 0);
      if (stoppedCount === (phase === 'stopped' ? stopped.size : 0)) {
        report(phase, event.at);
        phase = phase === 'stopped' ? 'running' : 'stopped';
      }
    }
  }
}

if (isMainThread && require.main === module) {
  const pids = process.argv.slice(2).map(Number);
  if (pids.length === 0 || !pids.every((pid) => Number.isSafeInteger(pid) && pid > 0)) {
    console.error('usage: sampler.js PID...');
    process.exit(2);
  }
  const shared = new Int32Array(new SharedArrayBuffer(12));
  const threads = threadsOf(pids);
  const hostIds = threads.map((t) => t.hostTid);
  const instance = hostIds.every((id) => id !== undefined) ? startTrace(hostIds as number[]) : undefined;
  const how: SamplerHow = instance ? 'kernel trace' : 'polling';
  // Polling as root, at real-time priority: on a loaded machine a napping poller would wake
  // milliseconds late and add its own delay to the numbers. It sleeps between reads (0.1 ms),
  // so it cannot take a core. (Set before the worker starts: threads inherit it.)
  if (!instance && process.getuid?.() === 0 && fs.existsSync(CHRT)) {
    execFileSync(CHRT, ['--all-tasks', '--fifo', '--pid', '50', String(process.pid)], { stdio: 'ignore' });
  }
  const worker = new Worker(__filename, { workerData: { shared, threads, instance } satisfies Control });
  worker.on('message', (line: string) => line !== TRACE_CLOSED && process.stdout.write(line + '\n'));
  worker.on('error', (error) => {
    console.error(error);
    process.exit(1);
  });
  worker.once('online', () => process.stdout.write(JSON.stringify({ watching: threads.length, how }) + '\n'));
  createInterface({ input: process.stdin }).on('line', (line) => {
    const phase = /^phase (stopped|running)$/.exec(line.trim())?.[1] as Phase | undefined;
    if (phase) Atomics.store(shared, 0, 1 + PHASES.indexOf(phase));
  });
  // The bench closes stdin when it is done: stop watching.
  const exit = () => void (instance ? stopTrace(instance, worker, shared) : Promise.resolve()).finally(() => process.exit(0));
  process.stdin.on('end', exit);
  process.on('SIGTERM', exit);
} else if (!isMainThread) {
  const control = workerData as Control;
  const report = (phase: Phase, at: bigint) => parentPort?.postMessage(JSON.stringify({ all: phase, at: String(at) }));
  if (control.instance) followTrace(control, report);
  else poll(control, report);
}
