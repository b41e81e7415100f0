// Table-driven tests of the /proc parsers and the other pure functions of the engine, on
// sample strings: the hostile shapes the kernel can really produce.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseChildren, parseCmdline, parseStat, parseStatus } from '../../src/guard/procfs';
import { excludedLabelMatcher, labelMatcher } from '../../src/guard/guard';
import { DEFAULT_SETTINGS } from '../../src/guard/types';
import { executableName, matchesProcessNames, shortVmName } from '../../src/guard/vms';
import { describeSignalError, FreezeError, assertLinux } from '../../src/guard/errors';

/** A stat line with the given comm and state; field 22 (start time) is 987654. */
function statLine(pid: number, comm: string, state = 'S', ppid = 100, threads = 3): string {
  const after = [state, ppid, pid, pid, 0, -1, 4194560, 100, 0, 0, 0, 5, 6, 0, 0, 20, 0, threads, 0, 987654, 1000, 200];
  return `${pid} (${comm}) ${after.join(' ')}\n`;
}

describe('parseStat', () => {
  const cases: Array<[string, string]> = [
    ['plain label', 'virtio-net'],
    ['label with a space', 'virtio snd'],
    ['label containing ") "', 'weird) dev'],
    ['label that looks like fields', ') R 1 2 3 4'],
    ['label with parentheses', '(nested) (x)'],
    ['empty label', ''],
    ['15-byte label', 'pcivirtio-block'],
  ];
  for (const [name, comm] of cases) {
    it(`reads every field after the last ")" — ${name}`, () => {
      const stat = parseStat(statLine(4242, comm, 'T', 77, 5));
      assert.deepEqual(stat, { pid: 4242, comm, state: 'T', ppid: 77, threads: 5, startTime: 987654 });
    });
  }

  it('reads tracing stop "t" and zombie "Z"', () => {
    assert.equal(parseStat(statLine(5, 'gdb target', 't'))?.state, 't');
    assert.equal(parseStat(statLine(5, 'dead', 'Z'))?.state, 'Z');
  });

  const garbage: Array<[string, string]> = [
    ['empty', ''],
    ['no parentheses', '12 crosvm S 1 2 3'],
    ['truncated after comm', '12 (crosvm) S 1'],
    ['non-numeric pid', 'abc (crosvm) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20'],
    ['multi-letter state', statLine(1, 'x', 'TT')],
    ['non-numeric start time', statLine(1, 'x').replace('987654', 'soon')],
  ];
  for (const [name, text] of garbage) {
    it(`rejects ${name}`, () => assert.equal(parseStat(text), undefined));
  }
});

describe('parseStatus', () => {
  it('reads real/effective/saved uid and TracerPid', () => {
    const text =
      'Name:\tvirtio-net\nState:\tS (sleeping)\nTgid:\t12\nPid:\t12\nPPid:\t1\nTracerPid:\t4321\nUid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n';
    assert.deepEqual(parseStatus(text), { uid: { real: 1000, effective: 1001, saved: 1002 }, tracerPid: 4321, stopPending: false });
  });
  it('tells a stop signal pending, shared or per thread, from any other pending signal', () => {
    const status = (sigPnd: string, shdPnd: string) =>
      parseStatus(`TracerPid:\t0\nUid:\t0\t0\t0\t0\nSigPnd:\t${sigPnd}\nShdPnd:\t${shdPnd}\n`)?.stopPending;
    // Bit n-1 for signal n: SIGSTOP 19 is 0x40000, SIGTSTP 20, SIGTTIN 21, SIGTTOU 22.
    assert.equal(status('0000000000000000', '0000000000040000'), true);
    assert.equal(status('0000000000200000', '0000000000000000'), true);
    assert.equal(status('0000000000020000', '0000000000000100'), false); // SIGCHLD, SIGKILL
    assert.equal(status('0000000000000000', '0000000000000000'), false);
  });
  it('is not fooled by a Name: line that imitates other lines', () => {
    const text = 'Name:\tUid: 0 0 0 0\nTracerPid:\t0\nUid:\t7\t7\t7\t7\n';
    assert.deepEqual(parseStatus(text)?.uid, { real: 7, effective: 7, saved: 7 });
  });
  it('rejects a status without the lines it needs', () => assert.equal(parseStatus('Name:\tx\n'), undefined));
});

describe('parseChildren / parseCmdline', () => {
  it('reads space-separated pids with a trailing space', () => assert.deepEqual(parseChildren('12 13 140 '), [12, 13, 140]));
  it('reads an empty children file', () => assert.deepEqual(parseChildren(''), []));
  it('drops anything that is not a pid', () => assert.deepEqual(parseChildren('12 x -3 0 1.5 7'), [12, 7]));
  it('splits NUL-separated argv', () =>
    assert.deepEqual(parseCmdline('/usr/bin/crosvm\0run\0--mem\0 1024\0'), ['/usr/bin/crosvm', 'run', '--mem', ' 1024']));
  it('keeps the last argument without a trailing NUL', () => assert.deepEqual(parseCmdline('crosvm\0run'), ['crosvm', 'run']));
});

