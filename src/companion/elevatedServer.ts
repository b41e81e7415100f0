// Elevated mode: the companion started through sudo or pkexec to freeze VMs that run as
// root. It runs the engine itself, as root, and takes only the requests of protocol.ts
// (ElevatedRequest: freeze, resume, status, heartbeat, exit; strictly validated, anything
// else refused), answering each on stdout (ElevatedReply). The engine proves by itself, from /proc, that the pid is a crosvm VM with that start time
// before anything is done, and freezes only that VM's own descendants (and, with scope "vm",
// its main process): whatever the unprivileged side sends, nothing else is signalled or moved.
// Settings that widen what is frozen (assumeSwapBuild, includeTracedProcesses) are not
// accepted over the link. Only VMs and processes of root and of the user who started it are
// frozen; who that is, it proves from what the caller cannot change (see judgeInvoker). Only a
// crosvm executable and processes that run that same file (see guard/crosvmExecutable.ts).
// When the link breaks, everything is resumed and the process exits; it also exits once
// nothing has been frozen for a while.
import { CrosvmGuard, GuardError } from '../guard';
import * as fs from 'node:fs';
import { PROC_ROOT, readStat, readStatAndOwner } from '../guard/procfs';
import { exit, idleTimer, listen, log } from './link';
import { ElevatedReply, ElevatedRequest, parseElevatedRequest, ReadyEvent } from './protocol';

/** What the companion reads about its own start, as root, before it trusts anyone. */
export interface StartFacts {
  readonly self: { readonly ppid: number; readonly startTime: number };
  /**
   * Its parent, read as one process (same start time before and after, and still its parent
   * after): its real uid, its start time, and whether its executable is the sudo program.
   */
  readonly parent: { readonly uid: number; readonly startTime: number; readonly isSudo: boolean } | undefined;
  /** PKEXEC_UID from its own environment. */
  readonly pkexecUid: string | undefined;
}

/**
 * Who started this companion, from facts the caller cannot change after the exec.
 * - Started by sudo: the parent must be the sudo program itself (its executable, the same file
 *   as /usr/bin/sudo), older than this process and still its parent when read; the invoker is
 *   sudo's real uid, the caller's. The caller may kill sudo (it has the caller's real uid), but
 *   then the parent is whoever adopted this process, not sudo: refused.
 * - Started by pkexec: PKEXEC_UID. pkexec, running as root, replaces the environment with its
 *   own short list and sets PKEXEC_UID to its caller's uid, overwriting anything the caller
 *   set; the command it runs here (env without -i) keeps it. The parent proves nothing then:
 *   pkexec execs in place, so the parent is the caller's own process, which the caller may
 *   kill to have this process re-parented to some older subreaper of another user.
 * - Started by root itself (a root parent that is not sudo): root, which adds no VM to those
 *   any invoker may freeze (root's own).
 * Anything else is refused, orphans included; SUDO_UID is never read (a sudoers policy may let
 * the caller set it).
 */
export function judgeInvoker(facts: StartFacts): { uid: number } | { problem: string } {
  const { self, parent, pkexecUid } = facts;
  const parentProblem =
    self.ppid <= 1
      ? `its parent is pid ${self.ppid}: it was orphaned`
      : !parent
        ? `its parent, pid ${self.ppid}, has exited`
        : parent.startTime > self.startTime
          ? `pid ${self.ppid} is younger than itself: not its parent`
          : undefined;
  // sudo first: a sudoers policy that lets the caller set variables cannot set PKEXEC_UID then.
  if (!parentProblem && parent?.isSudo) return { uid: parent.uid };
  if (pkexecUid !== undefined) {
    const uid = /^\d{1,10}$/.test(pkexecUid) ? Number(pkexecUid) : NaN;
    return uid <= 0xfffffffe ? { uid } : { problem: `PKEXEC_UID is not a uid (${pkexecUid.slice(0, 16)})` };
  }
  if (parentProblem || !parent) return { problem: parentProblem ?? 'no parent' };
  if (parent.uid === 0) return { uid: 0 };
  return {
    problem:
      `its parent, pid ${self.ppid} (uid ${parent.uid}), is not sudo, and pkexec did not start it: ` +
      'sudo was killed and another process adopted it, or it was started some other way',
  };
}

/** The sudo programs elevatedClient may run (elevationProgram), as files: device and inode. */
function sudoFiles(): Set<string> {
  const files = new Set<string>();
  for (const file of ['/usr/bin/sudo', '/bin/sudo']) {
    try {
      const st = fs.statSync(file);
      files.add(`${st.dev}:${st.ino}`);
    } catch {
      // not installed there
    }
  }
  return files;
}

/** judgeInvoker for this process, from /proc and its environment. */
export function invoker(): { uid: number } | { problem: string } {
  const self = readStat(process.pid);
  if (!self) return { problem: 'its own /proc entry cannot be read' };
  const pkexecUid = process.env.PKEXEC_UID;
  const read = readStatAndOwner(self.ppid);
  let isSudo = false;
  try {
    // Follows the link the kernel keeps to the very file the parent executes.
    const exe = fs.statSync(`${PROC_ROOT}/${self.ppid}/exe`);
    isSudo = sudoFiles().has(`${exe.dev}:${exe.ino}`);
  } catch {
    // gone, or a kernel thread
  }
  // Read again: the same process throughout (its start time), and still our parent (had it
  // died meanwhile, this process would have been re-parented).
  const after = readStat(self.ppid);
  const same = read && after && after.startTime === read.stat.startTime && readStat(process.pid)?.ppid === self.ppid;
  const parent = same ? { uid: read.uid, startTime: read.stat.startTime, isSudo } : undefined;
  return judgeInvoker({ self, parent, pkexecUid });
}

/**
 * `heartbeatMs`: with something frozen, a host silent this long (hung, or stopped) gets
 * everything resumed: the host's own limits (maxFreezeSeconds, its watchdog) run in the host.
 * It bounds a hung host, not a hostile one, deliberately (README, privilege model): whoever may
 * start this may freeze root's VMs, and would freeze again the moment a bound resumed them.
 */
export function runElevatedMode(processNames: readonly string[], idleMs: number, heartbeatMs: number): void {
  const who = invoker();
  // Fail closed: without a proven invoker there is nobody whose VMs may be frozen.
  if ('problem' in who) exit(2, `cannot tell which user started it (${who.problem}); start it through sudo or pkexec`);
  // A name is no proof (exec -a): root freezes only a crosvm executable and its own forks.
  const guard = new CrosvmGuard({ processNames, method: 'auto', allowedOwners: new Set([0, who.uid]), requireCrosvmExecutable: true });
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
