// Records what a debug adapter and the workbench say to each other, with the time each
// message reached the extension host, for the debugger tests and the bench. Times come from
// process.hrtime (CLOCK_MONOTONIC): the same clock in every process of the machine, so they
// compare directly with those of a sampler process outside the extension host.
import * as vscode from 'vscode';

export interface DapMessage {
  readonly type?: string;
  readonly event?: string;
  readonly command?: string;
  readonly body?: { readonly reason?: string; readonly systemProcessId?: unknown };
}

export interface Timed<T> {
  readonly at: bigint;
  readonly message: T;
}

/** Milliseconds from `from` to `to` (hrtime nanoseconds). */
export const msBetween = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

export class DapRecorder implements vscode.Disposable {
  readonly stops: Timed<DapMessage>[] = [];
  /** Client requests that let the debuggee run: continue, next, stepIn, … */
  readonly resumes: Timed<DapMessage>[] = [];
  /** `systemProcessId` of every `process` event. */
  readonly processIds: unknown[] = [];
  /**
   * When the workbench last focused a stack frame (hrtime): it does so after each stop, once
   * it has asked the adapter for the threads and the stack. Only then do the step and continue
   * commands act on the stopped thread, as they do when a person presses them.
   */
  lastFocusAt = 0n;
  private readonly waiters = new Set<() => void>();
  private readonly registration: vscode.Disposable;
  private readonly focus = vscode.debug.onDidChangeActiveStackItem((item) => {
    if (item && 'frameId' in item) {
      this.lastFocusAt = process.hrtime.bigint();
      this.notify();
    }
  });

  constructor(debugType = '*') {
    this.registration = vscode.debug.registerDebugAdapterTrackerFactory(debugType, {
      createDebugAdapterTracker: () => ({
        onDidSendMessage: (m: DapMessage) => {
          const at = process.hrtime.bigint();
          if (m.type !== 'event') return;
          if (m.event === 'stopped') this.stops.push({ at, message: m });
          else if (m.event === 'process') this.processIds.push(m.body?.systemProcessId);
          else return;
          this.notify();
        },
        onWillReceiveMessage: (m: DapMessage) => {
          const at = process.hrtime.bigint();
          if (m.type === 'request' && m.command && ['continue', 'next', 'stepIn', 'stepOut'].includes(m.command)) {
            this.resumes.push({ at, message: m });
            this.notify();
          }
        },
      }),
    });
  }

  /** Resolves once `predicate` holds, checked after every recorded message; rejects after `timeoutMs`. */
  until(predicate: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.stops.length} stops so far)`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  waitForStops(count: number, timeoutMs?: number): Promise<void> {
    return this.until(() => this.stops.length >= count, `${count} stopped events`, timeoutMs);
  }

  /** Waits for the `count`th stop and for the workbench to show it (a focused stack frame). */
  async waitForShownStop(count: number, timeoutMs?: number): Promise<void> {
    await this.waitForStops(count, timeoutMs);
    const stop = this.stops[count - 1];
    await this.until(() => this.lastFocusAt > stop.at, `the workbench to show stop ${count}`, timeoutMs);
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  dispose(): void {
    this.registration.dispose();
    this.focus.dispose();
    this.waiters.clear();
  }
}
