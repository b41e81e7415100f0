// `npm test`: every stage in order (type check, lint, engine tests in plain Node, the
// extension-host suite in a real VS Code, the UI tests in a real browser), one summary line
// per stage, and a last line `N passed, M failed`. A stage that fails or runs no test fails
// the whole run; later stages still run so one report shows everything that is wrong.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureSystemPackages } from '../test/runner/systemPackages';
import { ensureCodeServer } from '../test/runner/tools';
import { buildFixture } from '../test/fixture/fixtureVm';
import { findRealCrosvm } from '../test/realCrosvm/realVm';
import { ForeignVms, startForeignVms } from '../test/runner/foreignVms';
import { isolatedCommand, isolatedEnvironment, isolationUnavailable } from '../test/runner/isolation';

const root = path.resolve(__dirname, '..', '..');

interface Stage {
  readonly name: string;
  readonly command: string[];
  /** Reads the counts from the stage's output; undefined for stages without tests. */
  readonly counts?: (output: string, tapFile: string) => { passed: number; failed: number };
  /** Runs in a private pid namespace of its own: it starts, lists or signals processes. */
  readonly isolated?: boolean;
  /** Why the stage cannot run on this machine, in one line; undefined when it can. */
  readonly unavailable?: () => string | undefined;
}

/** Under CI (CI=true) a stage that cannot run fails the run instead of being reported as not run. */
const everyStageRequired = () => process.env.CI === 'true';

function realCrosvmUnavailable(): string | undefined {
  const found = findRealCrosvm();
  return 'missing' in found ? found.missing : undefined;
}

