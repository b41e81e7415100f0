// Table-driven tests of the validators everything that crosses a boundary goes through: the
// companion's requests and command line, journals read from disk, freeze cgroups named by
// someone else, and the choice of method. Each with the hostile inputs it must refuse.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { companionArgv, parseCompanionArgv, parseElevatedRequest, parseWatchRequest } from '../../src/companion/protocol';
import { CgroupHierarchy, validateFreezeCgroup } from '../../src/guard/cgroupfs';
import { parseJournal } from '../../src/guard/journal';
import { decideMethod, MethodQuestion } from '../../src/guard/methods/chooseMethod';
import type { ProcessSnapshot } from '../../src/guard/processTree';
import type { VmSnapshot } from '../../src/guard/vms';

const v2: CgroupHierarchy = { version: 2, mountPoint: '/sys/fs/cgroup', root: '/' };
const v1: CgroupHierarchy = { version: 1, mountPoint: '/sys/fs/cgroup/freezer', root: '/' };
const mounted = [v2, v1];
const group = (dir: string, originalDir = dir.slice(0, dir.lastIndexOf('/')), version = 2) => ({ version, dir, originalDir });

describe('parseElevatedRequest: what the root companion accepts', () => {
  const accepted: Array<[string, Record<string, unknown>, unknown]> = [
    [
      'a freeze with defaults filled in',
      { op: 'freeze', id: 1, pid: 1234, startTime: 5 },
      { op: 'freeze', id: 1, pid: 1234, startTime: 5, scope: 'devices', method: 'auto', excludePids: [] },
    ],
    [
      'a freeze of the whole VM by cgroup, sparing the debuggee',
      { op: 'freeze', id: 2, pid: 99, startTime: 0, scope: 'vm', method: 'cgroup', excludePids: [100] },
      { op: 'freeze', id: 2, pid: 99, startTime: 0, scope: 'vm', method: 'cgroup', excludePids: [100] },
    ],
    ['resume everything', { op: 'resume', id: 3 }, { op: 'resume', id: 3 }],
    ['resume one VM', { op: 'resume', id: 4, pid: 1234, startTime: 5 }, { op: 'resume', id: 4, vm: { pid: 1234, startTime: 5 } }],
    ['status', { op: 'status', id: 0 }, { op: 'status', id: 0 }],
    ['heartbeat', { op: 'heartbeat' }, { op: 'heartbeat' }],
    ['exit', { op: 'exit' }, { op: 'exit' }],
  ];
  for (const [name, raw, expected] of accepted) it(`accepts ${name}`, () => assert.deepEqual(parseElevatedRequest(raw), expected));

  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown op', { op: 'kill', id: 1, pid: 1234 }, /unknown op/],
    ['hold, which only the watch companion knows', { op: 'hold', processes: [] }, /unknown op/],
    ['an op that is not a string', { op: ['freeze'], id: 1 }, /unknown op/],
    ['an op from the prototype', { op: 'constructor', id: 1 }, /unknown op/],
    [
      'a field that would widen a freeze',
      { op: 'freeze', id: 1, pid: 1234, startTime: 5, assumeSwapBuild: true },
      /unexpected field assumeSwapBuild/,
    ],
    ['traced processes', { op: 'freeze', id: 1, pid: 1234, startTime: 5, includeTracedProcesses: true }, /unexpected field/],
    ['an extra field on exit', { op: 'exit', now: true }, /unexpected field now/],
    ['pid 1', { op: 'freeze', id: 1, pid: 1, startTime: 0 }, /main pid/],
    ['a negative pid', { op: 'freeze', id: 1, pid: -5, startTime: 0 }, /main pid/],
    ['a pid past pid_max', { op: 'freeze', id: 1, pid: 4_194_305, startTime: 0 }, /main pid/],
    ['a fractional pid', { op: 'freeze', id: 1, pid: 12.5, startTime: 0 }, /main pid/],
    ['a pid as a string', { op: 'freeze', id: 1, pid: '1234', startTime: 0 }, /main pid/],
    ['no start time', { op: 'freeze', id: 1, pid: 1234 }, /start time/],
    ['a negative start time', { op: 'freeze', id: 1, pid: 1234, startTime: -1 }, /start time/],
    ['an unknown scope', { op: 'freeze', id: 1, pid: 1234, startTime: 5, scope: 'host' }, /scope/],
    ['an unknown method', { op: 'freeze', id: 1, pid: 1234, startTime: 5, method: 'sigkill' }, /method/],
    ['excluded pids that are not pids', { op: 'freeze', id: 1, pid: 1234, startTime: 5, excludePids: [0] }, /excludePids/],
    [
      'too many excluded pids',
      { op: 'freeze', id: 1, pid: 1234, startTime: 5, excludePids: Array.from({ length: 65 }, (_, i) => i + 2) },
      /excludePids/,
    ],
    ['a resume with a pid and no start time', { op: 'resume', id: 1, pid: 1234 }, /or neither/],
    ['no id', { op: 'status' }, /id must be/],
    ['a negative id', { op: 'status', id: -1 }, /id must be/],
  ];
  for (const [name, raw, expected] of refused) it(`refuses ${name}`, () => assert.match(String(parseElevatedRequest(raw)), expected));
});

