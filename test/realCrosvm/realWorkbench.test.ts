// Real crosvm in the real workbench (code-server + Chromium), as root: the swap build with its
// `swap monitor` and the default build side by side, listed, frozen and resumed from the
// palette, the status bar and the tree's inline actions. The proof that a freeze held is the
// guest's own `TICK n` counter on its serial console, which stands still exactly while a
// device process is stopped or frozen; the proof that a VM survived is that it ticks on and
// ends with 143 on SIGTERM (33 would be crosvm's "exiting with crash").
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { extensionHostPids } from '../runner/codeServer';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { openWorkbench, TreeRow, vmRowDescription, vmRowOf, waitFor, Workbench } from '../ui/workbench';
import { descendants, RealVm, startRealVm, stopAllRealVms, guestDevicesOf } from './realVm';

/** How long a frozen guest must stand still: ten of its ticks and more. */
const STILL_MS = 2000;
const REFRESH_MS = 500;
/** The name these VMs run as and the only one this workbench looks for: other VMs on the machine stay out. */
const NAME = 'crosvm_real_ui';

let workbench: Workbench;
let swap: RealVm;
let plain: RealVm;
let journalDir: string;

/** Every device process of a VM, read from /proc apart from the extension. */
const devicesOf = (vm: RealVm) => descendants(vm.pid);
const vmRowPattern = (vm: RealVm) => vmRowDescription(vm.pid);
const rowOf = (rows: TreeRow[], vm: RealVm) => vmRowOf(rows, vm.pid);

/** The device rows below a VM's row, in tree order (the VM rows are expanded). */
function deviceRows(rows: TreeRow[], vm: RealVm): TreeRow[] {
  const start = rows.findIndex((r) => r.level === 1 && vmRowPattern(vm).test(r.description));
  if (start < 0) return [];
  const end = rows.findIndex((r, i) => i > start && r.level === 1);
  return rows.slice(start + 1, end < 0 ? undefined : end);
}

const rowsWhen = (accept: (rows: TreeRow[]) => boolean, timeout = 10_000) => waitFor(() => workbench.treeRows(), accept, timeout);

const waitForStatus = (pattern: RegExp, timeout = 10_000) => workbench.waitForGuardStatus(pattern, timeout);

/** Picks a VM in the open "Which crosvm VM?" picker by its pid. */
async function pickVm(vm: RealVm): Promise<void> {
  await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
  await workbench.page.keyboard.type(String(vm.pid));
  await workbench.page.keyboard.press('Enter');
}

/** Asserts the guest stands still for STILL_MS while `vm` is frozen and the other VM ticks on. */
async function assertGuestStandsStill(vm: RealVm, other: RealVm): Promise<void> {
  const otherBefore = other.tick();
  const tick = vm.tick();
  assert.ok(await vm.standsStill(STILL_MS), `the guest of ${vm.build} VM ${vm.pid} ticked while frozen (${tick} → ${vm.tick()})`);
  assert.ok(other.tick() > otherBefore, `the ${other.build} VM, not frozen, stood still too`);
}

const log = () => `\n--- crosvm Guard log ---\n${workbench.extensionLog().slice(-3000)}`;

