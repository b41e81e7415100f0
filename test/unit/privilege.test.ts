// Table-driven tests of the pure functions the privilege model rests on, each with the
// hostile inputs it must refuse: who started the root companion, which folders are private,
// what other extensions may ask of a freeze.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { judgeInvoker, StartFacts } from '../../src/companion/elevatedServer';
import { FolderFacts, privateFolderProblem } from '../../src/guard/privateFolder';
import { apiFreezeRequest } from '../../src/ui/api';
import { mappedByVm } from '../../src/guard/processTree';
import { parseUidMap } from '../../src/guard/procfs';

describe('judgeInvoker: who started the root companion', () => {
  const self = { ppid: 500, startTime: 1000 };
  const sudo = (uid: number, startTime = 990) => ({ uid, startTime, isSudo: true });
  const other = (uid: number, startTime = 990) => ({ uid, startTime, isSudo: false });
  const cases: Array<[string, StartFacts, { uid: number } | RegExp]> = [
    ['sudo run by uid 1000 (its real uid)', { self, parent: sudo(1000), pkexecUid: undefined }, { uid: 1000 }],
    ['sudo run by root', { self, parent: sudo(0), pkexecUid: undefined }, { uid: 0 }],
    ['sudo started in the same clock tick', { self, parent: sudo(1000, 1000), pkexecUid: undefined }, { uid: 1000 }],
    ['sudo, and a PKEXEC_UID some sudoers policy let through: sudo wins', { self, parent: sudo(1000), pkexecUid: '1002' }, { uid: 1000 }],
    ['pkexec: its PKEXEC_UID, whatever the parent', { self, parent: other(1002), pkexecUid: '1000' }, { uid: 1000 }],
    [
      'pkexec, its caller gone and the companion adopted by init',
      { self: { ppid: 1, startTime: 1000 }, parent: other(0, 0), pkexecUid: '1000' },
      { uid: 1000 },
    ],
    ['a root process that is not sudo: root itself', { self, parent: other(0), pkexecUid: undefined }, { uid: 0 }],
    // The re-parenting attack: the caller killed sudo and a subreaper of uid 1002 adopted it.
    [
      'adopted by an older subreaper of another user',
      { self, parent: other(1002, 500), pkexecUid: undefined },
      /is not sudo, and pkexec did not start it/,
    ],
    ['started by a user process directly', { self, parent: other(1000), pkexecUid: undefined }, /uid 1000\), is not sudo/],
    ['orphaned: its parent is init', { self: { ppid: 1, startTime: 1000 }, parent: other(0, 0), pkexecUid: undefined }, /orphaned/],
    ['no parent pid at all', { self: { ppid: 0, startTime: 1000 }, parent: undefined, pkexecUid: undefined }, /orphaned/],
    ['its parent has exited', { self, parent: undefined, pkexecUid: undefined }, /has exited/],
    ['the pid of its parent now names a younger sudo', { self, parent: sudo(1000, 1001), pkexecUid: undefined }, /younger/],
    ['a PKEXEC_UID that is no uid', { self, parent: other(0), pkexecUid: '1000 ' }, /PKEXEC_UID is not a uid/],
    ['a PKEXEC_UID out of range', { self, parent: other(0), pkexecUid: '4294967295' }, /PKEXEC_UID is not a uid/],
  ];
  for (const [name, facts, expected] of cases) {
    it(name, () => {
      const judged = judgeInvoker(facts);
      if (expected instanceof RegExp) assert.match('problem' in judged ? judged.problem : 'no problem', expected);
      else assert.deepEqual(judged, expected);
    });
  }
});

