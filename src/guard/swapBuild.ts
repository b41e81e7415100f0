// Does this VM's crosvm tolerate stopped device processes? Only a build with the `swap`
// Cargo feature skips CLD_STOPPED/CLD_CONTINUED in its SIGCHLD handler; every other build
// logs "child ... exited: signo 17, status 19, code 5" and shuts the VM down as crashed.
// So before a single SIGSTOP we look for proof, strongest first.
import * as fs from 'node:fs';
import { stringsInFile } from './crosvmExecutable';
import { PROC_ROOT } from './procfs';
import type { VmSnapshot } from './vms';

/** Strings only swap-feature code compiles into crosvm (the `swap` subcommand is in every build). */
export const SWAP_MARKERS: readonly string[] = ['launch vmm-swap monitor process', 'swap staging memory'];

export const SWAP_MONITOR_LABEL = 'swap monitor';

export interface SwapBuildVerdict {
  /** true: stopped children are safe; false: they crash the VM; undefined: no proof either way. */
  readonly tolerant: boolean | undefined;
  readonly evidence: string;
}

/** Per executable file (device, inode, size, mtime): the answer from its contents. */
const markerCache = new Map<string, string | null>();

/**
 * Looks for the markers in the VM's own executable through /proc/<pid>/exe, which opens the
 * file the process runs even after a rebuild replaced it on disk.
 */
export function executableHasSwapMarkers(pid: number): { found: string | null } | { error: string } {
  let fd: number;
  try {
    fd = fs.openSync(`${PROC_ROOT}/${pid}/exe`, 'r');
  } catch (error) {
    return { error: (error as NodeJS.ErrnoException).code ?? String(error) };
  }
  try {
    const st = fs.fstatSync(fd);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
    let found = markerCache.get(key);
    if (found === undefined) {
      found = stringsInFile(fd, SWAP_MARKERS, 'first')[0] ?? null;
      markerCache.set(key, found);
    }
    return { found };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Decides from the evidence. `vouchedExecutables` is the user's word (a setting) for the builds
 * they know: it counts as proof for a VM whose own executable is one of them, and no other.
 */
export function judgeSwapBuild(vm: VmSnapshot, vouchedExecutables: readonly string[]): SwapBuildVerdict {
  const monitor = vm.devices.find((d) => d.label === SWAP_MONITOR_LABEL && d.state !== 'Z');
  if (monitor) {
    return { tolerant: true, evidence: `a "${SWAP_MONITOR_LABEL}" process (pid ${monitor.pid}) runs: vmm-swap is enabled for this VM` };
  }
  const scan = executableHasSwapMarkers(vm.main.pid);
  if ('found' in scan && scan.found) {
    return { tolerant: true, evidence: `its executable contains vmm-swap code ("${scan.found}"): built with the swap feature` };
  }
  const vouched = vouchedExecutable(vm, vouchedExecutables);
  if (vouched) {
    return { tolerant: true, evidence: `the setting crosvmGuard.assumeSwapBuild vouches for its executable, ${vouched}` };
  }
  if ('found' in scan) {
    return {
      tolerant: false,
      evidence:
        'its executable has no vmm-swap code: a crosvm built without the swap feature shuts the VM down when a device process stops',
    };
  }
  return {
    tolerant: undefined,
    evidence: `its executable cannot be read (${scan.error}), so whether it was built with the swap feature is unknown`,
  };
}

/**
 * The entry of `vouchedExecutables` that is this VM's executable, if any. The path the kernel
 * gives, less the ` (deleted)` of a binary rebuilt at the same place: the user vouched for what
 * they build there. A VM whose executable cannot be read (another user's) is vouched for by none.
 */
function vouchedExecutable(vm: VmSnapshot, vouchedExecutables: readonly string[]): string | undefined {
  if (vm.exe === undefined) return undefined;
  const exe = vm.exe.replace(/ \(deleted\)$/, '');
  return vouchedExecutables.find((path) => path === exe);
}

/** What a user can do about a VM whose build does not tolerate stopped children. */
export const UNSAFE_BUILD_WAY_OUT =
  'Rebuild crosvm with `--features swap`, or, if you know it was, add its executable to crosvmGuard.assumeSwapBuild.';
