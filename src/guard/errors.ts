// Errors the guard reports to people. Every message says what happened and what to do, in
// words a crosvm developer at a breakpoint understands without reading the source.

export type GuardErrorCode =
  | 'unsupported-platform'
  | 'invalid-argument'
  | 'not-crosvm'
  | 'vm-gone'
  | 'unsafe-build'
  | 'cgroup-unavailable'
  | 'needs-elevation'
  | 'elevation-failed'
  | 'not-permitted'
  | 'freeze-failed';

export class GuardError extends Error {
  constructor(
    readonly code: GuardErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GuardError';
  }
}

/** One process that could not be stopped, and why, in a user's words. */
export interface StopFailure {
  readonly pid: number;
  readonly label: string;
  readonly reason: string;
}

/** A freeze that failed: everything it had stopped was resumed before this was thrown. */
export class FreezeError extends GuardError {
  constructor(
    readonly vmPid: number,
    readonly failures: readonly StopFailure[],
    readonly resumedPids: readonly number[],
  ) {
    super('freeze-failed', FreezeError.describe(vmPid, failures, resumedPids));
    this.name = 'FreezeError';
  }

  private static describe(vmPid: number, failures: readonly StopFailure[], resumed: readonly number[]): string {
    const lines = failures.map((f) => `${f.label} (pid ${f.pid}): ${f.reason}`);
    const undo = resumed.length > 0 ? ` The ${resumed.length} process(es) already stopped were resumed.` : ' Nothing was stopped.';
    return `Could not freeze crosvm VM ${vmPid}: ${lines.join('; ')}.${undo}`;
  }
}

export function assertLinux(platform: NodeJS.Platform = process.platform): void {
  if (platform !== 'linux') {
    throw new GuardError(
      'unsupported-platform',
      `crosvm Guard needs a Linux host (this one is ${platform}). Open the folder on the Linux machine that runs crosvm, e.g. with Remote-SSH.`,
    );
  }
}

/** Says, for a failed kill(2), why in words that name both sides' users. */
export function describeSignalError(error: unknown, target: { uid: number }): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EPERM') {
    const who = target.uid === 0 ? 'crosvm runs as root' : `it runs as uid ${target.uid}`;
    const me = process.getuid?.() ?? -1;
    return `${who}; this window runs as uid ${me} and may not signal it`;
  }
  if (code === 'ESRCH') return 'it exited before it could be stopped';
  return `the signal failed (${code ?? String(error)})`;
}

/** Describes a thread state that keeps a process from stopping. */
export function describeBlockingState(state: string): string {
  switch (state) {
    case 'D':
      return 'in uninterruptible sleep (state D), usually waiting for I/O or a page fault';
    case 'R':
      return 'still running (state R)';
    case 'S':
      return 'sleeping and has not handled SIGSTOP yet (state S)';
    default:
      return `in state ${state}`;
  }
}
