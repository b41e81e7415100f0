// What bench/hostRows.ts (outside) and bench/inHost.ts (inside the extension host) exchange.

export const BENCH_CONFIG_VARIABLE = 'CROSVM_GUARD_BENCH';

export interface BenchConfig {
  runs: number;
  sizes: number[];
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
}

export type HostPath = 'command' | 'crosvm' | 'js-debug' | 'js-debug busy' | 'lldb';
