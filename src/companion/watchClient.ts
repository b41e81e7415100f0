// Crash safety: nothing stays frozen because VS Code died. Before every SIGSTOP, and before
// every freeze cgroup is created, the guard tells this class what is about to freeze
// (write-ahead); it hands that to the watch companion (watchServer.ts), which
// resumes it all (SIGCONT, or thaw and move back) when the extension host's end of its stdin
// closes, and records it in the journal, from which the next window resumes what a crash of
// both host and companion left behind.
import { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FreezeCgroup } from '../guard/cgroupfs';
import { openPrivateLog } from '../guard/privateFolder';
import { Journal, JOURNAL_VERSION, journalFile, removeJournal, writeJournal } from '../guard/journal';
import { currentIdentity, identityKey, ProcessIdentity } from '../guard/processTree';
import type { FreezeMethod, HeldProcess, HeldRecord } from '../guard/methods/methodDriver';
import type { FrozenProcess, SafetyNet } from '../guard/types';
import { writeJsonLine } from './jsonLines';
import { companionArgv, WatchRequest } from './protocol';
import { spawnDetached } from './spawnDetached';

/** What the companion and the journal are told of a process: who it is, not its parent. */
const held = (processes: Iterable<FrozenProcess>): HeldProcess[] =>
  [...processes].map(({ pid, startTime, label }) => ({ pid, startTime, label }));

/** A VM as the companion is told of it: its main process, without its name. */
const identity = ({ pid, startTime }: ProcessIdentity): ProcessIdentity => ({ pid, startTime });

export interface CrashSafetyOptions {
  /** Where journals live: $XDG_RUNTIME_DIR/crosvm-guard, or the extension's storage. */
  readonly journalDir: string;
  /** The built companion (dist/companion.js). */
  readonly companionScript: string;
  /** Node to run it with; in a desktop VS Code the host's execPath is Electron, run as Node. */
  readonly nodeExecutable?: string;
  readonly log: (level: 'info' | 'warn', message: string) => void;
  /** Extra environment for the companion (tests shorten its idle timeout). */
  readonly env?: Record<string, string>;
}

interface HeldVm {
  readonly vm: ProcessIdentity & { name: string };
  readonly since: number;
  readonly processes: Map<string, FrozenProcess>;
  /** Freeze cgroups by directory (the cgroup method). */
  readonly cgroups: Map<string, FreezeCgroup>;
  /** How it is frozen: after a crash, its method's undo resumes it. */
  readonly method: FreezeMethod;
}

export class CrashSafety implements SafetyNet {
  private readonly self: ProcessIdentity;
  private readonly file: string;
  private readonly held = new Map<number, HeldVm>();
  private companion: { child: ChildProcess; identity: ProcessIdentity | undefined } | undefined;
  private disposed = false;

  constructor(private readonly options: CrashSafetyOptions) {
    this.self = currentIdentity(process.pid) ?? { pid: process.pid, startTime: 0 };
    this.file = journalFile(options.journalDir, this.self);
  }

  /** The companion's pid while one runs (for the state shown to users and tests). */
  get companionPid(): number | undefined {
    return this.companion?.child.pid;
  }

  get journalPath(): string {
    return this.file;
  }

  async willStop(vm: ProcessIdentity & { name: string }, record: Omit<HeldRecord<FrozenProcess>, 'vm'>): Promise<void> {
    const { method, processes, cgroups } = record;
    let entry = this.held.get(vm.pid);
    if (!entry) this.held.set(vm.pid, (entry = { vm, since: Date.now(), processes: new Map(), cgroups: new Map(), method }));
    for (const p of processes) entry.processes.set(identityKey(p), p);
    for (const g of cgroups) entry.cgroups.set(g.dir, g);
    this.ensureCompanion();
    this.writeJournal();
    try {
      await this.send({ op: 'hold', vm: identity(vm), method, processes: held(processes), cgroups });
    } catch (error) {
      // The companion just died: its replacement (see ensureCompanion) is handed everything
      // held, these included, and the journal already lists them.
      this.options.log('warn', `Could not reach the companion (${(error as Error).message}); its replacement takes over.`);
    }
  }

