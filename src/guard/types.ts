// The engine's vocabulary: what callers ask (VmRef, FreezeRequest), what they get back
// (FreezeReport, ResumeReport, FrozenVm, GuardEvent), and the two interfaces others implement
// or drive: FreezeEngine (this window's engine, and the root companion's client) and SafetyNet
// (the write-ahead that makes every freeze crash-safe).
import type { CgroupVersion, FreezeCgroup } from './cgroupfs';
import type { MethodChoice } from './methods/chooseMethod';
import type { FreezeMethod, HeldRecord, MethodSetting } from './methods/methodDriver';
import type { ChildrenSource, ProcessIdentity } from './processTree';
import type { SwapBuildVerdict } from './swapBuild';

export type { FreezeMethod, MethodChoice, MethodSetting };

/** `devices`: the device processes; `vm`: the main process (vCPUs) as well. */
export const FREEZE_SCOPES = ['devices', 'vm'] as const;
export type FreezeScope = (typeof FREEZE_SCOPES)[number];
export const isFreezeScope = (v: unknown): v is FreezeScope => FREEZE_SCOPES.includes(v as FreezeScope);

/** A process this engine stopped, remembered by identity so resume never hits a stranger. */
export interface FrozenProcess extends ProcessIdentity {
  readonly label: string;
  readonly ppid: number;
}

export type SkipReason = 'zombie' | 'already-stopped' | 'traced' | 'excluded' | 'self' | 'init' | 'debuggee' | 'left-vm';

export interface SkippedProcess {
  readonly pid: number;
  readonly startTime: number;
  readonly label: string;
  readonly reason: SkipReason;
  readonly detail: string;
}

export interface GuardSettings {
  /** Executable or argv[0] basenames that identify crosvm; `*` and `?` are wildcards. */
  readonly processNames: readonly string[];
  /** Glob patterns (`*`, `?`) of device labels never to stop, e.g. `swap monitor`. */
  readonly excludeLabels: readonly string[];
  /** Deadline for every thread of every target to be confirmed stopped. */
  readonly stopTimeoutMs: number;
  /** Also stop processes a debugger is attached to. */
  readonly includeTracedProcesses: boolean;
  /**
   * Executables (absolute paths, as /proc/<pid>/exe names them) the user vouches were built with
   * the `swap` feature: a VM running one of them is frozen with signals without other proof.
   */
  readonly assumeSwapBuild: readonly string[];
  /** Re-scans for processes forked while freezing before giving up. */
  readonly maxRounds: number;
  readonly childrenSource: ChildrenSource;
  /** How to freeze: `auto` picks signals where the build tolerates them, else the cgroup freezer. */
  readonly method: MethodSetting;
  /**
   * Only VMs and processes of these uids are frozen, each checked in the read right before its
   * signal or move (the root companion: root and the user who ran sudo or pkexec). Unset: the
   * kernel's own rule (who may signal whom) is the only limit.
   */
  readonly allowedOwners?: ReadonlySet<number>;
  /**
   * Freeze only a VM whose main process runs a crosvm executable, shown by its contents, and
   * only processes that run that same file (see crosvmExecutable.ts): the root companion.
   */
  readonly requireCrosvmExecutable?: boolean;
}

export const DEFAULT_SETTINGS: GuardSettings = {
  // Copies named after their build (`crosvm-swap`, `crosvm.debug`) too; the wildcards skip
  // cargo's test binaries of crosvm (see CARGO_TEST_BINARY in vms.ts).
  processNames: ['crosvm', 'crosvm-*', 'crosvm.*'],
  excludeLabels: [],
  stopTimeoutMs: 2000,
  includeTracedProcesses: false,
  assumeSwapBuild: [],
  maxRounds: 5,
  childrenSource: 'children-files',
  method: 'auto',
};

/** Which VM: its main pid, and its start time when the caller has seen it before. */
export interface VmRef {
  readonly pid: number;
  readonly startTime?: number;
}

