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
  vmDescription,
  vmTooltip,
} from '../../src/ui/describe';
import type { VmView } from '../../src/ui/controller';
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
      processes: [],
      skipped: [],
    });
    assert.equal(vmDescription(view({ frozen: frozen('vm') })), 'frozen, vCPUs too · pid 100');
    assert.equal(vmDescription(view({ frozen: frozen('devices') })), 'frozen · pid 100');
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

describe('which VMs a debug session freezes, and why', () => {
  const session = { session: 'crosvm (gdb attach)', automatic: true, target: 'auto' as const, debuggeePid: undefined, asked: undefined };
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

  it('says "all of your VMs" when the debuggee is unknown or no VM', () => {
    assert.match(debugTargetsSentence(session, vms), /freezes all of your VMs at each stop: the debuggee is unknown/);
    assert.match(
      debugTargetsSentence({ ...session, debuggeePid: 4242 }, vms),
      /all of your VMs at each stop: the debuggee \(pid 4242\) is no crosvm VM/,
    );
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
