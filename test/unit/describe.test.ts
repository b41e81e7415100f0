// The wording of the tree, the status bar and the picker: plurals, states, and Markdown that
// shows other users' process names and command lines literally.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  codeBlock,
  codeSpan,
  debugTargetsSentence,
  escapeMarkdown,
  plural,
  processTooltip,
  shortRefusal,
  skipWords,
  statusSummary,
  vmDescription,
  vmStateKind,
  vmTooltip,
} from '../../src/ui/describe';
import type { VmView } from '../../src/ui/controller';
import { discoveryLine, frozeLine } from '../../src/ui/logText';
import type { ProcessSnapshot } from '../../src/guard';
import { processName } from '../../src/ui/viewModel';

const HOSTILE = '**x**[y](z)';

function proc(over: Partial<ProcessSnapshot> = {}): ProcessSnapshot {
  return {
    pid: 200,
    ppid: 100,
    label: 'virtio-net',
    state: 'S',
    startTime: 5,
    threads: 1,
    uid: 1000,
    savedUid: 1000,
    tracerPid: 0,
    ...over,
  };
}

function view(over: Partial<VmView> = {}, main: Partial<ProcessSnapshot> = {}, cmdline = ['crosvm', 'run', 'bzImage']): VmView {
  const snapshot = {
    main: proc({ pid: 100, ppid: 1, label: 'crosvm', threads: 3, ...main }),
    cmdline,
    exe: '/usr/bin/crosvm',
    name: 'bzImage',
    devices: [proc()],
    threadIds: new Map(),
  };
  return {
    snapshot,
    swapBuild: { tolerant: true, evidence: 'a "swap monitor" process (pid 201) runs: vmm-swap is enabled for this VM' },
    frozen: undefined,
    frozenElsewhere: undefined,
    method: { method: 'signal', why: 'signals: a "swap monitor" process (pid 201) runs: vmm-swap is enabled for this VM' },
    placements: new Map(),
    needsElevation: undefined,
    ...over,
  } as VmView;
}

/** The text a Markdown renderer shows for escaped text: each backslash escape undone. */
const shown = (markdown: string) => markdown.replace(/\\(.)/g, '$1');

