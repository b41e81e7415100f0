// `npm run demo`: the extension, built from this repository, in a real VS Code to try by hand.
//
//   npm run demo                           code-server on 127.0.0.1, prints the URL to open
//   npm run demo -- --bind 0.0.0.0:8080    reachable from other machines (no password!)
//   npm run demo -- --desktop              a desktop VS Code (`code` on PATH) instead
//   npm run demo -- --unsafe-vm            also a VM built without the swap feature
//   npm run demo -- --fixture              the crosvm-like fixture even where real crosvm runs
//
// The VMs are real crosvm (test/realCrosvm/realVm.ts: root, /dev/kvm and ../shared/real-crosvm,
// or the folder CROSVM_GUARD_REAL_CROSVM names) where it can run, else the fixture.
// Ctrl-C stops everything it started.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { disposeAll, isShuttingDown, registerCleanup } from '../test/runner/cleanup';
import { startCodeServer } from '../test/runner/codeServer';
import { repoRoot } from '../test/runner/paths';
import { ensureSystemPackages } from '../test/runner/systemPackages';
import { startFixtureVm } from '../test/fixture/fixtureVm';
import { findRealCrosvm, REAL_CROSVM_VARIABLE, startRealVm, type RealCrosvmAssets } from '../test/realCrosvm/realVm';
import { CrosvmGuard } from '../src/guard';
import { makeDemoWorkspace } from './demoWorkspace';

/** What the demo VM needs the workbench to know (read by the extension through settings or env). */
interface DemoVm {
  settings?: Record<string, unknown>;
  env?: Record<string, string>;
}

/** A VM the demo started, real or the fixture. */
interface StartedVm {
  readonly pid: number;
  readonly build: 'swap' | 'default';
  /** Its executable, for a native debugger's launch configuration. */
  readonly binary: string;
  stop(): Promise<void>;
  /** The last resort when Node exits without the orderly stop (a real VM runs in a session of its own). */
  killSync(): void;
}

/**
 * The demo VMs: a build with the swap feature (with its `swap monitor`), which the extension
 * freezes with signals, and with `--unsafe-vm` also a default build, which a stopped device
 * would crash: the extension freezes it with the cgroup freezer (as root), or refuses and says
 * why. Real crosvm where it can run, so that users see its real devices; else the fixture.
 */
let demoVms: StartedVm[] = [];

async function startDemoVm(withUnsafeVm: boolean, desktop: boolean, fixture: boolean): Promise<DemoVm> {
  ensureSystemPackages();
  // A desktop VS Code reads your own settings: there the VMs are named crosvm, as yours are.
  const name = desktop ? undefined : DEMO_NAME;
  const builds: StartedVm['build'][] = withUnsafeVm ? ['swap', 'default'] : ['swap'];
  const real = fixture ? { missing: 'asked for with --fixture' } : findRealCrosvm();
  if ('assets' in real) await startRealVms(real.assets, builds, name);
  else {
    console.log(`The demo VMs are the crosvm-like fixture (test/fixture/crosvm.c), not real crosvm: ${real.missing}.`);
    await startFixtureVms(builds, name);
  }
  // Only the demo's own VMs: a debug session started from the demo freezes "all of your VMs",
  // and a crosvm of yours running on the same host is none of the demo's business.
  return desktop ? {} : { settings: { 'crosvmGuard.processNames': [DEMO_NAME] } };
}

async function startFixtureVms(builds: StartedVm['build'][], name: string | undefined): Promise<void> {
  // The sockets only name the VMs (the fixture creates none): the tree tells them apart by them.
  const common = { executableName: name, tickMs: 50, kernel: 'bzImage' };
  for (const build of builds) {
    const vm =
      build === 'swap'
        ? await startFixtureVm({ ...common, build, swapMonitor: true, devices: 3, deviceThreads: 2, socket: '/run/crosvm/demo.sock' })
        : await startFixtureVm({ ...common, build, devices: 2, socket: '/run/crosvm/no-swap.sock' });
    const stop = async () => {
      const { code, signal } = await vm.stop();
      if (code !== 0) console.log(`Demo VM ${vm.pid} (${build} build) ended with ${code ?? signal} (not 0: it did not survive).`);
    };
    demoVms.push({ pid: vm.pid, build, binary: vm.binary, stop, killSync: () => undefined });
    console.log(`Demo VM ${vm.pid} (${vm.build} build): ${vm.devices.map((d) => `${d.label} ${d.pid}`).join(', ')}`);
  }
}

