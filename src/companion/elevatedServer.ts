// Elevated mode: the companion started through sudo or pkexec to freeze VMs that run as
// root. It runs the engine itself, as root, and takes only the requests of protocol.ts
// (ElevatedRequest: freeze, resume, status, heartbeat, exit; strictly validated, anything
// else refused), answering each on stdout (ElevatedReply). The engine proves by itself, from /proc, that the pid is a crosvm VM with that start time
// before anything is done, and freezes only that VM's own descendants (and, with scope "vm",
// its main process): whatever the unprivileged side sends, nothing else is signalled or moved.
// Settings that widen what is frozen (assumeSwapBuild, includeTracedProcesses) are not
// accepted over the link. Only VMs and processes of root and of the user who started it are
// frozen; who that is, it reads from /proc itself, never from what the caller could set.
// When the link breaks, everything is resumed and the process exits; it also exits once
// nothing has been frozen for a while.
import { CrosvmGuard, GuardError } from '../guard';
import { readStat, readStatAndOwner } from '../guard/procfs';
import { exit, idleTimer, listen, log } from './link';
import { ElevatedReply, ElevatedRequest, parseElevatedRequest, ReadyEvent } from './protocol';

/**
 * Who started this companion, judged from its parent process as root reads it in /proc. sudo
 * runs the command as its child and keeps the caller's real uid (so does its monitor process
 * under `use_pty`); pkexec replaces itself with the command, whose parent is then the caller.
 * Either way the parent's real uid is the caller's, set by the kernel: nothing the caller can
 * forge, unlike SUDO_UID or PKEXEC_UID (which `env -i` removes anyway). A parent that is init
 * (this process was orphaned) or younger than this process proves nothing: refused.
 */
export function judgeInvoker(
  self: { ppid: number; startTime: number },
  parent: { uid: number; startTime: number } | undefined,
): { uid: number } | { problem: string } {
  if (self.ppid <= 1) return { problem: `its parent is pid ${self.ppid}: it was orphaned` };
  if (!parent) return { problem: `its parent, pid ${self.ppid}, has exited` };
  if (parent.startTime > self.startTime) return { problem: `pid ${self.ppid} is younger than itself: not its parent` };
  return { uid: parent.uid };
}

/** judgeInvoker for this process, from /proc. */
export function invoker(): { uid: number } | { problem: string } {
  const self = readStat(process.pid);
  if (!self) return { problem: 'its own /proc entry cannot be read' };
  const parent = readStatAndOwner(self.ppid);
  return judgeInvoker(self, parent && { uid: parent.uid, startTime: parent.stat.startTime });
}

/**
 * `heartbeatMs`: with something frozen, a host silent this long (hung, or stopped) gets
 * everything resumed: the host's own limits (maxFreezeSeconds, its watchdog) run in the host.
 */
export function runElevatedMode(processNames: readonly string[], idleMs: number, heartbeatMs: number): void {
  const who = invoker();
  // Fail closed: without a proven invoker there is nobody whose VMs may be frozen.
  if ('problem' in who) exit(2, `cannot tell which user started it (${who.problem}); start it through sudo or pkexec`);
  const guard = new CrosvmGuard({ processNames, method: 'auto', allowedOwners: new Set([0, who.uid]) });
  /** Requests received and not yet answered: the companion never goes idle in the middle of one. */
  let pending = 0;
  let exiting = false;
  const idle = idleTimer(idleMs, () => {
    if (pending === 0 && guard.frozenVms.length === 0) resumeAllAndExit('idle: nothing frozen');
  });
  const reply = (message: ElevatedReply | ReadyEvent) => {
    // A host that died meanwhile makes this fail (EPIPE): listen() turns that into hostGone.
    if (process.stdout.writable) process.stdout.write(JSON.stringify(message) + '\n');
  };
  const failure = (id: number | undefined, error: unknown) => {
    const code = error instanceof GuardError ? error.code : 'internal';
    reply({ id, ok: false, code, message: (error as Error).message ?? String(error) });
  };
  let queue: Promise<unknown> = Promise.resolve();
  let heartbeat: NodeJS.Timeout | undefined;
  const heard = () => {
    if (heartbeat) clearTimeout(heartbeat);
    heartbeat = setTimeout(() => {
      if (guard.frozenVms.length > 0) resumeAllAndExit(`the extension host sent nothing for ${heartbeatMs} ms`);
    }, heartbeatMs);
  };

  const resumeAllAndExit = (reason: string): void => {
    if (exiting) return;
    exiting = true;
    // Queued behind a freeze in progress, so that what it freezes is resumed too.
    void guard.resume().then(
      (report) => {
        log(`${reason}: resumed ${report.resumed.length}, gone ${report.gone.length}`);
        exit(0, reason);
      },
      (error: Error) => exit(1, `${reason}; resume failed: ${error.message}`),
    );
  };

  const handle = async (parsed: Exclude<ElevatedRequest, { op: 'heartbeat' }>): Promise<void> => {
    if (parsed.op === 'exit') return resumeAllAndExit('asked to');
    try {
      if (parsed.op === 'status') reply({ id: parsed.id, ok: true, frozen: guard.frozenVms });
      else if (parsed.op === 'resume') reply({ id: parsed.id, ok: true, report: await guard.resume(parsed.vm), frozen: guard.frozenVms });
      else {
        const { pid, startTime, scope, method, excludePids } = parsed;
        const report = await guard.freeze({ pid, startTime }, { scope, method, excludePids });
        log(`froze VM ${report.vm.pid} (${report.method}): ${report.frozen.map((p) => p.pid).join(' ')}`);
        reply({ id: parsed.id, ok: true, report, frozen: guard.frozenVms });
      }
    } catch (error) {
      log(`request ${parsed.op} refused or failed: ${(error as Error).message}`);
      failure(parsed.id, error);
    }
  };

  listen({
    request(raw) {
      heard();
      const parsed = parseElevatedRequest(raw);
      if (typeof parsed === 'string') {
        log(`refused a request: ${parsed}`);
        failure(typeof raw.id === 'number' ? raw.id : undefined, new GuardError('invalid-argument', `Refused: ${parsed}.`));
        return;
      }
      if (parsed.op === 'heartbeat') return;
      const request = parsed;
      // One at a time, in order, like the guard itself. No idle exit until it is answered;
      // the idle time counts from the last request (the host's status calls keep it alive).
      pending++;
      idle(true);
      queue = queue
        .then(() => handle(request))
        .finally(() => {
          pending--;
          idle(pending > 0 || guard.frozenVms.length > 0);
        });
    },
    hostGone: resumeAllAndExit,
    crashed: (error) => {
      const report = guard.resumeAllImmediately();
      log(`crashed (${error.message}): resumed ${report.resumed.length}, gone ${report.gone.length}`);
    },
  });
  log(`started as uid ${process.geteuid?.()} by uid ${who.uid}, for executables named ${processNames.join(', ')}`);
  reply({ event: 'ready', pid: process.pid, uid: process.geteuid?.() ?? -1 });
  idle(false);
  heard();
}
