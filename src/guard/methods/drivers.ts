// The table of methods: the one place that maps a method's name to its driver. Its type has
// a key for every name in FREEZE_METHODS, so a method named there does not compile until it
// has a driver here.
import { CGROUP_DRIVER } from './cgroupMethod';
import type {
  FreezeJob,
  FreezeMethod,
  FreezeOutcome,
  HeldProcess,
  HeldRecord,
  MethodDriver,
  UndoOutcome,
  UndoPolicy,
} from './methodDriver';
import { SIGNAL_DRIVER } from './signalMethod';

const DRIVERS: { readonly [M in FreezeMethod]: MethodDriver<M> } = {
  signal: SIGNAL_DRIVER,
  cgroup: CGROUP_DRIVER,
};

export function driverOf<M extends FreezeMethod>(method: M): MethodDriver<M> {
  return DRIVERS[method];
}

/** Freezes by the method chosen for the job: its driver's rounds and confirmation. */
export function freezeBy(job: FreezeJob): Promise<FreezeOutcome> {
  // The choice names the driver whose job it is; TypeScript cannot follow that link itself.
  const driver = DRIVERS[job.choice.method] as MethodDriver;
  return driver.freeze(job);
}

/** Undoes a freeze of any method (see MethodDriver.undo): the one undo path. */
export function undoFreeze<P extends HeldProcess>(record: HeldRecord<P>, policy?: UndoPolicy<P>): UndoOutcome<P> {
  return DRIVERS[record.method].undo(record, policy);
}

/** A method in a user's words: `signals`, `the cgroup freezer`; none: `cannot be frozen`. */
export function methodName(method: FreezeMethod | undefined): string {
  return method ? DRIVERS[method].words.name : 'cannot be frozen';
}
