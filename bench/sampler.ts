// The bench's eye outside the extension host: a separate process that watches every thread of
// the device processes given on its command line in /proc and reports, on stdout, each moment
// at which all of them have been seen stopped (`T`/`t`), then all seen running again, and so on:
//   {"all":"stopped","at":"<ns>"}   {"all":"running","at":"<ns>"}
// Times are process.hrtime (CLOCK_MONOTONIC, the same clock in every process of the machine).
// A line `phase stopped` or `phase running` on stdin restarts the watch for that state (after
// the bench lost step with the debugger).
//
// How it looks: thread by thread, moving to the next as soon as the current one is in the
// state awaited, re-reading it every 0.1 ms until then. The moment reported is when the last
// thread was seen in that state; it costs one /proc read per thread plus one per 0.1 ms of
// waiting (about 10% of a core while it waits), in a worker so that stdin is still read.
import * as fs from 'node:fs';
import { createInterface } from 'node:readline';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

type Phase = 'stopped' | 'running';
const PHASES: readonly Phase[] = ['stopped', 'running'];

interface Control {
  /** [0]: a restart request, 1 + index of the phase in PHASES; 0 when none. [1]: for Atomics.wait. */
  readonly shared: Int32Array;
  readonly statFiles: string[];
}

function threadStatFiles(pids: number[]): string[] {
  return pids.flatMap((pid) => fs.readdirSync(`/proc/${pid}/task`).map((tid) => `/proc/${pid}/task/${tid}/stat`));
}

/** The state letter, or undefined once the thread is gone (it then counts as whatever is awaited). */
function stateOf(statFile: string): string | undefined {
  try {
    const text = fs.readFileSync(statFile, 'latin1');
    return text[text.lastIndexOf(')') + 2];
  } catch {
    return undefined;
  }
}

function watch({ shared, statFiles }: Control, report: (phase: Phase, at: bigint) => void): never {
  let phase: Phase = 'stopped';
  for (;;) {
    let i = 0;
    while (i < statFiles.length) {
      const restart = Atomics.exchange(shared, 0, 0);
      if (restart !== 0) {
        phase = PHASES[restart - 1];
        i = 0;
        continue;
      }
      const state = stateOf(statFiles[i]);
      const stopped = state === 'T' || state === 't';
      if (state === undefined || stopped === (phase === 'stopped')) i++;
      else Atomics.wait(shared, 1, 0, 0.1);
    }
    report(phase, process.hrtime.bigint());
    phase = phase === 'stopped' ? 'running' : 'stopped';
  }
}

if (isMainThread) {
  const pids = process.argv.slice(2).map(Number);
  if (pids.length === 0 || !pids.every((pid) => Number.isSafeInteger(pid) && pid > 0)) {
    console.error('usage: sampler.js PID...');
    process.exit(2);
  }
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(__filename, { workerData: { shared, statFiles: threadStatFiles(pids) } satisfies Control });
  // The worker's first line is {"watching":<threads>}: from then on no stop is missed.
  worker.on('message', (line: string) => process.stdout.write(line + '\n'));
  worker.on('error', (error) => {
    console.error(error);
    process.exit(1);
  });
  createInterface({ input: process.stdin }).on('line', (line) => {
    const phase = /^phase (stopped|running)$/.exec(line.trim())?.[1] as Phase | undefined;
    if (phase) Atomics.store(shared, 0, 1 + PHASES.indexOf(phase));
  });
  // The bench closes stdin when it is done: stop watching.
  process.stdin.on('end', () => process.exit(0));
} else {
  parentPort?.postMessage(JSON.stringify({ watching: (workerData as Control).statFiles.length }));
  watch(workerData as Control, (phase, at) => parentPort?.postMessage(JSON.stringify({ all: phase, at: String(at) })));
}
