// The one VM picker: a quick pick of VMs (and an "All VMs" row), used by the commands (freeze,
// kill) and by the debug follower (debug.target `ask`); each caller brings its own words.
import * as vscode from 'vscode';
import type { FreezeScope, VmRef } from '../guard';
import { SettingKeys } from '../common/settings';
import type { GuardController, VmView } from './controller';
import { plural, vmPickDetail, VmStateKind, vmStateKind } from './describe';
import { openSetting } from './openSetting';
import { vmRef } from './vmRefs';

export interface VmPickerOptions {
  readonly title: string;
  readonly placeholder: string;
  /** A VM's row: its codicon, and the line below it. */
  readonly icon: (vm: VmView) => string;
  readonly detail?: (vm: VmView) => string | undefined;
  /** The "All VMs" row (after the VMs): the VMs it takes and what it says; none if undefined. */
  readonly all?: { readonly vms: readonly VmView[]; readonly description: string; readonly detail?: string };
  /** The row Enter takes at first (else the first row). */
  readonly preselect?: VmView;
  /** Stays open when the focus moves (the debugger reveals its stopped line at the same moment). */
  readonly ignoreFocusOut?: boolean;
}

/** Shows the picker; the VMs of the row taken, or undefined when it was dismissed. */
export async function showVmPicker(vms: readonly VmView[], options: VmPickerOptions): Promise<VmRef[] | undefined> {
  type Item = vscode.QuickPickItem & { refs: VmRef[] };
  const items: Item[] = vms.map((vm) => ({
    label: `$(${options.icon(vm)}) ${vm.snapshot.name}`,
    description: `pid ${vm.snapshot.main.pid}`,
    detail: options.detail?.(vm),
    refs: [vmRef(vm)],
  }));
  const { all, preselect } = options;
  if (all) items.push({ label: '$(layers) All VMs', description: all.description, detail: all.detail, refs: all.vms.map(vmRef) });
  const quickPick = vscode.window.createQuickPick<Item>();
  quickPick.items = items;
  quickPick.title = options.title;
  quickPick.placeholder = options.placeholder;
  quickPick.matchOnDescription = true;
  quickPick.ignoreFocusOut = options.ignoreFocusOut ?? false;
  const first = preselect && items[vms.indexOf(preselect)];
  if (first) quickPick.activeItems = [first];
  const picked = await new Promise<Item | undefined>((resolve) => {
    quickPick.onDidAccept(() => resolve(quickPick.selectedItems[0] ?? quickPick.activeItems[0]));
    quickPick.onDidHide(() => resolve(undefined));
    quickPick.show();
  });
  quickPick.dispose();
  return picked?.refs;
}

/** The VMs a command acts on: the only one, or the user's pick (`kill`: one VM, never "All VMs"). */
export async function pickVmsToAct(controller: GuardController, scope: FreezeScope | 'kill'): Promise<VmRef[] | undefined> {
  const vms = controller.refresh();
  if (vms.length === 0) {
    const refresh = 'Refresh';
    const settings = 'Open Settings';
    const choice = await vscode.window.showInformationMessage(noVmMessage(), refresh, settings);
    if (choice === refresh) return controller.refresh().length > 0 ? pickVmsToAct(controller, scope) : undefined;
    if (choice === settings) void openSetting(SettingKeys.processNames);
    return undefined;
  }
  if (vms.length === 1) return [vmRef(vms[0])];
  // The VMs a freeze would change: running ones it can freeze (a VM frozen as asked already,
  // one that cannot be frozen, one another window holds are left out).
  const open = scope === 'kill' ? vms : vms.filter((vm) => canAct(vm, scope));
  const left = vms.filter((vm) => !open.includes(vm) && !vm.frozen);
  const all =
    scope !== 'kill' && open.length > 1
      ? {
          vms: open,
          description: `${plural(open.length, 'VM')} that can be frozen`,
          detail: left.length > 0 ? `not ${left.map((vm) => `VM ${vm.snapshot.main.pid} (${vmPickDetail(vm)})`).join(', ')}` : undefined,
        }
      : undefined;
  return showVmPicker(vms, {
    title: scope === 'kill' ? 'Kill crosvm VM' : scope === 'vm' ? 'Freeze entire crosvm VM (vCPUs too)' : 'Freeze crosvm devices',
    placeholder: 'Which crosvm VM?',
    icon: (vm) => PICK_ICONS[vmStateKind(vm)],
    detail: vmPickDetail,
    all,
    // Enter on the preselected row must do something: the first VM that can be frozen.
    preselect: open[0],
  });
}

/** Whether a freeze of `scope` would change this VM. */
function canAct(vm: VmView, scope: FreezeScope): boolean {
  if (vm.frozenElsewhere) return false;
  if (vm.frozen) return scope === 'vm' && vm.frozen.scope === 'devices';
  return vmStateKind(vm) !== 'unfreezable';
}

/** Picker icons: the tree's state icons (a quick pick cannot colour them). */
const PICK_ICONS: Record<VmStateKind, string> = {
  running: 'vm-running',
  frozen: 'debug-pause',
  frozenWithVcpus: 'debug-stop',
  partlyFrozen: 'warning',
  frozenElsewhere: 'debug-pause',
  needsAdmin: 'shield',
  unfreezable: 'circle-slash',
};

function noVmMessage(): string {
  return 'No crosvm VM is running on this host. crosvm Guard looks for processes whose executable or argv[0] is named as in crosvmGuard.processNames.';
}
