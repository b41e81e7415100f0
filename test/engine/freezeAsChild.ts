// Runs the engine in a separate process, for tests that need another uid or a place inside
// a crosvm-named tree. Prints one JSON line: the report, or the error's code and message.
import { spawn } from 'node:child_process';
import { CrosvmGuard, GuardError } from '../../src/guard';

async function freezeAndPrint(pid: number, allowUnsafeSignals: boolean): Promise<void> {
  const guard = new CrosvmGuard();
  try {
    const report = await guard.freeze({ pid }, { scope: 'vm', allowUnsafeSignals });
    await guard.resume();
    process.stdout.write(JSON.stringify(report) + '\n');
  } catch (error) {
    const { code, message } = error as GuardError;
    process.stdout.write(JSON.stringify({ code, message }) + '\n');
  }
}

const [mode, arg] = process.argv.slice(2);
if (mode === '--spawn-self-test') {
  // This process plays a crosvm main process (argv[0] is "crosvm"); its child, the engine,
  // is asked to freeze this whole tree, which contains the engine itself.
  const child = spawn(process.execPath, [__filename, '--freeze-parent', String(process.pid)], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('close', (code) => process.exit(code ?? 1));
} else if (mode === '--freeze-parent') {
  void freezeAndPrint(Number(arg), true);
} else {
  void freezeAndPrint(Number(mode), false);
}
