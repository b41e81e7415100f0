// An LLDB session on a fixture VM's main process, as a crosvm developer starts one: a
// breakpoint in the run loop of main(), then `attach` by pid through a native DAP adapter
// (Debian's lldb-vscode-14, contributed as debug type `lldb-vscode` by test/lldbExtension).
// LLDB ptrace-stops every thread of the main process (state `t`); the device processes are
// other processes, which only crosvm Guard stops.
import * as vscode from 'vscode';
import { FixtureVm, fixtureSource, fixtureSourceLine } from '../fixture/fixtureVm';

/** A line of main()'s run loop (test/fixture/crosvm.c), reached each time the loop wakes. */
export const RUN_LOOP_LINE = 'handle_signals(&hotplug_requests);';

export interface LldbSession extends vscode.Disposable {
  readonly session: vscode.DebugSession;
  /**
   * Wakes the run loop so that it reaches the breakpoint: asks the VM to hot-plug a device
   * (a queued real-time signal, read through its signalfd like crosvm's control socket).
   * The promise settles once the VM announced the device, i.e. after the debugger let it run.
   */
  wake(timeoutMs?: number): Promise<unknown>;
}

export async function attachLldb(vm: FixtureVm): Promise<LldbSession> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('no workspace folder');
  const location = new vscode.Location(vscode.Uri.file(fixtureSource()), new vscode.Position(fixtureSourceLine(RUN_LOOP_LINE) - 1, 0));
  const breakpoint = new vscode.SourceBreakpoint(location);
  vscode.debug.addBreakpoints([breakpoint]);
  const started = new Promise<vscode.DebugSession>((resolve) => {
    const subscription = vscode.debug.onDidStartDebugSession((s) => {
      subscription.dispose();
      resolve(s);
    });
  });
  const configuration = { type: 'lldb-vscode', request: 'attach', name: 'crosvm (LLDB attach)', pid: vm.pid, program: vm.binary };
  if (!(await vscode.debug.startDebugging(folder, configuration))) {
    vscode.debug.removeBreakpoints([breakpoint]);
    throw new Error(`LLDB could not attach to ${vm.pid}`);
  }
  const session = await started;
  return {
    session,
    wake: (timeoutMs = 30_000) => {
      const announced = vm.hotplugNow(timeoutMs);
      announced.catch(() => undefined); // awaited, if at all, by the caller
      return announced;
    },
    dispose: () => vscode.debug.removeBreakpoints([breakpoint]),
  };
}
