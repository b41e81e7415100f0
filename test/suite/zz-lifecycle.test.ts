// Runs last (file order): leaves the runner's VM frozen so that the runner can check, once the
// extension host has shut down, that deactivate() resumed it.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { CrosvmGuardApi } from '../../src/ui/api';
import { isFullyStopped } from '../engine/procState';
import { DEACTIVATE_VM_VARIABLE, LIFECYCLE_VM_NAME } from './result';

suite('lifecycle', () => {
  test("freezes the runner's VM and leaves it frozen for the deactivate check", async () => {
    const pid = Number(process.env[DEACTIVATE_VM_VARIABLE]);
    assert.ok(pid > 0, `${DEACTIVATE_VM_VARIABLE} is not set: the runner must start a VM for the deactivate check`);
    const api = await vscode.extensions.getExtension<CrosvmGuardApi>('crosvm-guard.crosvm-guard')?.activate();
    assert.ok(api);
    // The VM runs under its own name (see the runner); the setting makes it a VM for us.
    await vscode.workspace
      .getConfiguration('crosvmGuard')
      .update('processNames', ['crosvm', LIFECYCLE_VM_NAME], vscode.ConfigurationTarget.Global);
    const report = await api.freeze(pid);
    assert.ok(report.frozen.length > 0);
    assert.ok(report.frozen.every((p) => isFullyStopped(p.pid)));
  });
});
