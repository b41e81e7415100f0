// Real crosvm run as root, as it usually is, and VS Code run by a developer who is not root:
// code-server and the extension host as the passwordless-sudo test user, the swap build (with
// its monitor) and the default build as root. Neither may be signalled from the window; with
// `elevation: sudo` the root companion, started through the real `sudo -n`, freezes the swap
// build with signals and the default build with the cgroup freezer, chosen as root. The guest's
// TICK counter proves each freeze and resume; killing the extension host while frozen leaves
// the root companion to resume (its pipe closes).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import { extensionHostPids } from '../runner/codeServer';
import { ensureTestUser, TestUser } from '../runner/testUsers';
import { eventually, isFullyStopped, isRunning } from '../engine/procState';
import { openWorkbench, TreeRow, vmRowDescription, vmRowOf, waitFor, Workbench } from '../ui/workbench';
import { RealVm, startRealVm, stopAllRealVms, guestDevicesOf } from './realVm';

const STILL_MS = 2000;
/** The name these VMs run as and the only one this workbench looks for: other VMs on the machine stay out. */
const NAME = 'crosvm_real_root';

let user: TestUser;
let workbench: Workbench;
let swap: RealVm;
let plain: RealVm;

const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1]);
const vmRowPattern = (vm: RealVm) => vmRowDescription(vm.pid);
const rowOf = (rows: TreeRow[], vm: RealVm) => vmRowOf(rows, vm.pid);
const rowsWhen = (accept: (rows: TreeRow[]) => boolean, timeout = 15_000) => waitFor(() => workbench.treeRows(), accept, timeout);
const statusText = async () => (await workbench.statusBarItems()).find((i) => i.id.endsWith('crosvmGuard.status'))?.text ?? '';
const log = () => `\n--- crosvm Guard log ---\n${workbench.extensionLog().slice(-3000)}`;

async function pickVm(vm: RealVm): Promise<void> {
  await workbench.page.locator('.quick-input-widget input[placeholder="Which crosvm VM?"]').waitFor();
  await workbench.page.keyboard.type(String(vm.pid));
  await workbench.page.keyboard.press('Enter');
}

