// The freezing engine's public surface: the only module the VS Code layer imports (an ESLint
// rule keeps it so); the companion, tests and the benchmark may reach deeper.
export * from './errors';
export * from './types';
export { CrosvmGuard, excludedLabelMatcher, labelMatcher, mergeResumeReports } from './guard';
export { fullLabel, mayBeCut } from './labels';
export { FreezeCgroup, freezerHierarchy } from './cgroupfs';
export { CgroupPlacement, cgroupPlacements } from './methods/chooseMethod';
export { driverOf, methodName } from './methods/drivers';
export { FREEZE_METHODS, METHOD_SETTINGS, isMethodSetting, HeldRecord, MethodWords } from './methods/methodDriver';
export { isPid, oneOf } from './validate';
export { frozenByOthers, JournalVm, recoverLeftovers, takeOverFrozenVm } from './journal';
export { chooseJournalFolder } from './privateFolder';
export { ProcessIdentity, ProcessSnapshot, sameProcess, currentIdentity, readSnapshot } from './processTree';
export { isExitedState, isStoppedState, startTimeToDate } from './procfs';
export { maySignal } from './targets';
export { SwapBuildVerdict, SWAP_MARKERS, SWAP_MONITOR_LABEL } from './swapBuild';
export { VmSnapshot, shortVmName } from './vms';