/** Counts from a TAP file written by node --test (`# pass N`, `# fail N`). */
function tapCounts(_output: string, tapFile: string): { passed: number; failed: number } {
  const tap = fs.existsSync(tapFile) ? fs.readFileSync(tapFile, 'utf8') : '';
  const count = (word: string) => Number(new RegExp(`^# ${word} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
  return { passed: count('pass'), failed: count('fail') + count('cancelled') };
}

/** Counts from the runner's closing line `<name>: N passed, M failed`. */
const closingLineCounts =
  (name: string) =>
  (output: string): { passed: number; failed: number } => {
    const match = new RegExp(`^${name}: (\\d+) passed, (\\d+) failed`, 'm').exec(output);
    return { passed: Number(match?.[1] ?? 0), failed: Number(match?.[2] ?? 1) };
  };

const nodeTest = (dirs: string[], tapFile: string) => [
  process.execPath,
  '--test',
  '--test-concurrency=1',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tapFile}`,
  ...dirs,
];

function run(stage: Stage, tmp: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const [command, ...args] = stage.isolated ? isolatedCommand(stage.command) : stage.command;
    // A fresh XDG_RUNTIME_DIR: the stage's journals never meet those of the user's own windows.
    const runtimeDir = fs.mkdtempSync(path.join(tmp, `${stage.name}-runtime-`));
    const env = stage.isolated ? isolatedEnvironment({ ...process.env, XDG_RUNTIME_DIR: runtimeDir }) : process.env;
    const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const forward = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
      output += chunk.toString();
      stream.write(chunk);
    };
    child.stdout.on('data', forward(process.stdout));
    child.stderr.on('data', forward(process.stderr));
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

async function main(): Promise<void> {
  // Everything installed up front, so each stage's time is its own and a missing tool
  // fails once, clearly, instead of in every stage.
  ensureSystemPackages();
  ensureCodeServer();
  buildFixture();
  // No namespace, no run: a run that could see the host's VMs is never the fallback.
  const unavailable = isolationUnavailable();
  if (unavailable) throw new Error(`${unavailable}\n\n0 passed, 1 failed`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'crosvm-guard-test-'));
  const foreign = await startForeignVms();
  process.stdout.write(
    `\nForeign VMs, which no stage may touch (watched by ${foreign.how}):\n${foreign.started.map((l) => `  ${l}`).join('\n')}\n`,
  );
  stopOnInterrupt(foreign);
  const npx = (...args: string[]) => [process.execPath, path.join(root, 'node_modules', '.bin', args[0]), ...args.slice(1)];
  const stages: Stage[] = [
    { name: 'typecheck', command: npx('tsc', '--noEmit') },
    { name: 'format', command: npx('prettier', '--check', 'src', 'test', 'bench', 'scripts', 'esbuild.mjs', 'eslint.config.mjs') },
    { name: 'lint', command: npx('eslint', 'src', 'test', 'bench', 'scripts') },
    {
      name: 'engine',
      command: nodeTest(['out/test/unit/', 'out/test/engine/'], path.join(tmp, 'engine.tap')),
      counts: tapCounts,
      isolated: true,
    },
    {
      name: 'vscode',
      command: [process.execPath, 'out/test/runner/runExtensionTests.js'],
      counts: closingLineCounts('vscode'),
      isolated: true,
    },
    { name: 'ui', command: nodeTest(['out/test/ui/'], path.join(tmp, 'ui.tap')), counts: tapCounts, isolated: true },
    {
      name: 'real-crosvm',
      command: nodeTest(['out/test/realCrosvm/'], path.join(tmp, 'real-crosvm.tap')),
      counts: tapCounts,
      isolated: true,
      unavailable: realCrosvmUnavailable,
    },
  ];
  const only = process.argv.slice(2);
  const summary: string[] = [];
  let passed = 0;
  let failed = 0;
  let ok = true;
  for (const stage of stages) {
    if (only.length > 0 && !only.includes(stage.name)) continue;
    const tapFile = path.join(tmp, `${stage.name}.tap`);
    const started = Date.now();
    process.stdout.write(`\n=== ${stage.name} ===\n`);
    const unavailable = stage.unavailable?.();
    if (unavailable !== undefined) {
      const required = everyStageRequired();
      process.stdout.write(`${stage.name}: not run: ${unavailable}\n`);
      if (required) {
        ok = false;
        failed += 1;
      }
      summary.push(`${required ? 'FAIL' : 'skip'} ${stage.name}: not run: ${unavailable}`);
      continue;
    }
    const { code, output } = await run(stage, tmp);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (stage.counts) {
      const counts = stage.counts(output, tapFile);
      passed += counts.passed;
      failed += counts.failed;
      const good = code === 0 && counts.failed === 0 && counts.passed > 0;
      ok &&= good;
      // A stage that crashed or ran nothing still counts as a failure in the closing line.
      if (!good && counts.failed === 0) failed += 1;
      summary.push(
        `${good ? 'ok  ' : 'FAIL'} ${stage.name}: ${counts.passed} passed, ${counts.failed} failed (${seconds} s)${counts.passed === 0 ? ' — no test ran' : ''}`,
      );
    } else {
      ok &&= code === 0;
      if (code !== 0) failed += 1;
      summary.push(`${code === 0 ? 'ok  ' : 'FAIL'} ${stage.name} (${seconds} s)`);
    }
  }
  const untouched = await foreign.finish();
  ok &&= untouched.problems.length === 0;
  passed += untouched.problems.length === 0 ? untouched.checks : 0;
  failed += untouched.problems.length;
  if (untouched.problems.length > 0) process.stdout.write(`\n=== foreign VMs ===\n${untouched.problems.join('\n')}\n`);
  summary.push(
    `${untouched.problems.length === 0 ? 'ok  ' : 'FAIL'} foreign VMs untouched: ${untouched.problems.length === 0 ? untouched.checks : 0} passed, ${untouched.problems.length} failed`,
  );
  fs.rmSync(tmp, { recursive: true, force: true });
  process.stdout.write(`\n${summary.join('\n')}\n\n${passed} passed, ${failed} failed\n`);
  process.exitCode = ok ? 0 : 1;
}

/** Ctrl-C or a kill of the run still stops the foreign VMs it started. */
function stopOnInterrupt(foreign: ForeignVms): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      void foreign.finish().finally(() => process.exit(130));
    });
  }
}

main().catch((error: unknown) => {
  // A tool that could not be installed says what failed and what to do: that, not a stack trace.
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
