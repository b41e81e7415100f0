// Opens the Settings editor on one of this extension's settings, on the tab where it can be set.
import * as vscode from 'vscode';
import { SETTINGS_SECTION } from '../common/settings';

/**
 * The settings that decide which processes get signalled are machine scoped: in a remote
 * window (code-server, Remote-SSH, WSL) only the Remote tab can set them, and the User tab,
 * where `workbench.action.openSettings` opens, says "No Settings Found" for them.
 * `workbench.action.openRemoteSettings` takes the same options (`{ query }`) and opens that tab.
 */
export async function openSetting(key: string): Promise<void> {
  const query = `${SETTINGS_SECTION}.${key}`;
  if (vscode.env.remoteName !== undefined) {
    try {
      await vscode.commands.executeCommand('workbench.action.openRemoteSettings', { query });
      return;
    } catch {
      // Not registered yet (it is, once the remote extensions are known): the User tab at least.
    }
  }
  await vscode.commands.executeCommand('workbench.action.openSettings', query);
}
