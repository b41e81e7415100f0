// The root companion's life in one window: started on demand (sudo or pkexec, a password box
// if sudo wants one), never asking at a debugger stop (`sudo -n` only, and not again for a
// minute once it wanted a password), kept alive while a debug session freezes at its stops,
// and the policy of when a VM may be handed to it at all.
import { FreezeEngine, GuardError, GuardEvent } from '../guard';
import { ElevatedGuard, ElevationError, ElevationOptions, ElevationTool } from './elevatedClient';

/** crosvmGuard.elevation. */
export type ElevationSetting = 'ask' | 'sudo' | 'pkexec' | 'never';

/** Why a freeze of a VM wants the root companion, and where the freeze comes from. */
export interface ElevationNeed {
  readonly vmPid: number;
  /** `signals`: this window may not signal some of its processes; `cgroups`: its build dies on signals and its cgroups are not writable here. */
  readonly why: 'signals' | 'cgroups';
  /** Who owns the VM's main process. */
  readonly uid: number;
  /** The build's evidence, for `cgroups`. */
  readonly evidence: string;
  /** A command (may ask), a debugger stop (asks nothing), or a stop whose debug settings came from a workspace (never elevates). */
  readonly at: 'command' | 'stop' | 'stop-from-workspace';
}

export interface ElevationSessionOptions {
  readonly setting: () => ElevationSetting;
  /** Everything ElevatedGuard.start needs but the tool. */
  readonly options: () => Omit<ElevationOptions, 'tool'>;
  readonly log: (level: 'info' | 'warn', message: string) => void;
  /** The companion's engine events (freezes and resumes it made). */
  readonly onEvent: (event: GuardEvent) => void;
  /** It started or ended. */
  readonly onChange: () => void;
}

/** How long a silent `sudo -n` that wanted a password is not tried again (each try spawns sudo). */
const SILENT_RETRY_MS = 60_000;

/** The tool each setting elevates with. */
const ELEVATION_TOOLS: Record<Exclude<ElevationSetting, 'never'>, ElevationTool> = { ask: 'auto', sudo: 'sudo', pkexec: 'pkexec' };

export class ElevationSession {
  private running: ElevatedGuard | undefined;
  private starting: Promise<ElevatedGuard> | undefined;
  /** When a silent `sudo -n` last failed for want of a password. */
  private silentRefusedAt: number | undefined;

  constructor(private readonly options: ElevationSessionOptions) {}

  get setting(): ElevationSetting {
    return this.options.setting();
  }

  /** The running root companion's engine, if one runs. */
  get engine(): (FreezeEngine & { readonly companionPid: number }) | undefined {
    return this.running?.isRunning ? this.running : undefined;
  }

  /**
   * Starts the root companion, or returns the one running; concurrent callers share one
   * start. `silent`: only what asks nothing (`sudo -n`), for a debugger stop.
   */
  start(silent = false): Promise<ElevatedGuard> {
    if (this.running?.isRunning) return Promise.resolve(this.running);
    if (this.starting) return this.starting;
    const setting = this.setting;
    if (setting === 'never') return Promise.reject(new GuardError('needs-elevation', ELEVATION_OFF));
    // sudo -n failed for want of a password a moment ago: do not spawn it at every step.
    if (silent && this.silentRefusedAt !== undefined && Date.now() - this.silentRefusedAt < SILENT_RETRY_MS) {
      return Promise.reject(new GuardError('needs-elevation', SILENT_REFUSAL));
    }
    const tool = silent ? 'sudo' : ELEVATION_TOOLS[setting];
    const options = silent ? { ...this.options.options(), askPassword: undefined } : this.options.options();
    this.options.log('info', `Starting the elevated companion with ${describeTool(tool, silent)}.`);
    this.starting = ElevatedGuard.start({ ...options, tool }).then(
      (elevated) => this.started(elevated),
      (error: Error) => {
        this.starting = undefined;
        this.options.log('warn', `Elevation failed: ${error.message}`);
        if (silent && error instanceof ElevationError && error.reason === 'not-permitted') {
          this.silentRefusedAt = Date.now();
          throw new GuardError('needs-elevation', SILENT_REFUSAL);
        }
        throw error;
      },
    );
    return this.starting;
  }

