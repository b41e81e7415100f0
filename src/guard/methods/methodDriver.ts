// What every way of freezing a VM is: one interface, with one implementation per method in a
// file of its own (signalMethod.ts, cgroupMethod.ts) and one table of them (drivers.ts). A
// method is named in FREEZE_METHODS; the table's type then refuses to compile until the new
// method has a driver, and so does every other `{ [M in FreezeMethod]: … }` table.
import type { FreezeCgroup } from '../cgroupfs';
import type { ChildrenSource, ProcessIdentity, ProcessSnapshot } from '../processTree';
import type { TargetRules } from '../targets';
import type { FreezeScope, FrozenProcess, FrozenVm, LeftStopped, SafetyNet, SkippedProcess, VmIdentity } from '../types';
import type { VmSnapshot } from '../vms';
import type { MethodChoice } from './chooseMethod';

/** Every way to freeze a VM, in the order `auto` prefers them. */
export const FREEZE_METHODS = ['signal', 'cgroup'] as const;
export type FreezeMethod = (typeof FREEZE_METHODS)[number];

/** The values of the setting crosvmGuard.method: a method, or `auto` to choose per VM. */
export const METHOD_SETTINGS = ['auto', ...FREEZE_METHODS] as const;
export type MethodSetting = (typeof METHOD_SETTINGS)[number];

export const isFreezeMethod = (v: unknown): v is FreezeMethod => FREEZE_METHODS.includes(v as FreezeMethod);
export const isMethodSetting = (v: unknown): v is MethodSetting => METHOD_SETTINGS.includes(v as MethodSetting);

/** A process a method would resume: as a journal records it, and as a companion is told. */
export interface HeldProcess extends ProcessIdentity {
  readonly label: string;
}

/** What a method holds of one VM, in a form that outlives this process (journal, companion). */
export interface HeldRecord<P extends HeldProcess = HeldProcess> {
  /** The VM's main process: a method that acts through the VM itself finds it again by this. */
  readonly vm: ProcessIdentity;
  readonly method: FreezeMethod;
  readonly processes: readonly P[];
  /** The freeze cgroups to thaw and remove: the cgroup method's; empty for the others. */
  readonly cgroups: readonly FreezeCgroup[];
}

/** The method chosen for a VM (see chooseMethod), with what it found out on the way. */
export type ChosenMethod<M extends FreezeMethod = FreezeMethod> = Extract<MethodChoice, { method: M }>;

/** One freeze call of one VM, as the guard hands it to the method chosen. */
export interface FreezeJob<M extends FreezeMethod = FreezeMethod> {
  readonly vm: VmSnapshot;
  readonly identity: VmIdentity;
  readonly scope: FreezeScope;
  readonly choice: ChosenMethod<M>;
  readonly rules: TargetRules;
  readonly stopTimeoutMs: number;
  readonly maxRounds: number;
  readonly childrenSource: ChildrenSource;
  /** What an earlier freeze of this VM holds (by this same method): it joins that. */
  readonly earlier: FrozenVm | undefined;
  /** `vm` comes from an earlier walk, not one made for this freeze (see CrosvmGuard.recentVm). */
  readonly fromEarlierWalk: boolean;
  /** Write-ahead: told before anything stops, and of whatever nobody needs to resume any more. */
  readonly net: SafetyNet | undefined;
  /** The VM's devices read again, for processes forked meanwhile. */
  readonly rescan: () => readonly ProcessSnapshot[];
}

/** What one freeze call did; the guard adds it to what it holds of the VM. */
export interface FreezeOutcome {
  readonly frozen: readonly FrozenProcess[];
  readonly skipped: readonly SkippedProcess[];
  readonly rounds: number;
  /** How the VM is now held: `earlier`'s record and this call's, as one. */
  readonly held: Pick<FrozenVm, 'method' | 'cgroupVersion' | 'cgroups'>;
  /** The freeze cgroups this call created (the cgroup method). */
  readonly cgroups?: readonly FreezeCgroup[];
}

/** Who may be resumed, besides the identity check every undo makes. */
export interface UndoPolicy<P extends HeldProcess = HeldProcess> {
  /**
   * Leave a process that someone else stopped or traced since we froze it (see
   * stoppedOrTracedSince); `leaveTraced`: a debugger that attached since keeps it too.
   */
  readonly leaveOthers?: { readonly leaveTraced: boolean };
  /** Checked right before a process is signalled: why not to, or undefined. */
  readonly proof?: (p: P) => string | undefined;
}

export interface UndoOutcome<P extends HeldProcess = HeldProcess> {
  readonly resumed: P[];
  /** Exited, or their pid names another process now: not signalled. */
  readonly gone: P[];
  /** Stopped or traced by someone else since (UndoPolicy.leaveOthers): left so. */
  readonly leftStopped: Array<P & Pick<LeftStopped, 'why'>>;
  /** Refused by UndoPolicy.proof, or by the kernel: not resumed, with why. */
  readonly refused: Array<{ readonly process: P; readonly why: string }>;
  /** Steps that failed (a thaw, a move back, a removal), each with its path and error. */
  readonly problems: string[];
  /** Worth a line in a log: a freeze cgroup already gone, for instance. */
  readonly notes: string[];
  /** What could not be undone and stays held (a freeze cgroup that would not go): try again later. */
  readonly stillHeld?: Pick<HeldRecord<P>, 'processes' | 'cgroups'>;
}

/** How a method reads to a user: in the tree, the tooltips and the log. */
export interface MethodWords {
  /** After "with": `signals`, `the cgroup freezer`. */
  readonly name: string;
  /** What a tooltip says after "Can be frozen with", from the choice's reason and the build's evidence. */
  readonly canFreeze: (why: string, evidence: string) => { readonly how: string; readonly caveat?: string };
}

export interface MethodDriver<M extends FreezeMethod = FreezeMethod> {
  readonly method: M;
  readonly words: MethodWords;
  /** A process it froze shows as stopped (`T`) in /proc: what the tree reads for its state. */
  readonly showsAsStopped: boolean;
  /**
   * Freezes the VM's targets in rounds until a re-scan finds nothing new and every one is
   * confirmed frozen. All or nothing: on failure it undoes what it did and throws FreezeError.
   */
  freeze(job: FreezeJob<M>): Promise<FreezeOutcome>;
  /**
   * The one way to undo a freeze, whoever asks: this window's resume, the companion after a
   * crash, the next window from a journal, a window taking over another's freeze. Never
   * signals a process that is not the one recorded (pid and start time).
   */
  undo<P extends HeldProcess>(record: HeldRecord<P>, policy?: UndoPolicy<P>): UndoOutcome<P>;
  /** Whether what the guard holds of a VM is still frozen (else someone resumed it meanwhile). */
  isStillHeld(vm: FrozenVm): boolean;
  /** Why a record from a journal or a companion is not one of this method's, or undefined. */
  recordProblem(record: HeldRecord): string | undefined;
}
