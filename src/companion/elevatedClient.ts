// Freezing VMs that run as root from an unprivileged extension host: the companion process
// (elevatedServer.ts) is started as root through `sudo` or `pkexec` and runs the engine
// itself; this class is its client, and a FreezeEngine like the host's own. Nothing passes through a shell: the command is an
// argument vector, and a password goes only to `sudo -S` on its standard input, after sudo
// has asked for it, and is zeroed right after.
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { GuardError } from '../guard';
import type { FreezeEngine, FreezeReport, FreezeRequest, FrozenVm, GuardEvent, ResumeReport, VmRef } from '../guard';
import { readJsonLines, writeJsonLine } from './jsonLines';
import { companionArgv, ELEVATED_NAME, ElevatedReply, ElevatedRequest, elevatedWireFormat, parseElevatedLine } from './protocol';
import { spawnDetached } from './spawnDetached';

/** `auto`: sudo without a password if it allows, else pkexec where a polkit agent runs (a local desktop session), else sudo with the password. */
export type ElevationTool = 'sudo' | 'pkexec' | 'auto';

export interface ElevationOptions {
  readonly tool: ElevationTool;
  /** The built companion (dist/companion.js). */
  readonly companionScript: string;
  /** Node to run it with; in a desktop VS Code the host's execPath is Electron, run as Node. */
  readonly nodeExecutable?: string;
  /** The executable names that make a process crosvm, fixed for the companion's life. */
  readonly processNames: readonly string[];
  /**
   * sudo only: called when sudo needs a password. Resolves to it (the buffer is zeroed once
   * written to sudo), or undefined when the user cancels.
   */
  readonly askPassword?: () => Promise<Buffer | undefined>;
  readonly log: (level: 'info' | 'warn', message: string) => void;
  /** How long the companion waits with nothing frozen before it exits (default 10 s). */
  readonly idleMs?: number;
  /** How long elevation may take, the password typed (default 15 s). */
  readonly startTimeoutMs?: number;
  /**
   * How long the companion lets this host be silent while it holds a freeze before it resumes
   * (default 15 s); this side sends a heartbeat five times as often.
   */
  readonly heartbeatMs?: number;
}

/** Where sudo and pkexec are installed; spawned by this path, never looked up in PATH. */
const ELEVATION_PROGRAMS = ['/usr/bin', '/bin'];

/** The absolute path of `command` in a system folder, or undefined when it is not installed. */
export function elevationProgram(command: 'sudo' | 'pkexec'): string | undefined {
  return ELEVATION_PROGRAMS.map((dir) => `${dir}/${command}`).find((file) => fs.existsSync(file));
}

const DEFAULT_HEARTBEAT_MS = 15_000;

/** What sudo prints when it wants the password: unlikely in any other output. */
const PROMPT = '[crosvm-guard] sudo password: ';

export class ElevationError extends GuardError {
  constructor(
    readonly reason: 'cancelled' | 'wrong-password' | 'not-permitted' | 'failed',
    message: string,
  ) {
    super('elevation-failed', message);
    this.name = 'ElevationError';
  }
}

function noPolkitAgent(pkexecSaid: string): string {
  return (
    `No polkit authentication agent answered for this window, so pkexec could not ask for your password (pkexec: ${pkexecSaid}) ` +
    'Set crosvmGuard.elevation to "sudo", or run a polkit agent in your desktop session.'
  );
}

/** Names (`comm`) of polkit authentication agents, GNOME Shell's built-in one included. */
const POLKIT_AGENTS = /^(polkit-gnome-au|polkit-kde-auth|polkit-mate-aut|lxpolkit|lxqt-policykit|xfce-polkit|gnome-shell|polkit-agent-he)/;

/** A local graphical session with a polkit agent, where pkexec can show its own dialog. */
export function polkitAgentRuns(): boolean {
  if (!fs.existsSync('/usr/bin/pkexec') || process.env.SSH_CONNECTION || !(process.env.DISPLAY || process.env.WAYLAND_DISPLAY)) {
    return false;
  }
  const uid = process.getuid?.();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.statSync(`/proc/${name}`).uid === uid && POLKIT_AGENTS.test(fs.readFileSync(`/proc/${name}/comm`, 'latin1'))) return true;
    } catch {
      // exited meanwhile
    }
  }
  return false;
}

