// Administrator rights for VMs that run as root: the setting, and the password box. The
// password goes from the box to sudo's standard input (src/companion/elevatedClient.ts) and nowhere
// else: it is not logged, not stored, and the buffer is zeroed once written. (The string the
// box returns cannot be zeroed in JavaScript; no reference to it is kept.)
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ExtensionSettings } from '../common/settings';
import type { ControllerOptions, GuardController } from './controller';
import type { DebugSessions } from './debugFollower';
import type { LiveSettings } from './config';

/** The setting and ElevatedGuard's options, the password box among them. */
export function elevationFor(
  context: vscode.ExtensionContext,
  log: vscode.LogOutputChannel,
  settings: () => ExtensionSettings,
): ControllerOptions['elevation'] {
  return {
    setting: () => settings().elevation,
    options: () => ({
      companionScript: context.asAbsolutePath(path.join('dist', 'companion.js')),
      processNames: settings().processNames,
      log: (level, message) => log[level](message),
      askPassword: async () => {
        const value = await vscode.window.showInputBox({
          title: 'crosvm Guard: administrator rights',
          prompt: passwordPrompt(os.userInfo().username),
          password: true,
          ignoreFocusOut: true,
        });
        return value ? Buffer.from(value, 'utf8') : undefined;
      },
    }),
  };
}

function passwordPrompt(user: string): string {
  return (
    `Password for sudo (user ${user}). crosvm Guard starts a small helper as root to freeze crosvm VMs ` +
    'that run as root or in cgroups you may not write. The password goes to sudo only and is never stored.'
  );
}

/**
 * The root companion exits 10 s after its last request with nothing frozen, and starting it
 * again may cost a password, which is never asked at a stop: while a debug session freezes at
 * its stops, keep it (not for debug settings from a workspace, which never use it).
 */
export function registerRootCompanionKeepAlive(
  context: vscode.ExtensionContext,
  sessions: Pick<DebugSessions, 'automatic' | 'onDidChange'>,
  controller: Pick<GuardController, 'elevation'>,
  settings: Pick<LiveSettings, 'debugFromWorkspace'>,
): void {
  let keepAlive: NodeJS.Timeout | undefined;
  const follow = () => {
    if (sessions.automatic && !settings.debugFromWorkspace) keepAlive ??= setInterval(() => controller.elevation.keepAlive(), 5000);
    else if (keepAlive) keepAlive = void clearInterval(keepAlive);
  };
  context.subscriptions.push(sessions.onDidChange(follow), { dispose: () => keepAlive && clearInterval(keepAlive) });
}
