// Starts hostProcess.js (the engine with real crash safety, in a process a test can
// SIGKILL) and reads its JSON events; reads any child's JSON lines.
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FixtureVm } from '../fixture/fixtureVm';
import { asUserCommand, type TestUser } from '../runner/testUsers';
import { eventually } from './procState';

export const tmpJournalDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-journal-'));

/** The JSON lines a child prints on stdout, and a way to wait for the next one that matches. */
export interface JsonLines {
  readonly all: Array<Record<string, unknown>>;
  next(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function jsonLines(child: ChildProcess): JsonLines {
  const all: Array<Record<string, unknown>> = [];
  let buffer = '';
  child.stdout?.on('data', (chunk) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      all.push(JSON.parse(buffer.slice(0, i)) as Record<string, unknown>);
      buffer = buffer.slice(i + 1);
    }
  });
  let seen = 0;
  return {
    all,
    async next(match, timeoutMs = 15_000) {
      const found = () => all.slice(seen).find(match);
      assert.ok(await eventually(() => found() !== undefined, timeoutMs), `no matching line: ${JSON.stringify(all)}`);
      const line = found() as Record<string, unknown>;
      seen = all.indexOf(line) + 1;
      return line;
    },
  };
}

export interface Host {
  readonly child: ChildProcess;
  readonly events: Array<Record<string, unknown>>;
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function startHost(
  vm: Pick<FixtureVm, 'pid'>,
  journalDir: string,
  method: 'signal' | 'cgroup' | 'cgroup-v1' = 'signal',
  slowCompanion = false,
): Host {
  const args = [path.join(__dirname, 'hostProcess.js'), String(vm.pid), journalDir, method, ...(slowCompanion ? ['slow-companion'] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = jsonLines(child);
  return { child, events: lines.all, next: (event, timeoutMs = 5000) => lines.next((e) => e.event === event, timeoutMs) };
}

/**
 * The elevation test host (elevatedHost.js) for VM `vmPid`, run as `user` with a login-like
 * environment of the user's own (no DISPLAY, nothing of root's); `extra`: method, tool and
 * heartbeat ms; `path`: folders put before the system's in PATH.
 */
export function spawnElevatedHost(
  user: TestUser,
  vmPid: number,
  startTime: number,
  extra: readonly string[] = [],
  path_: readonly string[] = [],
): ChildProcess {
  return spawn(process.execPath, [path.join(__dirname, 'elevatedHost.js'), String(vmPid), String(startTime), ...extra], {
    uid: user.uid,
    gid: user.gid,
    cwd: user.home,
    env: { PATH: [...path_, '/usr/sbin:/usr/bin:/sbin:/bin'].join(':'), HOME: user.home, USER: user.name, LOGNAME: user.name },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

/**
 * reparentAttack.js for VM `vm`, run as user `a` under a child subreaper (test/fixture/subreaper.c)
 * that runs as user `b`: the setting of the re-parenting attack on the root companion's invoker.
 */
export function spawnReparentAttack(
  subreaper: string,
  a: TestUser,
  b: { uid: number; gid: number },
  via: 'sudo' | 'pkexec',
  vm: { pid: number; startTime: number },
  companionScript: string,
): ChildProcess {
  const attack = path.join(__dirname, 'reparentAttack.js');
  const args = [String(b.uid), String(b.gid), ...asUserCommand(a), process.execPath, attack, via, String(vm.pid), String(vm.startTime)];
  return spawn(subreaper, [...args, companionScript], {
    cwd: '/',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: a.home, USER: a.name, LOGNAME: a.name },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}
