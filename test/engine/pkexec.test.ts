// VMs that run as root, frozen from an unprivileged user through pkexec, for real: the real
// pkexec, polkitd and PAM on the system D-Bus (test/runner/polkit.ts starts the bus and polkitd
// where no systemd does, as on CI), a user that is a polkit administrator and has no sudo
// rights (test/runner/testUsers.ts), and pkttyagent under a pseudo-terminal standing in for
// the desktop's password dialog. Needs root, as on CI.
import { strict as assert } from 'node:assert';
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { currentIdentity } from '../../src/guard/processTree';
import { buildSubreaper, FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { ensurePolkit, isAlive, PolkitAgent, startPolkitAgent } from '../runner/polkit';
import { ensureTestUser, TestUser } from '../runner/testUsers';
import { jsonLines, JsonLines, spawnElevatedHost, spawnReparentAttack } from './hostHarness';
import { eventually, isRunning, sleep } from './procState';

const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);
const startTimeOf = (pid: number) => (currentIdentity(pid) as { startTime: number }).startTime;
const counters = (vm: FixtureVm) => devicePids(vm).map((pid) => vm.deviceCounters().get(pid) ?? 0n);
const advanced = (vm: FixtureVm, since: bigint[]) => counters(vm).every((c, i) => c > since[i]);
const cgroupFile = (pid: number) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1');

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return ''; // exited meanwhile, or a kernel thread
  }
}

const pids = () =>
  fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);

/** Real, effective, saved and file-system uid, from /proc (not from what the companion says). */
const uidsOf = (pid: number) =>
  /^Uid:\s+(.*)$/m
    .exec(readOrEmpty(`/proc/${pid}/status`))?.[1]
    .split(/\s+/)
    .map(Number);

/**
 * The freeze cgroup a process sits in, read here from /proc and the cgroup files rather than
 * through the engine: its folder and whether the kernel reports it frozen (v2 `cgroup.events`,
 * v1 `freezer.state`). Undefined when the process is in no `crosvm-guard-*` cgroup.
 */
function freezeCgroupOf(pid: number): { dir: string; frozen: boolean } | undefined {
  const mounts = readOrEmpty('/proc/self/mountinfo')
    .split('\n')
    .map((line) => line.split(' - '))
    .filter(([, after]) => after !== undefined);
  for (const line of cgroupFile(pid).trim().split('\n')) {
    const [id, controllers, where] = line.split(/:(.*?):/);
    if (!/\/crosvm-guard-\d+-[0-9a-f]{6}$/.test(where)) continue;
    const v2 = id === '0' && controllers === '';
    const mount = mounts.find(([, after]) => {
      const [fsType, , superOptions] = after.split(' ');
      return v2 ? fsType === 'cgroup2' : fsType === 'cgroup' && superOptions.split(',').includes('freezer');
    });
    if (!mount) continue;
    // Mount point is field 5; these hierarchies are mounted at their root here.
    const dir = path.join(mount[0].split(' ')[4], where);
    const frozen = v2
      ? /^frozen 1$/m.test(readOrEmpty(path.join(dir, 'cgroup.events')))
      : readOrEmpty(path.join(dir, 'freezer.state')).trim() === 'FROZEN';
    return { dir, frozen };
  }
  return undefined;
}

