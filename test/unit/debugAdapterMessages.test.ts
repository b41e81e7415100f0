// What the debug follower reads from a debug session: the pid of each debugger's attach
// configuration, what DAP messages mean, and which VMs `auto` and `all` freeze. Pure functions
// on configurations and messages as the debuggers' own documentation writes them; the
// extension-host suite (test/suite/debug.test.ts, lldb.test.ts) runs the real adapters.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  adapterMessageMeaning,
  AttachConfiguration,
  clientRequestMeaning,
  configuredPid,
  targetVms,
} from '../../src/ui/debugAdapterMessages';
import type { ProcessSnapshot } from '../../src/guard';
import type { VmView } from '../../src/ui/viewModel';

const attach = (type: string, fields: Record<string, unknown>): AttachConfiguration => ({ type, request: 'attach', name: type, ...fields });

/** [what, configuration, the pid it attaches to]. */
const ATTACH_CASES: [string, AttachConfiguration, number | undefined][] = [
  // ms-vscode.cpptools: processId, a number or (from ${command:pickProcess}) a string.
  ['cppdbg processId number', attach('cppdbg', { processId: 4242, MIMode: 'gdb' }), 4242],
  ['cppdbg processId string', attach('cppdbg', { processId: '4242', MIMode: 'gdb' }), 4242],
  ['cppdbg with lldb', attach('cppdbg', { processId: '4242', MIMode: 'lldb' }), 4242],
  ['cppdbg ignores a pid key', attach('cppdbg', { pid: 4242 }), undefined],
  // CodeLLDB: pid, a number or a string.
  ['lldb (CodeLLDB) pid number', attach('lldb', { pid: 4242 }), 4242],
  ['lldb (CodeLLDB) pid string', attach('lldb', { pid: '4242' }), 4242],
  ['lldb (CodeLLDB) by program name', attach('lldb', { program: '/usr/bin/crosvm' }), undefined],
  // LLVM's adapter (Debian's lldb-vscode-14; lldb-dap since LLVM 18).
  ['lldb-vscode pid', attach('lldb-vscode', { pid: 4242, program: '/usr/bin/crosvm' }), 4242],
  ['lldb-dap pid', attach('lldb-dap', { pid: 4242 }), 4242],
  ['lldb-vscode waitFor, no pid', attach('lldb-vscode', { program: 'crosvm', waitFor: true }), undefined],
  // Native Debug (webfreak.debug): target is the pid, or host:port of a gdbserver with remote.
  ['gdb (Native Debug) target pid', attach('gdb', { target: '4242', cwd: '/src', executable: 'crosvm' }), 4242],
  ['gdb (Native Debug) target number', attach('gdb', { target: 4242 }), 4242],
  ['gdb (Native Debug) remote host:port', attach('gdb', { target: 'localhost:2345', remote: true }), undefined],
  ['gdb (Native Debug) remote :port', attach('gdb', { target: ':2345', remote: true }), undefined],
  ['gdb (Native Debug) remote, a port that looks like a pid', attach('gdb', { target: '2345', remote: true }), undefined],
  ['gdb (Native Debug) target program name', attach('gdb', { target: 'crosvm' }), undefined],
  // js-debug: processId from its picker is `pid:port`, the port empty unless the process listens.
  ['node processId pid', attach('node', { processId: '4242' }), 4242],
  ['node processId pid:', attach('node', { processId: '4242:' }), 4242],
  ['node processId pid:port', attach('node', { processId: '4242:9229' }), 4242],
  ['pwa-node processId pid:port', attach('pwa-node', { processId: ' 4242:9229 ' }), 4242],
  ['node attach by port only', attach('node', { port: 9229 }), undefined],
  ['node processId :port', attach('node', { processId: ':9229' }), undefined],
  // A debugger not listed: pid or processId.
  ['other type, pid', attach('some-debugger', { pid: 4242 }), 4242],
  ['other type, processId', attach('some-debugger', { processId: '4242' }), 4242],
  ['no type, pid', { request: 'attach', pid: 4242 }, 4242],
];

/** Values no attach configuration may be read as a pid from. */
const INVALID_PIDS: unknown[] = [
  0,
  1,
  -4242,
  '0',
  '1',
  '-4242',
  '${command:pickProcess}',
  '12abc',
  '4242.5',
  4242.5,
  '',
  ' ',
  '0x1092',
  '1e3',
  4_194_305,
  Number.MAX_SAFE_INTEGER + 2,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  null,
  true,
  [4242],
  { pid: 4242 },
];

