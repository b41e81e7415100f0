// What tests check in /proc, read independently of the engine's own readers so that a bug
// in the engine cannot hide itself.
import { taskStates } from '../fixture/fixtureVm';

/** The state letter of every thread of `pid`; empty when the process is gone. */
export function threadStates(pid: number): string[] {
  return [...taskStates(pid).values()];
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
