// What the tree, the status bar, the context keys and the API show of each VM: built from the
// engine's facts by pure functions, so the VS Code layer only routes and shows.
import type {
  CgroupPlacement,
  FreezeMethod,
  FrozenVm,
  JournalVm,
  MethodChoice,
  ProcessSnapshot,
  SwapBuildVerdict,
  VmSnapshot,
} from '../guard';
import { fullLabel, isExitedState, isStoppedState, mayBeCut } from '../guard';

export interface VmView {
  readonly snapshot: VmSnapshot;
  readonly swapBuild: SwapBuildVerdict;
  /** What this window holds frozen of this VM, if anything. */
  readonly frozen: FrozenVm | undefined;
  /** What another VS Code window holds frozen of it (from that window's journal). */
  readonly frozenElsewhere: FrozenElsewhere | undefined;
  /** The method a freeze would use now, and why (or why it would be refused). */
  readonly method: MethodChoice;
  /** Per pid: its cgroup in the freezer hierarchy and who may move it. */
  readonly placements: ReadonlyMap<number, CgroupPlacement>;
  /**
   * Why only the elevated companion can freeze it: `signals`, some of its processes may not be
   * signalled from here (crosvm runs as root); `cgroups`, its build dies on signals and its
   * cgroups are not writable from here (root's cgroup freezer is the way). Else undefined.
   */
  readonly needsElevation: 'signals' | 'cgroups' | undefined;
}

export interface FrozenElsewhere extends Pick<JournalVm, 'processes' | 'cgroups'> {
  readonly ownerPid: number;
  readonly method: FreezeMethod;
}

/** The facts about one VM, as the engine read them. */
export interface VmFacts {
  readonly snapshot: VmSnapshot;
  readonly swapBuild: SwapBuildVerdict;
  readonly method: MethodChoice;
  readonly frozen: FrozenVm | undefined;
  /** Another window's journal entry for this pid, with its owner. */
  readonly other: { readonly ownerPid: number; readonly vm: JournalVm } | undefined;
  readonly placements: readonly CgroupPlacement[];
  /** This window's effective uid. */
  readonly uid: number;
  /** Whether this window may signal a pid (the kernel's answer). */
  readonly maySignal: (pid: number) => boolean;
}

export function buildVmView(facts: VmFacts): VmView {
  const { snapshot, other } = facts;
  return {
    snapshot,
    swapBuild: facts.swapBuild,
    frozen: facts.frozen,
    // Another process with the same pid is not the VM that window froze.
    frozenElsewhere:
      other && other.vm.startTime === snapshot.main.startTime
        ? { ownerPid: other.ownerPid, method: other.vm.method, processes: other.vm.processes, cgroups: other.vm.cgroups }
        : undefined,
    method: facts.method,
    placements: new Map(facts.placements.map((p) => [p.pid, p])),
    needsElevation: elevationNeeded(facts),
  };
}

/** Why only the root companion could freeze the VM, or undefined (see VmView.needsElevation). */
export function elevationNeeded(facts: Pick<VmFacts, 'snapshot' | 'method' | 'uid' | 'maySignal'>): VmView['needsElevation'] {
  if (facts.uid === 0) return undefined;
  const { snapshot: vm, method } = facts;
  if ([vm.main, ...vm.devices].some((p) => !facts.maySignal(p.pid))) return 'signals';
  // Refused here for want of cgroup access (not for want of a mounted freezer): root has it.
  return method.method === undefined && method.refusal === 'cgroup-denied' ? 'cgroups' : undefined;
}

/** What the tree and the status bar show of the listing, as a string to compare. */
export function viewSignature(views: readonly VmView[]): string {
  const kind = (state: string) => (isStoppedState(state) ? 'T' : isExitedState(state) ? 'Z' : 'R');
  return JSON.stringify(
    views.map((v) => [
      v.snapshot.main.pid,
      v.snapshot.main.startTime,
      v.snapshot.name,
      [v.snapshot.main, ...v.snapshot.devices].map((p) => [
        p.pid,
        p.startTime,
        p.ppid,
        p.label,
        p.uid,
        p.threads,
        p.tracerPid,
        kind(p.state),
      ]),
      v.swapBuild.tolerant,
      v.swapBuild.evidence,
      v.method.method,
      v.method.why,
      v.needsElevation,
      v.frozen && [v.frozen.since, v.frozen.scope, v.frozen.method, v.frozen.processes.length, v.frozen.skipped.length],
      v.frozenElsewhere?.ownerPid,
      [...v.placements.values()].map((p) => [p.pid, p.dir, p.access]),
    ]),
  );
}

/** How a process is named in the tree, its tooltip and its details. */
export interface ProcessName {
  /** What the row shows: crosvm's label (uncut where known), `#n` among identical siblings. */
  readonly shown: string;
  /** `comm`, as the kernel shows it (and as `ps` and crosvmGuard.excludeLabels see it). */
  readonly comm: string;
  /** crosvm's whole label when the kernel cut it to `comm` and the cut is unambiguous. */
  readonly full: string | undefined;
  /** `comm` is 15 bytes, as long as the kernel keeps: it may be cut (whether or not `full` is known). */
  readonly mayBeCut: boolean;
  /** With siblings of the same name: its number (1-based, by start time then pid) and how many there are. */
  readonly ordinal: { readonly n: number; readonly of: number } | undefined;
}

/**
 * The name of `p`, one of `vm`'s processes. crosvm gives identical labels to devices of one
 * kind (COM1–COM4 are four `serial` processes): siblings (same parent) of the same label are
 * numbered `serial #1` … `serial #4` by start time, then pid, so each row says which it is.
 */
export function processName(vm: Pick<VmSnapshot, 'devices'>, p: ProcessSnapshot): ProcessName {
  const full = fullLabel(p.label);
  const base = full ?? (p.label || `pid ${p.pid}`);
  const twins = vm.devices
    .filter((d) => d.ppid === p.ppid && d.label === p.label)
    .sort((a, b) => a.startTime - b.startTime || a.pid - b.pid);
  const index = twins.findIndex((d) => d.pid === p.pid);
  const ordinal = twins.length > 1 && index >= 0 ? { n: index + 1, of: twins.length } : undefined;
  return {
    shown: ordinal ? `${base} #${ordinal.n}` : base,
    comm: p.label,
    full,
    mayBeCut: mayBeCut(p.label),
    ordinal,
  };
}
