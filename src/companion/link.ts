// The companion's link to the extension host: JSON requests, one per line, on standard input;
// replies (elevated mode) on standard output; a log on standard error. The end of standard
// input is the end of the host: whoever uses the link resumes everything then.

/** Lines longer than this are not ours: dropped whole. */
const MAX_LINE = 1 << 20;

export function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} companion ${process.pid}: ${message}\n`);
}

export function exit(code: number, reason: string): never {
  log(`exiting (${reason})`);
  process.exit(code);
}

export interface LinkHandlers {
  /** One parsed request; a line that is not a JSON object never reaches it (nor the log: it may be a password sudo did not need). */
  readonly request: (request: Record<string, unknown>) => void;
  /** The host is gone (end of stdin, a broken pipe, SIGTERM/SIGINT/SIGHUP relayed by sudo). */
  readonly hostGone: (reason: string) => void;
}

export function listen(handlers: LinkHandlers): void {
  let pending = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    pending += chunk;
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let request: unknown;
      try {
        request = JSON.parse(line);
      } catch {
        log('ignored a line that is not JSON');
        continue;
      }
      if (typeof request === 'object' && request !== null && !Array.isArray(request)) handlers.request(request as Record<string, unknown>);
      else log('ignored a line that is not a JSON object');
    }
    if (pending.length > MAX_LINE) pending = '';
  });
  process.stdin.on('end', () => handlers.hostGone('the extension host is gone'));
  process.stdin.on('error', () => handlers.hostGone('the link to the extension host broke'));
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => handlers.hostGone(signal));
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