describe('parseWatchRequest: what the watch companion accepts', () => {
  const host = 4242;
  const ours = `/sys/fs/cgroup/user.slice/crosvm-guard-${host}-a1b2c3`;
  it('accepts hold and release with processes and freeze cgroups of its host', () => {
    const vm = { pid: 9, startTime: 6 };
    const raw = { op: 'hold', vm, method: 'cgroup', processes: [{ pid: 10, startTime: 7, label: 'virtio-net' }], cgroups: [group(ours)] };
    assert.deepEqual(parseWatchRequest(raw, host, mounted), {
      op: 'hold',
      vm,
      method: 'cgroup',
      processes: [{ pid: 10, startTime: 7, label: 'virtio-net' }],
      cgroups: [group(ours)],
    });
    assert.deepEqual(parseWatchRequest({ op: 'release', processes: [] }, host, mounted), { op: 'release', processes: [], cgroups: [] });
    assert.deepEqual(parseWatchRequest({ op: 'exit' }, host, mounted), { op: 'exit' });
  });
  it('cuts a long label to 64 characters', () => {
    const long = {
      op: 'hold',
      vm: { pid: 9, startTime: 6 },
      method: 'signal',
      processes: [{ pid: 10, startTime: 7, label: 'x'.repeat(500) }],
    };
    const parsed = parseWatchRequest(long, host, mounted);
    assert.equal(typeof parsed === 'object' && parsed.op === 'hold' ? parsed.processes[0].label.length : 0, 64);
  });
  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown op', { op: 'freeze', processes: [] }, /unknown op/],
    ['processes that are not a list', { op: 'hold', processes: { pid: 10 } }, /not a short list/],
    ['too many processes', { op: 'hold', processes: Array.from({ length: 4097 }, () => ({ pid: 10, startTime: 1 })) }, /not a short list/],
    ['pid 1', { op: 'hold', processes: [{ pid: 1, startTime: 1 }] }, /no valid pid/],
    ['a process that is null', { op: 'hold', processes: [null] }, /not an object/],
    [
      'a freeze cgroup of another host',
      { op: 'hold', processes: [], cgroups: [group('/sys/fs/cgroup/crosvm-guard-77-a1b2c3')] },
      /made by another process/,
    ],
    [
      'a cgroup not named like ours',
      { op: 'hold', processes: [], cgroups: [group('/sys/fs/cgroup/user.slice')] },
      /not named like a freeze cgroup/,
    ],
    ['a hold that names no method', { op: 'hold', method: undefined, processes: [] }, /unknown method undefined/],
    ['a hold that names no VM', { op: 'hold', vm: undefined, processes: [] }, /names no VM/],
    ['a hold of VM pid 1', { op: 'hold', vm: { pid: 1, startTime: 0 }, processes: [] }, /names no VM/],
    ['a hold by an unknown method', { op: 'hold', method: 'sigkill', processes: [] }, /unknown method sigkill/],
    [
      'freeze cgroups held by signals',
      { op: 'hold', method: 'signal', processes: [], cgroups: [group(ours)] },
      /a freeze by signals has no freeze cgroups/,
    ],
  ];
  for (const [name, raw, expected] of refused) {
    it(`refuses ${name}`, () =>
      assert.match(String(parseWatchRequest({ vm: { pid: 9, startTime: 6 }, method: 'signal', ...raw }, host, mounted)), expected));
  }
});