  /**
   * The root companion's engine for a VM that needs it, started now when the setting and
   * the moment allow; else a GuardError `needs-elevation` that says why and what to do (the
   * callers offer "Freeze with administrator rights…"). Undefined when elevation is off for
   * a VM the engine's own refusal explains better (its cgroups).
   */
  async engineFor(need: ElevationNeed): Promise<FreezeEngine | undefined> {
    // Debug settings from a workspace never reach root (see debugSettingsFromWorkspace): not
    // by starting the root companion, nor through one the user started before.
    if (need.at === 'stop-from-workspace') throw new GuardError('needs-elevation', workspaceMayNotElevate(need.vmPid));
    if (this.engine) return this.engine;
    const setting = this.setting;
    // At a debugger stop nothing may be asked: sudo -n only (passwordless sudo), and the
    // follower offers the rest once, outside the stop.
    if (need.at === 'stop' && setting !== 'never') return this.start(true);
    if (setting === 'sudo' || setting === 'pkexec') return this.start();
    // Elevation off: for want of cgroup access the engine's own refusal names the ways out.
    if (need.why === 'cgroups' && setting === 'never') return undefined;
    throw new GuardError('needs-elevation', needsElevationMessage(need, setting));
  }

  /** Keeps the companion from its idle exit (while a debug session freezes at its stops). */
  keepAlive(): void {
    if (this.running?.isRunning) void this.running.keepAlive().catch(() => undefined);
  }

  /** Closing the link makes the root companion resume what it still holds, and exit. */
  dispose(): void {
    this.running?.dispose();
  }

  private started(elevated: ElevatedGuard): ElevatedGuard {
    this.starting = undefined;
    this.running = elevated;
    this.silentRefusedAt = undefined;
    const subscription = elevated.onDidChangeState(this.options.onEvent);
    elevated.onDidExit((reason) => {
      subscription.dispose();
      if (this.running === elevated) this.running = undefined;
      this.options.log('info', `The elevated companion ended (${reason}).`);
      this.options.onChange();
    });
    this.options.onChange();
    return elevated;
  }
}

const ELEVATION_OFF = 'Freezing with administrator rights is turned off (setting crosvmGuard.elevation is "never").';

const SILENT_REFUSAL =
  'Starting the elevated companion needs your password, which is never asked at a debugger stop. ' +
  'Use "Freeze with administrator rights…" once: the companion it starts stays for the rest of the debug session.';

function describeTool(tool: ElevationTool, silent: boolean): string {
  if (silent) return 'sudo -n (nothing is asked at a debugger stop)';
  return tool === 'auto' ? 'sudo (then pkexec or a password if sudo asks for one)' : tool;
}

function workspaceMayNotElevate(pid: number): string {
  return (
    `crosvm VM ${pid} needs administrator rights, and automatic freezing was turned on by this ` +
    "workspace's settings: a workspace never starts them, nor uses them once started. Set crosvmGuard.debug.autoFreeze (and " +
    'debug.target) in your user settings instead, or use "Freeze with administrator rights…".'
  );
}

function needsElevationMessage(need: ElevationNeed, setting: ElevationSetting): string {
  const owner = need.uid === 0 ? 'runs as root' : `runs as uid ${need.uid}`;
  const why =
    need.why === 'signals'
      ? `crosvm VM ${need.vmPid} ${owner}; this window runs as uid ${process.geteuid?.()} and may not signal it.`
      : `crosvm VM ${need.vmPid} would shut down if its devices were stopped with signals (${need.evidence}), ` +
        'and this window may not write its cgroups for the cgroup freezer.';
  const way =
    setting === 'never' ? ELEVATION_OFF : 'It can be frozen with administrator rights (as root the cgroup freezer is always open).';
  return `${why} ${way}`;
}