describe('real crosvm as root, from an unprivileged workbench with passwordless sudo', { timeout: 300_000 }, () => {
  before(async () => {
    user = ensureTestUser('nopasswd');
    swap = await startRealVm({ build: 'swap', swapMonitor: true, name: NAME });
    plain = await startRealVm({ build: 'default', name: NAME });
    workbench = await openWorkbench({
      runAs: user,
      settings: { 'crosvmGuard.refreshInterval': 500, 'crosvmGuard.elevation': 'sudo', 'crosvmGuard.processNames': [NAME] },
    });
    // The machine is shared with other test runs: activation may wait for a core.
    await workbench.waitForActivation(undefined, 1, 90_000);
    await workbench.openView('crosvm Guard');
  });

  after(async () => {
    await workbench?.close();
    await stopAllRealVms();
  });

  afterEach(async () => {
    // A test that failed while a VM was frozen must not fail the next ones in its place.
    await workbench.page.keyboard.press('Escape');
    if (/frozen/.test(await statusText())) await workbench.clickStatusBarItem(/frozen/);
  });

  it('the window runs as the user; both root VMs are marked as needing admin', async () => {
    const [host] = extensionHostPids(workbench.server.process.pid as number);
    assert.equal(uidOf(host), user.uid);
    assert.equal(uidOf(swap.pid), 0);
    assert.equal(uidOf(plain.pid), 0);
    const rows = await rowsWhen((r) => rowOf(r, swap) !== undefined && rowOf(r, plain) !== undefined);
    assert.equal(rowOf(rows, swap)?.description, `needs admin (uid 0) · pid ${swap.pid}`, JSON.stringify(rows));
    assert.equal(rowOf(rows, plain)?.description, `needs admin (uid 0) · pid ${plain.pid}`);
    assert.equal(rowOf(rows, swap)?.icon, 'shield');
  });

  it('the palette freezes the swap build through sudo -n: the guest stands still; the status bar resumes it', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await pickVm(swap);
    assert.ok(await eventually(() => guestDevicesOf(swap).every(isFullyStopped), 20_000), `not frozen${log()}`);
    assert.match(workbench.extensionLog(), /Starting the elevated companion with sudo/);
    const [tick, other] = [swap.tick(), plain.tick()];
    assert.ok(await swap.standsStill(STILL_MS), `the guest ticked while frozen (${tick} → ${swap.tick()})`);
    assert.ok(plain.tick() > other, 'the default build, not frozen, stood still too');
    await workbench.waitForStatusBarItem(/frozen/);
    await workbench.clickStatusBarItem(/frozen/);
    await swap.waitForTick(swap.tick(), 10_000);
    assert.ok(guestDevicesOf(swap).every(isRunning), 'a device is still stopped');
  });

  it("the tree's inline action freezes the default build: root chose the cgroup freezer; the palette resumes it", async () => {
    const row = workbench.treeRowDescribed(vmRowPattern(plain));
    await workbench.clickInlineAction(row, 'Freeze crosvm devices');
    const rows = await rowsWhen(
      (r) => rowOf(r, plain)?.description.match(/^frozen since \d\d:\d\d:\d\d · pid (\d+)$/)?.[1] === String(plain.pid),
    );
    assert.match(
      rowOf(rows, plain)?.description ?? '',
      new RegExp(`^frozen since \\d\\d:\\d\\d:\\d\\d · pid ${plain.pid}$`),
      JSON.stringify(rows) + log(),
    );
    await workbench.page.mouse.move(900, 600); // off the row the click left the mouse on: a new hover
    const tip = await (await workbench.hoverRow(row, `crosvm VM ${plain.pid}`)).innerText();
    assert.match(tip, /Frozen since \d\d:\d\d:\d\d with the cgroup freezer/, tip);
    await workbench.page.mouse.move(900, 600);
    assert.ok(guestDevicesOf(plain).every(isRunning), 'a device is in T: signals were used on the default build');
    const cgroups = () => guestDevicesOf(plain).map((pid) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1'));
    const frozenIn = cgroups();
    const tick = plain.tick();
    const still = await plain.standsStill(STILL_MS);
    // pid namespaces do not separate cgroups: a test run elsewhere on the machine that thaws
    // freeze cgroups whose maker it cannot see (as test/engine/cgroup.test.ts once did) thaws ours.
    assert.deepEqual(cgroups(), frozenIn, 'a device left its freeze cgroup while frozen, moved by another process');
    assert.ok(still, `the guest ticked while frozen (${tick} → ${plain.tick()})`);
    await workbench.runCommand('crosvm: Resume crosvm devices');
    await plain.waitForTick(tick, 10_000);
    assert.doesNotMatch(plain.crosvmLog(), /exited: signo|exiting with crash/, 'crosvm noticed the freeze');
  });

  it('the extension host killed while the swap build is frozen: the root companion resumes it', async () => {
    await workbench.runCommandThatAsks('crosvm: Freeze crosvm devices');
    await pickVm(swap);
    assert.ok(await eventually(() => guestDevicesOf(swap).every(isFullyStopped), 20_000), `not frozen${log()}`);
    const tick = swap.tick();
    const [host] = extensionHostPids(workbench.server.process.pid as number);
    process.kill(host, 'SIGKILL');
    await swap.waitForTick(tick, 5000);
    assert.ok(guestDevicesOf(swap).every(isRunning), 'a device is still stopped');
  });

  it('both VMs survived: SIGTERM ends each with 143, not 33', async () => {
    for (const vm of [swap, plain]) {
      await vm.waitForTick(vm.tick(), 5000);
      assert.equal(await vm.stop(), 143, `${vm.build}: ${vm.crosvmLog().slice(-600)}`);
    }
  });
});
