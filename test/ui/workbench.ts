// Harness for UI tests: a real VS Code workbench (code-server + headless Chromium) with the
// extension under development loaded, driven the way a person would (F1, typing, clicking)
// and read back from the DOM.
//
// Two things differ from a desktop window and matter to tests:
// - The workbench runs with the smoke-test driver on (needed to load the extension from this
//   repository through the URL), and in that mode VS Code never shows notification toasts:
//   notifications() reads the notification centre instead. `asInstalled` starts a workbench
//   without it, as the demo does, where toasts() sees the toasts.
// - Lists and trees are virtualised: only rows scrolled into view exist in the DOM.
import { mkdirSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { launchBrowser, WorkbenchBrowser } from '../runner/browser';
import { CodeServer, RunAs, startCodeServer } from '../runner/codeServer';
import { repoRoot, testResultsDir, testWorkspace } from '../runner/paths';
import { requireIsolation } from '../runner/isolation';
import { OUTPUT_CHANNEL_NAME } from '../../src/ui/contributions';

export const EXTENSION_ID = 'crosvm-guard.crosvm-guard';

/**
 * Reads `read()` every `every` ms until `accept` holds of it or `timeout` ms have passed, and
 * returns the last value read: the caller asserts on it, so a failure shows what was there.
 * The one deadline loop of the UI tests.
 */
export async function waitFor<T>(read: () => T | Promise<T>, accept: (value: T) => boolean, timeout = 10_000, every = 100): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await read();
    if (accept(value) || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

export interface OpenWorkbenchOptions {
  /** User settings for this workbench (merged over quietWorkbenchSettings). */
  settings?: Record<string, unknown>;
  /** Defaults to test/workspace/. */
  folder?: string;
  /** Defaults to the repository root (the built dist/extension.js); null loads only installed extensions. */
  extensionDevelopmentPath?: string | null;
  /** Where installed extensions live (default: an empty folder of the user data). */
  extensionsDir?: string;
  /** Keep workspace trust on (Restricted Mode until trusted). */
  trust?: boolean;
  /** Extra environment for code-server and so the extension host. */
  env?: Record<string, string>;
  /**
   * Run code-server and so the extension host as this unprivileged user (from root), e.g. a
   * TestUser from ensureTestUser(); the browser still runs as the runner. Default: the runner's user.
   */
  runAs?: RunAs;
  /**
   * The extension installed (see CodeServerOptions.asInstalled) in a workbench without the
   * smoke-test driver, as `npm run demo` serves it: notifications show as toasts there.
   */
  asInstalled?: boolean;
}

export interface StatusBarItem {
  /** `<extension id>.<item id>` for extension items, e.g. `crosvm-guard.crosvm-guard.status`. */
  id: string;
  /** The label with icons written back as `$(name)`, as the extension set it: `$(debug-pause) crosvm: idle`. */
  text: string;
  /** The accessibility label; for an item without accessibilityInformation, its text and tooltip. */
  ariaLabel: string;
}

export interface TreeRow {
  label: string;
  description: string;
  /** A tree item's tooltip when it has one, else its label. */
  ariaLabel: string;
  /** 1 for top-level rows. */
  level: number;
  /** undefined for a leaf. */
  expanded: boolean | undefined;
  /** The codicon of a ThemeIcon (`vm` for `new ThemeIcon('vm')`), if the row has one. */
  icon: string | undefined;
  /** All classes of the row's icon element, e.g. to see a ThemeColor. */
  iconClasses: string[];
}

export interface Notification {
  message: string;
  /** 'error' | 'warning' | 'info' */
  severity: string;
  /** `Source: <extension display name>` without the prefix. */
  source: string;
  buttons: string[];
}

const DEFAULT_TIMEOUT = 20_000;

/** What a VM's row in the tree says at its end: its pid, after its state. */
export const vmRowDescription = (pid: number) => new RegExp(`(^|· )pid ${pid}$`);

/** A VM's row among the tree's rows (level 1, its description ending with its pid). */
export function vmRowOf(rows: readonly TreeRow[], pid: number): TreeRow | undefined {
  return rows.find((row) => row.level === 1 && vmRowDescription(pid).test(row.description));
}

export async function openWorkbench(options: OpenWorkbenchOptions = {}): Promise<Workbench> {
  requireIsolation('A test workbench');
  const server = await startCodeServer({
    folder: options.folder ?? testWorkspace,
    extensionDevelopmentPath: options.extensionDevelopmentPath === null ? undefined : (options.extensionDevelopmentPath ?? repoRoot),
    extensionsDir: options.extensionsDir,
    settings: options.settings,
    trust: options.trust,
    env: options.env,
    runAs: options.runAs,
    asInstalled: options.asInstalled,
  });
  let browser: WorkbenchBrowser | undefined;
  try {
    browser = await launchBrowser();
    await browser.page.goto(server.url());
    await waitForWorkbench(browser.page);
    return new Workbench(server, browser);
  } catch (error) {
    await browser?.close();
    await server.dispose();
    throw error;
  }
}

export class Workbench {
  readonly page: Page;

  constructor(
    /** The code-server behind this window: logs, process (see extensionHostPids). */
    readonly server: Pick<CodeServer, 'logsDir' | 'process' | 'dispose'>,
    private readonly browser: WorkbenchBrowser,
  ) {
    this.page = browser.page;
  }

  /**
   * Waits until the extension host has activated `extensionId` at least `count` times in this
   * server's life (count 2 after killing the extension host once, and so on). Read from the
   * extension host log, so it works whatever the activation event; activation has then started,
   * its visible effects may follow (waitForStatusBarItem). Throws if activation failed.
   */
  async waitForActivation(extensionId = EXTENSION_ID, count = 1, timeout = DEFAULT_TIMEOUT): Promise<void> {
    const started = `ExtensionService#_doActivateExtension ${extensionId},`;
    const failed = `Activating extension ${extensionId} failed`;
    const activations = (log: string) => log.split(started).length - 1;
    const log = await waitFor(
      () => this.extensionHostLog(),
      (text) => text.includes(failed) || activations(text) >= count,
      timeout,
    );
    const failure = log.indexOf(failed);
    if (failure >= 0) throw new Error(`activation of ${extensionId} failed:\n${log.slice(failure, failure + 2000)}`);
    if (activations(log) < count) throw new Error(`${extensionId} was not activated ${count} time(s) within ${timeout} ms`);
  }

  /** The extension's own log (Output → crosvm Guard) of every extension host of this server. */
  extensionLog(): string {
    const found: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const file = join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (entry.name.endsWith(`${OUTPUT_CHANNEL_NAME}.log`)) found.push(readFileSync(file, 'utf8'));
      }
    };
    if (existsSync(this.server.logsDir)) walk(this.server.logsDir);
    return found.join('\n');
  }

  /** Everything the extension hosts of this server logged (`logs/<start>/exthost<N>/remoteexthost.log`). */
  extensionHostLog(): string {
    const { logsDir } = this.server;
    if (!existsSync(logsDir)) return '';
    return readdirSync(logsDir)
      .flatMap((start) =>
        readdirSync(join(logsDir, start))
          .filter((name) => name.startsWith('exthost'))
          .map((host) => join(logsDir, start, host, 'remoteexthost.log')),
      )
      .filter((file) => existsSync(file))
      .map((file) => readFileSync(file, 'utf8'))
      .join('\n');
  }

  /**
   * Reloads the window, which starts a new extension host. After the extension host was killed
   * (see extensionHostPids) this is the way back: a workbench in extension-development mode
   * neither restarts a crashed host nor says so, and the web build has no "Restart Extension
   * Host" command. Then `waitForActivation(EXTENSION_ID, 2)` waits for the second activation.
   */
  async reload(): Promise<void> {
    await this.page.reload();
    await waitForWorkbench(this.page);
  }

  /** Runs a command from the palette by its full title (`Category: Title`), as a person would. */
  async runCommand(title: string): Promise<void> {
    await this.quickOpen(`>${title}`, title);
  }

  /**
   * Shows a view by its name ("Virtual Machines") or a view container by its title: views through
   * "View: Open View..." (the `view ` prefix), containers through their "View: Show <title>" command.
   */
  async openView(title: string): Promise<void> {
    try {
      await this.quickOpen(`view ${title}`, title, 0);
    } catch {
      await this.runCommand(`View: Show ${title}`);
    }
  }

  async statusBarItems(): Promise<StatusBarItem[]> {
    return this.page.locator('.part.statusbar .statusbar-item').evaluateAll((elements) =>
      elements.map((element) => {
        const label = element.querySelector('.statusbar-item-label');
        // Icons render as <span class="codicon codicon-NAME">; write them back as $(NAME).
        const copy = label?.cloneNode(true) as typeof label;
        for (const icon of copy?.querySelectorAll('.codicon') ?? []) {
          const name = [...icon.classList].find((c) => c.startsWith('codicon-') && !c.startsWith('codicon-modifier-'));
          const spin = icon.classList.contains('codicon-modifier-spin') ? '~spin' : '';
          icon.replaceWith(name ? `$(${name.slice('codicon-'.length)}${spin})` : '');
        }
        const text = copy?.textContent ?? '';
        return { id: element.id, text: text.trim(), ariaLabel: element.getAttribute('aria-label') ?? '' };
      }),
    );
  }

  /** Waits for a status bar item whose text (with `$(icon)`s) matches, and returns it. */
  async waitForStatusBarItem(text: RegExp, timeout = DEFAULT_TIMEOUT): Promise<StatusBarItem> {
    const items = await waitFor(
      () => this.statusBarItems(),
      (all) => all.some((candidate) => text.test(candidate.text)),
      timeout,
    );
    const item = items.find((candidate) => text.test(candidate.text));
    if (item) return item;
    const there = items.map((i) => JSON.stringify(i.text)).join(', ');
    throw new Error(`no status bar item matches ${text} within ${timeout} ms; there are: ${there}`);
  }

  /** The extension's own status-bar item (crosvmGuard.status); undefined while it is hidden. */
  async guardStatus(): Promise<StatusBarItem | undefined> {
    return (await this.statusBarItems()).find((item) => item.id.endsWith('crosvmGuard.status'));
  }

  /**
   * Waits until the extension's status-bar text matches `pattern` and returns it; throws with
   * what it says instead (and `more()`, e.g. the extension's log) when it does not in time.
   */
  async waitForGuardStatus(pattern: RegExp, timeout = DEFAULT_TIMEOUT, more?: () => string): Promise<string> {
    const read = async () => (await this.guardStatus())?.text ?? '';
    const text = await waitFor(read, (t) => pattern.test(t), timeout, 50);
    if (!pattern.test(text)) throw new Error(`status bar says "${text}", not ${pattern}${more ? `\n${more()}` : ''}`);
    return text;
  }

  async clickStatusBarItem(text: RegExp): Promise<void> {
    const item = await this.waitForStatusBarItem(text);
    await this.page.locator(`.part.statusbar [id="${item.id}"] .statusbar-item-label`).click();
  }

  /**
   * The visible rows of a view's tree or list, top to bottom. With `viewTitle`, only that view's
   * rows ("Virtual Machines"); without, every row of the views shown in the side bar.
   */
  async treeRows(viewTitle?: string): Promise<TreeRow[]> {
    const scope = viewTitle
      ? this.page.locator('.pane').filter({ has: this.page.locator(`.pane-header[aria-label="${viewTitle} Section"]`) })
      : this.page.locator('.part.sidebar');
    const rows = await scope.locator('.pane-body .monaco-list-row').evaluateAll((elements) =>
      elements.map((row) => {
        const icon = row.querySelector('.custom-view-tree-node-item-icon, .monaco-icon-label .codicon');
        const iconClasses = icon ? [...icon.classList] : [];
        const codicon = iconClasses.find((c) => c.startsWith('codicon-') && c !== 'codicon-colored' && !c.startsWith('codicon-modifier-'));
        const expanded = row.getAttribute('aria-expanded');
        return {
          index: Number(row.getAttribute('data-index')),
          label: row.querySelector('.label-name')?.textContent ?? row.textContent ?? '',
          description: row.querySelector('.label-description')?.textContent ?? '',
          ariaLabel: row.getAttribute('aria-label') ?? '',
          level: Number(row.getAttribute('aria-level') ?? 1),
          expanded: expanded === null ? undefined : expanded === 'true',
          icon: codicon?.slice('codicon-'.length),
          iconClasses,
        };
      }),
    );
    // DOM order of a virtualised list is not display order; the rows' indices are.
    return rows.sort((a, b) => a.index - b.index).map(({ index: _index, ...row }) => row);
  }

  /** The row of the side bar's tree whose label is exactly `label`. */
  treeRow(label: string): Locator {
    return this.page
      .locator('.part.sidebar .pane-body .monaco-list-row')
      .filter({ has: this.page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) })
      .first();
  }

  /**
   * Moves the mouse over a tree row, as a person would to read its tooltip, and waits for that
   * row's tooltip (one that names the label; another element's may still be fading out).
   */
  async hoverTreeRow(label: string, timeout = 10_000): Promise<Locator> {
    return this.hoverRow(this.treeRow(label), label, timeout);
  }

  /** The row of the side bar's tree whose description matches, e.g. a VM's `running · pid 1234`. */
  treeRowDescribed(description: RegExp): Locator {
    return this.page
      .locator('.part.sidebar .pane-body .monaco-list-row')
      .filter({ has: this.page.locator('.label-description', { hasText: description }) })
      .first();
  }

  /** Hovers `row` and waits for its tooltip, told apart from a fading one by `text` it holds. */
  async hoverRow(row: Locator, text: string, timeout = 10_000): Promise<Locator> {
    await row.locator('.label-name').hover();
    const hover = this.page.locator('.monaco-hover.workbench-hover', { hasText: text }).first();
    await hover.waitFor({ state: 'visible', timeout });
    return hover;
  }

  /** Clicks one of a tree row's inline actions (the icons it shows while hovered), by its title. */
  async clickInlineAction(row: Locator, title: string): Promise<void> {
    await row.hover();
    await row.locator(`.actions .action-label[aria-label="${title}"]`).click();
  }

  /** The tooltip (hover) shown now, if any. */
  hover(): Locator {
    return this.page.locator('.monaco-hover.workbench-hover').first();
  }

  /**
   * The rows of the open quick pick: label text and the codicon in front of it (`$(vm) …` in
   * a QuickPickItem label renders as an icon), description and detail.
   */
  async quickPickRows(): Promise<{ label: string; icon: string | undefined; description: string; detail: string }[]> {
    const widget = this.page.locator('.quick-input-widget');
    await widget.locator('.monaco-list-row').first().waitFor({ timeout: DEFAULT_TIMEOUT });
    return widget.locator('.monaco-list-row').evaluateAll((rows) =>
      rows.map((row) => {
        const label = row.querySelector('.quick-input-list-label .label-name, .monaco-icon-label .label-name');
        const icon = [...(label?.querySelectorAll('.codicon') ?? [])]
          .flatMap((i) => [...i.classList])
          .find((c) => c.startsWith('codicon-') && !c.startsWith('codicon-modifier-'));
        return {
          label: (label?.textContent ?? '').trim(),
          icon: icon?.slice('codicon-'.length),
          description: row.querySelector('.label-description')?.textContent ?? '',
          detail: row.querySelector('.quick-input-list-label-meta .monaco-icon-label, .quick-input-list-detail')?.textContent ?? '',
        };
      }),
    );
  }

  /** Runs a command from the palette and leaves its quick pick open (it asks something). */
  async runCommandThatAsks(title: string): Promise<void> {
    await this.quickOpen(`>${title}`, title, DEFAULT_TIMEOUT, false);
  }

  /**
   * The notifications in the notification centre, newest first. (With the smoke-test driver on,
   * VS Code shows no toasts, so the centre is where they are.) Leaves the centre as it was.
   */
  async notifications(): Promise<Notification[]> {
    return this.withNotificationCenter(async (center) => center.locator('.notification-list-item').evaluateAll(readNotifications));
  }

  /**
   * The notification toasts on screen now (bottom right), newest first: what a person sees
   * without opening the notification centre. Only a workbench without the smoke-test driver
   * (`asInstalled`) shows any.
   */
  async toasts(): Promise<Notification[]> {
    return this.page
      .locator('.notifications-toasts .notification-toast-container:visible .notification-list-item')
      .evaluateAll(readNotifications);
  }

  /** Clicks a button of the newest notification whose message matches. */
  async clickNotificationButton(message: RegExp, button: string): Promise<void> {
    await this.withNotificationCenter(async (center) => {
      const item = center
        .locator('.notification-list-item')
        .filter({ has: this.page.locator('.notification-list-item-message', { hasText: message }) })
        .first();
      await item.locator('.notification-list-item-buttons-container .monaco-button', { hasText: button }).click();
    });
  }

  /** Saves a PNG of the whole window to test-results/screenshots/<name>.png and returns its path. */
  async screenshot(name: string): Promise<string> {
    const dir = join(testResultsDir, 'screenshots');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${name}.png`);
    await this.page.screenshot({ path });
    return path;
  }

  /** Closes the browser and stops code-server (its whole process group). */
  async close(): Promise<void> {
    await this.browser.close();
    await this.server.dispose();
  }

  /**
   * Opens the quick input (F1), replaces its content with `text` (">" for commands, "view " for
   * views) and accepts the row labelled exactly `label`, never a near match (the palette offers
   * "similar commands" for anything). The list is computed when the palette opens, so a command
   * whose `when` clause is not true yet only shows up after closing and reopening: retried
   * until `timeout`.
   */
  private async quickOpen(text: string, label: string, timeout = DEFAULT_TIMEOUT, waitUntilClosed = true): Promise<void> {
    const widget = this.page.locator('.quick-input-widget');
    const rows = widget.locator('.monaco-list-row');
    const row = rows.filter({ has: this.page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) }).first();
    // "No matching views" is final at once; no need to wait out the attempt.
    const noMatch = rows.filter({ hasText: /^No matching/ }).first();
    const deadline = Date.now() + timeout;
    for (;;) {
      await this.page.keyboard.press('F1');
      try {
        await widget.locator('.quick-input-box input').waitFor({ timeout: 5_000 });
      } catch {
        // Seen with the modal "Running Extensions" editor focused: F1 does nothing until Escape closes it.
        throw new Error('F1 did not open the command palette: is a modal editor or dialog focused? (Escape closes it)');
      }
      await this.page.keyboard.press('ControlOrMeta+A');
      await this.page.keyboard.type(text);
      await row
        .or(noMatch)
        .waitFor({ timeout: 2_000 })
        .catch(() => undefined);
      if (await row.isVisible()) break;
      await this.page.keyboard.press('Escape');
      if (Date.now() >= deadline) throw new Error(`"${label}" is not offered for "${text}" in the quick input`);
      await this.page.waitForTimeout(250);
    }
    // Enter runs the focused row; the exact match is usually it, else a person would click it.
    if ((await row.getAttribute('class'))?.split(' ').includes('focused')) await this.page.keyboard.press('Enter');
    else await row.click();
    if (waitUntilClosed) await widget.waitFor({ state: 'hidden' });
  }

  private async withNotificationCenter<T>(read: (center: Locator) => Promise<T>): Promise<T> {
    const center = this.page.locator('.notifications-center');
    const wasVisible = await center.isVisible();
    const toggle = (): Promise<void> => this.page.locator('.part.statusbar [id="status.notifications"] .statusbar-item-label').click();
    if (!wasVisible) {
      // A click now and then does not open it (seen once in five runs during a debug session,
      // when the status bar is redrawn in debug colours): click again rather than wait it out.
      for (let attempt = 1; ; attempt++) {
        await toggle();
        try {
          await center.waitFor({ state: 'visible', timeout: 5000 });
          break;
        } catch (error) {
          if (attempt === 3) throw error;
        }
      }
    }
    try {
      return await read(center);
    } finally {
      if (!wasVisible && (await center.isVisible())) await toggle();
    }
  }
}

/** What readNotifications uses of a DOM element (it runs in the browser; this file has no DOM types). */
interface DomElement {
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): Iterable<DomElement>;
  readonly classList: { contains(name: string): boolean };
  readonly textContent: string | null;
}

/** Reads notification list items (in the centre or in toasts); runs in the browser. */
function readNotifications(items: DomElement[]): Notification[] {
  return items.map((item) => {
    const icon = item.querySelector('.notification-list-item-icon');
    const severity = ['error', 'warning', 'info'].find((s) => icon?.classList.contains(`codicon-${s}`)) ?? 'info';
    return {
      message: item.querySelector('.notification-list-item-message')?.textContent ?? '',
      severity,
      source: (item.querySelector('.notification-list-item-source')?.textContent ?? '').replace(/^Source: /, ''),
      buttons: [...item.querySelectorAll('.notification-list-item-buttons-container .monaco-button')].map((b) => b.textContent ?? ''),
    };
  });
}

export async function waitForWorkbench(page: Page): Promise<void> {
  await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
