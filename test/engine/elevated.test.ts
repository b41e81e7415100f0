// VMs that run as root, frozen from an unprivileged user through the elevated companion:
// real users (made with useradd, sudo rights from /etc/sudoers.d), real sudo, a real root VM.
// Needs root, as on CI.
import { strict as assert } from 'node:assert';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { currentIdentity } from '../../src/guard/processTree';
import { asUserCommand, ensureTestUser, TestUser } from '../runner/testUsers';
import { buildSubreaper, descendantsOf, FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { jsonLines, spawnElevatedHost, spawnReparentAttack } from './hostHarness';
import { eventually, isFullyStopped, isRunning, sleep } from './procState';

const companionScript = path.resolve(__dirname, '..', '..', '..', 'dist', 'companion.js');
const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);
const startTimeOf = (pid: number) => (currentIdentity(pid) as { startTime: number }).startTime;
const alive = (pid: number) => fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'latin1'));
const counters = (vm: FixtureVm) => devicePids(vm).map((pid) => vm.deviceCounters().get(pid) ?? 0n);
/**
 * Every process of `vm`, read here from /proc: whether its stat shows it stopped (state T or t,
 * after the last ')'; R and S alternate on their own) and its cgroups.
 */
const processFacts = (vm: FixtureVm) =>
  [vm.pid, ...devicePids(vm)].map((pid) => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const stopped = /^[Tt]$/.test(stat.charAt(stat.lastIndexOf(')') + 2));
    return `${pid} ${stopped ? 'stopped' : 'running'} ${fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1')}`;
  });

after(stopAllFixtureVms);
afterEach(stopAllFixtureVms);

describe('the elevated companion on its own', () => {
  let companion: ChildProcess | undefined;
  afterEach(() => {
    companion?.kill('SIGKILL');
    companion = undefined;
  });

  function startCompanion() {
    companion = spawn(process.execPath, [companionScript, '--elevated', '--idle-ms', '60000'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = jsonLines(companion);
    let id = 0;
    const ask = async (request: Record<string, unknown>) => {
      const mine = ++id;
      companion?.stdin?.write(JSON.stringify({ ...request, id: mine }) + '\n');
      return lines.next((e) => e.id === mine);
    };
    return { lines, ask, raw: (text: string) => companion?.stdin?.write(text + '\n') };
  }

  it('refuses to freeze anything but a crosvm VM, and any request outside its small fixed set', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await eventually(() => currentIdentity(stranger.pid as number) !== undefined);
      const { lines, ask, raw } = startCompanion();
      await lines.next((e) => e.event === 'ready');
      const sleepPid = stranger.pid as number;
      const device = vm.devices[0].pid;
      const refusals = [
        await ask({ op: 'freeze', pid: sleepPid, startTime: startTimeOf(sleepPid) }),
        await ask({ op: 'freeze', pid: device, startTime: startTimeOf(device), scope: 'vm' }),
        await ask({ op: 'freeze', pid: 1, startTime: 0 }),
        await ask({ op: 'freeze', pid: vm.pid, startTime: startTimeOf(vm.pid) + 5 }),
        await ask({ op: 'freeze', pid: vm.pid, startTime: startTimeOf(vm.pid), assumeSwapBuild: true }),
        await ask({ op: 'freeze', pid: vm.pid, startTime: startTimeOf(vm.pid), scope: 'everything' }),
        await ask({ op: 'freeze', pid: -5, startTime: 0 }),
        await ask({ op: 'hold', processes: [{ pid: sleepPid, startTime: startTimeOf(sleepPid), label: 'x' }] }),
        await ask({ op: 'kill', pid: sleepPid }),
      ];
      raw('not json at all');
      assert.deepEqual(
        refusals.map((r) => r.ok),
        refusals.map(() => false),
      );
      assert.match(String(refusals[0].message), /is not crosvm/);
      assert.match(String(refusals[1].message), /is not crosvm|not a crosvm VM|device/);
      assert.match(String(refusals[3].message), /start time|no longer|another process/);
      assert.match(String(refusals[4].message), /unexpected field assumeSwapBuild/);
      assert.match(String(refusals[7].message), /unknown op/);
      await sleep(150);
      assert.ok(isRunning(sleepPid), 'the stranger was signalled');
      assert.ok(devicePids(vm).every(isRunning), 'a device was signalled');
      const status = await ask({ op: 'status' });
      assert.deepEqual(status.frozen, []);
    } finally {
      stranger.kill('SIGKILL');
    }
  });

  it('freezes root VMs by either method, and resumes them all when its link breaks', async () => {
    const tolerant = await startFixtureVm({ build: 'swap' });
    const intolerant = await startFixtureVm({ build: 'default' });
    const { lines, ask } = startCompanion();
    const ready = await lines.next((e) => e.event === 'ready');
    const bySignal = await ask({ op: 'freeze', pid: tolerant.pid, startTime: startTimeOf(tolerant.pid) });
    const byCgroup = await ask({ op: 'freeze', pid: intolerant.pid, startTime: startTimeOf(intolerant.pid) });
    assert.equal((bySignal.report as { method: string }).method, 'signal', JSON.stringify(bySignal));
    assert.equal((byCgroup.report as { method: string }).method, 'cgroup', JSON.stringify(byCgroup));
    assert.ok(devicePids(tolerant).every(isFullyStopped));
    const still = counters(intolerant);
    await sleep(150);
    assert.deepEqual(counters(intolerant), still);
    assert.equal(((await ask({ op: 'status' })).frozen as unknown[]).length, 2);
    companion?.stdin?.end();
    assert.ok(
      await eventually(() => devicePids(tolerant).every(isRunning), 1000),
      'signal-frozen devices still stopped after the link broke',
    );
    assert.ok(
      await eventually(() => counters(intolerant).every((c, i) => c > still[i]), 2000),
      'cgroup-frozen devices still frozen after the link broke',
    );
    assert.ok(await eventually(() => !alive(ready.pid as number), 2000), 'the companion kept running');
    assert.ok(tolerant.isRunning() && intolerant.isRunning());
  });
});

