// The folder `npm run demo` opens: a stand-in debuggee and a launch configuration, so that
// freezing at debugger stops (crosvmGuard.debug.autoFreeze) can be tried in one click (F5).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The demo VM a native debugger would attach to. */
export interface DemoDebuggee {
  readonly pid: number;
  readonly binary: string;
}

const STAND_IN = `// A stand-in for crosvm under a debugger: it stops at \`debugger;\`, and after Continue runs
// for 5 seconds before it stops again, so that you can see the VM run in between.
// Each stop freezes the demo VM's device processes (crosvmGuard.debug.autoFreeze is "onStop"
// in this folder's settings); Continue (F5) resumes them. The status bar says which VMs a
// session freezes and why: this program is no VM, so all of yours.
let stops = 0;
function stopAgain() {
  stops += 1;
  debugger;
  // Scheduled after Continue, not before the stop: a timer that came due while the debugger
  // held the program stopped (setInterval) would stop it again at once.
  setTimeout(stopAgain, RUN_BETWEEN_STOPS_MS);
}
const RUN_BETWEEN_STOPS_MS = 5000;
setTimeout(stopAgain, 1000);
`;

const README = `# crosvm Guard demo

- **Run and Debug → Start Debugging (F5)**: a debugger stops, and the demo VM's devices freeze
  until you continue (\`crosvmGuard.debug.autoFreeze\` is \`onStop\` in \`.vscode/settings.json\`).
- The **crosvm Guard** view (activity bar) lists the demo VMs; the status bar item freezes and resumes.
`;

/**
 * A fresh folder with the stand-in, `.vscode/launch.json` (a native attach to the demo VM
 * first when `gdb` is given, the Node stand-in always) and `.vscode/settings.json`.
 */
export function makeDemoWorkspace(vm: DemoDebuggee, gdb: string | undefined): string {
  const folder = mkdtempSync(join(tmpdir(), 'crosvm-guard-demo-'));
  mkdirSync(join(folder, '.vscode'));
  writeFileSync(join(folder, 'standIn.js'), STAND_IN);
  writeFileSync(join(folder, 'README.md'), README);
  const standIn = { name: 'Stand-in debuggee (Node)', type: 'node', request: 'launch', program: '${workspaceFolder}/standIn.js' };
  // Needs the C/C++ extension (ms-vscode.cpptools); its main process is then the debuggee, so
  // debug.target "auto" freezes that VM only.
  const native = gdb && {
    name: `Attach gdb to the demo VM (pid ${vm.pid})`,
    type: 'cppdbg',
    request: 'attach',
    program: vm.binary,
    processId: String(vm.pid),
    MIMode: 'gdb',
    miDebuggerPath: gdb,
  };
  const launch = { version: '0.2.0', configurations: native ? [native, standIn] : [standIn] };
  writeFileSync(join(folder, '.vscode', 'launch.json'), JSON.stringify(launch, null, 2) + '\n');
  writeFileSync(join(folder, '.vscode', 'settings.json'), JSON.stringify({ 'crosvmGuard.debug.autoFreeze': 'onStop' }, null, 2) + '\n');
  return folder;
}