describe('a root VM frozen from an unprivileged user through pkexec', () => {
  let user: TestUser;
  let stopPolkit: (() => Promise<void>) | undefined;
  const hosts: ChildProcess[] = [];
  const agents: PolkitAgent[] = [];

  before(async () => {
    user = ensureTestUser('polkit');
    stopPolkit = await ensurePolkit();
  });
  afterEach(async () => {
    for (const host of hosts.splice(0)) host.kill('SIGKILL');
    for (const agent of agents.splice(0)) await agent.stop();
    await stopAllFixtureVms();
  });
  after(async () => {
    await stopAllFixtureVms();
    await stopPolkit?.();
  });

  /**
   * Everything the test user runs (the host, pkexec before it execs, the agent and its PAM
   * helper: real uid), and every process pkexec started for the user (pkexec puts the caller's
   * uid in PKEXEC_UID: the root companion). Zombies do not count.
   */
  function leftovers(): string[] {
    return pids()
      .filter(
        (pid) =>
          isAlive(pid) &&
          (uidsOf(pid)?.[0] === user.uid || readOrEmpty(`/proc/${pid}/environ`).split('\0').includes(`PKEXEC_UID=${user.uid}`)),
      )
      .map((pid) => `${pid} (${readOrEmpty(`/proc/${pid}/cmdline`).split('\0').join(' ').trim()})`);
  }

  async function assertNothingLeft(): Promise<void> {
    assert.ok(await eventually(() => leftovers().length === 0, 3000), `still running: ${leftovers().join(', ')}`);
  }

  interface UserHost {
    readonly child: ChildProcess;
    readonly events: JsonLines;
    readonly exited: Promise<void>;
    /** Lets it call ElevatedGuard.start({ tool: 'pkexec' }). */
    go(): void;
    send(line: string): void;
  }

  /** The host, as the test user, waiting for "go": its pid is the subject an agent registers for. */
  function startUserHost(vm: FixtureVm): UserHost {
    // No DISPLAY and no agent of its own: pkexec can only reach the one registered for it.
    const child = spawnElevatedHost(user, vm.pid, startTimeOf(vm.pid), ['auto', 'pkexec']);
    hosts.push(child);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin?.on('error', () => undefined);
    return { child, events: jsonLines(child), exited, go: () => child.stdin?.write('\n'), send: (line) => child.stdin?.write(`${line}\n`) };
  }

  async function startAgent(host: UserHost, password: string): Promise<PolkitAgent> {
    const agent = await startPolkitAgent({ subjectPid: host.child.pid as number, password, user });
    agents.push(agent);
    return agent;
  }

  // Longer than the host's 15 s start time-out for pkexec, so that ElevatedGuard's error, not ours, says what went wrong.
  const elevatedOrError = (host: UserHost) => host.events.next((e) => e.event === 'elevated' || e.event === 'error', 20_000);

  it('with the right password: the companion runs as root, cgroup-freezes a default-build VM and resumes it; the password shows in no process', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2 });
    const cgroupsBefore = devicePids(vm).map(cgroupFile);
    const host = startUserHost(vm);
    const password = user.password as string;
    const agent = await startAgent(host, password);
    host.go();
    const elevated = await elevatedOrError(host);
    assert.equal(elevated.event, 'elevated', `${JSON.stringify(host.events.all)}\nagent: ${agent.transcript()}`);
    const companion = elevated.companionPid as number;
    assert.deepEqual(uidsOf(companion), [0, 0, 0, 0], 'the companion does not run as root');
    // pkexec execs the companion in place: the host is its parent, no shell or helper between.
    assert.equal(Number(readOrEmpty(`/proc/${companion}/stat`).split(') ')[1]?.split(' ')[1]), host.child.pid);
    assert.ok(
      host.events.all.some((e) => e.event === 'log' && /started with pkexec \(pid \d+, uid 0\)/.test(String(e.message))),
      JSON.stringify(host.events.all),
    );
    assert.equal(agent.prompts, 1, agent.transcript());
    assert.match(agent.transcript(), /Authenticating as: .*\(crosvm-guard-pk\)/);
    assert.match(agent.transcript(), /AUTHENTICATION COMPLETE/);

    const frozen = await host.events.next((e) => e.event === 'frozen' || e.event === 'error');
    assert.equal(frozen.method, 'cgroup', JSON.stringify(frozen));
    for (const pid of devicePids(vm)) {
      const group = freezeCgroupOf(pid);
      assert.ok(group, `device ${pid} is in no freeze cgroup: ${cgroupFile(pid)}`);
      assert.ok(
        path.basename(group.dir).startsWith(`crosvm-guard-${companion}-`),
        `device ${pid} is in ${group.dir}, not a cgroup of the companion ${companion}`,
      );
      assert.ok(group.frozen, `${group.dir} is not frozen`);
    }
    const still = counters(vm);
    await sleep(150);
    assert.deepEqual(counters(vm), still, 'devices ran while frozen');

    // Every process's command line and environment, while the companion runs.
    for (const pid of pids()) {
      for (const file of ['cmdline', 'environ']) {
        assert.ok(!readOrEmpty(`/proc/${pid}/${file}`).includes(password), `the password is in /proc/${pid}/${file}`);
      }
    }
    assert.ok(!JSON.stringify(host.events.all).includes(password), 'the password is in the host output or log');

    host.send('resume');
    await host.events.next((e) => e.event === 'resumed');
    assert.ok(await eventually(() => advanced(vm, still), 2000), 'not running after resume');
    assert.deepEqual(devicePids(vm).map(cgroupFile), cgroupsBefore, 'a device is not back in its own cgroup');
    assert.ok(devicePids(vm).every(isRunning));

    host.send('end');
    await host.events.next((e) => e.event === 'ended');
    host.child.stdin?.end();
    await host.exited;
    assert.ok(await eventually(() => !isAlive(companion), 2000), 'the companion kept running after the host let it go');
    await agent.stop();
    await assertNothingLeft();
    assert.ok(vm.isRunning());
  });

  it("asked for another user's VM: the root companion pkexec started refuses, naming the owner, and nothing of that user's changes", async () => {
    // uid 65534 plays user B; the polkit test user is A, the one who ran pkexec.
    const vm = await startFixtureVm({ build: 'default', devices: 2, uid: 65534, gid: 65534 });
    const facts = () => [vm.pid, ...devicePids(vm)].map((pid) => `${pid} ${isRunning(pid)} ${cgroupFile(pid)}`);
    const before = facts();
    const host = startUserHost(vm);
    const agent = await startAgent(host, user.password as string);
    host.go();
    const elevated = await elevatedOrError(host);
    assert.equal(elevated.event, 'elevated', `${JSON.stringify(host.events.all)}\nagent: ${agent.transcript()}`);
    const answer = await host.events.next((e) => e.event === 'frozen' || e.event === 'error');
    assert.equal(answer.event, 'error', JSON.stringify(answer));
    assert.equal(answer.code, 'not-permitted');
    assert.match(
      String(answer.message),
      new RegExp(`crosvm VM ${vm.pid} runs as uid 65534: only VMs of root and uid ${user.uid} may be frozen here`),
    );
    await sleep(150);
    assert.deepEqual(facts(), before, 'a process of uid 65534 changed state or cgroup');
    assert.ok(devicePids(vm).every((pid) => freezeCgroupOf(pid) === undefined));
    host.send('end');
    await host.events.next((e) => e.event === 'ended');
    host.child.stdin?.end();
    await host.exited;
    await agent.stop();
    await assertNothingLeft();
    assert.ok(vm.isRunning());
  });

  it("user A's process that ran pkexec is killed right after the exec, under a subreaper of user B: the companion still knows A, and refuses B's VM", async () => {
    // uid 65534 plays B and runs a child subreaper above a shell of A (the polkit user); that
    // shell runs the extension's own pkexec command and is SIGKILLed as soon as pkexec turned
    // root, so the kernel hands the companion to B's subreaper; then A asks for B's VM.
    const vm = await startFixtureVm({ build: 'default', devices: 2, uid: 65534, gid: 65534 });
    const facts = () => [vm.pid, ...devicePids(vm)].map((pid) => `${pid} ${isRunning(pid)} ${cgroupFile(pid)}`);
    const before = facts();
    const companionScript = path.resolve(__dirname, '..', '..', '..', 'dist', 'companion.js');
    const b = { uid: 65534, gid: 65534 };
    const attack = spawnReparentAttack(
      buildSubreaper(),
      user,
      b,
      'pkexec',
      { pid: vm.pid, startTime: startTimeOf(vm.pid) },
      companionScript,
    );
    hosts.push(attack);
    const events = jsonLines(attack);
    // pkexec asks polkitd to authenticate its parent: the shell.
    const shell = (await events.next((e) => e.event === 'intermediate')).pid as number;
    const agent = await startPolkitAgent({ subjectPid: shell, password: user.password as string, user });
    agents.push(agent);
    attack.stdin?.write('go\n');
    const killed = await events.next((e) => e.event === 'killed' || e.event === 'error', 20_000);
    assert.equal(killed.event, 'killed', `${JSON.stringify(events.all)}\nagent: ${agent.transcript()}`);
    assert.equal(killed.adopter, attack.pid, JSON.stringify(killed));
    assert.equal(killed.adopterUid, 65534, JSON.stringify(killed));
    const answer = await events.next((e) => e.event === 'companion' && (e.message as { id?: number }).id === 1);
    const message = answer.message as Record<string, unknown>;
    assert.equal(message.ok, false, JSON.stringify(events.all));
    assert.equal(message.code, 'not-permitted');
    assert.match(
      String(message.message),
      new RegExp(`crosvm VM ${vm.pid} runs as uid 65534: only VMs of root and uid ${user.uid} may be frozen here`),
    );
    await events.next((e) => e.event === 'companion-ended');
    await sleep(150);
    assert.deepEqual(facts(), before, 'a process of uid 65534 changed state or cgroup');
    assert.ok(vm.isRunning());
    await agent.stop();
    await assertNothingLeft();
  });

  it('with a wrong password: start rejects, pkexec was not authorized, nothing is frozen and no companion is left', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2 });
    const host = startUserHost(vm);
    const agent = await startAgent(host, 'certainly-not-the-password');
    host.go();
    // pam_unix delays a failure by about 2 s.
    const error = await elevatedOrError(host);
    assert.equal(error.event, 'error', JSON.stringify(host.events.all));
    assert.equal(error.name, 'ElevationError', JSON.stringify(error));
    // pkexec says the same for a wrong password and a vanished agent: not permitted.
    assert.equal(error.reason, 'not-permitted', JSON.stringify(error));
    assert.match(
      String(error.message),
      /^pkexec could not start the companion \(exit 127\): Error executing command as another user: Not authorized\b/,
    );
    // The agent was asked and the password refused: this is not the no-agent failure.
    assert.equal(agent.prompts, 1, agent.transcript());
    // The agent prints its verdict after pkexec has already failed: wait for the line.
    assert.ok(await eventually(() => /AUTHENTICATION FAILED/.test(agent.transcript()), 3000), agent.transcript());
    await host.exited;
    const since = counters(vm);
    assert.ok(await eventually(() => advanced(vm, since), 2000), 'a device does not run');
    assert.ok(devicePids(vm).every((pid) => freezeCgroupOf(pid) === undefined && isRunning(pid)));
    await agent.stop();
    await assertNothingLeft();
  });

  it("with no agent: start rejects at once with pkexec's reason, nothing is frozen and nothing is left", async () => {
    const vm = await startFixtureVm({ build: 'default' });
    const host = startUserHost(vm);
    host.go();
    const error = await elevatedOrError(host);
    assert.equal(error.event, 'error', JSON.stringify(host.events.all));
    assert.equal(error.name, 'ElevationError', JSON.stringify(error));
    // Told as what it is, with pkexec's own words and the ways out.
    assert.equal(error.reason, 'not-permitted', JSON.stringify(error));
    assert.match(
      String(error.message),
      /^No polkit authentication agent answered for this window, so pkexec could not ask for your password \(pkexec: Error creating textual authentication agent\b.*\) Set crosvmGuard\.elevation to "sudo"/,
    );
    // pkexec gives up in about 10 ms; the bound leaves room for a loaded machine, and is far
    // below the 15 s start time-out that a hanging pkexec would meet.
    assert.ok((error.ms as number) < 2000, `took ${String(error.ms)} ms`);
    await host.exited;
    const since = counters(vm);
    assert.ok(await eventually(() => advanced(vm, since), 2000), 'a device does not run');
    assert.ok(devicePids(vm).every((pid) => freezeCgroupOf(pid) === undefined && isRunning(pid)));
    await assertNothingLeft();
  });

  it('a host killed while the VM is frozen through pkexec: the root companion resumes it and exits', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2 });
    const cgroupsBefore = devicePids(vm).map(cgroupFile);
    const host = startUserHost(vm);
    const agent = await startAgent(host, user.password as string);
    host.go();
    const elevated = await elevatedOrError(host);
    assert.equal(elevated.event, 'elevated', `${JSON.stringify(host.events.all)}\nagent: ${agent.transcript()}`);
    const companion = elevated.companionPid as number;
    const frozen = await host.events.next((e) => e.event === 'frozen' || e.event === 'error');
    assert.equal(frozen.method, 'cgroup', JSON.stringify(frozen));
    assert.ok(
      devicePids(vm).every((pid) => freezeCgroupOf(pid)?.frozen),
      'not frozen',
    );
    const frozenAt = counters(vm);
    // The host cannot signal its root companion (EPERM), nor need it: the end of the
    // companion's stdin is its cue.
    host.child.kill('SIGKILL');
    assert.ok(await eventually(() => advanced(vm, frozenAt), 2000), 'still frozen 2 s after the host was killed');
    assert.deepEqual(devicePids(vm).map(cgroupFile), cgroupsBefore, 'a device is not back in its own cgroup');
    assert.ok(await eventually(() => !isAlive(companion), 2000), 'the elevated companion kept running');
    await agent.stop();
    await assertNothingLeft();
    assert.ok(vm.isRunning());
  });
});
