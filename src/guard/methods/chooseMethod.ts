// The one place that picks the method for a VM: SIGSTOP (crosvm's own, cheapest, and visible to
// `ps` and debuggers as stopped) where the build tolerates stopped children, else the cgroup
// freezer where this process may write the cgroup tree, else neither, with the ways out.
import { CgroupAccess, cgroupAccess, cgroupDirOf, CgroupHierarchy, CgroupVersion, freezerHierarchy } from '../cgroupfs';
import { GuardError } from '../errors';
import type { FreezeScope } from '../types';
import { SwapBuildVerdict, UNSAFE_BUILD_WAY_OUT } from '../swapBuild';
import type { VmSnapshot } from '../vms';
import type { MethodSetting } from './methodDriver';

/** Where one process lives in the freezer hierarchy, and who may move it. */
export interface CgroupPlacement {
  readonly pid: number;
  readonly dir: string | undefined;
  readonly access: CgroupAccess;
}

export type MethodChoice =
  | { readonly method: 'signal'; readonly why: string }
  | {
      readonly method: 'cgroup';
      readonly why: string;
      readonly hierarchy: CgroupHierarchy;
      readonly access: Exclude<CgroupAccess, 'denied'>;
    }
  | {
      readonly method: undefined;
      readonly why: string;
      readonly error: GuardError;
      /** `cgroup-denied`: only write access to the VM's cgroups is missing (root has it). */
      readonly refusal: 'unsafe-signals' | 'no-freezer' | 'cgroup-denied';
    };

export interface MethodQuestion {
  readonly vm: VmSnapshot;
  readonly swapBuild: SwapBuildVerdict;
  readonly setting: MethodSetting;
  readonly scope: FreezeScope;
  readonly cgroupVersion?: CgroupVersion;
  readonly allowUnsafeSignals?: boolean;
}

const DELEGATION_WAY_OUT =
  'run crosvm in a cgroup delegated to you (for instance `systemd-run --user --scope crosvm run …`), or run it as your own user in one';

function signalsRefused(pid: number, evidence: string): string {
  return (
    `Not freezing crosvm VM ${pid}: ${evidence}. Stopping its device processes would make crosvm shut the VM down. ` +
    `${UNSAFE_BUILD_WAY_OUT} Or set crosvmGuard.method to "auto" or "cgroup" to use the cgroup freezer, which crosvm does not notice.`
  );
}

function cgroupRefused(pid: number, problem: string): string {
  return (
    `Cannot freeze crosvm VM ${pid} with the cgroup freezer: ${problem}. Either ${DELEGATION_WAY_OUT}, ` +
    'or set crosvmGuard.method to "signal" if crosvm was built with the swap feature.'
  );
}

/** Per process of `vm` in `scope`: its cgroup in `hierarchy` and whether we may move it. */
export function cgroupPlacements(vm: VmSnapshot, scope: FreezeScope, hierarchy: CgroupHierarchy): CgroupPlacement[] {
  const processes = scope === 'vm' ? [vm.main, ...vm.devices] : vm.devices;
  const accessByDir = new Map<string, CgroupAccess>();
  return processes.map((p) => {
    const dir = cgroupDirOf(p.pid, hierarchy);
    if (!dir) return { pid: p.pid, dir, access: 'denied' };
    let access = accessByDir.get(dir);
    if (!access) accessByDir.set(dir, (access = cgroupAccess(dir)));
    return { pid: p.pid, dir, access };
  });
}

/** Decides from /proc and the mounted cgroups; never throws (a refusal carries the error to throw). */
export function chooseMethod(question: MethodQuestion): MethodChoice {
  const signalsChosen = question.setting === 'signal' || (question.setting === 'auto' && isSignalSafe(question));
  // Signals need no cgroup facts: the common case reads nothing more.
  if (signalsChosen) return decideMethod(question, undefined, process.geteuid?.() ?? -1);
  const hierarchy = freezerHierarchy(question.cgroupVersion);
  const placements = hierarchy ? cgroupPlacements(question.vm, question.scope, hierarchy) : [];
  return decideMethod(question, hierarchy && { hierarchy, placements }, process.geteuid?.() ?? -1);
}

const isSignalSafe = (question: MethodQuestion) => question.swapBuild.tolerant === true || question.allowUnsafeSignals === true;

/**
 * chooseMethod's decision, from the facts it read: the freezer hierarchy and where each
 * target lives (undefined: none mounted), and this process's uid.
 */
export function decideMethod(
  question: MethodQuestion,
  cgroups: { hierarchy: CgroupHierarchy; placements: readonly CgroupPlacement[] } | undefined,
  uid: number,
): MethodChoice {
  const { vm, swapBuild, setting } = question;
  const signalsSafe = isSignalSafe(question);
  if (setting === 'signal' || (setting === 'auto' && signalsSafe)) {
    if (signalsSafe) return { method: 'signal', why: `signals: ${swapBuild.evidence}` };
    const error = new GuardError('unsafe-build', signalsRefused(vm.main.pid, swapBuild.evidence));
    return { method: undefined, why: `signals would shut it down: ${swapBuild.evidence}`, error, refusal: 'unsafe-signals' };
  }
  const hierarchy = cgroups?.hierarchy;
  let problem: string;
  let refusal: 'no-freezer' | 'cgroup-denied' = 'no-freezer';
  if (!hierarchy) {
    problem = `no cgroup ${question.cgroupVersion ? `v${question.cgroupVersion} ` : ''}freezer hierarchy is mounted (see /proc/self/mountinfo)`;
  } else {
    const placements = cgroups?.placements ?? [];
    const denied = placements.find((p) => p.access === 'denied');
    if (!denied) {
      const access = uid === 0 ? 'root' : 'delegated';
      const where = [...new Set(placements.map((p) => p.dir))].join(', ') || 'its cgroup';
      const who = access === 'root' ? 'root may write it' : `delegated to uid ${uid}`;
      return { method: 'cgroup', why: `cgroup freezer v${hierarchy.version} in ${where} (${who})`, hierarchy, access };
    }
    refusal = denied.dir ? 'cgroup-denied' : 'no-freezer';
    problem = denied.dir
      ? `uid ${uid} may not write ${denied.dir} (pid ${denied.pid} lives there; it is not root's to give, nor a subtree delegated to this user)`
      : `the cgroup of pid ${denied.pid} could not be read`;
  }
  if (setting === 'cgroup') {
    const error = new GuardError('cgroup-unavailable', cgroupRefused(vm.main.pid, problem));
    return { method: undefined, refusal, why: `cgroup freezer unavailable: ${problem}`, error };
  }
  const message =
    `Not freezing crosvm VM ${vm.main.pid}: ${swapBuild.evidence}, so stopping its device processes would make crosvm shut the VM down; ` +
    `and the cgroup freezer, which crosvm does not notice, is not open here: ${problem}. Two ways out: rebuild crosvm with \`--features swap\` ` +
    `(or add its executable to crosvmGuard.assumeSwapBuild if it was), or ${DELEGATION_WAY_OUT}.`;
  return { method: undefined, refusal, why: `neither method applies: ${problem}`, error: new GuardError('unsafe-build', message) };
}
