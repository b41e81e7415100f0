// How both companions are started: in a session of their own (`detached`), so that neither a
// killed process group nor a closed terminal takes them down with the extension host they
// watch, and unreferenced, so that neither they nor their pipes keep the host alive at its
// shutdown. The end of their standard input (the host gone) is what makes them resume.
import { ChildProcess, spawn, StdioOptions } from 'node:child_process';

export function spawnDetached(command: string, args: readonly string[], stdio: StdioOptions, env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(command, args, { detached: true, stdio, env });
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  // A write to a companion that just died fails with EPIPE: its exit event says so, not this.
  child.stdin?.on('error', () => undefined);
  return child;
}
