// The API `activate()` returns to other extensions (and to the tests):
//   const api = vscode.extensions.getExtension('crosvm-guard.crosvm-guard')?.exports;
import type * as vscode from 'vscode';
import type { FreezeMethod, FreezeReport, FreezeRequest, FrozenVm, GuardEvent, ResumeReport, VmIdentity, VmRef } from '../guard';

export interface VmSummary extends VmIdentity {
  /** How many device processes it has. */
  readonly devices: number;
  /** true when the build tolerates stopped device processes (signals are safe). */
  readonly signalsSafe: boolean;
  /** The method in force while frozen, else the one a freeze would use; undefined: it would be refused. */
  readonly method: FreezeMethod | undefined;
  /** It runs as another user: only the elevated companion can freeze it (setting crosvmGuard.elevation). */
  readonly needsElevation: boolean;
  readonly frozen: boolean;
}

export interface CrosvmGuardState {
  readonly vms: readonly VmSummary[];
  readonly frozen: readonly FrozenVm[];
}

export interface CrosvmGuardApi {
  /** Freezes one VM (its pid, or `{ pid, startTime }`); rejects with a GuardError. */
  freeze(vm: number | VmRef, options?: FreezeRequest): Promise<FreezeReport>;
  /** Resumes one VM, or everything this window froze. */
  resume(vm?: number | VmRef): Promise<ResumeReport>;
  /** Re-reads /proc and returns the state. */
  refresh(): CrosvmGuardState;
  /** The last known state, without reading /proc. */
  getState(): CrosvmGuardState;
  /** Fires on freezing, frozen, freeze-failed and resumed. */
  readonly onDidChangeState: vscode.Event<GuardEvent>;
}
