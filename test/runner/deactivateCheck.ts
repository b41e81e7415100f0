// The check that needs a view from outside the extension host: the suite's last test
// (test/suite/zz-lifecycle.test.ts) freezes a VM this runner started and proves it in /proc;
// once the host has shut down, every device of that VM must run again, resumed by the
// extension's deactivate() and not by the crash-safety companion, which would resume it too
// once the host is gone: the companion's log, in a journal folder of the run's own, must say
// it had nothing left to resume. Shared by both suite runners.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, isRunning } from '../engine/procState';
import { FixtureVm, startFixtureVm } from '../fixture/fixtureVm';
import { DEACTIVATE_VM_VARIABLE, LIFECYCLE_VM_NAME } from '../suite/result';
import { registerCleanup } from './cleanup';

export interface LifecycleVm {
  readonly vm: FixtureVm;
  /** Environment for the extension host: where the suite finds the VM, and the journal folder. */
  readonly env: Record<string, string>;
  /** The journal folder of the run, where the companions write companion.log. */
  readonly journalDir: string;
}

/**
 * Starts the VM. Its executable has its own name, so the other tests, which count the VMs
 * named crosvm, do not see it; the lifecycle test adds the name to crosvmGuard.processNames.
 */
export async function startLifecycleVm(): Promise<LifecycleVm> {
  const vm = await startFixtureVm({ build: 'swap', executableName: LIFECYCLE_VM_NAME });
  const journalDir = mkdtempSync(join(tmpdir(), 'crosvm-guard-journal-'));
  registerCleanup({
    dispose: async () => (await vm.stop(), rmSync(journalDir, { recursive: true, force: true })),
    disposeSync: () => rmSync(journalDir, { recursive: true, force: true }),
  });
  return { vm, journalDir, env: { [DEACTIVATE_VM_VARIABLE]: String(vm.pid), CROSVM_GUARD_JOURNAL_DIR: journalDir } };
}

/** Lines of companion.log where a companion resumed processes because the host went away. */
export function companionResumes(journalDir: string): string[] {
  let text = '';
  try {
    text = readFileSync(join(journalDir, 'companion.log'), 'utf8');
  } catch {
    return []; // no companion ever started
  }
  return text.split('\n').filter((line) => /resumed [1-9]\d* |thawed [1-9]\d* /.test(line));
}

/** Waits for the host to be gone, then checks the VM runs; prints one test line. */
export async function checkResumedOnDeactivate(lifecycle: LifecycleVm, hostGone: () => Promise<boolean>): Promise<boolean> {
  const title = 'deactivate() resumes what the extension froze when the extension host shuts down';
  const gone = await hostGone();
  const devices = lifecycle.vm.devices.map((d) => d.pid);
  // SIGCONT takes effect at once, but give a slow machine a moment to schedule the wake-ups.
  const running = (await eventually(() => devices.every(isRunning), 1000)) ? devices.length : devices.filter(isRunning).length;
  // A companion that had to resume means deactivate() did not, or let it go too early.
  const byCompanion = companionResumes(lifecycle.journalDir);
  const resumed = gone && running === devices.length && byCompanion.length === 0;
  console.log(
    `  ${resumed ? '✔' : '✖'} ${title} (host ${gone ? 'gone' : 'still running'}, ${running} of ${devices.length} devices running` +
      `${byCompanion.length > 0 ? `; resumed by the companion, not by deactivate(): ${byCompanion.join(' | ')}` : ''})`,
  );
  return resumed;
}
