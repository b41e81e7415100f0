// Context keys for `when` clauses in the manifest: hide resume when nothing is frozen, and so on.
import * as vscode from 'vscode';
import { ContextKeys } from './contributions';
import type { GuardController } from './controller';

/** A context key that calls `setContext` only when its value really changes. */
export class ManagedContextKey<T> {
  private value: T | undefined;

  constructor(private readonly key: string) {}

  set(value: T): void {
    if (value === this.value) return;
    this.value = value;
    void vscode.commands.executeCommand('setContext', this.key, value);
  }
}

/** Keeps the context keys of the menus in step with the controller's listing. */
export function registerContextKeys(context: vscode.ExtensionContext, controller: GuardController): void {
  const vmRunning = new ManagedContextKey<boolean>(ContextKeys.VmRunning);
  const frozen = new ManagedContextKey<boolean>(ContextKeys.Frozen);
  const frozenElsewhere = new ManagedContextKey<boolean>(ContextKeys.FrozenElsewhere);
  context.subscriptions.push(
    controller.onDidChange(() => {
      vmRunning.set(controller.vms.length > 0);
      frozen.set(controller.isFrozen);
      frozenElsewhere.set(controller.isFrozenElsewhere);
    }),
  );
}
