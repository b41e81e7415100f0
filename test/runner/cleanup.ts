// One place that makes sure what the runners start (code-server's process group, the
// browser, temporary folders) is gone however the Node process ends: normal completion,
// an uncaught error, a timeout, Ctrl-C or SIGTERM from CI.
//
// Each resource registers an async disposer for the orderly path and a synchronous one for
// process 'exit', where only synchronous work is possible (kill -9, rmSync).

interface Cleanup {
  dispose(): Promise<void>;
  disposeSync(): void;
}

const pending = new Set<Cleanup>();
let handlersInstalled = false;
let shuttingDown = false;

/** True once disposeAll() has started (after Ctrl-C, for one): a process exiting now is expected. */
export function isShuttingDown(): boolean {
  return shuttingDown;
}

/** Registers a resource; the returned function runs its disposal (once, however often called). */
export function registerCleanup(cleanup: Cleanup): () => Promise<void> {
  installHandlers();
  let done: Promise<void> | undefined;
  const entry: Cleanup = {
    dispose: () => (done ??= cleanup.dispose().finally(() => pending.delete(entry))),
    disposeSync: () => cleanup.disposeSync(),
  };
  pending.add(entry);
  return entry.dispose;
}

/** Disposes everything still registered, newest first (a browser before the server it talks to). */
export async function disposeAll(): Promise<void> {
  shuttingDown = true;
  for (const entry of [...pending].reverse()) {
    await entry.dispose().catch((error: unknown) => console.error('cleanup failed:', error));
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // When `node --test` is interrupted it sends SIGTERM and exits, closing our stdout and
  // stderr. The next write (ours or a reporter's) then fails with EPIPE, and an uncaught EPIPE
  // whose report cannot be written either ends Node at once (exit code 7) with no 'exit'
  // event: code-server would be left running. Nobody reads the output any more; ignore that.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
  process.on('exit', () => {
    for (const cleanup of [...pending].reverse()) {
      try {
        cleanup.disposeSync();
      } catch {
        // Nothing more can be done while exiting.
      }
    }
  });
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping everything started by this run`);
      // A second Ctrl-C while disposing exits at once; the 'exit' handler still kills.
      process.once(signal, () => process.exit(code));
      void disposeAll().finally(() => process.exit(code));
    });
  }
}
