// The companion's link to the extension host: JSON requests, one per line, on standard input;
// replies (elevated mode) on standard output; a log on standard error. The end of standard
// input is the end of the host: whoever uses the link resumes everything then.
import { readJsonLines } from './jsonLines';

export function log(message: string): void {
  // Never throws: a log that cannot be written must not keep the companion from resuming.
  try {
    process.stderr.write(`${new Date().toISOString()} companion ${process.pid}: ${message}\n`);
  } catch {
    // stderr is gone
  }
}

export function exit(code: number, reason: string): never {
  log(`exiting (${reason})`);
  process.exit(code);
}

export interface LinkHandlers {
  /** One parsed request; a line that is not a JSON object never reaches it (nor the log: it may be a password sudo did not need). */
  readonly request: (request: Record<string, unknown>) => void;
  /** The host is gone (end of stdin, a broken pipe either way, SIGTERM/SIGINT/SIGHUP). Called once. */
  readonly hostGone: (reason: string) => void;
  /**
   * Last resort for an error nothing caught: resume everything synchronously, then the
   * process exits. Without it Node would exit on the spot and leave the VMs frozen.
   */
  readonly crashed: (error: Error) => void;
}

export function listen(handlers: LinkHandlers): void {
  readJsonLines(process.stdin, handlers.request, (why) => log(`ignored a line: ${why}`));
  let gone = false;
  const hostGone = (reason: string) => {
    if (gone) return;
    gone = true;
    handlers.hostGone(reason);
  };
  process.stdin.on('end', () => hostGone('the extension host is gone'));
  process.stdin.on('error', () => hostGone('the link to the extension host broke'));
  // A reply to a host that died in the meantime fails with EPIPE, asynchronously, as an
  // 'error' event: unhandled, Node would exit without resuming anything.
  process.stdout.on('error', () => hostGone('the extension host stopped reading'));
  process.stderr.on('error', () => undefined);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => hostGone(signal));
  process.on('uncaughtException', (error) => {
    log(`unexpected error: ${error.stack ?? error.message}`);
    try {
      handlers.crashed(error);
    } finally {
      process.exit(1);
    }
  });
}

/** Calls `onIdle` once nothing has been held for `ms`; call again after every change. */
export function idleTimer(ms: number, onIdle: () => void): (holding: boolean) => void {
  let timer: NodeJS.Timeout | undefined;
  return (holding) => {
    if (timer) clearTimeout(timer);
    timer = holding ? undefined : setTimeout(onIdle, ms);
  };
}

/** How long an idle companion waits for the next freeze before it exits. */
export const IDLE_EXIT_MS = Number(process.env.CROSVM_GUARD_COMPANION_IDLE_MS) || 10_000;

/** How long the root companion lets a host holding a freeze stay silent before it resumes. */
export const HEARTBEAT_TIMEOUT_MS = 15_000;