describe('the elevated companion when things go wrong', () => {
  let companion: ChildProcess | undefined;
  afterEach(() => {
    companion?.kill('SIGKILL');
    companion = undefined;
  });

  it('resumes when the host stops reading (its reply hits a closed pipe), not only when its input ends', async () => {
    const vm = await startFixtureVm({ build: 'default' });
    companion = spawn(process.execPath, [companionScript, '--elevated', '--idle-ms', '60000'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    companion.stderr?.on('data', (chunk) => (stderr += chunk));
    const lines = jsonLines(companion);
    const ready = await lines.next((e) => e.event === 'ready');
    companion.stdin?.write(JSON.stringify({ op: 'freeze', id: 1, pid: vm.pid, startTime: startTimeOf(vm.pid) }) + '\n');
    assert.equal((await lines.next((e) => e.id === 1)).ok, true);
    const still = counters(vm);
    // A host dying after its request: our end of the reply pipe closes, the next reply fails
    // with EPIPE. Unhandled, that error would end the companion with the VM still frozen.
    companion.stdout?.destroy();
    companion.stdin?.write(JSON.stringify({ op: 'status', id: 2 }) + '\n');
    assert.ok(await eventually(() => counters(vm).every((c, i) => c > still[i]), 3000), `the VM stayed frozen: ${stderr}`);
    assert.ok(await eventually(() => !alive(ready.pid as number), 3000), 'the companion kept running');
    assert.match(stderr, /stopped reading: thawed|stopped reading: resumed|stopped reading/);
    assert.ok(vm.isRunning());
  });

  it('never goes idle in the middle of a freeze: a slow freeze that ends after the idle time still resumes and answers', async () => {
    // stuck-dev never stops (state D), so the signal freeze waits out its whole deadline
    // (2 s), far past the 300 ms idle time, then rolls back.
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true, stuckDevice: true });
    companion = spawn(process.execPath, [companionScript, '--elevated', '--idle-ms', '300'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = jsonLines(companion);
    const ready = await lines.next((e) => e.event === 'ready');
    await sleep(200);
    companion.stdin?.write(JSON.stringify({ op: 'freeze', id: 1, pid: vm.pid, startTime: startTimeOf(vm.pid), method: 'signal' }) + '\n');
    const answer = await lines.next((e) => e.id === 1, 10_000);
    assert.equal(answer.ok, false, JSON.stringify(answer));
    assert.match(String(answer.message), /stuck-dev/);
    assert.ok(devicePids(vm).every(isRunning), 'a device was left stopped');
    // Then, with nothing frozen and no request, it does go.
    assert.ok(await eventually(() => !alive(ready.pid as number), 3000), 'the companion never went idle');
  });

  it('started by root itself: root is its invoker, so a VM of uid 65534 is refused, naming its owner', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const other = await startFixtureVm({ build: 'swap', uid: 65534, gid: 65534 });
    // SUDO_UID cannot change that: the companion asks /proc who its parent is. (PKEXEC_UID
    // would: pkexec sets it, as root, overwriting the caller's; here root itself sets the
    // environment, and root may name any invoker.)
    companion = spawn(process.execPath, [companionScript, '--elevated', '--idle-ms', '60000'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, SUDO_UID: '65534' },
    });
    const lines = jsonLines(companion);
    await lines.next((e) => e.event === 'ready');
    const before = processFacts(other);
    companion.stdin?.write(JSON.stringify({ op: 'freeze', id: 1, pid: other.pid, startTime: startTimeOf(other.pid) }) + '\n');
    const refused = await lines.next((e) => e.id === 1);
    assert.equal(refused.ok, false);
    assert.equal(refused.code, 'not-permitted');
    assert.match(String(refused.message), new RegExp(`crosvm VM ${other.pid} runs as uid 65534: only VMs of root may be frozen here`));
    await sleep(100);
    assert.deepEqual(processFacts(other), before, 'a process of uid 65534 changed state or cgroup');
    companion.stdin?.write(JSON.stringify({ op: 'freeze', id: 2, pid: vm.pid, startTime: startTimeOf(vm.pid) }) + '\n');
    assert.equal((await lines.next((e) => e.id === 2)).ok, true);
    companion.stdin?.end();
    assert.ok(await eventually(() => devicePids(vm).every(isRunning), 2000));
  });

  it('orphaned before it could see who started it: refuses to run at all', async () => {
    // The shell exits at once; by the time Node has loaded the companion, its parent is init.
    const shell = spawn('sh', ['-c', `"${process.execPath}" "${companionScript}" --elevated --idle-ms 60000 & exit 0`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    shell.stderr?.on('data', (chunk) => (stderr += chunk));
    const lines = jsonLines(shell);
    assert.ok(
      await eventually(() => /cannot tell which user started it \(its parent is pid 1: it was orphaned\)/.test(stderr), 5000),
      stderr,
    );
    assert.equal(lines.all.length, 0, `it answered: ${JSON.stringify(lines.all)}`);
  });

  it('refuses to start for executable names that are not crosvm builds', () => {
    const result = spawnSync(process.execPath, [companionScript, '--elevated', '--names', 'crosvm,sshd'], {
      encoding: 'utf8',
      input: '',
      timeout: 10_000,
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /invalid --names: only names that start with "crosvm"/);
    assert.doesNotMatch(result.stdout, /ready/);
  });
});

describe('a root VM frozen from an unprivileged user through sudo', () => {
  let nopasswd: TestUser;
  let withPassword: TestUser;
  let host: ChildProcess | undefined;
  const hosts: ChildProcess[] = [];
  before(() => {
    nopasswd = ensureTestUser('nopasswd');
    withPassword = ensureTestUser('password');
  });
  afterEach(() => {
    for (const h of hosts.splice(0)) h.kill('SIGKILL');
    host = undefined;
  });

  function startUserHost(user: TestUser, vm: FixtureVm, password: string, extra: readonly string[] = [], path_: readonly string[] = []) {
    const child = spawnElevatedHost(user, vm.pid, startTimeOf(vm.pid), extra, path_);
    host = child;
    hosts.push(child);
    child.stdin?.write(password + '\n');
    return jsonLines(child);
  }

  it('a plain freeze from the user fails with a clear error and stops nothing', async () => {
    const vm = await startFixtureVm({ build: 'swap', swapMonitor: true });
    const child = spawn(process.execPath, [path.join(__dirname, 'freezeAsChild.js'), String(vm.pid)], {
      uid: nopasswd.uid,
      gid: nopasswd.gid,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const result = await jsonLines(child).next(() => true);
    assert.equal(result.code, 'freeze-failed');
    assert.match(String(result.message), new RegExp(`crosvm runs as root; this window runs as uid ${nopasswd.uid} and may not signal it`));
    assert.ok(devicePids(vm).every(isRunning));
  });

  it('passwordless sudo: freezes and resumes a root VM; killing the host resumes it', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 3 });
    const events = startUserHost(nopasswd, vm, '');
    const elevated = await events.next((e) => e.event === 'elevated' || e.event === 'error');
    assert.equal(elevated.event, 'elevated', JSON.stringify(events.all));
    const frozen = await events.next((e) => e.event === 'frozen' || e.event === 'error');
    assert.equal(frozen.method, 'cgroup', JSON.stringify(frozen));
    const still = counters(vm);
    await sleep(150);
    assert.deepEqual(counters(vm), still, 'devices ran while frozen');
    host?.stdin?.write('resume\n');
    await events.next((e) => e.event === 'resumed');
    assert.ok(await eventually(() => counters(vm).every((c, i) => c > still[i]), 2000), 'not running after resume');

    // Again, and this time the host dies while the VM is frozen.
    const again = startUserHost(nopasswd, vm, '');
    const companion = (await again.next((e) => e.event === 'elevated')).companionPid as number;
    await again.next((e) => e.event === 'frozen');
    const frozenAt = counters(vm);
    host?.kill('SIGKILL');
    assert.ok(await eventually(() => counters(vm).every((c, i) => c > frozenAt[i]), 2000), 'still frozen 2 s after the host was killed');
    assert.ok(await eventually(() => !alive(companion), 2000), 'the elevated companion kept running');
    assert.ok(vm.isRunning());
    // A build without swap survived two cgroup freezes: it ran on, and ends normally.
    assert.deepEqual(await vm.stop(), { code: 0, signal: null }, vm.stderr());
  });

  it('sudo with a password: works with the right one, and the password shows in no process list, log or file', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 2 });
    const password = withPassword.password as string;
    const events = startUserHost(withPassword, vm, password);
    const elevated = await events.next((e) => e.event === 'elevated' || e.event === 'error');
    assert.equal(elevated.event, 'elevated', JSON.stringify(events.all));
    await events.next((e) => e.event === 'frozen');
    assert.ok(devicePids(vm).every(isFullyStopped));
    // Every process's command line and environment, while the companion runs.
    for (const name of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      for (const file of ['cmdline', 'environ']) {
        let text = '';
        try {
          text = fs.readFileSync(`/proc/${name}/${file}`, 'latin1');
        } catch {
          continue;
        }
        assert.ok(!text.includes(password), `the password is in /proc/${name}/${file}`);
      }
    }
    assert.ok(!JSON.stringify(events.all).includes(password), 'the password is in the host output or log');
    host?.stdin?.write('resume\n');
    await events.next((e) => e.event === 'resumed');
    assert.ok(devicePids(vm).every(isRunning));
    host?.stdin?.write('end\n');
    await events.next((e) => e.event === 'ended');
    const grep = spawn('grep', ['-rlF', '--', password, withPassword.home, '/tmp', '/var/log'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let found = '';
    grep.stdout.on('data', (chunk) => (found += chunk));
    await new Promise((resolve) => grep.on('close', resolve));
    assert.equal(found, '', `the password is in these files: ${found}`);
  });

  it('sudo with a wrong password fails clearly and freezes nothing', async () => {
    const vm = await startFixtureVm({ build: 'swap' });
    const events = startUserHost(withPassword, vm, 'certainly-not-the-password');
    const error = await events.next((e) => e.event === 'error' || e.event === 'elevated');
    assert.equal(error.event, 'error');
    assert.equal(error.reason, 'wrong-password', JSON.stringify(error));
    assert.ok(devicePids(vm).every(isRunning));
  });

  it("asked for another user's VM through a real sudo -n: refuses, naming the owner, and nothing of that user's changes", async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2, uid: withPassword.uid, gid: withPassword.gid });
    const before = processFacts(vm);
    const events = startUserHost(nopasswd, vm, '');
    assert.equal((await events.next((e) => e.event === 'elevated' || e.event === 'error')).event, 'elevated', JSON.stringify(events.all));
    const answer = await events.next((e) => e.event === 'frozen' || e.event === 'error');
    assert.equal(answer.event, 'error', JSON.stringify(answer));
    assert.equal(answer.code, 'not-permitted');
    assert.match(
      String(answer.message),
      new RegExp(`crosvm VM ${vm.pid} runs as uid ${withPassword.uid}: only VMs of root and uid ${nopasswd.uid} may be frozen here`),
    );
    await sleep(150);
    assert.deepEqual(processFacts(vm), before, 'a process of the other user changed state or cgroup');
    assert.ok(vm.isRunning());
  });

  it('a root VM with a device that runs as another uid: refused, naming that device and its owner; nothing is frozen', async () => {
    // foreign-dev calls setuid() in the VM's own user namespace: nothing shows the VM mapped
    // that uid (see mappedByVm), so it stays someone else's. realUidMap.test.ts: one that is.
    const vm = await startFixtureVm({ build: 'default', devices: 1, foreignDeviceUid: 65534 });
    const before = processFacts(vm);
    const events = startUserHost(nopasswd, vm, '');
    const answer = await events.next((e) => e.event === 'frozen' || e.event === 'error');
    assert.equal(answer.event, 'error', JSON.stringify(answer));
    const foreign = vm.devices.find((d) => d.label === 'foreign-dev')?.pid;
    assert.match(
      String(answer.message),
      new RegExp(
        `foreign-dev \\(pid ${foreign}\\): it runs as uid 65534; only processes of root and uid ${nopasswd.uid} may be frozen here`,
      ),
    );
    await sleep(150);
    assert.deepEqual(processFacts(vm), before, 'a process changed state or cgroup');
    assert.ok(vm.isRunning());
  });

  it('a host that stops answering while a root VM is frozen: the root companion resumes it after its heartbeat time', async () => {
    const vm = await startFixtureVm({ build: 'default', devices: 2 });
    const events = startUserHost(nopasswd, vm, '', ['auto', 'sudo', '1500']);
    const companion = (await events.next((e) => e.event === 'elevated')).companionPid as number;
    assert.equal((await events.next((e) => e.event === 'frozen' || e.event === 'error')).event, 'frozen', JSON.stringify(events.all));
    const still = counters(vm);
    // Hung, not gone: its end of the pipe stays open, so only the heartbeat can tell.
    host?.kill('SIGSTOP');
    try {
      await sleep(500);
      assert.deepEqual(counters(vm), still, 'resumed before the heartbeat time');
      assert.ok(await eventually(() => counters(vm).every((c, i) => c > still[i]), 4000), 'still frozen 4.5 s after the host hung');
      assert.ok(await eventually(() => !alive(companion), 2000), 'the root companion kept running');
    } finally {
      host?.kill('SIGCONT');
    }
    assert.ok(vm.isRunning());
  });

  it("user A kills sudo right after the exec, under a subreaper of user B: the companion refuses to run, nothing of B's changes", async () => {
    // B (the password user) runs a child subreaper, as `systemd --user` does, above a shell of
    // A (the passwordless one); A runs the extension's own sudo -n command, keeps the
    // companion's pipes, SIGKILLs sudo as soon as it has a child, and asks for B's VM.
    const vm = await startFixtureVm({ build: 'default', devices: 2, uid: withPassword.uid, gid: withPassword.gid });
    const before = processFacts(vm);
    const attack = spawnReparentAttack(
      buildSubreaper(),
      nopasswd,
      withPassword,
      'sudo',
      { pid: vm.pid, startTime: startTimeOf(vm.pid) },
      companionScript,
    );
    hosts.push(attack);
    const events = jsonLines(attack);
    const killed = await events.next((e) => e.event === 'killed' || e.event === 'error');
    assert.equal(killed.event, 'killed', JSON.stringify(events.all));
    // The attack as it happens on a real desktop: B's subreaper adopted the root companion.
    assert.equal(killed.adopter, attack.pid, JSON.stringify(killed));
    assert.equal(killed.adopterUid, withPassword.uid, JSON.stringify(killed));
    const ended = await events.next((e) => e.event === 'companion-ended');
    assert.match(
      String(ended.stderr),
      new RegExp(`cannot tell which user started it \\(its parent, pid ${attack.pid} \\(uid ${withPassword.uid}\\), is not sudo`),
    );
    assert.ok(!events.all.some((e) => e.event === 'companion'), `the companion answered: ${JSON.stringify(events.all)}`);
    await sleep(150);
    assert.deepEqual(processFacts(vm), before, 'a process of user B changed state or cgroup');
    assert.ok(vm.isRunning());
  });

  it('an impostor named crosvm (exec -a) with a root child: refused as not crosvm, and its root child is left alone', async () => {
    // User A names a shell crosvm and starts a root process below it (sudo sleep), which the
    // kernel would not let A signal; then A asks the root companion to freeze that "VM".
    const [setpriv, ...asUser] = asUserCommand(nopasswd);
    const impostor = spawn(setpriv, [...asUser, 'bash', '-c', 'exec -a crosvm sh -c "sudo -n -- sleep 300 & wait"'], {
      cwd: '/',
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: nopasswd.home },
      stdio: 'ignore',
    });
    hosts.push(impostor);
    const shell = impostor.pid as number;
    const rootChild = () => descendantsOf(shell).find((pid) => /^Uid:\s+0\s/m.test(fs.readFileSync(`/proc/${pid}/status`, 'latin1')));
    try {
      assert.ok(await eventually(() => rootChild() !== undefined, 15_000), 'no root process below the impostor');
      assert.equal(fs.readFileSync(`/proc/${shell}/cmdline`, 'latin1').split('\0')[0], 'crosvm');
      const below = descendantsOf(shell);
      const facts = () => below.map((pid) => `${pid} ${isRunning(pid)} ${fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1')}`);
      const before = facts();
      const host = spawnElevatedHost(nopasswd, shell, startTimeOf(shell));
      hosts.push(host);
      host.stdin?.write('\n'); // no password: sudo -n
      const events = jsonLines(host);
      const answer = await events.next((e) => e.event === 'frozen' || e.event === 'error');
      assert.equal(answer.event, 'error', JSON.stringify(events.all));
      assert.equal(answer.code, 'not-crosvm', JSON.stringify(answer));
      assert.match(String(answer.message), new RegExp(`Process ${shell} \\(sh\\) is named like crosvm, but its executable is not crosvm`));
      await sleep(150);
      assert.deepEqual(facts(), before, 'a process below the impostor changed state or cgroup');
    } finally {
      for (const pid of descendantsOf(shell)) process.kill(pid, 'SIGKILL');
    }
  });

  it("a root process inside the user's own crosvm VM (a device made to start sudo): refused as not crosvm, nothing frozen", async () => {
    // A's own VM, a real crosvm executable. With a debugger on one of its devices (its own
    // process), A makes it start `sudo -n sleep`: a root process inside the VM's tree that runs
    // another file. Root must not freeze it for A, who may not signal it.
    const vm = await startFixtureVm({ build: 'swap', devices: 1, uid: nopasswd.uid, gid: nopasswd.gid });
    const device = vm.devices.find((d) => d.label === 'virtio-dev-0')?.pid as number;
    const [setpriv, ...asUser] = asUserCommand(nopasswd);
    const call = 'call (int)system("sudo -n -- sleep 300 >/dev/null 2>&1 &")';
    const gdb = spawnSync(setpriv, [...asUser, 'gdb', '-p', String(device), '-batch', '-nx', '-ex', call], {
      cwd: '/',
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: nopasswd.home },
      encoding: 'utf8',
      timeout: 60_000,
    });
    const isRoot = (pid: number) => /^Uid:\s+0\s/m.test(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
    const rootChild = () => descendantsOf(vm.pid).find(isRoot);
    try {
      assert.ok(await eventually(() => rootChild() !== undefined, 15_000), `no root process in the VM: ${gdb.stdout} ${gdb.stderr}`);
      const below = [vm.pid, ...descendantsOf(vm.pid)];
      const facts = () => below.map((pid) => `${pid} ${isRunning(pid)} ${fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1')}`);
      const before = facts();
      const events = startUserHost(nopasswd, vm, '');
      const answer = await events.next((e) => e.event === 'frozen' || e.event === 'error');
      assert.equal(answer.event, 'error', JSON.stringify(answer));
      assert.match(String(answer.message), /\(pid \d+\): it does not run the VM's crosvm executable/);
      await sleep(150);
      assert.deepEqual(facts(), before, 'a process of the VM changed state or cgroup');
      assert.ok(vm.isRunning());
    } finally {
      for (const pid of descendantsOf(vm.pid).filter(isRoot)) process.kill(pid, 'SIGKILL');
    }
  });

  it('sudo is run by its absolute path: a sudo planted first in PATH never runs and never sees the password', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 1 });
    const planted = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-path-'));
    const caught = path.join(planted, 'caught');
    try {
      fs.chmodSync(planted, 0o777);
      fs.writeFileSync(path.join(planted, 'sudo'), `#!/bin/sh\ncat > ${caught}\nexit 1\n`, { mode: 0o755 });
      const events = startUserHost(withPassword, vm, withPassword.password as string, [], [planted]);
      const elevated = await events.next((e) => e.event === 'elevated' || e.event === 'error');
      assert.equal(elevated.event, 'elevated', JSON.stringify(events.all));
      await events.next((e) => e.event === 'frozen');
      assert.ok(!fs.existsSync(caught), 'the planted sudo ran');
    } finally {
      fs.rmSync(planted, { recursive: true, force: true });
    }
  });
});