describe('Markdown escaping', () => {
  it('escapes every character Markdown could read as syntax', () => {
    const escaped = escapeMarkdown(HOSTILE);
    assert.equal(escaped, '\\*\\*x\\*\\*\\[y\\]\\(z\\)');
    assert.equal(shown(escaped), HOSTILE);
    assert.doesNotMatch(escapeMarkdown('$(zap) <img src=x> `a`\nb'), /(^|[^\\])[$<`(]/);
    assert.doesNotMatch(escapeMarkdown('a\nb'), /\n/);
  });

  it('fences code so that no backtick run in it closes the fence', () => {
    assert.equal(codeBlock('a ``` b\n[c](d)'), '````\na ``` b [c](d)\n````\n');
    assert.equal(codeSpan('S'), '`S`');
    assert.equal(codeSpan('a`b'), '`` a`b ``');
  });

  it("a process's tooltip shows its name literally", () => {
    const md = processTooltip(view(), proc({ label: HOSTILE }), undefined);
    assert.ok(!md.includes(HOSTILE), md);
    assert.ok(md.includes(escapeMarkdown(HOSTILE)), md);
  });

  it("a VM's tooltip shows its name literally and its command line in a fence it cannot close", () => {
    const v = view({ snapshot: { ...view().snapshot, name: HOSTILE, cmdline: ['crosvm', 'run', '```\n[link](command:x)', HOSTILE] } });
    const md = vmTooltip(v);
    const fenced = /^(`{3,})shell\n(.*)\n\1$/m.exec(md);
    assert.ok(fenced && fenced[1].length > 3, md);
    assert.ok(!md.replace(fenced[0], '').includes(HOSTILE), md);
  });
});

describe('wording', () => {
  it('says 1 thread, 2 threads', () => {
    assert.equal(plural(1, 'thread'), '1 thread');
    assert.equal(plural(2, 'thread'), '2 threads');
    assert.equal(plural(1, 'device process', 'device processes'), '1 device process');
    assert.match(processTooltip(view(), proc({ threads: 1 }), undefined), /· 1 thread ·/);
  });

  it('says each reason once in a VM tooltip', () => {
    const md = vmTooltip(view());
    assert.equal(md.split('swap monitor').length - 1, 1, md);
  });

  it('says on the row when the vCPUs are frozen too', () => {
    const frozen = (scope: 'devices' | 'vm') => ({
      vm: { pid: 100, startTime: 5, name: 'x' },
      scope,
      method: 'signal' as const,
      since: 0,
      processes: scope === 'vm' ? [proc(), proc({ pid: 100 })] : [proc()],
      skipped: [],
    });
    const since = new Date(0).toTimeString().slice(0, 8);
    assert.equal(vmDescription(view({ frozen: frozen('vm') })), `frozen with vCPUs since ${since} · pid 100`);
    assert.equal(vmDescription(view({ frozen: frozen('devices') })), `frozen since ${since} · pid 100`);
    assert.match(vmTooltip(view({ frozen: frozen('vm') })), /every vCPU thread/);
  });

  it('names the state of a VM that cannot be frozen or needs administrator rights', () => {
    const refused = {
      method: undefined,
      why: 'signals would shut it down',
      error: new Error('no'),
      refusal: 'unsafe-signals',
    } as unknown as VmView['method'];
    assert.equal(vmDescription(view({ method: refused })), 'cannot be frozen · pid 100');
    assert.equal(vmDescription(view({ needsElevation: 'signals' }, { uid: 0 })), 'needs admin (uid 0) · pid 100');
  });
});

const frozenVm = (over: { since?: number; skipped?: unknown[]; processes?: ProcessSnapshot[] } = {}) =>
  ({
    vm: { pid: 100, startTime: 5, name: 'x' },
    scope: 'devices' as const,
    method: 'signal' as const,
    since: over.since ?? 0,
    processes: over.processes ?? [],
    skipped: over.skipped ?? [],
  }) as unknown as VmView['frozen'];

describe('partly frozen: a VM with a device left running', () => {
  const traced = proc({ pid: 201, label: 'virtio-blk', tracerPid: 9 });
  const net = proc();
  const skipped = [
    { pid: 201, startTime: 5, label: 'virtio-blk', reason: 'traced', detail: 'a debugger (pid 9) is attached; it owns this process' },
  ];
  const partly = view({
    snapshot: { ...view().snapshot, devices: [net, traced] },
    frozen: frozenVm({ processes: [net], skipped }),
  });

  it('is its own state, named on the row, in the tooltip and in the picker', () => {
    assert.equal(vmStateKind(partly), 'partlyFrozen');
    assert.match(vmDescription(partly), /^partly frozen, 1 left running since /);
    assert.match(
      shown(vmTooltip(partly)),
      /Partly frozen.*\n\nStill running, writing guest memory: virtio-blk 201, left running: a debugger \(pid 9\) is attached/s,
    );
  });

  it('is frozen, not partly, when what it skipped stays stopped', () => {
    const stopped = proc({ pid: 201, label: 'virtio-snd', state: 'T' });
    const already = [{ pid: 201, startTime: 5, label: 'virtio-snd', reason: 'already-stopped', detail: 'x' }];
    const v = view({ snapshot: { ...view().snapshot, devices: [net, stopped] }, frozen: frozenVm({ processes: [net], skipped: already }) });
    assert.equal(vmStateKind(v), 'frozen');
    assert.match(shown(vmTooltip(v)), /virtio-snd 201: skipped, already stopped \(stays stopped\)\./);
  });

  it('a device frozen but not yet seen stopped is not "left running"', () => {
    assert.equal(vmStateKind(view({ frozen: frozenVm({ processes: [proc()] }) })), 'frozen');
  });

  it('says skip reasons in words, never the internal code', () => {
    assert.equal(skipWords({ reason: 'already-stopped', detail: '' }), 'skipped, already stopped (stays stopped)');
    assert.equal(skipWords({ reason: 'traced', detail: skipped[0].detail }), 'left running: a debugger (pid 9) is attached');
    assert.doesNotMatch(skipWords({ reason: 'excluded', detail: '' }), /\(excluded\)/);
  });
});

describe('the status bar summary', () => {
  const idle = { automatic: false, manual: false, notFrozen: [] };
  const a = view({ frozen: frozenVm({ since: 1000, processes: [proc()] }) });
  const b = view({}, { pid: 300 });

  it('one VM frozen: its device count and its clock', () => {
    const s = statusSummary([a], idle, 35_000);
    assert.equal(s.text, '$(debug-pause) crosvm 1 frozen 0:34');
    assert.equal(s.look, 'frozen');
    assert.ok(s.ticking);
  });

  it("one of two VMs frozen: says so, with that VM's clock", () => {
    assert.equal(statusSummary([a, b], idle, 2000).text, '$(debug-pause) crosvm 1 of 2 VMs frozen 0:01');
  });

  it('two VMs frozen at different times: no single clock (each row has its own)', () => {
    const a2 = view({ frozen: frozenVm({ since: 30_000, processes: [proc()] }) }, { pid: 300 });
    const s = statusSummary([a, a2], idle, 35_000);
    assert.equal(s.text, '$(debug-pause) crosvm 2 VMs frozen');
    assert.ok(!s.ticking);
  });

  it('partly frozen has its own look and names the device', () => {
    const traced = proc({ pid: 201, label: 'virtio-blk', tracerPid: 9 });
    const p = view({ snapshot: { ...view().snapshot, devices: [proc(), traced] }, frozen: frozenVm({ since: 0, processes: [proc()] }) });
    const s = statusSummary([p], idle, 5000);
    assert.equal(s.text, '$(warning) crosvm partly frozen 0:05');
    assert.equal(s.look, 'partlyFrozen');
    assert.match(s.label, /still running: virtio-blk 201/);
  });

  it("another window's freeze does not look like running, and a click is said to resume", () => {
    const other = view({ frozenElsewhere: { ownerPid: 77, method: 'signal', processes: [], cgroups: [] } });
    const s = statusSummary([other], idle, 0);
    assert.equal(s.text, '$(debug-pause) crosvm frozen by another window');
    assert.equal(s.look, 'frozenElsewhere');
    assert.match(s.label, /Click to resume it here/);
    assert.doesNotMatch(s.label, /Click to freeze/);
  });

  it('a VM a stop could not freeze is red even while another is frozen', () => {
    const s = statusSummary([a, b], { automatic: true, manual: false, notFrozen: [{ pid: 300 }] }, 2000);
    assert.equal(s.text, '$(warning) crosvm auto: 1 of 2 VMs not frozen');
    assert.equal(s.look, 'notFrozenAtStop');
  });

  it('marks manual control', () => {
    assert.equal(statusSummary([b], { automatic: false, manual: true, notFrozen: [] }, 0).text, '$(vm-running) crosvm 1 manual');
  });
});

describe('the log', () => {
  it('states the swap evidence once per VM in its discovery line', () => {
    const line = discoveryLine(view());
    assert.equal(line.split('vmm-swap is enabled').length - 1, 1, line);
    assert.match(line, /freeze method signal$/);
  });

  it('says skip reasons in words and a partial freeze as such', () => {
    const report = {
      vm: { pid: 100, startTime: 5, name: 'x' },
      scope: 'devices',
      method: 'signal',
      methodReason: 'signals',
      frozen: [proc()],
      skipped: [
        { pid: 201, startTime: 5, label: 'virtio-blk', reason: 'traced', detail: 'a debugger (pid 9) is attached; it owns this process' },
      ],
      elapsedMs: 1,
    } as unknown as Parameters<typeof frozeLine>[0];
    const line = frozeLine(report);
    assert.match(line, /\(partly frozen\)/);
    assert.match(line, /virtio-blk 201 left running: a debugger \(pid 9\) is attached/);
  });
});

describe('refusals in a notification', () => {
  it('are short, plain text, and leave the details to the log', () => {
    const long =
      'Not freezing crosvm VM 42: no "swap monitor" process runs, so stopping its device processes would make crosvm shut the VM down; ' +
      'and the cgroup freezer, which crosvm does not notice, is not open here: uid 1000 may not write /sys/fs/cgroup/x. Two ways out: ' +
      'rebuild crosvm with `--features swap` (or add its executable to crosvmGuard.assumeSwapBuild if it was), or delegate.';
    const short = shortRefusal({ code: 'unsafe-build', message: long });
    assert.match(short, /^Not freezing crosvm VM 42: .*--features swap.*cgroup freezer is not open here\. Show Log/);
    assert.doesNotMatch(short, /`/);
    assert.ok(short.split(/\s+/).length <= 40, short);
  });
});

describe('which VMs a debug session freezes, and why', () => {
  const session = {
    session: 'crosvm (gdb attach)',
    automatic: true,
    manual: false,
    target: 'auto' as const,
    debuggeePid: undefined,
    asked: undefined,
  };
  const vms = [view(), view({}, { pid: 300 })];

  it('names the VM the debuggee belongs to', () => {
    assert.match(
      debugTargetsSentence({ ...session, debuggeePid: 100 }, vms),
      /freezes VM 100 at each stop: the debuggee \(pid 100\) is its main process/,
    );
    assert.match(
      debugTargetsSentence({ ...session, debuggeePid: 200 }, vms),
      /freezes VM 100 at each stop: the debuggee \(pid 200\) is one of its processes/,
    );
  });

  it('names your VMs when the debuggee is not known yet or no VM', () => {
    assert.match(
      debugTargetsSentence(session, vms, 1000),
      /freezes your VMs \(100, 300\) at each stop: its debugger has not reported the debuggee's pid/,
    );
    assert.match(
      debugTargetsSentence({ ...session, debuggeePid: 4242 }, vms, 1000),
      /your VMs \(100, 300\) at each stop: the debuggee \(pid 4242\) is no crosvm VM/,
    );
  });

  it('says which VM cannot be frozen rather than "all"', () => {
    const refused = { method: undefined, why: 'no', error: new Error('no'), refusal: 'unsafe-signals' } as unknown as VmView['method'];
    const mixed = [view(), view({ method: refused }, { pid: 300 })];
    assert.match(debugTargetsSentence(session, mixed, 1000), /VM 300 cannot be frozen and keeps running\./);
  });

  it('tells manual control from the setting being off', () => {
    const manual = debugTargetsSentence({ ...session, automatic: false, manual: true }, vms);
    assert.match(manual, /manual control/);
    assert.doesNotMatch(manual, /autoFreeze/);
    assert.doesNotMatch(debugTargetsSentence({ ...session, automatic: false }, vms), /manual control/);
  });

  it('follows the settings and escapes the session name', () => {
    assert.match(debugTargetsSentence({ ...session, target: 'all' }, vms), /every VM at each stop/);
    assert.match(debugTargetsSentence({ ...session, target: 'ask' }, vms), /asks at its first stop/);
    assert.match(debugTargetsSentence({ ...session, target: 'ask', asked: [300] }, vms), /freezes VM 300 at each stop, as you chose/);
    assert.match(debugTargetsSentence({ ...session, automatic: false }, vms), /freezes nothing by itself/);
    assert.ok(!debugTargetsSentence({ ...session, session: HOSTILE }, vms).includes(HOSTILE));
  });
});

describe('process names: crosvm labels the kernel cut, identical siblings numbered', () => {
  // As real crosvm shows them (shared/real-crosvm/README.md): four `serial` processes, and
  // `pcivirtio-console` cut to 15 bytes.
  const serials = [
    proc({ pid: 305, label: 'serial', startTime: 12 }),
    proc({ pid: 303, label: 'serial', startTime: 11 }),
    proc({ pid: 309, label: 'serial', startTime: 11 }),
    proc({ pid: 301, label: 'serial', startTime: 13 }),
  ];
  const cons = proc({ pid: 302, label: 'pcivirtio-conso' });
  const video = proc({ pid: 310, label: 'pcivirtio-video' });
  const monitor = proc({ pid: 311, label: 'swap monitor', threads: 3 });
  const lone = proc({ pid: 312, label: 'serial', ppid: 302 });
  const vm = view();
  const snapshot = { ...vm.snapshot, devices: [...serials, cons, video, monitor, lone] };
  const real = { ...vm, snapshot } as VmView;

  it('numbers siblings of one label by start time, then pid; a process alone keeps its name', () => {
    assert.deepEqual(
      serials.map((p) => processName(snapshot, p).shown),
      ['serial #3', 'serial #1', 'serial #2', 'serial #4'],
    );
    assert.deepEqual(processName(snapshot, serials[1]).ordinal, { n: 1, of: 4 });
    // Another parent: no twins there.
    assert.equal(processName(snapshot, lone).shown, 'serial');
  });

  it("shows the whole label where the kernel cut one of crosvm's, and says so", () => {
    const name = processName(snapshot, cons);
    assert.equal(name.shown, 'pcivirtio-console');
    assert.equal(name.comm, 'pcivirtio-conso');
    const tip = processTooltip(real, cons, undefined);
    assert.match(tip, /^\*\*pcivirtio\\-console\*\* \(pid 302\)/);
    assert.match(tip, /crosvm calls it `pcivirtio-console`; the kernel keeps 15 bytes of a name and shows `pcivirtio-conso`\./);
  });

  it('keeps an ambiguous or unknown cut name, and says it may be cut', () => {
    const name = processName(snapshot, video); // video-decoder or video-encoder
    assert.equal(name.shown, 'pcivirtio-video');
    assert.equal(name.full, undefined);
    assert.match(processTooltip(real, video, undefined), /`pcivirtio-video` may be cut/);
    assert.ok(!processName(snapshot, proc({ label: 'virtio-net' })).mayBeCut);
  });

  it('the tooltip of a numbered process and of the swap monitor say what they are', () => {
    assert.match(
      processTooltip(real, serials[0], undefined),
      /#3 of 4 processes named `serial` under the same parent, numbered by start time/,
    );
    const tip = processTooltip(real, monitor, undefined);
    assert.match(tip, /vmm-swap monitor/);
    assert.match(tip, /A freeze stops it too, as it writes guest memory while swapping out or in/);
  });
});