export interface FreezeRequest {
  /** `devices` (default): the device processes; `vm`: the main process (vCPUs) as well. */
  readonly scope?: FreezeScope;
  /**
   * Freeze with signals even when the build is not proven to tolerate stopped children.
   * This shuts down a crosvm built without the swap feature; for tests and the brave.
   */
  readonly allowUnsafeSignals?: boolean;
  /** Processes never to signal, e.g. the debuggee of a debug session. */
  readonly excludePids?: readonly number[];
  /**
   * Overrides the `method` setting. `signal`: SIGSTOP, crosvm's own method. `cgroup`: the
   * kernel's cgroup freezer, which crosvm does not notice, so any build survives it; needs
   * write access to the cgroup tree (root, or a subtree delegated to this user).
   */
  readonly method?: MethodSetting;
  /** With `cgroup`: force a hierarchy version (default: v2 if usable, else the v1 freezer). */
  readonly cgroupVersion?: CgroupVersion;
}

export interface VmIdentity extends ProcessIdentity {
  readonly name: string;
}

export interface FreezeReport {
  readonly vm: VmIdentity;
  readonly scope: FreezeScope;
  readonly method: FreezeMethod;
  /** Why this method, in a user's words (the build's evidence, the cgroup and who may write it). */
  readonly methodReason: string;
  /** With the cgroup method: the freeze cgroups created by this call. */
  readonly cgroups?: readonly FreezeCgroup[];
  /** Stopped by this call. */
  readonly frozen: readonly FrozenProcess[];
  /** Left alone by this call, each with its reason. */
  readonly skipped: readonly SkippedProcess[];
  readonly swapBuild: SwapBuildVerdict;
  readonly rounds: number;
  readonly elapsedMs: number;
}

/** A process we froze and did not resume: someone else stopped or traced it meanwhile. */
export interface LeftStopped extends FrozenProcess {
  readonly why: string;
}

export interface ResumeReport {
  readonly resumed: readonly FrozenProcess[];
  /** Exited while frozen, or their pid now belongs to another process: not signalled. */
  readonly gone: readonly FrozenProcess[];
  /** Stopped or traced by someone else while frozen: left so (signals only). */
  readonly leftStopped?: readonly LeftStopped[];
  /** With the cgroup method: steps that failed (a thaw, a move back, a removal), each with its path and error. */
  readonly problems?: readonly string[];
  readonly elapsedMs: number;
}

/** What the guard holds frozen for one VM. */
export interface FrozenVm {
  readonly vm: VmIdentity;
  readonly scope: FreezeScope;
  readonly method: FreezeMethod;
  /** With the cgroup method: the freeze cgroups and where their processes came from. */
  readonly cgroups?: readonly FreezeCgroup[];
  readonly cgroupVersion?: CgroupVersion;
  /** Date.now() of the first freeze. */
  readonly since: number;
  readonly processes: readonly FrozenProcess[];
  readonly skipped: readonly SkippedProcess[];
}

export type GuardEvent =
  | { readonly type: 'freezing'; readonly vmPid: number }
  | { readonly type: 'frozen'; readonly report: FreezeReport }
  | { readonly type: 'freeze-failed'; readonly vmPid: number; readonly error: Error }
  | { readonly type: 'resumed'; readonly report: ResumeReport };

export interface Disposable {
  dispose(): void;
}

/**
 * What can freeze and resume VMs: this window's own engine (CrosvmGuard), and the root
 * companion through its client (ElevatedGuard). The VS Code layer routes to either alike.
 */
export interface FreezeEngine {
  freeze(ref: VmRef, request?: FreezeRequest): Promise<FreezeReport>;
  /** One VM, or everything this engine froze when `ref` is omitted. */
  resume(ref?: VmRef): Promise<ResumeReport>;
  /** What it holds frozen now. */
  readonly frozenVms: readonly FrozenVm[];
  frozenVm(pid: number): FrozenVm | undefined;
  onDidChangeState(listener: (event: GuardEvent) => void): Disposable;
}

/** What the guard calls around every stop and resume. */
export interface SafetyNet {
  /**
   * Makes what `held` lists recoverable; resolves before the first of its processes is frozen
   * and before the first of its freeze cgroups is created.
   */
  willStop(vm: ProcessIdentity & { name: string }, held: Omit<HeldRecord<FrozenProcess>, 'vm'>): Promise<void>;
  /** They run again, or are gone (and the cgroups thawed and removed): nobody needs to resume them any more. */
  didRelease(processes: readonly FrozenProcess[], cgroups?: readonly FreezeCgroup[]): void;
}
