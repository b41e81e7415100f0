// The check that needs a view from outside the extension host: the suite's last test
// (test/suite/zz-lifecycle.test.ts) freezes a VM this runner started and proves it in /proc;
// once the host has shut down, every device of that VM must run again. Nothing but the
// extension's deactivate() can resume it in between. Shared by both suite runners.
import { eventually, isRunning } from '../engine/procState';
import { FixtureVm, startFixtureVm } from '../fixture/fixtureVm';
import { DEACTIVATE_VM_VARIABLE, LIFECYCLE_VM_NAME } from '../suite/result';
import { registerCleanup } from './cleanup';

export interface LifecycleVm {
  readonly vm: FixtureVm;
  /** Environment for the extension host: where the suite finds the VM. */
  readonly env: Record<string, string>;
}

/**
 * Starts the VM. Its executable has its own name, so the other tests, which count the VMs
 * named crosvm, do not see it; the lifecycle test adds the name to crosvmGuard.processNames.
 */
export async function startLifecycleVm(): Promise<LifecycleVm> {
  const vm = await startFixtureVm({ build: 'swap', executableName: LIFECYCLE_VM_NAME });
  registerCleanup({ dispose: () => vm.stop(), disposeSync: () => undefined });
  return { vm, env: { [DEACTIVATE_VM_VARIABLE]: String(vm.pid) } };
}

/** Waits for the host to be gone, then checks the VM runs; prints one test line. */
export async function checkResumedOnDeactivate(vm: FixtureVm, hostGone: () => Promise<boolean>): Promise<boolean> {
  const title = 'deactivate() resumes what the extension froze when the extension host shuts down';
  const gone = await hostGone();
  const devices = vm.devices.map((d) => d.pid);
  // SIGCONT takes effect at once, but give a slow machine a moment to schedule the wake-ups.
  const running = (await eventually(() => devices.every(isRunning), 1000)) ? devices.length : devices.filter(isRunning).length;
  const resumed = gone && running === devices.length;
  console.log(`  ${resumed ? '✔' : '✖'} ${title} (host ${gone ? 'gone' : 'still running'}, ${running} of ${devices.length} devices running)`);
  return resumed;
}
