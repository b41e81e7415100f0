// The extension in a real extension host: commands, API, settings, against real fixture VMs.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { CrosvmGuardApi } from '../../src/ui/api';
import type { FreezeReport, GuardEvent } from '../../src/guard';
import { FixtureVm, startFixtureVm, stopAllFixtureVms } from '../fixture/fixtureVm';
import { eventually, isFullyStopped, isRunning, sleep } from '../engine/procState';

const EXTENSION_ID = 'crosvm-guard.crosvm-guard';

async function api(): Promise<CrosvmGuardApi> {
  const extension = vscode.extensions.getExtension<CrosvmGuardApi>(EXTENSION_ID);
  assert.ok(extension);
  return extension.activate();
}

const devicePids = (vm: FixtureVm) => vm.devices.map((d) => d.pid);
const config = () => vscode.workspace.getConfiguration('crosvmGuard');

async function setSetting(key: string, value: unknown): Promise<void> {
  await config().update(key, value, vscode.ConfigurationTarget.Global);
}

suite('commands', () => {
  teardown(async () => {
    await vscode.commands.executeCommand('crosvmGuard.resume');
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    await stopAllFixtureVms();
  });

  test('freeze with a pid argument returns the report and stops every device; resume returns the pids', async () => {
    await api();
    const vm = await startFixtureVm({ build: 'swap' });
    const report = await vscode.commands.executeCommand<FreezeReport>('crosvmGuard.freeze', vm.pid);
    assert.ok(report, 'the command returned no report');
    assert.equal(report.vm.pid, vm.pid);
    assert.equal(report.scope, 'devices');
    assert.deepEqual(new Set(report.frozen.map((p) => p.pid)), new Set(devicePids(vm)));
    assert.ok(devicePids(vm).every(isFullyStopped));
    assert.ok(isRunning(vm.pid));
    const resumed = await vscode.commands.executeCommand<number[]>('crosvmGuard.resume');
    assert.deepEqual(new Set(resumed), new Set(devicePids(vm)));
    assert.ok(devicePids(vm).every(isRunning));
  });

  test('freeze with no argument and one VM freezes it without asking', async () => {
    const guard = await api();
    const vm = await startFixtureVm({ build: 'swap' });
    assert.equal(guard.refresh().vms.length, 1);
    const report = await vscode.commands.executeCommand<FreezeReport>('crosvmGuard.freeze');
    assert.equal(report?.vm.pid, vm.pid);
    assert.equal(guard.getState().frozen.length, 1);
    assert.ok(guard.getState().vms[0].frozen);
  });

  test('freeze with several VMs asks with a quick pick', async () => {
    await api();
    const first = await startFixtureVm({ build: 'swap' });
    const second = await startFixtureVm({ build: 'swap' });
    const pending = vscode.commands.executeCommand<FreezeReport>('crosvmGuard.freeze');
    // The pick lists the VMs oldest first, then "All VMs": select the second VM.
    await sleep(800);
    await vscode.commands.executeCommand('workbench.action.quickOpenSelectNext');
    await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    const report = await pending;
    assert.equal(report?.vm.pid, second.pid);
    assert.ok(devicePids(second).every(isFullyStopped));
    assert.ok(devicePids(first).every(isRunning));
  });

  test('"All VMs" in the quick pick freezes every VM', async () => {
    await api();
    const vms = [await startFixtureVm({ build: 'swap' }), await startFixtureVm({ build: 'swap' })];
    const pending = vscode.commands.executeCommand<FreezeReport[]>('crosvmGuard.freeze');
    await sleep(800);
    await vscode.commands.executeCommand('workbench.action.quickOpenSelectPrevious');
    await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    const reports = await pending;
    assert.ok(Array.isArray(reports));
    assert.deepEqual(reports.map((r) => r.vm.pid).sort(), vms.map((v) => v.pid).sort());
    assert.ok(vms.flatMap(devicePids).every(isFullyStopped));
  });

  test('freezeVm stops the main process (vCPUs) as well', async () => {
    await api();
    const vm = await startFixtureVm({ build: 'swap' });
    const report = await vscode.commands.executeCommand<FreezeReport>('crosvmGuard.freezeVm', vm.pid);
    assert.equal(report?.scope, 'vm');
    assert.ok(isFullyStopped(vm.pid));
    await vscode.commands.executeCommand('crosvmGuard.resume', vm.pid);
    assert.ok(isRunning(vm.pid));
  });

  test('toggle freezes, then resumes', async () => {
    await api();
    const vm = await startFixtureVm({ build: 'swap' });
    await vscode.commands.executeCommand('crosvmGuard.toggle');
    assert.ok(devicePids(vm).every(isFullyStopped));
    await vscode.commands.executeCommand('crosvmGuard.toggle');
    assert.ok(devicePids(vm).every(isRunning));
  });

  test('with method "signal", freeze of a VM whose build would crash returns nothing and stops nothing', async () => {
    const guard = await api();
    const vm = await startFixtureVm({ build: 'default' });
    await setSetting('method', 'signal');
    try {
      assert.ok(await eventually(() => guard.refresh().vms[0]?.method === undefined), 'the method setting did not reach the engine');
      const report = await vscode.commands.executeCommand('crosvmGuard.freeze', vm.pid);
      assert.equal(report, undefined);
      await sleep(200);
      assert.ok(vm.isRunning());
      assert.ok(devicePids(vm).every(isRunning));
    } finally {
      await setSetting('method', undefined);
    }
  });

  test('with method "auto" (the default), a build that dies on signals is frozen by the cgroup freezer and survives', async () => {
    const guard = await api();
    const tolerant = await startFixtureVm({ build: 'swap' });
    const vm = await startFixtureVm({ build: 'default' });
    const state = guard.refresh();
    assert.equal(state.vms.find((v) => v.pid === tolerant.pid)?.method, 'signal');
    assert.equal(state.vms.find((v) => v.pid === vm.pid)?.method, 'cgroup');
    const cgroupsBefore = devicePids(vm).map((pid) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1'));
    const report = await vscode.commands.executeCommand<FreezeReport>('crosvmGuard.freeze', vm.pid);
    assert.equal(report?.method, 'cgroup');
    assert.match(report.methodReason, /root may write it/);
    const still = devicePids(vm).map((pid) => vm.deviceCounters().get(pid));
    await sleep(200);
    assert.deepEqual(
      devicePids(vm).map((pid) => vm.deviceCounters().get(pid)),
      still,
      'a device ran while frozen',
    );
    assert.ok(vm.isRunning(), 'the VM noticed the freeze');
    assert.equal(guard.getState().frozen[0]?.method, 'cgroup');
    await vscode.commands.executeCommand('crosvmGuard.resume');
    assert.deepEqual(
      devicePids(vm).map((pid) => fs.readFileSync(`/proc/${pid}/cgroup`, 'latin1')),
      cgroupsBefore,
      'a device is not back in its cgroup',
    );
    assert.ok(
      await eventually(() => devicePids(vm).every((pid, i) => (vm.deviceCounters().get(pid) ?? 0n) > (still[i] ?? 0n))),
      'not running after resume',
    );
    // Survived, not merely alive (crosvm hangs alive after a crash): it ends normally.
    assert.deepEqual(await vm.stop(), { code: 0, signal: null }, vm.stderr());
  });

  test('the API rejects a pid that is not crosvm, and a bad argument', async () => {
    const guard = await api();
    await assert.rejects(guard.freeze(process.pid), /is not crosvm/);
    assert.equal(await vscode.commands.executeCommand('crosvmGuard.freeze', 'nonsense'), undefined);
    assert.equal(await vscode.commands.executeCommand('crosvmGuard.freeze', process.pid), undefined);
  });

  test('the API offers no more than the settings: signals on a build that dies of them are refused even when asked for', async () => {
    const guard = await api();
    const vm = await startFixtureVm({ build: 'default' });
    // allowUnsafeSignals is the engine's own escape hatch (its tests); no setting offers it.
    const options = { method: 'signal', allowUnsafeSignals: true, cgroupVersion: 1 } as unknown as Parameters<CrosvmGuardApi['freeze']>[1];
    await assert.rejects(guard.freeze(vm.pid, options), (error: Error & { code?: string }) => error.code === 'unsafe-build');
    await sleep(200);
    assert.ok(vm.isRunning(), 'the VM shut down: it was sent SIGSTOP');
    assert.ok(devicePids(vm).every(isRunning));
    await assert.rejects(
      guard.freeze(vm.pid, { scope: 'everything' } as unknown as Parameters<CrosvmGuardApi['freeze']>[1]),
      /scope must be/,
    );
  });

  test('the API reports every change of state', async () => {
    const guard = await api();
    const vm = await startFixtureVm({ build: 'swap' });
    const events: GuardEvent['type'][] = [];
    const subscription = guard.onDidChangeState((e) => events.push(e.type));
    try {
      await guard.freeze(vm.pid);
      await guard.resume(vm.pid);
      await guard.freeze(vm.pid, { scope: 'vm' }).then(() => guard.resume());
    } finally {
      subscription.dispose();
    }
    assert.deepEqual(events, ['freezing', 'frozen', 'resumed', 'freezing', 'frozen', 'resumed']);
  });

  test('copy pid and show details work for VMs and device processes', async () => {
    await api();
    const vm = await startFixtureVm({ build: 'swap' });
    const device = vm.devices.find((d) => d.label === 'weird) dev');
    assert.ok(device);
    assert.equal(await vscode.commands.executeCommand('crosvmGuard.copyPid', device.pid), device.pid);
    assert.equal(await vscode.env.clipboard.readText(), String(device.pid));
    const doc = await vscode.commands.executeCommand<vscode.TextDocument>('crosvmGuard.showDetails', vm.pid);
    assert.ok(doc);
    const text = doc.getText();
    assert.match(text, new RegExp(`# crosvm VM ${vm.pid}`));
    assert.match(text, /## Command line[\s\S]*crosvm run --mem/);
    assert.match(text, /`weird\) dev` pid \d+/);
    assert.match(text, /\| start time \| \d+ clock ticks after boot \(\d{4}-/);
    await vscode.commands.executeCommand('workbench.action.revertAndCloseActiveEditor');
  });

  test('refresh returns the number of VMs', async () => {
    await api();
    await startFixtureVm({ build: 'swap' });
    await startFixtureVm({ build: 'default' });
    assert.equal(await vscode.commands.executeCommand('crosvmGuard.refresh'), 2);
  });
});

suite('settings', () => {
  teardown(async () => {
    for (const key of ['processNames', 'excludeLabels', 'stopTimeoutMs', 'assumeSwapBuild', 'method']) await setSetting(key, undefined);
    await vscode.commands.executeCommand('crosvmGuard.resume');
    await stopAllFixtureVms();
  });

  test('processNames chooses what is a VM; an invalid value falls back to the default', async () => {
    const guard = await api();
    await startFixtureVm({ build: 'swap' });
    await setSetting('processNames', ['not-crosvm']);
    assert.ok(await eventually(() => guard.refresh().vms.length === 0));
    await setSetting('processNames', ['/usr/bin/crosvm']);
    assert.ok(await eventually(() => guard.refresh().vms.length === 1), 'an invalid processNames must fall back to ["crosvm"]');
  });

  test('excludeLabels and assumeSwapBuild reach the engine', async () => {
    const guard = await api();
    const vm = await startFixtureVm({ build: 'default' });
    await setSetting('assumeSwapBuild', [vm.binary]);
    await setSetting('excludeLabels', ['*']);
    await eventually(() => guard.refresh().vms[0]?.signalsSafe === true);
    // Everything excluded: nothing is signalled, so the non-swap fixture survives.
    const report = await guard.freeze(vm.pid);
    assert.equal(report.frozen.length, 0);
    assert.equal(report.skipped.length, vm.devices.length);
    await sleep(100);
    assert.ok(vm.isRunning());
  });

  test('maxFreezeSeconds resumes a VM that stayed frozen that long', async () => {
    const guard = await api();
    const vm = await startFixtureVm({ build: 'swap' });
    await setSetting('maxFreezeSeconds', 1);
    try {
      await guard.freeze(vm.pid);
      assert.ok(devicePids(vm).every(isFullyStopped));
      assert.ok(await eventually(() => devicePids(vm).every(isRunning), 4000), 'still frozen after maxFreezeSeconds');
      assert.equal(guard.getState().frozen.length, 0);
    } finally {
      await setSetting('maxFreezeSeconds', undefined);
    }
  });

  test('settings that choose targets are machine scoped and declared restricted for untrusted workspaces', () => {
    const manifest = vscode.extensions.getExtension(EXTENSION_ID)?.packageJSON as {
      contributes: { configuration: { properties: Record<string, { scope?: string }> } };
      capabilities: { untrustedWorkspaces: { supported: string; restrictedConfigurations: string[] } };
    };
    const targetSettings = ['processNames', 'excludeLabels', 'includeTracedProcesses', 'assumeSwapBuild'].map((k) => `crosvmGuard.${k}`);
    for (const key of targetSettings) {
      assert.equal(manifest.contributes.configuration.properties[key].scope, 'machine', key);
      assert.ok(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations.includes(key), key);
    }
  });

  test('a workspace cannot point the extension at other processes', async () => {
    const guard = await api();
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'the suite needs a workspace folder');
    const settingsFile = path.join(folder.uri.fsPath, '.vscode', 'settings.json');
    fs.mkdirSync(path.dirname(settingsFile), { recursive: true });
    // A hostile repository names the extension host's own executable as "crosvm".
    fs.writeFileSync(
      settingsFile,
      JSON.stringify({
        'crosvmGuard.processNames': [path.basename(process.execPath)],
        'crosvmGuard.assumeSwapBuild': [fs.realpathSync(process.execPath)],
      }),
    );
    try {
      await sleep(1500); // the configuration service picks the file up asynchronously
      assert.equal(vscode.workspace.getConfiguration('crosvmGuard').inspect('processNames')?.globalValue, undefined);
      const state = guard.refresh();
      assert.ok(!state.vms.some((vm) => vm.pid === process.pid || vm.name.includes('node')), JSON.stringify(state.vms));
      await assert.rejects(guard.freeze(process.ppid), /is not crosvm/);
    } finally {
      fs.rmSync(path.dirname(settingsFile), { recursive: true, force: true });
    }
  });
});
