// Reading and writing the cgroup file system for the cgroup freezer (methods/cgroupMethod.ts): which
// hierarchies are mounted, where a process lives, who may write there, and the freeze
// cgroups themselves (named like ours, validated when someone else names them, thawed and
// removed with every process moved back to where it came from).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROC_ROOT, readProcFile } from './procfs';

export type CgroupVersion = 1 | 2;

export interface CgroupHierarchy {
  readonly version: CgroupVersion;
  /** Where it is mounted. */
  readonly mountPoint: string;
  /** The hierarchy path mounted there (`/` unless a namespace or bind mount says otherwise). */
  readonly root: string;
}

/**
 * The cgroup v2 hierarchy and the v1 freezer hierarchy, from /proc/self/mountinfo (never
 * from fixed paths: hybrid hosts mount v2 at /sys/fs/cgroup/unified, pure v2 hosts at
 * /sys/fs/cgroup, containers elsewhere).
 */
export function parseMountinfo(text: string): CgroupHierarchy[] {
  const found: CgroupHierarchy[] = [];
  for (const line of text.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!after) continue;
    const fields = before.split(' ');
    const [fsType, , superOptions = ''] = after.split(' ');
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    const root = unescape(fields[3] ?? '/');
    const mountPoint = unescape(fields[4] ?? '');
    if (fsType === 'cgroup2') found.push({ version: 2, mountPoint, root });
    else if (fsType === 'cgroup' && superOptions.split(',').includes('freezer')) found.push({ version: 1, mountPoint, root });
  }
  return found;
}

/** The hierarchy to use: v2 first, unless `version` asks for one. */
export function freezerHierarchy(version?: CgroupVersion): CgroupHierarchy | undefined {
  const all = mountedHierarchies();
  const usable = all.filter((h) => (h.version === 2 ? v2CanFreeze(h.mountPoint) : true));
  return version ? usable.find((h) => h.version === version) : (usable.find((h) => h.version === 2) ?? usable.find((h) => h.version === 1));
}

const v2Freezes = new Map<string, boolean>();

/**
 * Whether a v2 hierarchy has the freezer (`cgroup.freeze`, Linux 5.2 and later). The root
 * cgroup never has the file, so a child is asked; with no child to ask, yes. Cached: a
 * kernel does not gain or lose it.
 */
function v2CanFreeze(mountPoint: string): boolean {
  let known = v2Freezes.get(mountPoint);
  if (known === undefined) {
    known = false;
    try {
      if (fs.existsSync(path.join(mountPoint, 'cgroup.procs'))) {
        const child = fs.readdirSync(mountPoint, { withFileTypes: true }).find((entry) => entry.isDirectory());
        known = child === undefined || fs.existsSync(path.join(mountPoint, child.name, 'cgroup.freeze'));
      }
    } catch {
      // unreadable: not usable
    }
    v2Freezes.set(mountPoint, known);
  }
  return known;
}

/** The directory of the cgroup `pid` is in, within `hierarchy`; undefined when it is gone. */
export function cgroupDirOf(pid: number, hierarchy: CgroupHierarchy): string | undefined {
  const text = readProcFile(`${PROC_ROOT}/${pid}/cgroup`);
  if (text === undefined) return undefined;
  for (const line of text.split('\n')) {
    const fields = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!fields) continue;
    const [, id, controllers, cgroupPath] = fields;
    const matches = hierarchy.version === 2 ? id === '0' && controllers === '' : controllers.split(',').includes('freezer');
    if (!matches) continue;
    // Outside this process's cgroup namespace the kernel shows `/../..`: not ours to map.
    if (cgroupPath.split('/').includes('..')) return undefined;
    const relative = path.posix.relative(hierarchy.root, cgroupPath);
    if (relative.startsWith('..')) return undefined; // outside what is mounted here
    return path.join(hierarchy.mountPoint, relative);
  }
  return undefined;
}

/** One freeze cgroup: where its processes came from. */
export interface FreezeCgroup {
  readonly version: CgroupVersion;
  readonly dir: string;
  readonly originalDir: string;
}

export const FREEZE_PREFIX = 'crosvm-guard-';
/** `crosvm-guard-<pid of the freezer>-<6 hex digits>`: the only directories we create or remove. */
const FREEZE_NAME = /^crosvm-guard-\d{1,7}-[0-9a-f]{6}$/;

/** Lies in one of our freeze cgroups now (a child forked there after the move, for one). */
export function isFreezeCgroupDir(dir: string): boolean {
  return FREEZE_NAME.test(path.basename(dir));
}

/**
 * Who may create freeze cgroups in `dir` and move its processes: `root`, `delegated` (an
 * unprivileged user inside a subtree delegated to it, e.g. by systemd), or `denied`. Moving a
 * process needs write access to the `cgroup.procs` of the common ancestor of where it is and
 * where it goes, which for a child freeze cgroup is `dir` itself.
 */
export type CgroupAccess = 'root' | 'delegated' | 'denied';

export function cgroupAccess(dir: string): CgroupAccess {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    fs.accessSync(path.join(dir, 'cgroup.procs'), fs.constants.W_OK);
  } catch {
    return 'denied';
  }
  return process.geteuid?.() === 0 ? 'root' : 'delegated';
}

