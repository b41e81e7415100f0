// The one "way out" flow: a notification that says why crosvm Guard refused or failed, with
// the buttons that lead on (administrator rights, the setting, the log, retry, refresh). Both
// the commands and the debug follower (a stop that could not freeze a VM) show it.
import * as vscode from 'vscode';
import { GuardError } from '../guard';
import { ElevationError } from '../companion/elevatedClient';
import { SettingKeys } from '../common/settings';
import type { GuardController } from './controller';
import { shortRefusal } from './describe';
import { openSetting } from './openSetting';

/** What the flows of the commands and the debug follower act through. */
export interface WayOutHost {
  readonly controller: GuardController;
  readonly log: vscode.LogOutputChannel;
}

export interface Refusal {
  readonly error: unknown;
  /** Runs again after Retry, or once administrator rights are granted; neither is offered without it. */
  readonly retry?: () => unknown;
  /**
   * A stopped debug session that could not freeze this VM: the notification says so, and
   * offers one way out (administrator rights, or else the setting), never Retry or Refresh.
   */
  readonly atStop?: { readonly session: string; readonly vm: number };
}

const ELEVATE = 'Freeze with administrator rights…';
const SETTINGS = 'Open Settings';
const SHOW_LOG = 'Show Log';

/** Refusals the user resolves in the settings (or with administrator rights), shown as warnings. */
const REFUSALS: ReadonlySet<string> = new Set(['unsafe-build', 'cgroup-unavailable', 'needs-elevation']);

/** Shows the notification for `refusal` and does what its button says. */
export async function offerWayOut(host: WayOutHost, refusal: Refusal): Promise<void> {
  const { error, retry, atStop } = refusal;
  const code = error instanceof GuardError ? error.code : undefined;
  const refused = code !== undefined && REFUSALS.has(code);
  // A refusal is short on screen; its evidence and every way out are in the log.
  if (!atStop && (code === 'unsafe-build' || code === 'cgroup-unavailable')) host.log.warn((error as Error).message);
  const short = code ? shortRefusal(error as GuardError) : ((error as Error).message ?? String(error));
  const message = atStop ? `Debug session "${atStop.session}" is stopped, but crosvm VM ${atStop.vm} keeps running: ${short}` : short;
  const elevate = code === 'needs-elevation' && retry !== undefined && host.controller.elevation.setting !== 'never';
  const actions = [
    ...(code === 'freeze-failed' && retry ? ['Retry'] : []),
    ...(elevate ? [ELEVATE] : []),
    ...(refused && !(atStop && elevate) ? [SETTINGS] : []),
    ...(code === 'vm-gone' || code === 'not-crosvm' ? ['Refresh'] : []),
    SHOW_LOG,
  ];
  const show = refused ? vscode.window.showWarningMessage : vscode.window.showErrorMessage;
  const choice = await show(message, ...actions);
  if (choice === 'Retry') void retry?.();
  else if (choice === ELEVATE) {
    try {
      await host.controller.elevation.start();
    } catch (failure) {
      if (atStop) host.log.warn(`Debug session "${atStop.session}": elevation failed: ${(failure as Error).message}`);
      if (failure instanceof ElevationError && failure.reason === 'cancelled') return;
      return offerWayOut(host, { error: failure });
    }
    void retry?.();
  } else if (choice === SETTINGS) {
    // For a build that dies on signals the way out is the method (the cgroup freezer), not
    // assumeSwapBuild, which would crash it if you were wrong.
    void openSetting(code === 'needs-elevation' ? SettingKeys.elevation : SettingKeys.method);
  } else if (choice === 'Refresh') host.controller.refresh();
  else if (choice === SHOW_LOG) host.log.show();
}
