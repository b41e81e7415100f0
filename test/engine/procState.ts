// What tests check in /proc, read independently of the engine's own readers so that a bug
// in the engine cannot hide itself.
import * as fs from 'node:fs';

/** The state letter of every thread of `pid`; empty when the process is gone. */
export function threadStates(pid: number): string[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const states: string[] = [];
  for (const tid of tids) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      states.push(text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3));
    } catch {
      // The thread exited between readdir and read.
    }
  }
  return states;
}

export function isFullyStopped(pid: number): boolean {
  const states = threadStates(pid);
  return states.length > 0 && states.every((s) => s === 'T' || s === 't');
}

/** True when no thread of the process is stopped (running or sleeping). */
export function isRunning(pid: number): boolean {
  const states = threadStates(pid);
  return states.length > 0 && states.every((s) => s !== 'T' && s !== 't');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `predicate` every 10 ms until true or `timeoutMs` passes; returns its last value. */
export async function eventually(predicate: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (predicate()) return true;
    await sleep(10);
  }
  return predicate();
}
