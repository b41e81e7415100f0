// Starts bench/sampler.js (a process of its own, outside the extension host) on a VM's device
// processes and hands out the moments it reports, in order.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { SamplerHow } from './sampler';

export type AllState = 'stopped' | 'running';

export class Sampler {
  private readonly seen: { all: AllState; at: bigint }[] = [];
  private wake: (() => void) | undefined;
  private exited: string | undefined;

  private constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const parsed = JSON.parse(line) as { all?: AllState; at?: string; watching?: number; how?: SamplerHow };
      if (parsed.all && parsed.at) this.seen.push({ all: parsed.all, at: BigInt(parsed.at) });
      if (parsed.watching !== undefined) this.watching = parsed.watching;
      if (parsed.how) this.how = parsed.how;
      this.wake?.();
    });
    child.on('exit', (code, signal) => {
      this.exited = `the sampler exited (${code ?? signal})`;
      this.wake?.();
    });
  }

  /** How many threads it watches, once it does. */
  watching = 0;
  /** How it watches them (see bench/sampler.ts). */
  how: SamplerHow | undefined;

  static async start(devicePids: number[]): Promise<Sampler> {
    // In a desktop VS Code the host's executable is Electron; ELECTRON_RUN_AS_NODE makes it plain Node.
    const child = spawn(process.execPath, [path.join(__dirname, 'sampler.js'), ...devicePids.map(String)], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const sampler = new Sampler(child);
    await sampler.until(() => sampler.watching > 0, 10_000);
    return sampler;
  }

  /** The next moment at which all threads were seen `all`, or undefined after `timeoutMs` or out of step. */
  async next(all: AllState, timeoutMs: number): Promise<bigint | undefined> {
    if (!(await this.until(() => this.seen.length > 0, timeoutMs))) return undefined;
    const sample = this.seen.shift()!;
    return sample.all === all ? sample.at : undefined;
  }

  /** Forget what was seen and watch for `all` from now on. */
  resync(all: AllState): void {
    this.seen.length = 0;
    this.child.stdin?.write(`phase ${all}\n`);
  }

  close(): void {
    this.child.stdin?.end();
  }

  private async until(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (this.exited) throw new Error(this.exited);
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }
}