/**
 * Checks a freeze cgroup described by someone else (a journal, the extension host talking to
 * the companion) before anything is written to it: our own naming, a direct child of the
 * cgroup it names as the origin, plain absolute paths, inside a cgroup hierarchy of that
 * version mounted on this host. Returns it, or why not.
 */
export function validateFreezeCgroup(value: unknown, mounted: readonly CgroupHierarchy[], freezerPid?: number): FreezeCgroup | string {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const { version, dir, originalDir } = value as Record<string, unknown>;
  if (version !== 1 && version !== 2) return 'unknown cgroup version';
  if (typeof dir !== 'string' || typeof originalDir !== 'string' || dir.length > 4096) return 'paths are not strings';
  if (!path.isAbsolute(dir) || path.normalize(dir) !== dir || dir.includes('\0')) return 'not a plain absolute path';
  if (!isFreezeCgroupDir(dir)) return 'not named like a freeze cgroup';
  // Named after the process that made it: a journal or a host names only its own.
  if (freezerPid !== undefined && !path.basename(dir).startsWith(`${FREEZE_PREFIX}${freezerPid}-`)) return 'made by another process';
  if (path.dirname(dir) !== originalDir) return 'not a child of the cgroup it came from';
  const inside = mounted.some((h) => h.version === version && (originalDir === h.mountPoint || originalDir.startsWith(h.mountPoint + '/')));
  if (!inside) return 'not inside a mounted cgroup hierarchy of that version';
  return { version, dir, originalDir };
}

/** Every cgroup v2 and v1 freezer hierarchy mounted here. */
export function mountedHierarchies(): CgroupHierarchy[] {
  return parseMountinfo(readProcFile(`${PROC_ROOT}/self/mountinfo`) ?? '');
}

export function writeControl(dir: string, file: string, value: string): void {
  fs.writeFileSync(path.join(dir, file), value);
}

export function isFrozen(group: FreezeCgroup): boolean {
  if (group.version === 2) return /^frozen 1$/m.test(fs.readFileSync(path.join(group.dir, 'cgroup.events'), 'latin1'));
  const state = fs.readFileSync(path.join(group.dir, 'freezer.state'), 'latin1').trim();
  // v1 can stay FREEZING while a task is busy in the kernel; container runtimes write
  // FROZEN again until it sticks.
  if (state === 'FREEZING') writeControl(group.dir, 'freezer.state', 'FROZEN');
  return state === 'FROZEN';
}

/**
 * Moves every process of each group back where it came from, thaws the group, removes it.
 * Moving first means no process ever runs inside a freeze cgroup: the kernel (v1 and v2)
 * thaws a task that moves into a cgroup that is not frozen. The thaw then covers whatever
 * could not be moved, so nothing stays frozen whatever fails.
 */
export function thawAndRestore(groups: readonly FreezeCgroup[]): string[] {
  const problems: string[] = [];
  for (const group of groups) {
    const moveBack = (report: boolean) => {
      let pids: string[] = [];
      try {
        pids = fs.readFileSync(path.join(group.dir, 'cgroup.procs'), 'latin1').split('\n').filter(Boolean);
      } catch {
        // already gone
      }
      for (const pid of pids) {
        try {
          writeControl(group.originalDir, 'cgroup.procs', pid);
        } catch (error) {
          // ESRCH: it exited meanwhile, and is simply gone.
          const gone = (error as NodeJS.ErrnoException).code === 'ESRCH';
          if (report && !gone) problems.push(`move ${pid} back to ${group.originalDir}: ${(error as Error).message}`);
        }
      }
    };
    moveBack(true);
    try {
      if (group.version === 2) writeControl(group.dir, 'cgroup.freeze', '0');
      else writeControl(group.dir, 'freezer.state', 'THAWED');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`thaw ${group.dir}: ${(error as Error).message}`);
    }
    // A task still exiting keeps the group populated for a moment (the move skips it): EBUSY.
    // Move again and retry briefly before calling it a problem.
    for (let attempt = 0; ; attempt++) {
      try {
        fs.rmdirSync(group.dir);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code === 'EBUSY' && attempt < 20) {
          Atomics.wait(SLEEP, 0, 0, 1);
          moveBack(false);
          continue;
        }
        problems.push(`remove ${group.dir}: ${(error as Error).message}`);
        break;
      }
    }
  }
  return problems;
}

/** For a synchronous 1 ms pause between rmdir attempts. */
const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/** The groups of `groups` that still exist: a thaw or removal that failed leaves them. */
export function remainingCgroups(groups: readonly FreezeCgroup[]): FreezeCgroup[] {
  return groups.filter((g) => fs.existsSync(g.dir));
}

/**
 * Moves `pid` out of the freeze cgroup of `groups` it lies in, back to where that group's
 * processes came from (which thaws it): for a process born inside a freeze cgroup that the
 * freeze must leave alone (excluded, traced, the debuggee). False if it is in none of them.
 */
export function releaseFromFreezeCgroup(pid: number, groups: readonly FreezeCgroup[], hierarchy: CgroupHierarchy): boolean {
  const dir = cgroupDirOf(pid, hierarchy);
  const group = groups.find((g) => g.dir === dir);
  if (!group) return false;
  writeControl(group.originalDir, 'cgroup.procs', String(pid));
  return true;
}
