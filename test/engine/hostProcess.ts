// Plays an extension host for the crash-safety tests: the real engine with the real crash
// safety (companion and journal), in a process the test can SIGKILL. Freezes the VM given on
// the command line (by signals, or by the cgroup freezer with `cgroup` or `cgroup-v1`), prints
// one JSON line per event, then waits to be killed. With a 4th argument `slow-companion`
// the companion sleeps 500 ms before it loads (a slow machine), so that a test can kill
// this host before its companion has run a single line of its own.
import * as path from 'node:path';
import { CrosvmGuard } from '../../src/guard';
import { CrashSafety } from '../../src/companion/watchClient';

const [vmPid, journalDir, method = 'signal', slowCompanion] = process.argv.slice(2);
const print = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const safety = new CrashSafety({
  journalDir,
  companionScript: path.resolve(__dirname, '..', '..', '..', 'dist', 'companion.js'),
  log: (level, message) => print({ event: 'log', level, message, companionPid: safety.companionPid }),
  env: slowCompanion === 'slow-companion' ? { NODE_OPTIONS: `--require=${path.join(__dirname, 'slowStart.js')}` } : undefined,
});
const guard = new CrosvmGuard();
guard.setSafetyNet(safety);
const request =
  method === 'signal'
    ? { method: 'signal' as const }
    : { method: 'cgroup' as const, cgroupVersion: method === 'cgroup-v1' ? (1 as const) : undefined };
guard.freeze({ pid: Number(vmPid) }, request).then(
  (report) =>
    print({
      event: 'frozen',
      pids: report.frozen.map((p) => p.pid),
      cgroups: report.cgroups ?? [],
      companionPid: safety.companionPid,
      journal: safety.journalPath,
    }),
  (error: Error) => print({ event: 'error', message: error.message }),
);
setInterval(() => undefined, 1 << 30);
