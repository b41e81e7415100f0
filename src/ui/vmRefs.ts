// How the VS Code layer names a VM to the engine: a VmRef (pid and start time, so a pid reused
// by another process is never taken for the VM), made from a listing or a command's argument.
import { GuardError, VmRef, VmSnapshot } from '../guard';
import type { VmView } from './controller';
import { ProcessNode, VmNode } from './processTreeView';

/** The VM a view or a snapshot shows, by pid and start time. */
export function vmRef(vm: VmView | VmSnapshot): VmRef {
  const { main } = 'snapshot' in vm ? vm.snapshot : vm;
  return { pid: main.pid, startTime: main.startTime };
}

/** Whether a view shows the VM `ref` names (its start time too, when the ref has one). */
export function isVm(view: VmView, ref: VmRef): boolean {
  const { main } = view.snapshot;
  return main.pid === ref.pid && (ref.startTime === undefined || main.startTime === ref.startTime);
}

/** A command's argument: a pid, a tree item, or `{ pid, startTime? }`; undefined means "ask". */
export function vmRefFromArgument(arg: unknown): VmRef | undefined {
  if (arg === undefined || arg === null) return undefined;
  if (typeof arg === 'number') return { pid: arg };
  if (arg instanceof VmNode) return vmRef(arg.view);
  if (arg instanceof ProcessNode) return vmRef(arg.vm);
  if (typeof arg === 'object' && typeof (arg as VmRef).pid === 'number') {
    const { pid, startTime } = arg as VmRef;
    return typeof startTime === 'number' ? { pid, startTime } : { pid };
  }
  throw new GuardError('invalid-argument', `Expected a crosvm VM's pid or a tree item, got ${JSON.stringify(arg)}.`);
}

/** A tree item, or the node of a VM or device process a pid names in the listing `vms` reads (for scripts). */
export function nodeFromArgument(arg: unknown, vms: () => readonly VmView[]): VmNode | ProcessNode | undefined {
  if (arg instanceof VmNode || arg instanceof ProcessNode) return arg;
  if (typeof arg !== 'number') return undefined;
  for (const vm of vms()) {
    if (vm.snapshot.main.pid === arg) return new VmNode(vm);
    const device = vm.snapshot.devices.find((d) => d.pid === arg);
    if (device) return new ProcessNode(vm, device, false);
  }
  return undefined;
}
