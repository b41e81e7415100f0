// The proof that `npm test` touches only what it started (issue 21). Before the stages start,
// outside their private pid namespaces, the runner starts VMs that stand for a developer's own:
// a crosvm-like fixture VM of root, one of another uid, and a real crosvm where one is found.
// All are default builds, the kind a stopped device shuts down. While the stages run, a private
// kernel trace (ftrace) records every stop of their threads, every job-control signal and kill
// sent to them, every move into another cgroup and every exit; after the last stage the runner
// asserts that none of that happened, that each is the same process still, in the same cgroups,
// that none logged crosvm's "child … exited: signo 17" and that the real guest kept ticking.
// The kernel trace sees a stop of a millisecond; without tracefs the runner polls /proc every
// 20 ms, which can miss a stop shorter than that (it says so).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { descendantsOf, FixtureVm, readProcStat, startFixtureVm } from '../fixture/fixtureVm';
import { findRealCrosvm, RealVm, startRealVm } from '../realCrosvm/realVm';

/** A uid no test user has: the foreign fixture VM of "another user". */
const OTHER_UID = 60_999;
/** crosvm's line when a child stops: the VM is lost from then on. */
const CHILD_STOPPED_LINE = /exited: signo 17, status 19/;
const TRACEFS = '/sys/kernel/tracing';
const POLL_MS = 20;

interface Watched {
  readonly name: string;
  readonly pid: number;
  /** Every process of the VM, main first, with its start time and cgroups at the start. */
  readonly processes: ReadonlyMap<number, { startTime: string; cgroup: string }>;
  readonly threads: readonly number[];
  log(): string;
  stop(): Promise<string | undefined>;
  tick?(): number;
}

export interface ForeignVms {
  /** One line per VM, for the run's output. */
  readonly started: readonly string[];
  /** How their threads are watched: the kernel trace, or polling. */
  readonly how: string;
  /** Stops watching and the VMs; returns what went wrong (empty: untouched) and how many checks ran. */
  finish(): Promise<{ problems: string[]; checks: number }>;
}

const readCgroup = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return '';
  }
};

function threadsOf(pids: Iterable<number>): number[] {
  return [...pids].flatMap((pid) => {
    try {
      return fs.readdirSync(`/proc/${pid}/task`).map(Number);
    } catch {
      return [];
    }
  });
}

function snapshot(main: number): Map<number, { startTime: string; cgroup: string }> {
  const processes = new Map<number, { startTime: string; cgroup: string }>();
  for (const pid of [main, ...descendantsOf(main)]) {
    const stat = readProcStat(pid);
    if (stat) processes.set(pid, { startTime: stat.startTime, cgroup: readCgroup(pid) });
  }
  return processes;
}

function watchFixture(name: string, vm: FixtureVm): Watched {
  const processes = snapshot(vm.pid);
  return {
    name,
    pid: vm.pid,
    processes,
    threads: threadsOf(processes.keys()),
    log: () => vm.stderr(),
    stop: async () => {
      const { code, signal } = await vm.stop();
      return code === 0 ? undefined : `exited with ${code ?? signal} when stopped, not 0 (33: it had crashed)`;
    },
  };
}

function watchReal(vm: RealVm): Watched {
  const processes = snapshot(vm.pid);
  return {
    name: `real crosvm (default build) ${vm.pid}`,
    pid: vm.pid,
    processes,
    threads: threadsOf(processes.keys()),
    log: () => vm.crosvmLog(),
    tick: () => vm.tick(),
    stop: async () => {
      const code = await vm.stop('SIGTERM');
      return code === 143 ? undefined : `exited ${code} after SIGTERM, not 143 (33: it had crashed): ${vm.crosvmLog().slice(-400)}`;
    },
  };
}

/** A private ftrace instance recording what must never happen to the watched processes. */
class KernelTrace {
  private constructor(private readonly dir: string) {}

  static start(pids: readonly number[], tids: readonly number[]): KernelTrace | string {
    if (!fs.existsSync(path.join(TRACEFS, 'instances'))) return `no tracefs at ${TRACEFS}`;
    const dir = path.join(TRACEFS, 'instances', `crosvm-guard-foreign-${process.pid}`);
    const anyOf = (field: string, ids: readonly number[]) => `(${ids.map((id) => `${field} == ${id}`).join(' || ')})`;
    try {
      fs.rmSync(dir, { force: true, recursive: false });
    } catch {
      // none left by an earlier run with this pid
    }
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'buffer_size_kb'), '1024');
      const filters: Record<string, string> = {
        // A switch out in a stopped state (T = 4, t = 8).
        'sched/sched_switch': `(prev_state & 12) && ${anyOf('prev_pid', tids)}`,
        // SIGKILL, SIGTERM, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU sent to any of them.
        'signal/signal_generate': `(sig == 9 || sig == 15 || (sig >= 18 && sig <= 22)) && ${anyOf('pid', tids)}`,
        'cgroup/cgroup_attach_task': anyOf('pid', tids),
        // Processes only: crosvm may end a worker thread of its own.
        'sched/sched_process_exit': anyOf('pid', pids),
      };
      for (const [event, filter] of Object.entries(filters)) {
        fs.writeFileSync(path.join(dir, 'events', event, 'filter'), filter);
        fs.writeFileSync(path.join(dir, 'events', event, 'enable'), '1');
      }
      fs.writeFileSync(path.join(dir, 'tracing_on'), '1');
    } catch (error) {
      KernelTrace.remove(dir);
      return `the kernel trace could not be set up (${(error as Error).message})`;
    }
    return new KernelTrace(dir);
  }

  private static remove(dir: string): void {
    try {
      fs.writeFileSync(path.join(dir, 'tracing_on'), '0');
      fs.rmdirSync(dir);
    } catch {
      // gone already
    }
  }

  /** Stops recording; returns every recorded event line (and a line if events were lost). */
  finish(): string[] {
    fs.writeFileSync(path.join(this.dir, 'tracing_on'), '0');
    const text = fs.readFileSync(path.join(this.dir, 'trace'), 'utf8');
    const perCpu = path.join(this.dir, 'per_cpu');
    const overrun = fs
      .readdirSync(perCpu)
      .map((cpu) => fs.readFileSync(path.join(perCpu, cpu, 'stats'), 'utf8'))
      .reduce((sum, stats) => sum + Number(/^overrun: (\d+)/m.exec(stats)?.[1] ?? 0), 0);
    KernelTrace.remove(this.dir);
    const events = text.split('\n').filter((line) => line.trim() && !line.startsWith('#'));
    return overrun > 0 ? [...events, `(the trace lost ${overrun} events)`] : events;
  }
}

