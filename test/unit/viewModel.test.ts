// Table-driven tests of the pure functions of the VS Code layer's view model and of the
// elevation policy: what a VM shows, when only the root companion can freeze it, and when a
// freeze may start elevation at all.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ElevationNeed, ElevationSession, ElevationSetting } from '../../src/companion/elevationSession';
import { mergeResumeReports } from '../../src/guard/guard';
import type { MethodChoice } from '../../src/guard/methods/chooseMethod';
import type { ProcessSnapshot } from '../../src/guard/processTree';
import type { VmSnapshot } from '../../src/guard/vms';
import { buildVmView, elevationNeeded, VmFacts } from '../../src/ui/viewModel';

const proc = (pid: number, uid = 1000): ProcessSnapshot => ({
  pid,
  ppid: 1,
  label: 'd',
  state: 'S',
  startTime: 7,
  threads: 1,
  uid,
  savedUid: uid,
  tracerPid: 0,
});
const vm = (uid: number): VmSnapshot => ({
  main: proc(100, uid),
  devices: [proc(101, uid), proc(102, uid)],
  cmdline: [],
  exe: undefined,
  name: 'crosvm run',
  threadIds: new Map(),
});
const signal: MethodChoice = { method: 'signal', why: 'signals' };
const denied = { method: undefined, why: 'neither', refusal: 'cgroup-denied' } as unknown as MethodChoice;
const noFreezer = { method: undefined, why: 'neither', refusal: 'no-freezer' } as unknown as MethodChoice;

describe('elevationNeeded: when only the root companion can freeze a VM', () => {
  const cases: Array<[string, Pick<VmFacts, 'snapshot' | 'method' | 'uid' | 'maySignal'>, 'signals' | 'cgroups' | undefined]> = [
    ['a root window never needs it', { snapshot: vm(0), method: signal, uid: 0, maySignal: () => false }, undefined],
    ['its own VM, signals allowed', { snapshot: vm(1000), method: signal, uid: 1000, maySignal: () => true }, undefined],
    ["root's VM: signals refused", { snapshot: vm(0), method: signal, uid: 1000, maySignal: () => false }, 'signals'],
    ['one device of another uid is enough', { snapshot: vm(1000), method: signal, uid: 1000, maySignal: (pid) => pid !== 102 }, 'signals'],
    [
      'its own default build outside a writable cgroup',
      { snapshot: vm(1000), method: denied, uid: 1000, maySignal: () => true },
      'cgroups',
    ],
    [
      'no freezer mounted at all: root cannot help either',
      { snapshot: vm(1000), method: noFreezer, uid: 1000, maySignal: () => true },
      undefined,
    ],
  ];
  for (const [name, facts, expected] of cases) it(name, () => assert.equal(elevationNeeded(facts), expected));
});

describe('buildVmView', () => {
  const base: VmFacts = {
    snapshot: vm(1000),
    swapBuild: { tolerant: true, evidence: 'x' },
    method: signal,
    frozen: undefined,
    other: undefined,
    placements: [],
    uid: 1000,
    maySignal: () => true,
  };
  const journal = (startTime: number) => ({
    pid: 100,
    startTime,
    name: 'crosvm',
    since: 0,
    method: 'signal' as const,
    processes: [{ pid: 101, startTime: 7, label: 'd' }],
    cgroups: [],
  });
  it("takes another window's freeze of this very VM", () => {
    assert.equal(buildVmView({ ...base, other: { ownerPid: 55, vm: journal(7) } }).frozenElsewhere?.ownerPid, 55);
  });
  it("ignores another window's record of an earlier process with the same pid", () => {
    assert.equal(buildVmView({ ...base, other: { ownerPid: 55, vm: journal(6) } }).frozenElsewhere, undefined);
  });
  it('indexes placements by pid', () => {
    const view = buildVmView({ ...base, placements: [{ pid: 101, dir: '/sys/fs/cgroup/x', access: 'root' }] });
    assert.equal(view.placements.get(101)?.dir, '/sys/fs/cgroup/x');
  });
});

describe('mergeResumeReports', () => {
  it('adds up what several engines resumed, and keeps every problem', () => {
    const p = (pid: number) => ({ pid, startTime: 1, label: 'd', ppid: 1 });
    const merged = mergeResumeReports([
      { resumed: [p(2)], gone: [], elapsedMs: 1 },
      { resumed: [p(3)], gone: [p(4)], problems: ['thaw failed'], elapsedMs: 2 },
    ]);
    assert.deepEqual(merged, { resumed: [p(2), p(3)], gone: [p(4)], problems: ['thaw failed'], elapsedMs: 3 });
    assert.equal('problems' in mergeResumeReports([{ resumed: [], gone: [], elapsedMs: 0 }]), false);
  });
});

describe('ElevationSession.engineFor: when a freeze may start administrator rights', () => {
  // Only the refusals are decided without starting anything: they are what is tested here.
  // Starting the companion (sudo, pkexec) is tested for real in test/engine/elevated.test.ts.
  const session = (setting: ElevationSetting) =>
    new ElevationSession({
      setting: () => setting,
      options: () => ({ companionScript: '', processNames: [], log: () => undefined }),
      log: () => undefined,
      onEvent: () => undefined,
      onChange: () => undefined,
    });
  const need = (at: ElevationNeed['at'], why: ElevationNeed['why'] = 'signals'): ElevationNeed => ({
    vmPid: 100,
    why,
    uid: 0,
    evidence: 'no vmm-swap code',
    at,
  });
  const refusals: Array<[string, ElevationSetting, ElevationNeed, RegExp]> = [
    ['a command with "ask": offered, not started', 'ask', need('command'), /runs as root; .* It can be frozen with administrator rights/],
    [
      'a stop whose debug settings came from a workspace, whatever the setting',
      'sudo',
      need('stop-from-workspace'),
      /workspace never starts them/,
    ],
    ['elevation off, a root VM', 'never', need('command'), /turned off/],
    ['elevation off at a stop', 'never', need('stop'), /turned off/],
    ['"ask", a build that dies on signals in cgroups not ours', 'ask', need('command', 'cgroups'), /would shut down .*no vmm-swap code/],
  ];
  for (const [name, setting, what, expected] of refusals) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(
        session(setting).engineFor(what),
        (error: Error & { code?: string }) => error.code === 'needs-elevation' && expected.test(error.message),
      );
    });
  }
  it("elevation off, cgroups only: leaves it to the engine's own refusal", async () => {
    assert.equal(await session('never').engineFor(need('command', 'cgroups')), undefined);
  });
});
