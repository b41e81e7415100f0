// The re-parenting attack on the root companion's invoker, played by user A under a child
// subreaper of user B (test/fixture/subreaper.c). A starts the companion with the extension's
// exact command (companionCommand), through sudo -n or pkexec, keeping the companion's
// standard input and output (its pipes to us); as soon as root runs below the process that
// started it (sudo, or the shell that ran pkexec), A SIGKILLs that process, which A may: the
// kernel hands the companion to the nearest subreaper above, B's. Then A asks for B's VM.
// Arguments: sudo|pkexec, the VM's pid and start time, the companion script. Prints one JSON
// line per event; for pkexec it waits for a line "go" on stdin first (the test registers a
// polkit agent for the shell that runs pkexec, named in the event "intermediate").
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { companionCommand } from '../../src/companion/elevatedClient';

const [via, vmPid, vmStartTime, companionScript] = process.argv.slice(2);
const print = (event: object) => process.stdout.write(JSON.stringify(event) + '\n');
const command = companionCommand(via as 'sudo' | 'pkexec', { companionScript, processNames: ['crosvm'] });

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}
const childrenOf = (pid: number) => (read(`/proc/${pid}/task/${pid}/children`) ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
const ppidOf = (pid: number) => Number(read(`/proc/${pid}/stat`)?.split(') ')[1]?.split(' ')[1]);
const realUidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(read(`/proc/${pid}/status`) ?? '')?.[1] ?? -1);

async function main(): Promise<void> {
  // The companion's standard input is a FIFO we hold the writing end of: Node would destroy
  // a child's stdin pipe when that child (sudo, the shell) exits, and the companion would see
  // its input end; the attack keeps it open, as any program of A's can.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-attack-'));
  const fifo = path.join(dir, 'stdin');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const inputEnd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writeEnd = fs.openSync(fifo, fs.constants.O_WRONLY);
  fs.rmSync(dir, { recursive: true });
  const send = (request: object) => fs.writeSync(writeEnd, JSON.stringify(request) + '\n');
  // sudo itself; for pkexec a shell that runs it as its child (pkexec execs in place).
  const starter =
    via === 'sudo'
      ? spawn('/usr/bin/sudo', ['-n', '--', ...command], { stdio: [inputEnd, 'pipe', 'pipe'] })
      : spawn('/bin/sh', ['-c', 'read go <&3; exec 3<&-; "$@"; exit $?', 'sh', '/usr/bin/pkexec', ...command], {
          stdio: [inputEnd, 'pipe', 'pipe', 'pipe'],
        });
  fs.closeSync(inputEnd);
  const starterPid = starter.pid as number;
  let stderr = '';
  starter.stderr?.on('data', (chunk) => (stderr += chunk));
  const lines = readline.createInterface({ input: starter.stdout as NodeJS.ReadableStream });
  if (via === 'pkexec') {
    print({ event: 'intermediate', pid: starterPid });
    const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    await input.next();
    (starter.stdio[3] as NodeJS.WritableStream).write('go\n');
  }
  // As soon as root runs below it: sudo's child, or pkexec (same pid) turned root.
  const deadline = Date.now() + 20_000;
  let companion: number | undefined;
  while (companion === undefined && Date.now() < deadline) {
    const child = childrenOf(starterPid)[0];
    if (child !== undefined && (via === 'sudo' || realUidOf(child) === 0)) companion = child;
  }
  if (companion === undefined) {
    print({ event: 'error', message: `no root process below ${via} within 20 s: ${stderr}` });
    process.exit(1);
  }
  process.kill(starterPid, 'SIGKILL');
  while (ppidOf(companion) === starterPid) {
    // until the kernel has re-parented it
  }
  const adopter = ppidOf(companion);
  print({ event: 'killed', starter: starterPid, companion, adopter, adopterUid: realUidOf(adopter) });
  lines.on('line', (line) => {
    const message = JSON.parse(line) as Record<string, unknown>;
    print({ event: 'companion', message });
    if (message.event === 'ready') {
      send({ op: 'freeze', id: 1, pid: Number(vmPid), startTime: Number(vmStartTime) });
    } else if (message.id === 1) {
      // Its standard input ends: it resumes whatever it froze, and exits.
      fs.closeSync(writeEnd);
    }
  });
  lines.on('close', () => {
    print({ event: 'companion-ended', stderr });
    process.exit(0);
  });
}

void main();