/**
 * What `via` runs as root: the companion in elevated mode with an empty environment (nothing
 * like NODE_OPTIONS may reach a Node that runs as root). For sudo that is `env -i`; pkexec
 * already replaces the environment with a short fixed list and adds PKEXEC_UID, the invoker's
 * uid, which it sets itself as root: the companion's proof of who started it, which `-i`
 * would wipe (see judgeInvoker).
 */
export function companionCommand(
  via: 'sudo' | 'pkexec',
  options: Pick<ElevationOptions, 'nodeExecutable' | 'companionScript' | 'processNames' | 'idleMs' | 'heartbeatMs'>,
): string[] {
  const names = options.processNames.filter((n) => ELEVATED_NAME.test(n));
  return [
    '/usr/bin/env',
    ...(via === 'sudo' ? ['-i'] : []),
    'ELECTRON_RUN_AS_NODE=1',
    options.nodeExecutable ?? process.execPath,
    options.companionScript,
    ...companionArgv({
      mode: 'elevated',
      names: names.length > 0 ? names : ['crosvm'],
      idleMs: options.idleMs ?? 10_000,
      heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    }),
  ];
}

type OkReply = Extract<ElevatedReply, { ok: true }>;

interface Pending {
  resolve(value: OkReply): void;
  reject(error: Error): void;
}

/** A request without its id: `request()` numbers it. */
type Unnumbered<R> = R extends { id: number } ? Omit<R, 'id'> : never;

export class ElevatedGuard implements FreezeEngine {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private frozen: FrozenVm[] = [];
  private readonly listeners = new Set<(event: GuardEvent) => void>();
  private readonly exitListeners = new Set<(reason: string) => void>();
  private exited: string | undefined;

  private readonly heartbeat: NodeJS.Timeout;

  private constructor(
    private readonly child: ChildProcess,
    /** The companion's own pid (below sudo). */
    readonly companionPid: number,
    private readonly log: ElevationOptions['log'],
    heartbeatMs: number,
  ) {
    // Proof of life for the companion's own bound on a freeze (see ElevationOptions.heartbeatMs).
    this.heartbeat = setInterval(() => void writeJsonLine(this.child.stdin, { op: 'heartbeat' }).catch(() => undefined), heartbeatMs / 5);
    this.heartbeat.unref();
  }

  /**
   * Starts the elevated companion: `sudo -n` first; when sudo needs a password, `askPassword`
   * and `sudo -S`. Rejects with an ElevationError that says why (cancelled, wrong password,
   * not in sudoers, no polkit agent, …).
   */
  static async start(options: ElevationOptions): Promise<ElevatedGuard> {
    const companion = companionCommand('sudo', options);
    const viaPkexec = companionCommand('pkexec', options);
    if (options.tool === 'pkexec') return ElevatedGuard.launch('pkexec', viaPkexec, options, undefined);
    try {
      return await ElevatedGuard.launch('sudo', ['-n', '--', ...companion], options, undefined);
    } catch (error) {
      const needsPassword =
        error instanceof ElevationError && error.reason === 'not-permitted' && /password is required/.test(error.message);
      if (!needsPassword) throw error;
      if (options.tool === 'auto' && polkitAgentRuns()) return ElevatedGuard.launch('pkexec', viaPkexec, options, undefined);
      if (!options.askPassword) throw error;
    }
    const password = await options.askPassword();
    if (!password) throw new ElevationError('cancelled', 'Freezing with administrator rights was cancelled.');
    // -k: neither use nor update sudo's cached credentials. Without a terminal sudo keys them
    // to its parent, the extension host, where every other extension could then `sudo -n`.
    return ElevatedGuard.launch('sudo', ['-k', '-S', '-p', PROMPT, '--', ...companion], options, password);
  }

