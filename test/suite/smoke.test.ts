// The extension loads and activates in a real extension host.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';

const EXTENSION_ID = 'crosvm-guard.crosvm-guard';

suite('extension host smoke', () => {
  test('the extension is installed', () => {
    assert.ok(vscode.extensions.getExtension(EXTENSION_ID), `${EXTENSION_ID} is not loaded`);
  });

  test('activate() resolves', async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension);
    await extension.activate();
    assert.equal(extension.isActive, true);
  });

  test('the extension host runs on Linux', () => {
    // The guard signals Linux processes; a web worker or another OS host would be a setup error.
    assert.equal(process.platform, 'linux');
    assert.equal(typeof process.kill, 'function');
  });
});
