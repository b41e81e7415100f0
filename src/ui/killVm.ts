// Kill VM: the whole tree of a VM with SIGKILL, after asking (a stopped process ignores
// SIGTERM), proven to be the VM meant right before the signal.
import * as vscode from 'vscode';
import treeKill from 'tree-kill';
import { GuardError, maySignal, ProcessSnapshot } from '../guard';
import { plural } from './describe';
import { pickVmsToAct } from './vmPicker';
import { vmRef, vmRefFromArgument } from './vmRefs';
import { offerWayOut, WayOutHost } from './wayOut';

/** Kills the VM `arg` names (or the one the user picks); true if it was killed. */
export async function killVm(host: WayOutHost, arg: unknown): Promise<boolean> {
  const { controller, log } = host;
  try {
    const ref = vmRefFromArgument(arg) ?? (await pickVmsToAct(controller, 'kill'))?.[0];
    if (!ref) return false;
    const vm = controller.guard.inspectVm(ref);
    const foreign = [vm.main, ...vm.devices].find((p) => !maySignal(p.pid));
    if (foreign) throw new GuardError('not-permitted', mayNotKill(vm.main.pid, foreign));
    const kill = 'Kill VM';
    const choice = await vscode.window.showWarningMessage(
      `Kill crosvm VM ${vm.main.pid} (${vm.name}) and its ${plural(vm.devices.length, 'device process', 'device processes')}?`,
      { modal: true, detail: 'Every process of the VM gets SIGKILL. The guest is lost; unsaved guest state is gone.' },
      kill,
    );
    if (choice !== kill) return false;
    // Proven again right before the signal: the user may have waited at the dialog.
    controller.guard.inspectVm(vmRef(vm));
    await new Promise<void>((resolve, reject) => treeKill(vm.main.pid, 'SIGKILL', (error) => (error ? reject(error) : resolve())));
    const killed = `Killed VM ${vm.main.pid} (${vm.name}) and its ${plural(vm.devices.length, 'device process', 'device processes')}`;
    log.info(`${killed} with SIGKILL.`);
    vscode.window.setStatusBarMessage(`$(trash) crosvm: ${killed}.`, 6000);
    await controller.resume(ref);
    controller.refresh();
    return true;
  } catch (error) {
    void offerWayOut(host, { error });
    return false;
  }
}

function mayNotKill(vmPid: number, foreign: ProcessSnapshot): string {
  const owner = `uid ${foreign.uid} (${foreign.label} ${foreign.pid})`;
  return `crosvm VM ${vmPid} runs as ${owner}; this window may not kill it. To kill it anyway, run \`sudo kill -KILL ${vmPid}\` in a terminal.`;
}