describe('validateFreezeCgroup: a freeze cgroup named by a journal or a host', () => {
  const name = 'crosvm-guard-4242-0a0b0c';
  it('accepts a direct child of its origin, inside a mounted hierarchy, made by the given pid', () => {
    assert.deepEqual(validateFreezeCgroup(group(`/sys/fs/cgroup/a/${name}`), mounted, 4242), group(`/sys/fs/cgroup/a/${name}`));
    assert.deepEqual(
      validateFreezeCgroup(group(`/sys/fs/cgroup/freezer/${name}`, '/sys/fs/cgroup/freezer', 1), mounted),
      group(`/sys/fs/cgroup/freezer/${name}`, '/sys/fs/cgroup/freezer', 1),
    );
  });
  const refused: Array<[string, unknown, RegExp]> = [
    ['not an object', 'x', /not an object/],
    ['an unknown version', group(`/sys/fs/cgroup/${name}`, '/sys/fs/cgroup', 3), /unknown cgroup version/],
    ['a relative path', group(`sys/fs/cgroup/${name}`, 'sys/fs/cgroup'), /plain absolute path/],
    ['a path with ..', group(`/sys/fs/cgroup/a/../${name}`, '/sys/fs/cgroup/a/..'), /plain absolute path/],
    ['a path with a NUL', group(`/sys/fs/cgroup/\0/${name}`), /plain absolute path/],
    ['a name not like ours', group('/sys/fs/cgroup/system.slice'), /not named like/],
    ['a name almost like ours', group('/sys/fs/cgroup/crosvm-guard-4242-zzzzzz'), /not named like/],
    ['a child of another cgroup than its origin', group(`/sys/fs/cgroup/a/${name}`, '/sys/fs/cgroup/b'), /not a child/],
    ['a folder outside every mounted hierarchy', group(`/etc/${name}`), /not inside a mounted/],
    ['v1 paths called v2', group(`/etc/cgroup/${name}`, '/etc/cgroup', 2), /not inside a mounted/],
    ['another maker', group(`/sys/fs/cgroup/a/crosvm-guard-77-0a0b0c`), /made by another process/],
  ];
  for (const [what, value, expected] of refused) {
    it(`refuses ${what}`, () => assert.match(String(validateFreezeCgroup(value, mounted, 4242)), expected));
  }
});

