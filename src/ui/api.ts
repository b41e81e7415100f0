// The API `activate()` returns to other extensions (and to the tests):
//   const api = vscode.extensions.getExtension('crosvm-guard.crosvm-guard')?.exports;
import type * as vscode from 'vscode';
import { FREEZE_SCOPES, GuardError, isFreezeScope, isMethodSetting, isPid, METHOD_SETTINGS, oneOf } from '../guard';
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

/**
 * What another extension may ask of a freeze: no more than the settings allow a person. What
 * only the engine's tests may use (signals on a build not proven to survive them, a forced
 * cgroup version) is not offered, and dropped if sent anyway.
 */
export type ApiFreezeRequest = Pick<FreezeRequest, 'scope' | 'method' | 'excludePids'>;

/** The ApiFreezeRequest in `options`; throws a GuardError for values no setting could give. */
export function apiFreezeRequest(options: unknown): ApiFreezeRequest {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new GuardError('invalid-argument', 'Freeze options must be an object.');
  const { scope, method, excludePids } = options as Record<string, unknown>;
  if (scope !== undefined && !isFreezeScope(scope)) {
    throw new GuardError('invalid-argument', `scope must be ${oneOf(FREEZE_SCOPES)}.`);
  }
  if (method !== undefined && !isMethodSetting(method)) {
    throw new GuardError('invalid-argument', `method must be ${oneOf(METHOD_SETTINGS)}.`);
  }
  if (excludePids !== undefined && !(Array.isArray(excludePids) && excludePids.every(isPid))) {
    throw new GuardError('invalid-argument', 'excludePids must be a list of process ids.');
  }
  return { scope, method, excludePids };
}

export interface CrosvmGuardApi {
  /** Freezes one VM (its pid, or `{ pid, startTime }`); rejects with a GuardError. */
  freeze(vm: number | VmRef, options?: ApiFreezeRequest): Promise<FreezeReport>;
  /** Resumes one VM, or everything this window froze. */
  resume(vm?: number | VmRef): Promise<ResumeReport>;
  /** Re-reads /proc and returns the state. */
  refresh(): CrosvmGuardState;
  /** The last known state, without reading /proc. */
  getState(): CrosvmGuardState;
  /** Fires on freezing, frozen, freeze-failed and resumed. */
  readonly onDidChangeState: vscode.Event<GuardEvent>;
}
