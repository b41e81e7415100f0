// The extension's settings: names, defaults and validation, with no `vscode` import so the
// rules are unit-tested in plain Node. An invalid value never reaches the engine: it falls
// back to the default, and the caller logs the warning.
import { DEFAULT_SETTINGS, GuardSettings } from '../guard/types';
import { METHOD_SETTINGS } from '../guard/methods/methodDriver';

export type StatusBarVisibility = 'whenVmRunning' | 'debugging' | 'always' | 'never';
export type DebugAutoFreeze = 'off' | 'onStop';
export type DebugTarget = 'auto' | 'all' | 'ask';
export type Elevation = 'ask' | 'sudo' | 'pkexec' | 'never';

/** The engine settings a user may set, and the extension's own. */
type UserEngineSettings = Pick<
  GuardSettings,
  'processNames' | 'excludeLabels' | 'stopTimeoutMs' | 'includeTracedProcesses' | 'assumeSwapBuild' | 'method'
>;
const USER_ENGINE_SETTINGS = [
  'processNames',
  'excludeLabels',
  'stopTimeoutMs',
  'includeTracedProcesses',
  'assumeSwapBuild',
  'method',
] as const;

export interface ExtensionSettings extends UserEngineSettings {
  readonly refreshIntervalMs: number;
  readonly statusBarVisibility: StatusBarVisibility;
  readonly maxFreezeSeconds: number;
  readonly debugAutoFreeze: DebugAutoFreeze;
  readonly debugTarget: DebugTarget;
  readonly elevation: Elevation;
}

/** Setting keys below `crosvmGuard.`, as declared in package.json. */
export const SettingKeys = {
  processNames: 'processNames',
  excludeLabels: 'excludeLabels',
  stopTimeoutMs: 'stopTimeout',
  refreshIntervalMs: 'refreshInterval',
  statusBarVisibility: 'statusBar.visibility',
  includeTracedProcesses: 'includeTracedProcesses',
  assumeSwapBuild: 'assumeSwapBuild',
  method: 'method',
  maxFreezeSeconds: 'maxFreezeSeconds',
  debugAutoFreeze: 'debug.autoFreeze',
  debugTarget: 'debug.target',
  elevation: 'elevation',
} as const satisfies Record<keyof ExtensionSettings, string>;

/**
 * Earlier keys, still read where the new one is not set: renamed so that the Settings editor's
 * header (made from the key) reads "Stop Timeout", not "Stop Timeout Ms".
 */
export const LEGACY_SETTING_KEYS: Partial<Record<keyof ExtensionSettings, string>> = {
  stopTimeoutMs: 'stopTimeoutMs',
  refreshIntervalMs: 'refreshIntervalMs',
};

export const SETTINGS_SECTION = 'crosvmGuard';

export const DEFAULT_EXTENSION_SETTINGS: ExtensionSettings = {
  processNames: DEFAULT_SETTINGS.processNames,
  excludeLabels: DEFAULT_SETTINGS.excludeLabels,
  stopTimeoutMs: DEFAULT_SETTINGS.stopTimeoutMs,
  refreshIntervalMs: 2000,
  statusBarVisibility: 'whenVmRunning',
  includeTracedProcesses: DEFAULT_SETTINGS.includeTracedProcesses,
  assumeSwapBuild: DEFAULT_SETTINGS.assumeSwapBuild,
  method: DEFAULT_SETTINGS.method,
  maxFreezeSeconds: 0,
  debugAutoFreeze: 'off',
  debugTarget: 'auto',
  elevation: 'ask',
};

const VISIBILITIES: readonly StatusBarVisibility[] = ['whenVmRunning', 'debugging', 'always', 'never'];

const isOneOf =
  (values: readonly string[]): Check =>
  (value) =>
    values.includes(value as string) ? undefined : `must be one of ${values.join(', ')}`;

type Check = (value: unknown) => string | undefined;

const isStringList =
  (what: string, extra?: (s: string) => string | undefined): Check =>
  (value) => {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) return `must be a list of ${what}`;
    if (value.length > 64) return 'must have at most 64 entries';
    for (const s of value as string[]) {
      const problem = extra?.(s);
      if (problem) return problem;
    }
    return undefined;
  };

const isIntegerIn =
  (min: number, max: number): Check =>
  (value) =>
    typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
      ? undefined
      : `must be a whole number from ${min} to ${max}`;

