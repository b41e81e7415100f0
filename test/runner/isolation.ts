// Every test stage runs in a private pid namespace with its own /proc, so that the engine, the
// extension host and the workbench see only the processes the stage started: the people who run
// `npm test` are crosvm developers with their own VMs running, and a test that lists "every VM"
// would otherwise freeze theirs (issue 21). Without the namespace the run stops, saying why: it
// never falls back to a run that can see the host's VMs.
//
// Run directly, this file is the wrapper of the npm scripts that start one stage:
//   node out/test/runner/isolation.js COMMAND [ARGS...]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

const UNSHARE = '/usr/bin/unshare';

/** Set inside a stage's namespace: the pid namespace of the run that made it (`pid:[N]`). */
export const ISOLATED_FROM_VARIABLE = 'CROSVM_GUARD_ISOLATED_FROM';

const ownPidNamespace = () => fs.readlinkSync('/proc/self/ns/pid');

/**
 * True inside a namespace this runner made: the variable names the namespace it came from, and
 * this process is in another one, whose /proc is its own (pid 1 of this /proc is in it too).
 */
export function isIsolated(): boolean {
  const from = process.env[ISOLATED_FROM_VARIABLE];
  if (!from) return false;
  try {
    return ownPidNamespace() !== from && fs.readlinkSync('/proc/1/ns/pid') === ownPidNamespace();
  } catch {
    return false;
  }
}

/**
 * For the harnesses whose tests list every VM they can see (the extension-host suite, the
 * workbench): refuses to start outside a namespace made by this runner.
 */
export function requireIsolation(what: string): void {
  if (isIsolated()) return;
  throw new Error(
    `${what} must run in a private pid namespace, or it would see (and its tests could freeze) this machine's own crosvm VMs: ` +
      'run it through npm test, npm run test:vscode or npm run test:ui, which make one.',
  );
}

let checked: string | undefined | null = null;

/** Why a private pid namespace cannot be made here, in one line with what to do; undefined if it can. */
export function isolationUnavailable(): string | undefined {
  if (checked !== null) return checked;
  const why = (reason: string) =>
    `the tests cannot isolate themselves from this machine's own crosvm VMs: ${reason}. ` +
    'They run each stage in a private pid namespace (unshare --pid --fork --mount-proc) so that they never see, signal or ' +
    'move a VM they did not start; without one they do not run.';
  if (process.platform !== 'linux') checked = why('this is not Linux');
  else if (process.getuid?.() !== 0) checked = why('they must run as root (sudo npm test)');
  else if (!fs.existsSync(UNSHARE)) checked = why(`${UNSHARE} is missing (apt-get install util-linux)`);
  else {
    const probe = spawnSync(UNSHARE, [...unshareOptions(), '/bin/true'], { encoding: 'utf8' });
    checked =
      probe.status === 0
        ? undefined
        : why(`the kernel refused a new pid namespace (${(probe.stderr || probe.error?.message || '').trim()})`);
  }
  return checked;
}

function unshareOptions(): string[] {
  // --kill-child: when the runner goes, the namespace's pid 1 gets SIGKILL, and with it every
  // process of the stage (code-server, browsers, VMs): nothing outlives its stage.
  return ['--pid', '--fork', '--mount-proc', '--kill-child', '--'];
}

/**
 * The command line that runs `command` in a private pid namespace with its own /proc. Its pid 1
 * is a bash that runs the command as a child and reaps orphans (a detached companion, a killed
 * host's children): a Node program as pid 1 would leave them as zombies, which still show in /proc.
 */
export function isolatedCommand(command: readonly string[]): string[] {
  const unavailable = isolationUnavailable();
  if (unavailable) throw new Error(unavailable);
  return [UNSHARE, ...unshareOptions(), '/bin/bash', '-c', '"$@"; exit $?', 'isolated', ...command];
}

/** The environment of an isolated stage: it names the namespace it was made from. */
export function isolatedEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, [ISOLATED_FROM_VARIABLE]: ownPidNamespace() };
}

if (require.main === module) {
  const command = process.argv.slice(2);
  if (command.length === 0) {
    console.error('usage: isolation.js COMMAND [ARGS...]');
    process.exit(2);
  }
  if (isIsolated()) {
    const result = spawnSync(command[0], command.slice(1), { stdio: 'inherit' });
    process.exit(result.status ?? 1);
  }
  const unavailable = isolationUnavailable();
  if (unavailable) {
    console.error(unavailable);
    process.exit(1);
  }
  const [unshare, ...args] = isolatedCommand(command);
  const result = spawnSync(unshare, args, { stdio: 'inherit', env: isolatedEnvironment() });
  process.exit(result.status ?? 1);
}