  didRelease(processes: readonly FrozenProcess[], cgroups?: readonly FreezeCgroup[]): void {
    const keys = new Set(processes.map(identityKey));
    for (const [pid, entry] of this.held) {
      for (const key of keys) entry.processes.delete(key);
      for (const g of cgroups ?? []) entry.cgroups.delete(g.dir);
      if (entry.processes.size === 0 && entry.cgroups.size === 0) this.held.delete(pid);
    }
    if (this.held.size === 0) removeJournal(this.file);
    else this.writeJournal();
    void this.send({ op: 'release', processes: held(processes), cgroups: cgroups ?? [] }).catch(() => undefined);
  }

  /** Tells the companion to exit without resuming: the host has resumed everything itself. */
  dispose(): void {
    this.disposed = true;
    if (this.held.size === 0) removeJournal(this.file);
    const companion = this.companion;
    this.companion = undefined;
    const exit: WatchRequest = { op: 'exit' };
    if (companion && this.held.size === 0) companion.child.stdin?.end(JSON.stringify(exit) + '\n');
    // With processes still held, the companion keeps them: closing our end resumes them.
    else companion?.child.stdin?.end();
  }

  private ensureCompanion(): void {
    if (this.companion || this.disposed) return;
    let logFd: number | 'ignore' = 'ignore';
    try {
      logFd = openPrivateLog(path.join(this.options.journalDir, 'companion.log'));
    } catch (error) {
      this.options.log('warn', `The companion runs without a log: ${(error as Error).message}`);
    }
    let child: ChildProcess;
    try {
      const args = [this.options.companionScript, ...companionArgv({ mode: 'watch', journal: this.file, hostPid: process.pid })];
      const env = { ...process.env, ...this.options.env, ELECTRON_RUN_AS_NODE: '1' };
      child = spawnDetached(this.options.nodeExecutable ?? process.execPath, args, ['pipe', 'ignore', logFd], env);
    } finally {
      if (logFd !== 'ignore') fs.closeSync(logFd);
    }
    const companion = { child, identity: child.pid ? currentIdentity(child.pid) : undefined };
    this.companion = companion;
    this.options.log('info', `Started the companion (pid ${child.pid}) that resumes the VM if this window dies.`);
    child.on('exit', (code, signal) => {
      if (this.companion !== companion) return;
      this.companion = undefined;
      if (this.held.size === 0 || this.disposed) return;
      // It died while holding frozen processes: a new one takes over what it held.
      this.options.log(
        'warn',
        `The companion (pid ${child.pid}) ended (${signal ?? code}) while processes are frozen; starting a new one.`,
      );
      this.ensureCompanion();
      this.writeJournal();
      for (const { vm, method, processes, cgroups } of this.held.values()) {
        const record = { vm: identity(vm), method, processes: held(processes.values()), cgroups: [...cgroups.values()] };
        void this.send({ op: 'hold', ...record }).catch(() => undefined);
      }
    });
  }

  /** Resolved once handed to the kernel: from then on it reaches the companion even if we die. */
  private send(message: WatchRequest): Promise<void> {
    return writeJsonLine(this.companion?.child.stdin, message);
  }

  private writeJournal(): void {
    const journal: Journal = {
      version: JOURNAL_VERSION,
      owner: this.self,
      companion: this.companion?.identity,
      vms: [...this.held.values()].map(({ vm, since, processes, cgroups, method }) => ({
        pid: vm.pid,
        startTime: vm.startTime,
        name: vm.name,
        since,
        method,
        processes: held(processes.values()),
        cgroups: [...cgroups.values()],
      })),
    };
    try {
      writeJournal(this.file, journal);
    } catch (error) {
      // The companion still covers a crash of the host; only the both-died case loses out.
      this.options.log('warn', `Could not write the journal ${this.file}: ${(error as Error).message}`);
    }
  }
}