describe('parseJournal: a journal read from disk', () => {
  const valid = {
    version: 1,
    owner: { pid: 500, startTime: 9 },
    companion: { pid: 501, startTime: 10 },
    vms: [
      {
        pid: 600,
        startTime: 1,
        name: 'crosvm run',
        since: 0,
        method: 'cgroup',
        processes: [{ pid: 601, startTime: 2, label: 'virtio-net' }],
        cgroups: [group('/sys/fs/cgroup/crosvm-guard-500-abcdef')],
      },
    ],
  };
  it('accepts a journal of its own format', () => {
    const parsed = parseJournal(valid, mounted);
    assert.equal(typeof parsed, 'object');
  });
  const parsed = (value: unknown) => parseJournal(value, mounted);
  it('reads a journal written before the cgroup method as signals', () => {
    const journal = parsed({ ...valid, vms: [{ ...valid.vms[0], method: undefined, cgroups: undefined }] });
    assert.equal(typeof journal === 'object' ? journal.vms[0].method : journal, 'signal');
  });
  const refused: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /not an object/],
    ['another version', { ...valid, version: 2 }, /unknown version/],
    ['no owner', { ...valid, owner: undefined }, /no valid owner/],
    ['an invalid companion', { ...valid, companion: { pid: 'x' } }, /invalid companion/],
    ['too many VMs', { ...valid, vms: Array.from({ length: 65 }, () => valid.vms[0]) }, /not a short list/],
    ['a VM without a name', { ...valid, vms: [{ ...valid.vms[0], name: 5 }] }, /invalid VM entry/],
    ['an unknown method', { ...valid, vms: [{ ...valid.vms[0], method: 'kill' }] }, /unknown method/],
    ['cgroups for a signal freeze', { ...valid, vms: [{ ...valid.vms[0], method: 'signal' }] }, /invalid cgroups/],
    [
      'a cgroup made by another window',
      { ...valid, vms: [{ ...valid.vms[0], cgroups: [group('/sys/fs/cgroup/crosvm-guard-77-abcdef')] }] },
      /made by another process/,
    ],
    [
      'a process without a label',
      { ...valid, vms: [{ ...valid.vms[0], processes: [{ pid: 601, startTime: 2 }] }] },
      /invalid process entry/,
    ],
    [
      'a process with pid 1',
      { ...valid, vms: [{ ...valid.vms[0], processes: [{ pid: 1, startTime: 2, label: 'init' }] }] },
      /invalid process entry/,
    ],
  ];
  for (const [what, value, expected] of refused) it(`refuses ${what}`, () => assert.match(String(parsed(value)), expected));
});

describe('the companion command line', () => {
  it('round-trips both modes', () => {
    for (const args of [
      { mode: 'watch', journal: '/run/user/1000/crosvm-guard/window-5-6.json', hostPid: 4242, idleMs: 10_000 },
      { mode: 'elevated', names: ['crosvm', 'crosvm-dev'], idleMs: 300, heartbeatMs: 15_000 },
      { mode: 'elevated', names: ['crosvm', 'crosvm-*', 'crosvm.?'], idleMs: 300, heartbeatMs: 15_000 },
    ] as const) {
      assert.deepEqual(parseCompanionArgv(companionArgv(args)), args);
    }
  });
  const cases: Array<[string, string[], unknown]> = [
    ['watch with nothing given', [], { mode: 'watch', journal: undefined, hostPid: undefined, idleMs: undefined }],
    ['a host pid that is not one', ['--host-pid', '1'], { mode: 'watch', journal: undefined, hostPid: undefined, idleMs: undefined }],
    [
      'milliseconds of the wrong shape',
      ['--idle-ms', '5', '--journal', 'j'],
      { mode: 'watch', journal: 'j', hostPid: undefined, idleMs: undefined },
    ],
    ['elevated, crosvm by default', ['--elevated'], { mode: 'elevated', names: ['crosvm'], idleMs: undefined, heartbeatMs: undefined }],
    [
      'elevated with sshd among the names',
      ['--elevated', '--names', 'crosvm,sshd'],
      'invalid --names: only names that start with "crosvm"',
    ],
    ['elevated with a path as a name', ['--elevated', '--names', 'crosvm/../bash'], 'invalid --names: only names that start with "crosvm"'],
    // A wildcard before `crosvm`'s end would let root take any program for crosvm.
    ['elevated with a wildcard for a name', ['--elevated', '--names', '*'], 'invalid --names: only names that start with "crosvm"'],
    ['elevated with a wildcard inside crosvm', ['--elevated', '--names', 'cros*'], 'invalid --names: only names that start with "crosvm"'],
    [
      'elevated with too many names',
      ['--elevated', '--names', Array.from({ length: 17 }, (_, i) => `crosvm${i}`).join(',')],
      'invalid --names: only names that start with "crosvm"',
    ],
  ];
  for (const [name, argv, expected] of cases) it(name, () => assert.deepEqual(parseCompanionArgv(argv), expected));
});