describe('process names', () => {
  it('strips " (deleted)" of a binary rebuilt while running', () =>
    assert.equal(executableName('/src/target/debug/crosvm (deleted)'), 'crosvm'));
  it('matches the executable or argv[0]', () => {
    assert.ok(matchesProcessNames(['crosvm'], '/usr/bin/crosvm', undefined));
    assert.ok(matchesProcessNames(['crosvm'], undefined, './target/release/crosvm'));
    assert.ok(!matchesProcessNames(['crosvm'], '/usr/bin/crosvm-wrapper', 'crosvmx'));
    assert.ok(!matchesProcessNames(['crosvm'], undefined, undefined));
  });
  it('takes globs; the default finds copies named after their build, not cargo test binaries or look-alikes', () => {
    const defaults = DEFAULT_SETTINGS.processNames;
    for (const name of ['crosvm', 'crosvm-swap', 'crosvm-default', 'crosvm.debug', 'crosvm-1']) {
      assert.ok(matchesProcessNames(defaults, `/build/${name}`, undefined), name);
      assert.ok(matchesProcessNames(defaults, undefined, `./${name}`), name);
    }
    for (const name of ['crosvmx', 'crosvm_control', 'xcrosvm', 'crosvm-0123456789abcdef', 'bash']) {
      assert.ok(!matchesProcessNames(defaults, `/build/${name}`, name), name);
    }
    // cargo's test binary: never by a wildcard, still when named exactly.
    assert.ok(matchesProcessNames(['crosvm-0123456789abcdef'], '/t/deps/crosvm-0123456789abcdef', undefined));
    assert.ok(matchesProcessNames(['crosvm?dev'], undefined, 'crosvm_dev'));
    assert.ok(!matchesProcessNames(['crosvm?dev'], undefined, 'crosvm__dev'));
    assert.ok(!matchesProcessNames(['crosvm.*'], undefined, 'crosvmXdebug'), 'a dot is literal');
  });
  it('names a VM by what tells it apart: socket, disk or kernel image, memory', () => {
    assert.equal(shortVmName(['/usr/bin/crosvm', 'run', '--mem', '1024', '/img/bzImage']), 'bzImage · 1 GiB');
    assert.equal(shortVmName(['crosvm', 'run', '--disable-sandbox', '--rwdisk', 'rootfs.img', 'vmlinux']), 'rootfs.img');
    assert.equal(
      shortVmName(['crosvm', 'run', '-m', '512', '--socket', '/run/vm1.sock', '--block', 'path=/d/a.img,ro', 'bzImage']),
      'vm1.sock · a.img · 512 MiB',
    );
    assert.equal(
      shortVmName(['crosvm', '--log-level', 'debug', 'run', '--mem=size=8192', '--socket=/tmp/b.sock', 'k']),
      'b.sock · k · 8 GiB',
    );
    assert.equal(shortVmName(['crosvm', 'run', '--mem', '/tmp/m']), 'crosvm run');
    assert.equal(shortVmName(['crosvm', 'run', '--mem', '/tmp/m', '--swap']), 'crosvm run');
    assert.equal(shortVmName([]), 'crosvm');
  });
});

describe('labelMatcher', () => {
  it('matches whole labels with * and ?', () => {
    const match = labelMatcher(['swap monitor', 'virtio-*', 'vcpu?']);
    assert.ok(match('swap monitor'));
    assert.ok(match('virtio-net'));
    assert.ok(match('vcpu1'));
    assert.ok(!match('pcivirtio-net'));
    assert.ok(!match('swap monitor2'));
  });
  it('treats regex characters literally', () => {
    const match = labelMatcher(['weird) dev', 'a.b']);
    assert.ok(match('weird) dev'));
    assert.ok(!match('axb'));
  });
  it('matches nothing when empty', () => assert.ok(!labelMatcher([])('anything')));
  it("excludeLabels: the kernel's cut name or crosvm's whole label, never the view's number", () => {
    assert.ok(excludedLabelMatcher(['pcivirtio-console'])('pcivirtio-conso'));
    assert.ok(excludedLabelMatcher(['pcivirtio-conso'])('pcivirtio-conso'));
    assert.ok(excludedLabelMatcher(['*-console'])('pcivirtio-conso'));
    assert.ok(!excludedLabelMatcher(['pcivirtio-console'])('pcivirtio-cons'));
    assert.ok(excludedLabelMatcher(['serial'])('serial'));
    assert.ok(!excludedLabelMatcher(['serial #1'])('serial'));
  });
});

describe('error messages', () => {
  it('explains EPERM naming both users', () => {
    const error = Object.assign(new Error('kill EPERM'), { code: 'EPERM' });
    assert.match(describeSignalError(error, { uid: 0 }), /^crosvm runs as root; this window runs as uid \d+ and may not signal it$/);
  });
  it('lists every failed pid with its label and says what was undone', () => {
    const error = new FreezeError(10, [{ pid: 11, label: 'virtio-net', reason: 'it exited while being stopped' }], [12, 13]);
    assert.match(error.message, /virtio-net \(pid 11\): it exited while being stopped/);
    assert.match(error.message, /2 process\(es\) already stopped were resumed/);
  });
  it('refuses a host that is not Linux', () => {
    assert.throws(() => assertLinux('darwin'), /needs a Linux host \(this one is darwin\)/);
    assert.doesNotThrow(() => assertLinux('linux'));
  });
});