describe('real crosvm in the workbench: the swap build with its monitor and the default build', { timeout: 300_000 }, () => {
  before(async () => {
    swap = await startRealVm({ build: 'swap', swapMonitor: true, name: NAME });
    plain = await startRealVm({ build: 'default', name: NAME });
    // The journal folder of this test alone: other test runs on the machine keep theirs.
    journalDir = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-real-journal-'));
    workbench = await openWorkbench({
      env: { CROSVM_GUARD_JOURNAL_DIR: journalDir },
      settings: { 'crosvmGuard.refreshInterval': REFRESH_MS, 'crosvmGuard.processNames': [NAME] },
    });
    // The machine is shared with other test runs: activation may wait for a core.
    await workbench.waitForActivation(undefined, 1, 90_000);
    await workbench.openView('crosvm Guard');
  });

  after(async () => {
    await workbench?.close();
    await stopAllRealVms();
    if (journalDir) fs.rmSync(journalDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    // A test that failed while a VM was frozen must not fail the next ones in its place.
    await workbench.page.keyboard.press('Escape');
    const status = (await workbench.statusBarItems()).find((i) => i.id.endsWith('crosvmGuard.status'))?.text ?? '';
    if (/frozen/.test(status)) await workbench.clickStatusBarItem(/frozen/);
  });

  it('lists both VMs with every device process /proc shows, the swap monitor under the swap build', async () => {
    const expected = (vm: RealVm) => devicesOf(vm).sort((a, b) => a - b);
    const shown = (rows: TreeRow[], vm: RealVm) =>
      deviceRows(rows, vm)
        .map((r) => Number(/^[^·]+ · (\d+)/.exec(r.description)?.[1]))
        .sort((a, b) => a - b);
    const rows = await rowsWhen(
      (r) => shown(r, swap).length === expected(swap).length && shown(r, plain).length === expected(plain).length,
      15_000,
    );
    assert.deepEqual(shown(rows, swap), expected(swap), JSON.stringify(rows));
    assert.deepEqual(shown(rows, plain), expected(plain), JSON.stringify(rows));
    assert.equal(expected(swap).length, 9, 'swap monitor, console, block, pmem, rng and four serial ports');
    assert.equal(expected(plain).length, 8);
    assert.equal(rowOf(rows, swap)?.description, `running · pid ${swap.pid}`);
    assert.equal(rowOf(rows, plain)?.description, `running · pid ${plain.pid}`, 'root freezes the default build with the cgroup freezer');
    for (const vm of [swap, plain]) {
      const labels = deviceRows(rows, vm).map((r) => r.label);
      for (const label of ['pcivirtio-block', 'pcivirtio-pmem', 'pcivirtio-rng']) assert.ok(labels.includes(label), labels.join(', '));
      assert.equal(labels.filter((l) => l.startsWith('serial')).length, 4, labels.join(', '));
      assert.equal(labels.filter((l) => l.startsWith('pcivirtio-conso')).length, 1, labels.join(', '));
      assert.equal(labels.includes('swap monitor'), vm === swap, labels.join(', '));
      assert.ok(
        deviceRows(rows, vm).every((r) => r.level === 2 && /^running · \d+/.test(r.description)),
        JSON.stringify(deviceRows(rows, vm)),
      );
    }
  });

  it('labels tell the four serial ports apart and show the console name the kernel cut', async () => {
    // The label format is being implemented on another branch (issue 22): until it is merged
    // this fails here, on its own, without hiding the other results.
    const rows = await workbench.treeRows();
    for (const vm of [swap, plain]) {
      const labels = deviceRows(rows, vm).map((r) => r.label);
      assert.deepEqual(
        labels.filter((l) => l.startsWith('serial')).sort(),
        ['serial #1', 'serial #2', 'serial #3', 'serial #4'],
        labels.join(', '),
      );
      assert.ok(labels.includes('pcivirtio-console'), labels.join(', '));
      assert.ok(!labels.includes('pcivirtio-conso'), labels.join(', '));
    }
  });

  it('the tooltips say how each would be frozen: signals for the swap build, the cgroup freezer (signals refused) for the default', async () => {
    const swapTip = await (await workbench.hoverRow(workbench.treeRowDescribed(vmRowPattern(swap)), `crosvm VM ${swap.pid}`)).innerText();
    assert.match(swapTip, /Can be frozen with signals: a "swap monitor" process \(pid \d+\) runs/, swapTip);
    await workbench.page.mouse.move(900, 600);
    const plainTip = await (
      await workbench.hoverRow(workbench.treeRowDescribed(vmRowPattern(plain)), `crosvm VM ${plain.pid}`)
    ).innerText();
    assert.match(plainTip, /Can be frozen with the cgroup freezer/, plainTip);
    assert.match(plainTip, /Not with signals: its executable has no vmm-swap code/, plainTip);
    await workbench.page.mouse.move(900, 600);
  });

  it('the palette freezes the swap build: its guest stands still; the status bar resumes it and it ticks on', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await pickVm(swap);
    assert.ok(await eventually(() => guestDevicesOf(swap).every(isFullyStopped), 10_000), `the devices are not stopped${log()}`);
    assert.ok(isRunning(swap.pid), 'the main process was stopped');
    await waitForStatus(/^\$\(debug-pause\) crosvm 1 of 2 VMs frozen \d:\d\d$/);
    const rows = await rowsWhen(
      (r) => rowOf(r, swap)?.description.match(/^frozen since \d\d:\d\d:\d\d · pid (\d+)$/)?.[1] === String(swap.pid),
    );
    assert.match(rowOf(rows, swap)?.description ?? '', new RegExp(`^frozen since \\d\\d:\\d\\d:\\d\\d · pid ${swap.pid}$`));
    assert.ok(
      deviceRows(rows, swap).some((r) => r.label === 'pcivirtio-block' && /^frozen · \d+/.test(r.description) && r.icon === 'debug-pause'),
      JSON.stringify(deviceRows(rows, swap)),
    );
    await assertGuestStandsStill(swap, plain);
    const still = swap.tick();
    await workbench.clickStatusBarItem(/frozen/);
    await swap.waitForTick(still, 10_000);
    assert.ok(guestDevicesOf(swap).every(isRunning), 'a device is still stopped');
    await waitForStatus(/^\$\(vm-running\) crosvm \d+$/);
    assert.doesNotMatch(swap.crosvmLog(), /exited: signo/, 'crosvm saw a device stop');
  });

  it('the status bar freezes the default build with the cgroup freezer; its guest stands still; the tree resumes it', async () => {
    const cgroups = () => guestDevicesOf(plain).map((pid) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1'));
    const before = cgroups();
    await workbench.clickStatusBarItem(/crosvm/);
    await pickVm(plain);
    const rows = await rowsWhen((r) => deviceRows(r, plain).every((d) => /^frozen \(cgroup\) · \d+/.test(d.description)), 15_000);
    assert.ok(
      deviceRows(rows, plain).every((d) => /^frozen \(cgroup\) · \d+/.test(d.description) && d.icon === 'lock'),
      JSON.stringify(deviceRows(rows, plain)) + log(),
    );
    assert.ok(
      cgroups().every((c, i) => c !== before[i]),
      'a device is not in a freeze cgroup',
    );
    // Frozen tasks are not job-control stopped: crosvm gets no SIGCHLD and does not notice.
    assert.ok(guestDevicesOf(plain).every(isRunning), 'the cgroup freezer left a device in T');
    const frozenIn = cgroups();
    const [tick, other] = [plain.tick(), swap.tick()];
    const still = await plain.standsStill(STILL_MS);
    // pid namespaces do not separate cgroups: a test run elsewhere on the machine that thaws
    // freeze cgroups whose maker it cannot see (as test/engine/cgroup.test.ts once did) thaws ours.
    assert.deepEqual(cgroups(), frozenIn, 'a device left its freeze cgroup while frozen, moved by another process');
    assert.ok(still, `the guest of the default build ticked while frozen (${tick} → ${plain.tick()})`);
    assert.ok(swap.tick() > other, 'the swap build, not frozen, stood still too');
    const row = workbench.treeRowDescribed(vmRowPattern(plain));
    const tip = await (await workbench.hoverRow(row, `crosvm VM ${plain.pid}`)).innerText();
    assert.match(tip, /Frozen since \d\d:\d\d:\d\d with the cgroup freezer: its device processes/, tip);
    const held = plain.tick();
    await workbench.clickInlineAction(row, 'Resume crosvm devices');
    await plain.waitForTick(held, 10_000);
    assert.deepEqual(cgroups(), before, 'a device is not back in its cgroup');
    assert.doesNotMatch(plain.crosvmLog(), /exited: signo|exiting with crash/, 'crosvm noticed the freeze');
    await workbench.page.mouse.move(900, 600);
  });

  it("the tree's inline action freezes the swap build and the palette resumes it", async () => {
    const row = workbench.treeRowDescribed(vmRowPattern(swap));
    await workbench.clickInlineAction(row, 'Freeze crosvm devices');
    assert.ok(await eventually(() => guestDevicesOf(swap).every(isFullyStopped), 10_000), `the devices are not stopped${log()}`);
    await assertGuestStandsStill(swap, plain);
    const still = swap.tick();
    await workbench.runCommand('crosvm: Resume crosvm devices');
    await swap.waitForTick(still, 10_000);
    assert.ok(guestDevicesOf(swap).every(isRunning), 'a device is still stopped');
    await workbench.page.mouse.move(900, 600);
  });

  it('the extension host killed while both are frozen: both guests tick again', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
    const all = workbench.page.locator('.quick-input-widget .monaco-list-row', { hasText: /All VMs/ }).first();
    await all.click();
    assert.ok(await eventually(() => guestDevicesOf(swap).every(isFullyStopped), 10_000), `the swap build is not frozen${log()}`);
    await rowsWhen((r) => rowOf(r, plain)?.description.match(/^frozen since \d\d:\d\d:\d\d · pid (\d+)$/)?.[1] === String(plain.pid));
    const ticks = [swap.tick(), plain.tick()];
    assert.ok((await swap.standsStill(STILL_MS)) && plain.tick() === ticks[1], 'a guest ticked while frozen');
    const [host] = extensionHostPids(workbench.server.process.pid as number);
    assert.ok(host, 'no extension host');
    const killed = Date.now();
    process.kill(host, 'SIGKILL');
    await swap.waitForTick(ticks[0], 5000);
    await plain.waitForTick(ticks[1], 5000);
    console.log(`# both guests ticked again ${Date.now() - killed} ms after SIGKILL of the extension host`);
    assert.ok(guestDevicesOf(swap).every(isRunning));
  });

  it('both VMs survived every freeze: SIGTERM ends each with 143, not 33', async () => {
    for (const vm of [swap, plain]) {
      const tick = vm.tick();
      await vm.waitForTick(tick, 5000);
      assert.equal(await vm.stop(), 143, `${vm.build}: ${vm.crosvmLog().slice(-600)}`);
      assert.doesNotMatch(vm.crosvmLog(), /exited: signo|exiting with crash/);
    }
  });
});