/** Real, sandboxed crosvm VMs running the tick guest, each with its control socket. */
async function startRealVms(assets: RealCrosvmAssets, builds: StartedVm['build'][], name: string | undefined): Promise<void> {
  console.log(`The demo VMs are real crosvm from ${assets.dir} (${REAL_CROSVM_VARIABLE} names another folder like it).`);
  const guard = new CrosvmGuard({ processNames: [name ?? 'crosvm'] });
  for (const build of builds) {
    // The view names a VM by its socket's file name: these tell the two apart.
    const socket = build === 'swap' ? 'demo.sock' : 'no-swap.sock';
    const vm = await startRealVm({ build, swapMonitor: build === 'swap', socket, name }, assets);
    demoVms.push({
      pid: vm.pid,
      build,
      binary: vm.executable,
      stop: async () => {
        const code = await vm.stop();
        rmSync(vm.runDir, { recursive: true, force: true });
        console.log(
          `Demo VM ${vm.pid} (${build} build) ended with exit code ${code}${code === 143 ? '' : ' (not 143: it did not survive)'}.`,
        );
      },
      killSync: () => {
        try {
          process.kill(vm.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      },
    });
    const devices = guard.inspectVm({ pid: vm.pid }).devices;
    console.log(`Demo VM ${vm.pid} (${build} build): ${devices.map((d) => `${d.label} ${d.pid}`).join(', ')}`);
    console.log(`  its guest prints TICK n to ${vm.serialLog}, standing still while a device is frozen`);
  }
  await guard.dispose();
}

/** The demo VMs' executable name (a copy of the fixture), and so the demo's crosvmGuard.processNames. */
const DEMO_NAME = 'crosvm_demo'; // outside the default processNames: only the demo's window lists it

/** Resumes (stop() sends SIGCONT to the whole tree first) and ends every demo VM. */
async function stopDemoVm(): Promise<void> {
  const vms = demoVms;
  demoVms = [];
  await Promise.all(vms.map((vm) => vm.stop()));
}

interface DemoArgs {
  bind: string | undefined;
  desktop: boolean;
  unsafeVm: boolean;
  fixture: boolean;
}

function parseArgs(argv: string[]): DemoArgs {
  const args: DemoArgs = { bind: undefined, desktop: false, unsafeVm: false, fixture: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--desktop') args.desktop = true;
    else if (argv[i] === '--unsafe-vm') args.unsafeVm = true;
    else if (argv[i] === '--fixture') args.fixture = true;
    else if (argv[i] === '--bind' && argv[i + 1]) args.bind = argv[++i];
    else if (argv[i].startsWith('--bind=')) args.bind = argv[i].slice('--bind='.length);
    else throw new Error(`unknown argument ${argv[i]}; usage: npm run demo -- [--bind HOST:PORT | --desktop] [--unsafe-vm] [--fixture]`);
  }
  return args;
}

/** Resolves with an exit code, or undefined to keep running until Ctrl-C. */
async function main(): Promise<number | undefined> {
  const args = parseArgs(process.argv.slice(2));
  const code = args.desktop ? findOnPath('code') : undefined;
  if (args.desktop && !code) {
    throw new Error('--desktop needs the `code` command on PATH (VS Code: "Shell Command: Install \'code\' command in PATH").');
  }

  // Registered first, so that a VM started before a later one fails is stopped too.
  registerCleanup({ dispose: stopDemoVm, disposeSync: () => demoVms.forEach((vm) => vm.killSync()) });
  const vm = await startDemoVm(args.unsafeVm, args.desktop, args.fixture);
  // A native attach only where it can work: gdb and the C/C++ extension, which only a desktop
  // VS Code of yours may have (the demo's code-server starts with no extensions).
  const gdb = code && hasExtension(join(homedir(), '.vscode', 'extensions'), 'ms-vscode.cpptools-') ? findOnPath('gdb') : undefined;
  const workspace = makeDemoWorkspace(demoVms[0], gdb);
  registerCleanup({
    dispose: async () => rmSync(workspace, { recursive: true, force: true }),
    disposeSync: () => rmSync(workspace, { recursive: true, force: true }),
  });

  if (code) {
    // --wait keeps the CLI running until the window closes, so the VM lives exactly as long.
    const editor = spawn(code, ['--new-window', '--wait', `--extensionDevelopmentPath=${repoRoot}`, workspace], {
      stdio: 'inherit',
      env: { ...process.env, ...vm.env },
    });
    console.log('Opened a desktop VS Code window (Extension Development Host); close it or press Ctrl-C to stop.');
    const [exitCode] = (await once(editor, 'exit')) as [number | null];
    return exitCode ?? 1;
  }

  const server = await startCodeServer({
    folder: workspace,
    extensionDevelopmentPath: repoRoot,
    // The product as users see it: installed, no test-only flags (with the smoke-test driver
    // on, VS Code shows no notification toasts, and a refusal would go unseen).
    asInstalled: true,
    bindAddr: args.bind,
    settings: vm.settings,
    env: vm.env,
  });
  // The test runners let code-server go with them; the demo lives as long as it does.
  server.process.ref();
  server.process.once('exit', () => {
    if (isShuttingDown()) return;
    console.error(`code-server exited unexpectedly:\n${readFileSync(server.serverLog, 'utf8')}`);
    void disposeAll().then(() => process.exit(1));
  });
  if (args.bind && !args.bind.startsWith('127.')) {
    console.log(`Warning: ${args.bind} serves an unauthenticated VS Code to anyone who can reach it.`);
  }
  console.log(`\nOpen ${server.url()}\n\nVS Code logs: ${server.logsDir}\nCtrl-C stops code-server and the demo VM.`);
  return undefined;
}

function hasExtension(extensionsDir: string, prefix: string): boolean {
  try {
    return readdirSync(extensionsDir).some((name) => name.startsWith(prefix));
  } catch {
    return false; // no such folder
  }
}

function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    return 1;
  })
  .then(async (exitCode) => {
    // Still serving, or Ctrl-C already stopping everything (cleanup.ts exits then).
    if (exitCode === undefined || isShuttingDown()) return;
    await disposeAll();
    process.exit(exitCode);
  });
