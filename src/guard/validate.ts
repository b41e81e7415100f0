// Validators for numbers and objects that arrive from outside (a journal on disk, a line on a
// companion's pipe): shared by the engine and the companion's protocol.

/** The kernel's largest pid is 2^22 (pid_max); 0 and 1 are never ours to touch. */
export const isPid = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 1 && v <= 4_194_304;

/** A start time: clock ticks since boot. */
export const isTicks = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{ pid, startTime }` of `v`, or undefined when either is not valid. */
export function identityOf(v: unknown): { pid: number; startTime: number } | undefined {
  return isObject(v) && isPid(v.pid) && isTicks(v.startTime) ? { pid: v.pid, startTime: v.startTime } : undefined;
}

/** `"a", "b" or "c"`: the values a field may take, for the message that refuses another. */
export function oneOf(values: readonly string[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}` : quoted.join('');
}