describe('configuredPid: the pid an attach configuration names', () => {
  for (const [what, configuration, pid] of ATTACH_CASES) {
    it(what, () => assert.equal(configuredPid(configuration), pid));
  }

  for (const [type, key] of [
    ['cppdbg', 'processId'],
    ['lldb', 'pid'],
    ['lldb-vscode', 'pid'],
    ['gdb', 'target'],
    ['node', 'processId'],
    ['some-debugger', 'pid'],
  ]) {
    it(`${type}: no pid from an invalid ${key}`, () => {
      for (const value of INVALID_PIDS) assert.equal(configuredPid(attach(type, { [key]: value })), undefined, JSON.stringify(value));
    });
  }

  it('a launch configuration attaches to no pid, whatever it holds', () => {
    for (const [, configuration] of ATTACH_CASES) assert.equal(configuredPid({ ...configuration, request: 'launch' }), undefined);
    assert.equal(configuredPid({ type: 'node', request: 'launch', program: 'debuggee.js' }), undefined);
    assert.equal(configuredPid({ type: 'cppdbg', request: 'launch', program: 'crosvm', processId: 4242 }), undefined);
  });
});

describe('what a DAP message means', () => {
  const fromAdapter: [string, object, ReturnType<typeof adapterMessageMeaning>][] = [
    ['a stop', { type: 'event', event: 'stopped', body: { reason: 'breakpoint' } }, { kind: 'stopped', cause: 'DAP event "stopped"' }],
    ['continued', { type: 'event', event: 'continued' }, { kind: 'running', cause: 'DAP event "continued"' }],
    ['the debuggee', { type: 'event', event: 'process', body: { systemProcessId: 4242 } }, { kind: 'debuggee', pid: 4242 }],
    ['a process event without a pid', { type: 'event', event: 'process', body: { name: 'crosvm' } }, undefined],
    ['a process event with pid 1', { type: 'event', event: 'process', body: { systemProcessId: 1 } }, undefined],
    ['a process event with a string pid', { type: 'event', event: 'process', body: { systemProcessId: '4242' } }, undefined],
    ['output', { type: 'event', event: 'output', body: { output: 'stopped' } }, undefined],
    ['a response named stopped', { type: 'response', command: 'stopped' }, undefined],
    ['the response to continue', { type: 'response', command: 'continue', success: true }, undefined],
  ];
  for (const [what, message, meaning] of fromAdapter) {
    it(`from the adapter: ${what}`, () => assert.deepEqual(adapterMessageMeaning(message), meaning));
  }

  for (const command of ['continue', 'next', 'stepIn', 'stepOut', 'stepBack', 'reverseContinue']) {
    it(`to the adapter: "${command}" runs the debuggee`, () =>
      assert.deepEqual(clientRequestMeaning({ type: 'request', command }), { kind: 'running', cause: `DAP request "${command}"` }));
  }
  for (const command of ['pause', 'stackTrace', 'evaluate', 'setBreakpoints', 'disconnect', 'threads']) {
    it(`to the adapter: "${command}" changes nothing`, () => assert.equal(clientRequestMeaning({ type: 'request', command }), undefined));
  }
  it('to the adapter: only requests count', () => {
    assert.equal(clientRequestMeaning({ type: 'event', event: 'continued', command: 'continue' }), undefined);
    assert.equal(clientRequestMeaning({ type: 'request' }), undefined);
  });
});

describe('targetVms: the VMs a stop freezes for debug.target auto and all', () => {
  const proc = (pid: number, uid: number): ProcessSnapshot =>
    ({ pid, ppid: 1, label: 'crosvm', state: 'S', startTime: pid, threads: 1, uid, savedUid: uid, tracerPid: 0 }) as ProcessSnapshot;
  const vm = (pid: number, uid: number, devices: number[]): VmView =>
    ({ snapshot: { main: proc(pid, uid), devices: devices.map((d) => proc(d, uid)), name: `vm${pid}` } }) as unknown as VmView;
  const mine = vm(100, 1000, [101, 102]);
  const other = vm(200, 1000, [201]);
  const roots = vm(300, 0, [301]);
  const vms = [mine, other, roots];
  const pids = (views: VmView[]) => views.map((v) => v.snapshot.main.pid);

  const cases: [string, 'auto' | 'all', number | undefined, number[]][] = [
    ['auto, the debuggee is a VM main process: that VM', 'auto', 100, [100]],
    ['auto, the debuggee is a device process: its VM', 'auto', 201, [200]],
    ["auto, the debuggee is in root's VM: that VM", 'auto', 300, [300]],
    ["auto, the debuggee in no VM: every VM of this user, never root's", 'auto', 999, [100, 200]],
    ['auto, the debuggee unknown: every VM of this user', 'auto', undefined, [100, 200]],
    ['all: every VM, whatever the debuggee', 'all', 100, [100, 200, 300]],
    ['all, the debuggee unknown: every VM', 'all', undefined, [100, 200, 300]],
  ];
  for (const [what, target, debuggee, expected] of cases) {
    it(what, () => assert.deepEqual(pids(targetVms(target, vms, debuggee, 1000)), expected));
  }
  it('auto as root: the VMs of root only when the debuggee is in none', () => {
    assert.deepEqual(pids(targetVms('auto', vms, undefined, 0)), [300]);
  });
  it('auto with no uid known: no VM of any user', () => {
    assert.deepEqual(pids(targetVms('auto', vms, undefined, undefined)), []);
  });
});