const isBoolean: Check = (value) => (typeof value === 'boolean' ? undefined : 'must be true or false');

/**
 * assumeSwapBuild was one boolean for every crosvm on the machine: a user who vouched for one swap
 * build had vouched for every default build too, which a stopped device shuts down. It is now a
 * list of the executables vouched for; `true` is refused, saying why, and `false` means none.
 */
function assumeSwapBuildProblem(value: unknown): string | undefined {
  if (value === true) return VOUCH_FOR_EVERY_BUILD;
  if (value === false) return undefined;
  return isStringList('crosvm executables', (s) => (s.startsWith('/') && !s.includes('\0') ? undefined : `"${s}" is not an absolute path`))(
    value,
  );
}

const VOUCH_FOR_EVERY_BUILD =
  'is now a list of the crosvm executables you vouch were built with the swap feature, e.g. ' +
  '["/home/you/crosvm/target/release/crosvm"]: true vouched for every crosvm on this machine, and a build without the ' +
  'feature shuts its VM down when a device process is stopped; nothing is vouched for until you list one';

/** Values of an earlier form that mean a value of today's: the old default `false` is an empty list. */
const MIGRATIONS: Partial<Record<keyof ExtensionSettings, (value: unknown) => unknown>> = {
  assumeSwapBuild: (value) => (value === false ? [] : value),
};

/** A name of crosvmGuard.processNames: a bare executable name, with `*` and `?` as wildcards after its start. */
function processNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.includes('/') || name.includes('\0')) return `"${name}" is not a bare executable name`;
  // `*` or `*vm` would take every process, or any, for crosvm: a name starts as the executable does.
  if (/^[*?]/.test(name)) return `"${name}" starts with a wildcard; start with the executable's name, as in "crosvm-*"`;
  return undefined;
}

const CHECKS: Record<keyof ExtensionSettings, Check> = {
  processNames: (value) => {
    const problem = isStringList('executable names', processNameProblem)(value);
    if (problem) return problem;
    return (value as string[]).length === 0 ? 'must name at least one executable' : undefined;
  },
  excludeLabels: isStringList('label patterns', (s) => (s.length === 0 ? 'an empty pattern matches nothing' : undefined)),
  stopTimeoutMs: isIntegerIn(50, 60_000),
  refreshIntervalMs: isIntegerIn(250, 600_000),
  statusBarVisibility: isOneOf(VISIBILITIES),
  includeTracedProcesses: isBoolean,
  assumeSwapBuild: assumeSwapBuildProblem,
  method: isOneOf(METHOD_SETTINGS),
  maxFreezeSeconds: isIntegerIn(0, 86_400),
  debugAutoFreeze: isOneOf(['off', 'onStop']),
  debugTarget: isOneOf(['auto', 'all', 'ask']),
  elevation: isOneOf(['ask', 'sudo', 'pkexec', 'never']),
};

/**
 * Validates raw values (as read from the configuration; `undefined` means unset). Returns
 * the settings to use and one warning per value that was replaced by its default.
 */
export function validateSettings(raw: Partial<Record<keyof ExtensionSettings, unknown>>): {
  settings: ExtensionSettings;
  warnings: string[];
} {
  const settings: Record<string, unknown> = { ...DEFAULT_EXTENSION_SETTINGS };
  const warnings: string[] = [];
  for (const key of Object.keys(CHECKS) as (keyof ExtensionSettings)[]) {
    const value = raw[key];
    if (value === undefined) continue;
    const problem = CHECKS[key](value);
    if (problem) {
      const fallback = `using the default ${JSON.stringify(DEFAULT_EXTENSION_SETTINGS[key])} instead of ${JSON.stringify(value)}`;
      warnings.push(`Setting ${SETTINGS_SECTION}.${SettingKeys[key]} ${problem}; ${fallback}.`);
    } else {
      settings[key] = MIGRATIONS[key]?.(value) ?? value;
    }
  }
  return { settings: settings as unknown as ExtensionSettings, warnings };
}

/** The part of the settings the engine takes. */
export function engineSettings(settings: ExtensionSettings): Partial<GuardSettings> {
  return Object.fromEntries(USER_ENGINE_SETTINGS.map((key) => [key, settings[key]])) as Partial<GuardSettings>;
}
