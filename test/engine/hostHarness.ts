// Starts hostProcess.js (the engine with real crash safety, in a process a test can
// SIGKILL) and reads its JSON events.
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FixtureVm } from '../fixture/fixtureVm';
import { eventually } from './procState';

export const tmpJournalDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-journal-'));

export interface Host {
  readonly child: ChildProcess;
  readonly events: Array<Record<string, unknown>>;
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export function startHost(vm: FixtureVm, journalDir: string, method: 'signal' | 'cgroup' | 'cgroup-v1' = 'signal'): Host {
  const child = spawn(process.execPath, [path.join(__dirname, 'hostProcess.js'), String(vm.pid), journalDir, method], { stdio: ['ignore', 'pipe', 'inherit'] });
  const events: Array<Record<string, unknown>> = [];
  let buffer = '';
  child.stdout?.on('data', (chunk) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      events.push(JSON.parse(buffer.slice(0, i)) as Record<string, unknown>);
      buffer = buffer.slice(i + 1);
    }
  });
  let seen = 0;
  return {
    child,
    events,
    async next(event, timeoutMs = 5000) {
      const found = () => events.slice(seen).find((e) => e.event === event);
      assert.ok(await eventually(() => found() !== undefined, timeoutMs), `no "${event}" event: ${JSON.stringify(events)}`);
      const match = found() as Record<string, unknown>;
      seen = events.indexOf(match) + 1;
      return match;
    },
  };
}

