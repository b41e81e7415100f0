// One JSON object per line, the format of every companion pipe, read the same way on both
// sides: a line that is not a JSON object is dropped whole (and never logged: on the root
// companion's input it may be a password sudo did not need), as is one longer than `maxLine`.
import type { Readable } from 'node:stream';

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

/** Writes one request line; resolves once it is handed to the kernel (it then arrives even if we die). */
export function writeJsonLine(stream: NodeJS.WritableStream | null | undefined, message: object): Promise<void> {
  if (!stream || (stream as { destroyed?: boolean }).destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => stream.write(JSON.stringify(message) + '\n', (error) => (error ? reject(error) : resolve())));
}