describe('decideMethod: which method freezes a VM', () => {
  const process = (pid: number): ProcessSnapshot => ({
    pid,
    ppid: 1,
    label: 'd',
    state: 'S',
    startTime: 1,
    threads: 1,
    uid: 0,
    savedUid: 0,
    tracerPid: 0,
  });
  const vm = {
    main: process(100),
    devices: [process(101)],
    cmdline: [],
    exe: undefined,
    name: 'crosvm',
    threadIds: new Map(),
  } as VmSnapshot;
  const tolerant = { tolerant: true, evidence: 'a "swap monitor" process runs' };
  const intolerant = { tolerant: false, evidence: 'its executable has no vmm-swap code' };
  const unknown = { tolerant: undefined, evidence: 'its executable cannot be read' };
  const ask = (swapBuild: MethodQuestion['swapBuild'], setting: MethodQuestion['setting'], allowUnsafeSignals = false): MethodQuestion => ({
    vm,
    swapBuild,
    setting,
    scope: 'devices',
    allowUnsafeSignals,
  });
  const writable = { hierarchy: v2, placements: [{ pid: 101, dir: '/sys/fs/cgroup/x', access: 'root' as const }] };
  const denied = { hierarchy: v2, placements: [{ pid: 101, dir: '/sys/fs/cgroup/x', access: 'denied' as const }] };
  const cases: Array<[string, MethodQuestion, Parameters<typeof decideMethod>[1], number, string]> = [
    ['auto, a tolerant build: signals', ask(tolerant, 'auto'), undefined, 1000, 'signal'],
    ['auto, a build that dies on signals, cgroups writable: the cgroup freezer', ask(intolerant, 'auto'), writable, 0, 'cgroup'],
    ['auto, no proof either way, cgroups writable: the cgroup freezer', ask(unknown, 'auto'), writable, 0, 'cgroup'],
    [
      'auto, a build that dies on signals, cgroups not writable: refused, both ways out',
      ask(intolerant, 'auto'),
      denied,
      1000,
      'refused unsafe-build cgroup-denied',
    ],
    [
      'auto, a build that dies on signals, no freezer mounted: refused',
      ask(intolerant, 'auto'),
      undefined,
      1000,
      'refused unsafe-build no-freezer',
    ],
    [
      'signal, a build that dies on signals: refused, never sent',
      ask(intolerant, 'signal'),
      writable,
      0,
      'refused unsafe-build unsafe-signals',
    ],
    ['signal, the engine told to allow it (tests only)', ask(intolerant, 'signal', true), undefined, 0, 'signal'],
    ['cgroup, a tolerant build: the cgroup freezer as asked', ask(tolerant, 'cgroup'), writable, 0, 'cgroup'],
    [
      'cgroup, not writable: refused with the cgroup reason',
      ask(tolerant, 'cgroup'),
      denied,
      1000,
      'refused cgroup-unavailable cgroup-denied',
    ],
  ];
  for (const [name, question, cgroups, uid, expected] of cases) {
    it(name, () => {
      const choice = decideMethod(question, cgroups, uid);
      const got = choice.method ?? `refused ${choice.error.code} ${choice.refusal}`;
      assert.equal(got, expected, choice.why);
    });
  }
  it('a refusal names both ways out', () => {
    const choice = decideMethod(ask(intolerant, 'auto'), denied, 1000);
    assert.match(
      choice.method === undefined ? choice.error.message : '',
      /rebuild crosvm with `--features swap`.*or run crosvm in a cgroup delegated to you/s,
    );
  });
});
