// Waiting between two polls of /proc or cgroup files while a freeze takes effect. In an
// extension host at a debugger stop the event loop is busy with the debug adapter's traffic,
// and every yield to it costs milliseconds while the devices keep writing guest memory; a tree
// normally stops within one or two. So the first few milliseconds are spent polling without
// yielding, in short sleeps that leave the CPU to the stopping threads; then polls back off to
// timers, so that the host stays responsive when something is slow to stop.

/** How long a wait polls without yielding to the event loop. */
export const SPIN_MS = 3;
/** One sleep of the spin. */
const SPIN_SLEEP_MS = 0.05;
const cell = new Int32Array(new SharedArrayBuffer(4));

export class Poller {
  private readonly spinUntil = performance.now() + SPIN_MS;
  private slowPolls = 0;

  /** Resolves when it is time to poll again (synchronously, within the spin). */
  next(): Promise<void> | undefined {
    if (performance.now() < this.spinUntil) {
      Atomics.wait(cell, 0, 0, SPIN_SLEEP_MS);
      return undefined;
    }
    const ms = Math.min(10, ++this.slowPolls);
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}
