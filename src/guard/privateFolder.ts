// The folder that holds journals and the companion's log. It sits in shared places
// ($XDG_RUNTIME_DIR, /tmp), and whatever is read from it decides what gets signalled, so it is
// trusted only while it is ours alone, checked each time before use, and files in it are
// created without following links: a folder or link planted by another user is never used.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_APPEND } = fs.constants;

/** The facts about a folder that decide whether it is private. */
export interface FolderFacts {
  readonly isDirectory: boolean;
  readonly isSymbolicLink: boolean;
  readonly uid: number;
  readonly mode: number;
}

const facts = (st: fs.Stats): FolderFacts => ({
  isDirectory: st.isDirectory(),
  isSymbolicLink: st.isSymbolicLink(),
  uid: st.uid,
  mode: st.mode,
});

/**
 * Why `folder` (with `parent`, the folder that holds it) is not private to `uid`, or undefined
 * when it is: a real folder, not a link, owned by `uid`, writable by nobody else; and a parent
 * that nobody else can rename it out of (owned by `uid` or root, and not writable by others
 * unless sticky, as /tmp is).
 */
export function privateFolderProblem(folder: FolderFacts, parent: FolderFacts, uid: number): string | undefined {
  if (folder.isSymbolicLink || !folder.isDirectory) return 'it is not a folder (a link, or a file)';
  if (folder.uid !== uid) return `it belongs to uid ${folder.uid}, not to uid ${uid}`;
  if ((folder.mode & 0o022) !== 0) return `others may write to it (mode ${(folder.mode & 0o777).toString(8)})`;
  if (parent.uid !== uid && parent.uid !== 0) return `the folder it is in belongs to uid ${parent.uid}`;
  if ((parent.mode & 0o022) !== 0 && (parent.mode & 0o1000) === 0) return 'others may write to the folder it is in';
  return undefined;
}

/**
 * Checks `folder`, first creating it (0700) when missing and `create` is set; returns why it
 * may not be used.
 */
export function ensurePrivateFolder(folder: string, uid = process.geteuid?.() ?? -1, create = true): string | undefined {
  try {
    if (create) fs.mkdirSync(folder, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') return `it cannot be created (${code})`;
  }
  try {
    return privateFolderProblem(facts(fs.lstatSync(folder)), facts(fs.lstatSync(path.dirname(folder))), uid);
  } catch (error) {
    return `it cannot be checked (${(error as NodeJS.ErrnoException).code})`;
  }
}

/** Throws, naming the folder and the problem, unless `folder` is private (see above). */
export function assertPrivateFolder(folder: string): void {
  const problem = ensurePrivateFolder(folder);
  if (problem) throw new Error(`${folder} is not private to this user: ${problem}`);
}

/**
 * Writes `data` to `file` atomically: a new file of an unguessable name, created with
 * O_EXCL|O_NOFOLLOW (a planted file or link makes it fail rather than be followed), then
 * renamed over `file` (rename replaces a link, never writes through it).
 */
export function writePrivateFile(file: string, data: string): void {
  assertPrivateFolder(path.dirname(file));
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = fs.openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    fs.writeFileSync(fd, data);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
}

/** Opens `file` in a private folder to append, never through a link. */
export function openPrivateLog(file: string): number {
  assertPrivateFolder(path.dirname(file));
  return fs.openSync(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0o600);
}

/**
 * Where this user's windows on this host keep journals: `override` (tests), else
 * $XDG_RUNTIME_DIR/crosvm-guard, else /tmp/crosvm-guard-<uid>, else `fallback` (the
 * extension's own storage): the first that is private to this user. A root window with a
 * user's XDG_RUNTIME_DIR (`sudo -E code`) thus never uses that user's folder.
 */
export function chooseJournalFolder(options: { override?: string; runtimeDir?: string; fallback: string }): {
  folder: string;
  rejected: string[];
} {
  const uid = process.geteuid?.() ?? -1;
  const candidates = options.override
    ? [options.override]
    : [...(options.runtimeDir ? [path.join(options.runtimeDir, 'crosvm-guard')] : []), path.join(os.tmpdir(), `crosvm-guard-${uid}`)];
  const rejected: string[] = [];
  for (const folder of [...candidates, options.fallback]) {
    if (folder === options.fallback) fs.mkdirSync(path.dirname(folder), { recursive: true, mode: 0o700 });
    const problem = ensurePrivateFolder(folder, uid);
    if (!problem) return { folder, rejected };
    rejected.push(`${folder}: ${problem}`);
  }
  return { folder: options.fallback, rejected };
}
