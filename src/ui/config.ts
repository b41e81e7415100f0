// Reads the settings through VS Code and validates them (rules in common/settings.ts), and
// keeps them current: each change is read again, logged as a diff, and told to listeners.
import * as vscode from 'vscode';
import { ExtensionSettings, LEGACY_SETTING_KEYS, SettingKeys, SETTINGS_SECTION, validateSettings } from '../common/settings';

/**
 * Settings that decide which processes get signalled. They are `machine` scoped in the
 * manifest; reading only their user (machine) value here as well means no workspace,
 * trusted or not, can point the extension at other processes, whatever the VS Code version.
 */
const TARGET_SETTINGS: ReadonlySet<keyof ExtensionSettings> = new Set([
  'processNames',
  'excludeLabels',
  'includeTracedProcesses',
  'assumeSwapBuild',
  'method',
  'elevation',
] as const);

export function readSettings(log: vscode.LogOutputChannel): ExtensionSettings {
  const config = vscode.workspace.getConfiguration(SETTINGS_SECTION);
  const raw: Partial<Record<keyof ExtensionSettings, unknown>> = {};
  for (const [key, name] of Object.entries(SettingKeys) as [keyof ExtensionSettings, string][]) {
    if (TARGET_SETTINGS.has(key)) {
      const inspected = config.inspect(name);
      raw[key] = inspected?.globalValue;
      if (inspected?.workspaceValue !== undefined || inspected?.workspaceFolderValue !== undefined) {
        const why = 'it chooses which processes get signalled, so only your user settings may set it';
        log.warn(`Ignoring the workspace's value of ${SETTINGS_SECTION}.${name}: ${why}.`);
      }
    } else {
      const legacy = LEGACY_SETTING_KEYS[key];
      const inspected = legacy ? config.inspect(name) : undefined;
      const set =
        inspected && [inspected.globalValue, inspected.workspaceValue, inspected.workspaceFolderValue].some((v) => v !== undefined);
      raw[key] = legacy && !set ? config.get(legacy) : config.get(name);
    }
  }
  const { settings, warnings } = validateSettings(raw);
  for (const warning of warnings) log.warn(warning);
  return settings;
}

/**
 * Whether a workspace (trusted or not) sets crosvmGuard.debug.autoFreeze or debug.target. A
 * workspace may turn automatic freezing on for VMs this window may freeze by itself, but it
 * never starts administrator rights (`sudo -n` at a stop): that takes your user settings.
 */
export function debugSettingsFromWorkspace(): boolean {
  const config = vscode.workspace.getConfiguration(SETTINGS_SECTION);
  return [SettingKeys.debugAutoFreeze, SettingKeys.debugTarget].some((name) => {
    const inspected = config.inspect(name);
    return inspected?.workspaceValue !== undefined || inspected?.workspaceFolderValue !== undefined;
  });
}

/** The settings in force, read again whenever crosvmGuard.* changes. */
export interface LiveSettings {
  readonly current: ExtensionSettings;
  /** Whether a workspace sets the debug settings (see debugSettingsFromWorkspace). */
  readonly debugFromWorkspace: boolean;
  /** After a change was read (and logged): the new settings. */
  readonly onDidChange: vscode.Event<ExtensionSettings>;
}

/** Reads the settings now, and again at each change, logging what changed from what to what. */
export function registerSettings(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): LiveSettings {
  const changed = new vscode.EventEmitter<ExtensionSettings>();
  const live = { current: readSettings(log), debugFromWorkspace: debugSettingsFromWorkspace(), onDidChange: changed.event };
  context.subscriptions.push(
    changed,
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (!event.affectsConfiguration(SETTINGS_SECTION)) return;
      const before = live.current;
      const after = (live.current = readSettings(log));
      live.debugFromWorkspace = debugSettingsFromWorkspace();
      const keys = (Object.keys(after) as (keyof ExtensionSettings)[]).filter(
        (key) => JSON.stringify(after[key]) !== JSON.stringify(before[key]),
      );
      const change = (key: keyof ExtensionSettings) => `${key} ${JSON.stringify(before[key])} → ${JSON.stringify(after[key])}`;
      if (keys.length > 0) log.info(`Settings changed: ${keys.map(change).join(', ')}.`);
      changed.fire(after);
    }),
  );
  return live;
}
