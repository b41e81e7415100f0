// Runs the engine in a separate process, for tests that need another uid or a place inside
// a crosvm-named tree. Prints one JSON line: the report (or the groups), or the error's code,
// message and failures.
import { spawn } from 'node:child_process';
import { CrosvmGuard, FreezeRequest, FrozenProcess, GuardError } from '../../src/guard';
import { CgroupVersion, freezerHierarchy, thawAndRestore } from '../../src/guard/cgroupfs';
import { freezeInCgroups } from '../../src/guard/methods/cgroupMethod';

const print = (value: object) => process.stdout.write(JSON.stringify(value) + '\n');
const printError = (error: unknown) => {
  const { code, message, failures } = error as GuardError & { failures?: unknown };
  print({ code, message, failures });
};

async function freezeAndPrint(pid: number, request: FreezeRequest): Promise<void> {
  const guard = new CrosvmGuard();
  try {
    const report = await guard.freeze({ pid }, request);
    await guard.resume();
    print(report);
  } catch (error) {
    printError(error);
  }
}

/** The cgroup freezer alone, on the given targets (no method choice, no pre-check). */
async function freezeTargetsInCgroups(targets: FrozenProcess[], version: CgroupVersion): Promise<void> {
  const hierarchy = freezerHierarchy(version);
  if (!hierarchy) {
    print({ code: 'no-hierarchy' });
    return;
  }
  try {
    const groups = await freezeInCgroups(targets, { hierarchy, stopTimeoutMs: 2000 });
    thawAndRestore(groups);
    print({ groups });
  } catch (error) {
    printError(error);
  }
}

const [mode, arg, json] = process.argv.slice(2);
if (mode === '--spawn-self-test') {
  // This process plays a crosvm main process (argv[0] is "crosvm"); its child, the engine,
  // is asked to freeze this whole tree, which contains the engine itself.
  const child = spawn(process.execPath, [__filename, '--freeze-parent', String(process.pid)], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('close', (code) => process.exit(code ?? 1));
} else if (mode === '--freeze-parent') {
  void freezeAndPrint(Number(arg), { scope: 'vm', allowUnsafeSignals: true, method: 'signal' });
} else if (mode === '--request') {
  void freezeAndPrint(Number(arg), JSON.parse(json) as FreezeRequest);
} else if (mode === '--cgroup-targets') {
  void freezeTargetsInCgroups(JSON.parse(arg) as FrozenProcess[], 2);
} else {
  void freezeAndPrint(Number(mode), { scope: 'vm', method: 'signal' });
}
