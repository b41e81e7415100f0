// One JSON object per line, the format of every companion pipe, read the same way on both
// sides: a line that is not a JSON object is dropped whole (and never logged: on the root
// companion's input it may be a password sudo did not need), as is one longer than `maxLine`.
import * as fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';

export function readJsonLines(
  stream: Readable,
  onObject: (value: Record<string, unknown>) => void,
  onDropped: (why: 'not JSON' | 'not a JSON object' | 'too long') => void = () => undefined,
  maxLine = 1 << 20,
): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        onDropped('not JSON');
        continue;
      }
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) onObject(value as Record<string, unknown>);
      else onDropped('not a JSON object');
    }
    if (pending.length > maxLine) {
      pending = '';
      onDropped('too long');
    }
  });
}

/**
 * Writes one request line; resolves once it is handed to the kernel (it then arrives even if
 * we die). When nothing else is queued on the pipe, the line is written at once with
 * write(2), and the promise is already resolved: the write-ahead before a SIGSTOP then costs
 * no turn of the event loop, which at a debugger stop is busy with the debug adapter.
 */
export function writeJsonLine(stream: Writable | null | undefined, message: object): Promise<void> {
  if (!stream || stream.destroyed) return Promise.resolve();
  const line = JSON.stringify(message) + '\n';
  const fd = (stream as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd === 'number' && fd >= 0 && stream.writableLength === 0) {
    try {
      const bytes = Buffer.from(line);
      const written = fs.writeSync(fd, bytes);
      if (written === bytes.length) return Promise.resolve();
      // A partial write (a full pipe): the rest goes the ordinary way, in order.
      return writeAsync(stream, bytes.subarray(written));
    } catch (error) {
      // EAGAIN: the pipe is full (the companion is behind); the ordinary way queues it.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return Promise.reject(error);
    }
  }
  return writeAsync(stream, line);
}

function writeAsync(stream: Writable, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(data, (error) => (error ? reject(error) : resolve())));
}
