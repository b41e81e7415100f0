// Settings validation: every invalid value falls back to its default with a warning.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_EXTENSION_SETTINGS, SETTINGS_SECTION, SettingKeys, validateSettings } from '../../src/common/settings';
import { METHOD_SETTINGS } from '../../src/guard/methods/methodDriver';
import { formatElapsed } from '../../src/common/format';

describe('validateSettings', () => {
  it('takes the defaults when nothing is set', () => {
    assert.deepEqual(validateSettings({}), { settings: DEFAULT_EXTENSION_SETTINGS, warnings: [] });
  });

  it('takes valid values', () => {
    const { settings, warnings } = validateSettings({
      processNames: ['crosvm', 'crosvm-dev', 'crosvm-*', 'crosvm.?'],
      excludeLabels: ['swap monitor'],
      stopTimeoutMs: 500,
      refreshIntervalMs: 1000,
      statusBarVisibility: 'debugging',
      includeTracedProcesses: true,
      assumeSwapBuild: ['/home/dev/crosvm/target/release/crosvm'],
    });
    assert.deepEqual(warnings, []);
    assert.deepEqual(settings.processNames, ['crosvm', 'crosvm-dev', 'crosvm-*', 'crosvm.?']);
    assert.equal(settings.statusBarVisibility, 'debugging');
    assert.deepEqual(settings.assumeSwapBuild, ['/home/dev/crosvm/target/release/crosvm']);
  });

  const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a path instead of a name', { processNames: ['/usr/bin/crosvm'] }, /processNames "\/usr\/bin\/crosvm" is not a bare executable name/],
    ['an empty list of names', { processNames: [] }, /processNames must name at least one executable/],
    [
      'a name that is all wildcard',
      { processNames: ['crosvm', '*'] },
      /processNames "\*" starts with a wildcard; start with the executable's name/,
    ],
    ['a name that starts with a wildcard', { processNames: ['?rosvm'] }, /processNames "\?rosvm" starts with a wildcard/],
    ['a string instead of a list', { processNames: 'crosvm' }, /must be a list of executable names/],
    ['numbers in a list', { excludeLabels: [1, 2] }, /excludeLabels must be a list of label patterns/],
    ['a timeout too small', { stopTimeoutMs: 1 }, /crosvmGuard.stopTimeout must be a whole number from 50 to 60000/],
    ['a fractional interval', { refreshIntervalMs: 1000.5 }, /crosvmGuard.refreshInterval must be a whole number/],
    [
      'an unknown visibility',
      { statusBarVisibility: 'sometimes' },
      /statusBar.visibility must be one of whenVmRunning, debugging, always, never/,
    ],
    ['a string for a list', { assumeSwapBuild: 'yes' }, /assumeSwapBuild must be a list of crosvm executables/],
    ['a bare name to vouch for', { assumeSwapBuild: ['crosvm'] }, /assumeSwapBuild "crosvm" is not an absolute path/],
    // The old boolean vouched for every crosvm of the machine, default builds included.
    [
      'the old `true`',
      { assumeSwapBuild: true },
      /assumeSwapBuild is now a list of the crosvm executables you vouch .*: true vouched for every crosvm/,
    ],
    ['a negative safety valve', { maxFreezeSeconds: -1 }, /maxFreezeSeconds must be a whole number from 0 to 86400/],
  ];
  for (const [name, raw, warning] of invalid) {
    it(`falls back to the default on ${name}`, () => {
      const { settings, warnings } = validateSettings(raw);
      assert.deepEqual(settings, DEFAULT_EXTENSION_SETTINGS);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], warning);
      assert.match(warnings[0], /using the default/);
    });
  }

  it('reads the old default `false` as vouching for no executable, without a warning', () => {
    assert.deepEqual(validateSettings({ assumeSwapBuild: false }), { settings: DEFAULT_EXTENSION_SETTINGS, warnings: [] });
  });

  it('keeps the valid values when one is invalid', () => {
    const { settings, warnings } = validateSettings({ stopTimeoutMs: -5, refreshIntervalMs: 5000 });
    assert.equal(settings.stopTimeoutMs, DEFAULT_EXTENSION_SETTINGS.stopTimeoutMs);
    assert.equal(settings.refreshIntervalMs, 5000);
    assert.equal(warnings.length, 1);
  });
});

describe('formatElapsed', () => {
  it('formats m:ss and h:mm:ss', () => {
    assert.equal(formatElapsed(0), '0:00');
    assert.equal(formatElapsed(7_900), '0:07');
    assert.equal(formatElapsed(65_000), '1:05');
    assert.equal(formatElapsed(3_725_000), '1:02:05');
    assert.equal(formatElapsed(-50), '0:00');
  });
});

describe('package.json, as the Settings editor reads it', () => {
  // The Settings editor shows package.json, not the code: both must say the same.
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { default?: unknown; enum?: unknown[] }> } };
  };
  const declared = manifest.contributes.configuration.properties;
  for (const [key, name] of Object.entries(SettingKeys) as Array<[keyof typeof SettingKeys, string]>) {
    it(`declares ${SETTINGS_SECTION}.${name} with the default the code uses`, () => {
      const property = declared[`${SETTINGS_SECTION}.${name}`];
      assert.ok(property, `package.json does not declare ${SETTINGS_SECTION}.${name}`);
      assert.deepEqual(property.default, DEFAULT_EXTENSION_SETTINGS[key]);
    });
  }
  it('offers exactly the methods the engine has, and auto', () => {
    assert.deepEqual(declared[`${SETTINGS_SECTION}.${SettingKeys.method}`].enum, [...METHOD_SETTINGS]);
  });
});
