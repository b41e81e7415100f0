// Plays an unprivileged extension host for the elevation tests: run as a test user, it starts
// the elevated companion through sudo (the password, if any, arrives as the first line on
// stdin: never on a command line) or through pkexec (the 4th argument; then the first line
// only says "go": pkexec's polkit agent, which must be registered for this process before,
// asks for the password, never this process), freezes the root VM given, and prints one JSON
// line per event. Then it obeys lines on stdin: `resume`, `end`; or it is killed.
// Arguments: VM pid, its start time, method (default auto), tool (sudo), heartbeat ms.
import * as path from 'node:path';
import * as readline from 'node:readline';
import { ElevatedGuard } from '../../src/companion/elevatedClient';

const [vmPid, vmStartTime, method = 'auto', tool = 'sudo', heartbeatMs] = process.argv.slice(2);
const print = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => ((await lines.next()).value as string | undefined) ?? 'end';

async function main(): Promise<void> {
  const password = await nextLine();
  let elevated: ElevatedGuard;
  const started = Date.now();
  try {
    elevated = await ElevatedGuard.start({
      tool: tool as 'sudo' | 'pkexec',
      companionScript: path.resolve(__dirname, '..', '..', '..', 'dist', 'companion.js'),
      processNames: ['crosvm'],
      askPassword: async () => (password ? Buffer.from(password, 'utf8') : undefined),
      log: (level, message) => print({ event: 'log', level, message }),
      // No person answers pkexec's agent here: a hang ends as ElevatedGuard's own error, well
      // within the pkexec test's wait, rather than after the long time a person is given.
      ...(tool === 'pkexec' ? { startTimeoutMs: 15_000 } : {}),
      ...(heartbeatMs ? { heartbeatMs: Number(heartbeatMs) } : {}),
    });
  } catch (error) {
    const { name, message } = error as Error;
    print({ event: 'error', name, reason: (error as { reason?: string }).reason, message, ms: Date.now() - started });
    process.exit(0);
  }
  print({ event: 'elevated', companionPid: elevated.companionPid, ms: Date.now() - started });
  try {
    const report = await elevated.freeze({ pid: Number(vmPid), startTime: Number(vmStartTime) }, { method: method as 'auto' });
    print({ event: 'frozen', method: report.method, pids: report.frozen.map((p) => p.pid) });
  } catch (error) {
    print({ event: 'error', code: (error as { code?: string }).code, message: (error as Error).message });
  }
  for (let line = await nextLine(); line !== 'end'; line = await nextLine()) {
    if (line === 'resume') {
      const report = await elevated.resume();
      print({ event: 'resumed', pids: report.resumed.map((p) => p.pid) });
    }
  }
  elevated.dispose();
  print({ event: 'ended' });
}

void main();
