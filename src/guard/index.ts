// The freezing engine's public surface, for the extension, tests and the benchmark.
export * from './errors';
export * from './guard';
export { ProcessIdentity, ProcessSnapshot, sameProcess, currentIdentity, readSnapshot } from './processTree';
export { startTimeToDate } from './procfs';
export { FreezeScope, FrozenProcess, SkippedProcess, SkipReason } from './signalFreezer';
export { SwapBuildVerdict, SWAP_MARKERS } from './swapBuild';
export { VmSnapshot, shortVmName } from './vms';