/** Polls every watched thread's state, for machines without tracefs. */
function pollStates(watched: readonly Watched[], seen: string[]): NodeJS.Timeout {
  return setInterval(() => {
    for (const vm of watched) {
      for (const pid of vm.processes.keys()) {
        for (const tid of threadsOf([pid])) {
          const state = readProcStat(pid, tid)?.state;
          if (state === 'T' || state === 't') seen.push(`${vm.name}: thread ${tid} of ${pid} in state ${state}`);
        }
      }
    }
  }, POLL_MS).unref();
}

/** Starts the foreign VMs and the watch. The fixture must be built (buildFixture). */
export async function startForeignVms(): Promise<ForeignVms> {
  const memDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-foreign-'));
  fs.chmodSync(memDir, 0o1777);
  const watched: Watched[] = [];
  const notes: string[] = [];
  try {
    watched.push(watchFixture('fixture VM of root', await startFixtureVm({ build: 'default', memDir })));
    const other = await startFixtureVm({ build: 'default', memDir, uid: OTHER_UID, gid: OTHER_UID });
    watched.push(watchFixture(`fixture VM of uid ${OTHER_UID}`, other));
    const real = findRealCrosvm();
    if ('assets' in real) watched.push(watchReal(await startRealVm({ build: 'default' }, real.assets)));
    else notes.push(`no real crosvm among them: ${real.missing}`);
  } catch (error) {
    await Promise.all(watched.map((vm) => vm.stop().catch(() => undefined)));
    throw error;
  }
  const pids = watched.flatMap((vm) => [...vm.processes.keys()]);
  const tids = watched.flatMap((vm) => vm.threads);
  const trace = KernelTrace.start(pids, tids);
  const polled: string[] = [];
  const poller = typeof trace === 'string' ? pollStates(watched, polled) : undefined;
  const how =
    typeof trace === 'string'
      ? `polling /proc every ${POLL_MS} ms (${trace}): a stop shorter than that can be missed`
      : 'a kernel trace of their stops, signals, cgroup moves and exits';
  const ticksAtStart = new Map(watched.map((vm) => [vm, vm.tick?.() ?? -1]));
  const started = [
    ...watched.map((vm) => `${vm.name}: pid ${vm.pid}, ${vm.processes.size} processes, ${vm.threads.length} threads`),
    ...notes,
  ];

  return {
    started,
    how,
    async finish() {
      const problems: string[] = [];
      let checks = 0;
      if (poller) clearInterval(poller);
      const events = typeof trace === 'string' ? polled : trace.finish();
      checks += 1;
      // The first events tell what happened; a leak can leave hundreds.
      for (const event of events.slice(0, 12)) problems.push(`touched: ${event.trim()}`);
      if (events.length > 12) problems.push(`… and ${events.length - 12} more events of the kernel trace`);
      for (const vm of watched) {
        for (const [pid, before] of vm.processes) {
          checks += 2;
          const now = readProcStat(pid);
          if (!now || now.startTime !== before.startTime) problems.push(`${vm.name}: process ${pid} is gone`);
          else if (readCgroup(pid) !== before.cgroup) {
            problems.push(`${vm.name}: process ${pid} moved to other cgroups:\n${readCgroup(pid)}`);
          }
        }
        checks += 1;
        if (CHILD_STOPPED_LINE.test(vm.log())) problems.push(`${vm.name} saw a device stop: ${vm.log().slice(-400)}`);
        if (vm.tick) {
          checks += 1;
          const [before, after] = [ticksAtStart.get(vm) ?? -1, vm.tick()];
          if (after <= before) problems.push(`${vm.name}: the guest stood still (TICK ${before} at the start, ${after} now)`);
        }
      }
      for (const vm of watched) {
        checks += 1;
        const failure = await vm.stop().catch((error: Error) => error.message);
        if (failure) problems.push(`${vm.name}: ${failure}`);
      }
      fs.rmSync(memDir, { recursive: true, force: true });
      return { problems, checks };
    },
  };
}
