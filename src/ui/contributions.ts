// Ids the manifest (package.json) and the code share, typed once here so a typo is a
// compile error instead of a command that silently does nothing.

export const enum Commands {
  Freeze = 'crosvmGuard.freeze',
  FreezeVm = 'crosvmGuard.freezeVm',
  Resume = 'crosvmGuard.resume',
  Toggle = 'crosvmGuard.toggle',
  Refresh = 'crosvmGuard.refresh',
  CopyPid = 'crosvmGuard.copyPid',
  ShowDetails = 'crosvmGuard.showDetails',
  KillVm = 'crosvmGuard.killVm',
  ShowLog = 'crosvmGuard.showLog',
}

/**
 * A handler for every command (its argument: a pid, a tree item or `{ pid, startTime? }`):
 * a command added to `Commands` does not compile until it has one.
 */
export type CommandTable = { readonly [C in Commands]: (arg?: unknown) => unknown };

export const enum ContextKeys {
  /** The host is Linux: everything else is hidden otherwise. */
  Supported = 'crosvmGuard.supported',
  /** Activated on a host that is not Linux (unset before activation, unlike !Supported). */
  Unsupported = 'crosvmGuard.unsupported',
  /** At least one crosvm VM runs. */
  VmRunning = 'crosvmGuard.vmRunning',
  /** This window holds at least one VM frozen. */
  Frozen = 'crosvmGuard.frozen',
  /** Another VS Code window holds a VM frozen. */
  FrozenElsewhere = 'crosvmGuard.frozenElsewhere',
}

export const enum Views {
  Processes = 'crosvmGuard.processes',
  /** The same tree inside Run and Debug, where a developer at a breakpoint already is. */
  DebugProcesses = 'crosvmGuard.debugProcesses',
}

export const EXTENSION_ID = 'crosvm-guard.crosvm-guard';
export const OUTPUT_CHANNEL_NAME = 'crosvm Guard';
