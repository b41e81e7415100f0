// What bench/hostRows.ts (outside) and bench/inHost.ts (inside the extension host) exchange.

import type { SamplerHow } from './sampler';

export const BENCH_CONFIG_VARIABLE = 'CROSVM_GUARD_BENCH';
/** Where the host's /proc is, when the bench runs in a pid namespace of its own (bench.ts). */
export const HOST_PROC_VARIABLE = 'CROSVM_GUARD_BENCH_HOST_PROC';

export interface BenchConfig {
  runs: number;
  sizes: number[];
  /** The rows to measure, in this order per VM. */
  paths: HostPath[];
  resultFile: string;
  /** Progress lines, and the error that ended a failed run, for the runner to print. */
  progressFile: string;
}

export interface HostRow {
  devices: number;
  path: HostPath;
  freezeMs: number[];
  resumeMs: number[];
  /** Stops or steps the sampler lost step with (not counted). */
  missed: number;
  /**
   * Where the time of a debugger row goes, per stop: named spans in ms between the DAP
   * message, crosvm Guard's own state events in the extension host and the sampler.
   */
  spans?: Record<string, number[]>;
  note?: string;
  /** Why the row has no numbers: it failed (the run goes on with the next row). */
  failed?: string;
  /** How the sampler outside saw the threads (debugger rows). */
  sampledBy?: SamplerHow;
  /** The machine's CPUs busy, in %, in the second before the row started (debugger rows). */
  busyBeforePercent?: number;
}

export const HOST_PATHS = ['command', 'crosvm', 'js-debug', 'js-debug busy', 'lldb'] as const;
export type HostPath = (typeof HOST_PATHS)[number];
