// A real polkit for the pkexec tests, on a machine without systemd or a desktop (CI, this
// project's machines): the system D-Bus and polkitd, started here when they do not run yet and
// stopped again by whoever started them, and a stand-in for the desktop's password dialog:
// pkttyagent under a pseudo-terminal (util-linux `script`), registered for one process and
// answering its prompt with a given password. pkexec, polkitd and PAM are the real ones.
// Needs root.
import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { registerCleanup } from './cleanup';
import { POLKIT_RULE_FILE } from './testUsers';

const POLKITD = '/usr/lib/polkit-1/polkitd';
const BUS_PID_FILE = '/run/dbus/pid';
const BUS_SOCKET = '/run/dbus/system_bus_socket';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`'s value, or with `fallback` after `ms`; its timer never outlives it (a pending timer would keep the test process alive). */
function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (predicate()) return true;
    await sleep(20);
  }
  return predicate();
}

/** Alive and not a zombie: PID 1 here reaps orphans (a forked dbus-daemon) only lazily, and kill -0 succeeds on a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function busCall(method: string, ...args: string[]): string | undefined {
  const result = spawnSync(
    'dbus-send',
    ['--system', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus', `org.freedesktop.DBus.${method}`, ...args],
    {
      encoding: 'utf8',
      timeout: 5000,
    },
  );
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('dbus-send not found: install the Debian package pkexec (it brings polkitd and dbus)');
  }
  return result.status === 0 ? result.stdout : undefined;
}

const busRuns = () => busCall('GetId') !== undefined;

/** The pid of whoever owns org.freedesktop.PolicyKit1 on the system bus (polkitd), or undefined. */
function polkitdPid(): number | undefined {
  const reply = busCall('GetConnectionUnixProcessID', 'string:org.freedesktop.PolicyKit1');
  const pid = reply && /uint32 (\d+)/.exec(reply)?.[1];
  return pid ? Number(pid) : undefined;
}

async function stopPid(pid: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  if (!(await until(() => !isAlive(pid), 5000)) && isAlive(pid)) process.kill(pid, 'SIGKILL');
}

function killSync(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/**
 * Makes sure the system bus and polkitd run: reuses them if they do (a desktop, another run),
 * else starts them. Returns a function that stops what this call started, newest first (also
 * registered with the runner's cleanup, for a run that ends early). Call after
 * ensureTestUser('polkit'), which writes the admin rule.
 */
export async function ensurePolkit(): Promise<() => Promise<void>> {
  for (const file of ['/usr/bin/pkexec', POLKITD, '/usr/bin/pkttyagent', '/usr/bin/dbus-daemon', '/usr/bin/script']) {
    if (!fs.existsSync(file)) {
      throw new Error(`${file} is missing: install the Debian package pkexec (it brings polkitd and dbus; script is in bsdutils)`);
    }
  }
  const stops: Array<() => Promise<void>> = [];
  if (!busRuns()) stops.push(await startBus());
  if (polkitdPid() === undefined) {
    stops.push(await startPolkitd());
  } else {
    // A polkitd that was already running reads a rule written a moment ago through inotify,
    // which takes well under a second; give it that second rather than see the wrong admin.
    const age = Date.now() - fs.statSync(POLKIT_RULE_FILE).mtimeMs;
    if (age < 1000) await sleep(1000 - age);
  }
  return async () => {
    for (const stop of stops.reverse()) await stop();
  };
}

async function startBus(): Promise<() => Promise<void>> {
  // dbus-daemon leaves its pid file and socket behind when stopped; a stale pid file makes
  // it refuse to start. No bus answers, so both are stale unless their daemon still runs.
  if (fs.existsSync(BUS_PID_FILE)) {
    const pid = Number(fs.readFileSync(BUS_PID_FILE, 'latin1').trim());
    if (pid > 0 && isAlive(pid)) throw new Error(`no system bus answers, but the dbus-daemon of ${BUS_PID_FILE} (pid ${pid}) runs`);
    fs.rmSync(BUS_PID_FILE, { force: true });
  }
  fs.rmSync(BUS_SOCKET, { force: true });
  fs.mkdirSync(path.dirname(BUS_PID_FILE), { recursive: true });
  const pid = Number(execFileSync('dbus-daemon', ['--system', '--fork', '--print-pid'], { encoding: 'utf8', timeout: 10_000 }).trim());
  const removeFiles = () => {
    // Only ours: another bus may have been started meanwhile.
    if (fs.existsSync(BUS_PID_FILE) && Number(fs.readFileSync(BUS_PID_FILE, 'latin1').trim()) !== pid) return;
    fs.rmSync(BUS_PID_FILE, { force: true });
    fs.rmSync(BUS_SOCKET, { force: true });
  };
  const stop = registerCleanup({
    dispose: async () => {
      await stopPid(pid);
      removeFiles();
    },
    disposeSync: () => {
      killSync(pid);
      removeFiles();
    },
  });
  if (!(await until(busRuns, 5000))) {
    await stop();
    throw new Error(`dbus-daemon --system (pid ${pid}) started, but the system bus does not answer`);
  }
  return stop;
}

async function startPolkitd(): Promise<() => Promise<void>> {
  // Started as root, it drops to user polkitd by itself. Detached: a Ctrl-C to the test's
  // process group is for the tests; the cleanup stops polkitd.
  const child = spawn(POLKITD, ['--no-debug'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  child.unref();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  const pid = child.pid as number;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = registerCleanup({
    dispose: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await within(exited, 5000, undefined);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
    disposeSync: () => killSync(pid),
  });
  // Ready once it owns its name on the bus (tens of milliseconds).
  if (!(await until(() => polkitdPid() !== undefined || child.exitCode !== null, 5000)) || polkitdPid() === undefined) {
    await stop();
    throw new Error(`polkitd did not take org.freedesktop.PolicyKit1 within 5 s: ${stderr.trim()}`);
  }
  return stop;
}

function readLinkOrUndefined(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** Whether the terminal's echo is off, as `stty` reads it (`-echo`). */
function echoOff(tty: string): boolean {
  const result = spawnSync('stty', ['-F', tty, '-a'], { encoding: 'utf8', timeout: 2000 });
  return result.status === 0 && /(^|\s)-echo(\s|$)/.test(result.stdout);
}

export interface PolkitAgent {
  /** pkttyagent's pid. */
  readonly pid: number;
  /** How many times it asked for the password (once per pkexec: polkit keeps no authorization here). */
  readonly prompts: number;
  /** What it printed on its terminal, escapes and carriage returns removed, the password (were it ever echoed) replaced. */
  transcript(): string;
  /** Stops it and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts pkttyagent as `user`, registered with polkitd for the process `subjectPid`: what a
 * desktop's agent does for the user's session. pkexec asks polkitd to authenticate its parent,
 * so `subjectPid` is the process that runs pkexec. Each prompt is answered with `password`,
 * written only to the agent's terminal. Resolves once polkitd has registered the agent.
 */
export async function startPolkitAgent(options: {
  subjectPid: number;
  password: string;
  user: { name: string; uid: number; gid: number; home: string };
}): Promise<PolkitAgent> {
  const { subjectPid, password, user } = options;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-pkagent-'));
  fs.chownSync(dir, user.uid, user.gid);
  const fifo = path.join(dir, 'registered');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  fs.chownSync(fifo, user.uid, user.gid);
  // pkttyagent reads the password from its controlling terminal, so it runs under `script`'s
  // pty. --notify-fd: it closes that descriptor once registered. The inner shell opens the FIFO
  // for it so that only pkttyagent holds the write end (a descriptor passed through `script`
  // would stay open in `script` too: no end-of-file). `exec`: $$ is pkttyagent's pid.
  const inner = `echo AGENTPID=$$; exec pkttyagent --process ${subjectPid} --notify-fd 3 3>${fifo}`;
  const script: ChildProcess = spawn('script', ['-qfc', inner, '/dev/null'], {
    uid: user.uid,
    gid: user.gid,
    cwd: user.home,
    env: { PATH: '/usr/bin:/bin', HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: '/bin/sh', LC_ALL: 'C' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  script.stdin?.on('error', () => undefined);
  let transcript = '';
  let pending = '';
  let prompts = 0;
  let agentPid: number | undefined;
  // pkttyagent prints the prompt, then turns the terminal's echo off with TCSAFLUSH, which
  // throws away whatever was typed already: a password sent on seeing the prompt was at times
  // echoed, then lost, and pkexec waited for ever. So it goes only once echo is off, as a
  // person's would (too fast for a person to type ahead).
  const answer = async () => {
    const tty = agentPid === undefined ? undefined : readLinkOrUndefined(`/proc/${agentPid}/fd/0`);
    if (tty?.startsWith('/dev/pts/') && (await until(() => echoOff(tty), 5000))) script.stdin?.write(`${password}\n`);
  };
  const onOutput = (chunk: Buffer) => {
    const text = chunk
      .toString('utf8')
      .replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
      .replace(/\r/g, '');
    transcript += text;
    pending += text;
    agentPid ??= Number(/AGENTPID=(\d+)/.exec(transcript)?.[1]) || undefined;
    // The prompt's other lines depend on the user's full name and on polkit's choice of
    // identity; the last one is always this.
    if (/Password:\s*$/.test(pending)) {
      pending = '';
      prompts++;
      void answer();
    }
  };
  script.stdout?.on('data', onOutput);
  script.stderr?.on('data', onOutput);
  const exited = new Promise<void>((resolve) => script.once('exit', () => resolve()));

  const stop = registerCleanup({
    dispose: async () => {
      // SIGTERM to `script` itself would cost 2 s ("Session terminated, killing shell...");
      // pkttyagent ends, then `script` follows.
      if (agentPid && isAlive(agentPid)) process.kill(agentPid, 'SIGTERM');
      else script.kill('SIGKILL');
      await within(exited, 5000, undefined);
      if (script.exitCode === null && script.signalCode === null) script.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
    disposeSync: () => {
      if (agentPid) killSync(agentPid);
      script.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  });

  // Registered = end of file on the FIFO. Opening it blocks until pkttyagent opens the write
  // end; if that never happens, a read-write open of our own releases the blocked open.
  const registered = new Promise<boolean>((resolve) => {
    const reader = fs.createReadStream(fifo);
    reader.on('data', () => undefined);
    reader.on('end', () => resolve(true));
    reader.on('error', () => resolve(false));
  });
  let outcome = await within(
    Promise.race([registered.then((ok) => (ok ? 'registered' : 'fifo error')), exited.then(() => 'exited')]),
    5000,
    'timed out',
  );
  // pkttyagent also closes the descriptor when it exits, e.g. refused by polkitd.
  if (outcome === 'registered' && !(agentPid !== undefined && isAlive(agentPid))) outcome = 'exited';
  if (outcome !== 'registered') {
    fs.closeSync(fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    await registered;
    await stop();
    throw new Error(`pkttyagent for pid ${subjectPid} was not registered (${outcome}): ${transcript.trim()}`);
  }
  return {
    get pid() {
      return agentPid as number;
    },
    get prompts() {
      return prompts;
    },
    // Never shown, even if a terminal echoed it: failure messages print the transcript.
    transcript: () => transcript.split(password).join('<password>'),
    stop,
  };
}
