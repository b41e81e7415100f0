// Journals and the companion's log live in shared places ($XDG_RUNTIME_DIR, /tmp). A folder
// another user made or can change, and links planted in it, must never be followed, trusted
// or acted on. uid 65534 plays the other user (root chowns what it "made"), as on CI.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { CrashSafety } from '../../src/companion/watchClient';
import { Journal, journalFile, readJournals, recoverLeftovers, writeJournal } from '../../src/guard/journal';
import { chooseJournalFolder } from '../../src/guard/privateFolder';
import { currentIdentity } from '../../src/guard/processTree';
import { startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, sleep } from './procState';

const OTHER = 65534;
const self = currentIdentity(process.pid) as { pid: number; startTime: number };
const made: string[] = [];
const safeties: CrashSafety[] = [];
const companionScript = path.resolve(__dirname, '..', '..', '..', 'dist', 'companion.js');

afterEach(async () => {
  for (const safety of safeties.splice(0)) safety.dispose();
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  await stopAllFixtureVms();
});

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A root-only file that a planted link points at: it must keep its content. */
function precious(): { file: string; unchanged: () => boolean } {
  const file = path.join(tempDir('crosvm-guard-precious-'), 'root-only');
  fs.writeFileSync(file, 'precious\n', { mode: 0o600 });
  return { file, unchanged: () => fs.readFileSync(file, 'utf8') === 'precious\n' };
}

/** A folder "made by" uid 65534, as if another user had created it first. */
function othersFolder(at?: string): string {
  const dir = at ?? path.join(tempDir('crosvm-guard-parent-'), 'crosvm-guard');
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(path.dirname(dir), 0o1777);
  fs.chownSync(dir, OTHER, OTHER);
  fs.chmodSync(dir, 0o755);
  return dir;
}

const journalOf = (processes: Array<{ pid: number; startTime: number; label: string }>, vmPid: number): Journal => ({
  version: 1,
  // An owner that no longer runs: its leftovers are up for recovery.
  owner: { pid: 4_000_000, startTime: 1 },
  companion: undefined,
  vms: [{ pid: vmPid, startTime: 1, name: 'crosvm', since: 0, method: 'signal', processes, cgroups: [] }],
});

describe('the journal folder', () => {
  it('a link planted at the name of the temporary file is never written through', () => {
    const dir = tempDir('crosvm-guard-journal-');
    const target = precious();
    const file = journalFile(dir, self);
    // The names the previous code used, and a few more: whatever is planted is not followed.
    for (const name of [`${file}.${process.pid}.tmp`, `${file}.tmp`]) fs.symlinkSync(target.file, name);
    writeJournal(file, journalOf([], 2));
    assert.ok(target.unchanged(), 'the journal was written through a planted link');
    assert.equal(readJournals(dir).filter((e) => e.journal).length, 1);
  });

  it('a folder of another user is neither written nor read: its journals are not acted on', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 1 });
    const device = vm.devices[0];
    process.kill(device.pid, 'SIGSTOP');
    assert.ok(await eventually(() => isFullyStopped(device.pid)));
    const dir = othersFolder();
    const startTime = currentIdentity(device.pid)?.startTime as number;
    // A journal that, trusted, would resume the device: planted by the other user.
    fs.writeFileSync(
      journalFile(dir, { pid: 4_000_000, startTime: 1 }),
      JSON.stringify(journalOf([{ pid: device.pid, startTime, label: device.label }], vm.pid)),
    );
    assert.deepEqual(readJournals(dir), []);
    const recovery = recoverLeftovers(dir, ['crosvm'], self);
    assert.deepEqual(recovery.vms, []);
    await sleep(50);
    assert.ok(isFullyStopped(device.pid), 'a journal in a folder of another user was acted on');
    assert.throws(() => writeJournal(journalFile(dir, self), journalOf([], 2)), /is not private to this user: it belongs to uid 65534/);
    process.kill(device.pid, 'SIGCONT');
  });

  it("a root window with another user's XDG_RUNTIME_DIR keeps its journals elsewhere", () => {
    const runtime = tempDir('crosvm-guard-runtime-');
    fs.chownSync(runtime, OTHER, OTHER); // /run/user/<uid> of that user, as `sudo -E code` passes it
    const fallback = path.join(tempDir('crosvm-guard-storage-'), 'journal');
    const chosen = chooseJournalFolder({ runtimeDir: runtime, fallback });
    assert.notEqual(path.dirname(chosen.folder), runtime);
    assert.match(chosen.rejected[0], /the folder it is in belongs to uid 65534|belongs to uid 65534/);
  });

  it('removed while a window runs and re-created by another user: the next journal and log are refused, nothing is written there', async () => {
    const vm = await startFixtureVm({ build: 'swap', devices: 1 });
    const parent = tempDir('crosvm-guard-parent-');
    fs.chmodSync(parent, 0o1777); // like /tmp
    const dir = path.join(parent, 'crosvm-guard-0');
    fs.mkdirSync(dir, { mode: 0o700 });
    const logs: string[] = [];
    const first = new CrashSafety({ journalDir: dir, companionScript, log: (_level, message) => logs.push(message) });
    safeties.push(first);
    const vmRef = { pid: vm.pid, startTime: currentIdentity(vm.pid)?.startTime as number, name: 'crosvm' };
    const device = { pid: vm.devices[0].pid, startTime: currentIdentity(vm.devices[0].pid)?.startTime as number, label: 'x', ppid: vm.pid };
    const held = { method: 'signal' as const, processes: [device], cgroups: [] };
    await first.willStop(vmRef, held);
    assert.ok(fs.existsSync(first.journalPath));
    // Gone while the window runs (a tmp cleaner), and made again by the other user, links planted.
    fs.rmSync(dir, { recursive: true, force: true });
    othersFolder(dir);
    const target = precious();
    fs.symlinkSync(target.file, path.join(dir, 'companion.log'));
    fs.symlinkSync(target.file, `${first.journalPath}.${process.pid}.tmp`);
    await first.willStop(vmRef, held);
    assert.ok(
      logs.some((m) => /Could not write the journal .*is not private to this user: it belongs to uid 65534/.test(m)),
      logs.join('\n'),
    );
    // A second window starting its companion there: no log opened through the link.
    const second = new CrashSafety({ journalDir: dir, companionScript, log: (_level, message) => logs.push(message) });
    safeties.push(second);
    await second.willStop(vmRef, held);
    assert.ok(
      logs.some((m) => /The companion runs without a log: .*not private/.test(m)),
      logs.join('\n'),
    );
    assert.ok(target.unchanged(), 'a planted link was written through');
    const ours = fs
      .readdirSync(dir)
      .filter((name) => fs.lstatSync(path.join(dir, name)).uid !== OTHER && !fs.lstatSync(path.join(dir, name)).isSymbolicLink());
    assert.deepEqual(ours, [], "files were written into the other user's folder");
    first.didRelease([device]);
    second.didRelease([device]);
  });
});
