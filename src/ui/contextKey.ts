import * as vscode from 'vscode';

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
