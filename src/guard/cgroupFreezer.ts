// The kernel's cgroup freezer, the second way to freeze a VM: frozen tasks are not stopped
// in the job-control sense, so crosvm's parent gets no SIGCHLD and even a build without the
// `swap` feature survives. Each target moves into a freeze cgroup created as a child of the
// cgroup it lives in (so the limits above still apply), the freeze cgroup is frozen, and on
// resume everything in it is thawed and moved back to exactly where it came from.
//
// Not yet used by the extension: its crash safety (companion, journal) knows only signals.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StopFailure } from './errors';
import { PROC_ROOT, readProcFile } from './procfs';
import type { FrozenProcess } from './signalFreezer';

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
  const all = parseMountinfo(readProcFile(`${PROC_ROOT}/self/mountinfo`) ?? '');
  const usable = all.filter((h) => (h.version === 2 ? fs.existsSync(path.join(h.mountPoint, 'cgroup.procs')) : true));
  return version ? usable.find((h) => h.version === version) : (usable.find((h) => h.version === 2) ?? usable.find((h) => h.version === 1));
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

const FREEZE_PREFIX = 'crosvm-guard-';

function writeControl(dir: string, file: string, value: string): void {
  fs.writeFileSync(path.join(dir, file), value);
}

function isFrozen(group: FreezeCgroup): boolean {
  if (group.version === 2) return /^frozen 1$/m.test(fs.readFileSync(path.join(group.dir, 'cgroup.events'), 'latin1'));
  const state = fs.readFileSync(path.join(group.dir, 'freezer.state'), 'latin1').trim();
  // v1 can stay FREEZING while a task is busy in the kernel; container runtimes write
  // FROZEN again until it sticks.
  if (state === 'FREEZING') writeControl(group.dir, 'freezer.state', 'FROZEN');
  return state === 'FROZEN';
}

/** Thaws each group, moves every process in it back where it came from, removes it. */
export function thawAndRestore(groups: readonly FreezeCgroup[]): string[] {
  const problems: string[] = [];
  for (const group of groups) {
    try {
      if (group.version === 2) writeControl(group.dir, 'cgroup.freeze', '0');
      else writeControl(group.dir, 'freezer.state', 'THAWED');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`thaw ${group.dir}: ${(error as Error).message}`);
    }
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
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') problems.push(`move ${pid} back to ${group.originalDir}: ${(error as Error).message}`);
      }
    }
    try {
      fs.rmdirSync(group.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`remove ${group.dir}: ${(error as Error).message}`);
    }
  }
  return problems;
}

export class CgroupFreezeFailure extends Error {
  constructor(readonly failures: StopFailure[]) {
    super('cgroup freeze failed');
  }
}

export interface CgroupFreezeOptions {
  readonly hierarchy: CgroupHierarchy;
  readonly stopTimeoutMs: number;
  /** Called before each target is moved (tests use it to make a move fail half-way). */
  readonly beforeMove?: (target: FrozenProcess) => void;
}

/**
 * Freezes `targets` through freeze cgroups and waits until each group reports frozen. All or
 * nothing: on any failure everything is thawed and moved back, and the step, path and error
 * are named. Returns the groups, for thawAndRestore.
 */
export async function freezeInCgroups(targets: readonly FrozenProcess[], options: CgroupFreezeOptions): Promise<FreezeCgroup[]> {
  const { hierarchy } = options;
  const groups = new Map<string, FreezeCgroup>();
  const fail = (failures: StopFailure[]): never => {
    thawAndRestore([...groups.values()]);
    throw new CgroupFreezeFailure(failures);
  };
  const tag = `${FREEZE_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  for (const target of targets) {
    const originalDir = cgroupDirOf(target.pid, hierarchy);
    if (!originalDir) return fail([{ pid: target.pid, label: target.label, reason: 'its cgroup could not be read (it exited, or lives outside the mounted hierarchy)' }]);
    let group = groups.get(originalDir);
    try {
      if (!group) {
        group = { version: hierarchy.version, dir: path.join(originalDir, tag), originalDir };
        fs.mkdirSync(group.dir);
        groups.set(originalDir, group);
      }
      options.beforeMove?.(target);
      writeControl(group.dir, 'cgroup.procs', String(target.pid));
    } catch (error) {
      const step = group && fs.existsSync(group.dir) ? `moving it into ${group.dir}` : `creating ${path.join(originalDir, tag)}`;
      return fail([{ pid: target.pid, label: target.label, reason: `${step} failed: ${(error as Error).message}` }]);
    }
  }
  for (const group of groups.values()) {
    try {
      if (group.version === 2) writeControl(group.dir, 'cgroup.freeze', '1');
      else writeControl(group.dir, 'freezer.state', 'FROZEN');
    } catch (error) {
      return fail([{ pid: 0, label: group.dir, reason: `freezing failed: ${(error as Error).message}` }]);
    }
  }
  const deadline = performance.now() + options.stopTimeoutMs;
  for (let poll = 0; ; poll++) {
    const pending = [...groups.values()].filter((g) => !isFrozen(g));
    if (pending.length === 0) return [...groups.values()];
    if (performance.now() >= deadline) {
      return fail(pending.map((g) => ({ pid: 0, label: g.dir, reason: `it was not frozen within ${options.stopTimeoutMs} ms` })));
    }
    await new Promise((resolve) => (poll < 20 ? setImmediate(resolve) : setTimeout(resolve, 2)));
  }
}