describe('privateFolderProblem', () => {
  const mine: FolderFacts = { isDirectory: true, isSymbolicLink: false, uid: 1000, mode: 0o40700 };
  const tmp: FolderFacts = { isDirectory: true, isSymbolicLink: false, uid: 0, mode: 0o41777 };
  const home: FolderFacts = { isDirectory: true, isSymbolicLink: false, uid: 1000, mode: 0o40755 };
  const cases: Array<[string, FolderFacts, FolderFacts, RegExp | undefined]> = [
    ['ours, 0700, in /tmp', mine, tmp, undefined],
    ['ours, 0755, in our runtime folder', { ...mine, mode: 0o40755 }, home, undefined],
    ['a link to a folder', { ...mine, isSymbolicLink: true }, tmp, /not a folder/],
    ['a file', { ...mine, isDirectory: false }, tmp, /not a folder/],
    ['made by another user', { ...mine, uid: 1001 }, tmp, /belongs to uid 1001/],
    ['made by root, for a user', { ...mine, uid: 0 }, tmp, /belongs to uid 0/],
    ['ours but group-writable', { ...mine, mode: 0o40770 }, tmp, /others may write to it \(mode 770\)/],
    ['ours but world-writable', { ...mine, mode: 0o40777 }, tmp, /others may write to it/],
    ["ours, inside another user's runtime folder", mine, { ...home, uid: 1001 }, /folder it is in belongs to uid 1001/],
    [
      'ours, inside a world-writable folder without the sticky bit',
      mine,
      { ...tmp, mode: 0o40777 },
      /others may write to the folder it is in/,
    ],
  ];
  for (const [name, folder, parent, expected] of cases) {
    it(name, () => {
      const problem = privateFolderProblem(folder, parent, 1000);
      if (expected) assert.match(problem ?? 'none', expected);
      else assert.equal(problem, undefined);
    });
  }
});

describe('apiFreezeRequest: what another extension may ask of a freeze', () => {
  it('keeps what a person could choose', () => {
    assert.deepEqual(apiFreezeRequest({ scope: 'vm', method: 'cgroup', excludePids: [42] }), {
      scope: 'vm',
      method: 'cgroup',
      excludePids: [42],
    });
    assert.deepEqual(apiFreezeRequest(undefined), {});
  });
  it('drops what no setting offers: signals on a build not proven safe, a forced cgroup version', () => {
    assert.deepEqual(apiFreezeRequest({ allowUnsafeSignals: true, cgroupVersion: 1, method: 'signal' }), {
      scope: undefined,
      method: 'signal',
      excludePids: undefined,
    });
  });
  const refused: Array<[string, unknown, RegExp]> = [
    ['not an object', 'signal', /must be an object/],
    ['an unknown scope', { scope: 'everything' }, /scope must be/],
    ['an unknown method', { method: 'kill' }, /method must be/],
    ['pids that are not pids', { excludePids: [1.5] }, /excludePids must be/],
    ['pids that are not a list', { excludePids: 42 }, /excludePids must be/],
  ];
  for (const [name, options, expected] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => apiFreezeRequest(options), expected));
  }
});

describe('mappedByVm: a device under a uid the VM mapped itself', () => {
  // As /proc shows them to root in the initial user namespace.
  const host = '         0          0 4294967295\n';
  const fsDevice = '         0       1000          1\n'; // --shared-dir …:uidmap=0 1000 1 (real crosvm)
  const cases: Array<[string, number, string | undefined, string | undefined, boolean]> = [
    ["crosvm's fs device: its own namespace maps uid 1000", 1000, fsDevice, host, true],
    ['another uid than the one its namespace maps', 1001, fsDevice, host, false],
    ['a range that holds it (subordinate ids)', 100_123, '0 100000 65536\n', host, true],
    ['just past the range', 165_536, '0 100000 65536\n', host, false],
    ["setuid() in the VM's own namespace (the fixture's foreign-dev): proves nothing", 65534, host, host, false],
    ["a namespace with the VM's very map: proves nothing", 1000, host, host, false],
    ['its map could not be read', 1000, undefined, host, false],
    ["the VM's map could not be read", 1000, fsDevice, undefined, false],
    ['garbage for a map', 1000, '0 1000\nx y z\n', host, false],
  ];
  for (const [name, uid, map, vmMap, expected] of cases) it(name, () => assert.equal(mappedByVm(uid, map, vmMap), expected));

  it('parses uid_map lines, dropping lines of another shape', () => {
    assert.deepEqual(parseUidMap('         0       1000          1\n  5 6 7\nbad\n1 2\n'), [
      { inside: 0, outside: 1000, count: 1 },
      { inside: 5, outside: 6, count: 7 },
    ]);
  });
});