  private static launch(
    command: 'sudo' | 'pkexec',
    args: string[],
    options: ElevationOptions,
    password: Buffer | undefined,
  ): Promise<ElevatedGuard> {
    return new Promise((resolve, reject) => {
      // By its absolute path: a hostile PATH entry must never receive the password.
      const program = elevationProgram(command);
      if (!program) {
        password?.fill(0);
        reject(new ElevationError('failed', `${command} is not installed on this host.`));
        return;
      }
      // Detached: its own session, so a killed process group of the extension host does not
      // take it down; the end of its stdin (this process gone) is what makes it resume.
      const child = spawnDetached(program, args, ['pipe', 'pipe', 'pipe'], { ...process.env, LC_ALL: 'C' });
      let stderr = '';
      let prompts = 0;
      let settled = false;
      const finish = (error: Error | undefined, guard?: ElevatedGuard) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        password?.fill(0);
        if (error) {
          reject(error);
          // Closing its stdin ends a companion that did start (it resumes nothing: it froze
          // nothing). sudo and pkexec may already run as root, where our signal is refused.
          child.stdin?.end();
          try {
            child.kill('SIGTERM');
          } catch {
            // EPERM: it is root's now; the closed pipe ends it
          }
        } else resolve(guard as ElevatedGuard);
      };
      // pkexec's time includes the user reading and answering polkit's dialog.
      const timeoutMs = options.startTimeoutMs ?? (command === 'pkexec' ? 120_000 : 15_000);
      const timer = setTimeout(
        () => finish(new ElevationError('failed', `${command} did not start the companion within ${timeoutMs / 1000} s.`)),
        timeoutMs,
      );
      child.on('error', (error) => finish(new ElevationError('failed', `${command} could not be started: ${error.message}`)));
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (chunk: string) => {
        if (!settled) {
          stderr += chunk;
          const seen = stderr.split(PROMPT).length - 1;
          if (seen > prompts) {
            prompts = seen;
            if (prompts === 1 && password) {
              // Handed to the kernel pipe only now that sudo asks; never on a command line.
              // Written as is (no concatenated copy that would outlive the zeroing).
              child.stdin?.write(password, () => password.fill(0));
              child.stdin?.write('\n');
            } else {
              finish(new ElevationError('wrong-password', 'sudo did not accept the password.'));
            }
          }
          return;
        }
        for (const line of chunk.split('\n').filter(Boolean)) options.log('info', `elevated companion: ${line}`);
      });
      let guard: ElevatedGuard | undefined;
      if (child.stdout) {
        readJsonLines(child.stdout, (value) => {
          const message = parseElevatedLine(value);
          if (!message) return;
          if ('event' in message) {
            if (guard) return;
            guard = new ElevatedGuard(child, message.pid, options.log, options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
            options.log('info', `Elevated companion started with ${command} (pid ${message.pid}, uid ${message.uid}).`);
            finish(undefined, guard);
          } else guard?.onReply(message);
        });
      }
      child.on('exit', (code, signal) => {
        if (!settled) {
          const said = stderr.split(PROMPT).join('').trim().replace(/\s+/g, ' ').slice(0, 400);
          const stop = /[.!?]$/.test(said) ? '' : '.';
          if (command === 'pkexec' && (code === 126 || /Request dismissed/.test(said))) {
            // The user closed polkit's dialog: a cancel, not an error to show.
            finish(new ElevationError('cancelled', 'The polkit dialog was dismissed; nothing was frozen.'));
          } else if (command === 'pkexec' && /textual authentication agent|No authentication agent/i.test(said)) {
            finish(new ElevationError('not-permitted', noPolkitAgent(`${said}${stop}`)));
          } else {
            const notPermitted = /password is required|not in the sudoers|not allowed to execute|may not run sudo|Not authorized/i.test(
              said,
            );
            const how = signal ?? `exit ${code}`;
            const message = `${command} could not start the companion (${how})${said ? `: ${said}${stop}` : '.'}`;
            finish(new ElevationError(notPermitted ? 'not-permitted' : 'failed', message));
          }
        }
        guard?.onExit(signal ?? `exit ${code}`);
      });
    });
  }

  get isRunning(): boolean {
    return this.exited === undefined;
  }

  /** What the companion holds frozen, as of its last answer. */
  get frozenVms(): FrozenVm[] {
    return this.frozen;
  }

  frozenVm(pid: number): FrozenVm | undefined {
    return this.frozen.find((f) => f.vm.pid === pid);
  }

  onDidChangeState(listener: (event: GuardEvent) => void): { dispose(): void } {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /** The companion ended: idle, asked to, or it died. */
  onDidExit(listener: (reason: string) => void): { dispose(): void } {
    this.exitListeners.add(listener);
    return { dispose: () => this.exitListeners.delete(listener) };
  }

  /** `ref` with its start time: the companion proves the VM is that very process. */
  async freeze(ref: VmRef, request: FreezeRequest = {}): Promise<FreezeReport> {
    this.emit({ type: 'freezing', vmPid: ref.pid });
    try {
      if (ref.startTime === undefined) throw new GuardError('invalid-argument', `VM ${ref.pid}: the root companion needs its start time.`);
      const answer = await this.request({
        op: 'freeze',
        pid: ref.pid,
        startTime: ref.startTime,
        scope: request.scope ?? 'devices',
        method: request.method ?? 'auto',
        excludePids: request.excludePids ?? [],
      });
      const report = answer.report as FreezeReport;
      this.emit({ type: 'frozen', report });
      return report;
    } catch (error) {
      this.emit({ type: 'freeze-failed', vmPid: ref.pid, error: error as Error });
      throw error;
    }
  }

  async resume(ref?: VmRef): Promise<ResumeReport> {
    if (!this.isRunning) return { resumed: [], gone: [], elapsedMs: 0 };
    const startTime = ref && (ref.startTime ?? this.frozenVm(ref.pid)?.vm.startTime);
    if (ref && startTime === undefined) return { resumed: [], gone: [], elapsedMs: 0 }; // not ours
    const answer = await this.request(ref ? { op: 'resume', vm: { pid: ref.pid, startTime: startTime as number } } : { op: 'resume' });
    const report = answer.report as ResumeReport;
    if (report.resumed.length > 0 || report.gone.length > 0) this.emit({ type: 'resumed', report });
    return report;
  }

  /**
   * A status request: the companion's idle time counts from the last request, so this keeps
   * it (and the password it cost) for the next debugger stop.
   */
  async keepAlive(): Promise<void> {
    if (this.isRunning) await this.request({ op: 'status' });
  }

  /** Ends the link: the companion resumes whatever it still holds, and exits. */
  dispose(): void {
    clearInterval(this.heartbeat);
    this.listeners.clear();
    this.child.stdin?.end();
  }

  private request(message: Unnumbered<ElevatedRequest>): Promise<OkReply> {
    if (this.exited !== undefined) {
      return Promise.reject(new GuardError('elevation-failed', `The elevated companion has ended (${this.exited}).`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      void writeJsonLine(this.child.stdin, elevatedWireFormat({ ...message, id } as ElevatedRequest)).catch(() => undefined);
    });
  }

  private onReply(reply: ElevatedReply): void {
    if (reply.ok) this.frozen = [...reply.frozen];
    const pending = reply.id === undefined ? undefined : this.pending.get(reply.id);
    if (!pending || reply.id === undefined) return;
    this.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply);
    else pending.reject(new GuardError(reply.code as GuardError['code'], reply.message));
  }

  private onExit(reason: string): void {
    clearInterval(this.heartbeat);
    this.exited = reason;
    const held = this.frozen;
    this.frozen = [];
    for (const pending of this.pending.values()) {
      pending.reject(new GuardError('elevation-failed', `The elevated companion ended (${reason}).`));
    }
    this.pending.clear();
    if (held.length > 0) {
      this.log(
        'warn',
        `The elevated companion ended (${reason}) while holding ${held.length} VM(s); on its way out it resumes what it holds.`,
      );
      this.emit({ type: 'resumed', report: { resumed: [], gone: held.flatMap((f) => f.processes), elapsedMs: 0 } });
    }
    for (const listener of [...this.exitListeners]) listener(reason);
  }

  private emit(event: GuardEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's bug must not break freezing or resuming.
      }
    }
  }
}
