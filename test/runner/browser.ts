// The browser that shows a code-server workbench: Debian's Chromium driven by playwright-core
// (never `npx playwright install`, which downloads a browser).
import { Browser, Page, chromium } from 'playwright-core';
import { registerCleanup } from './cleanup';
import { chromiumPath } from './tools';

export interface WorkbenchBrowser {
  readonly browser: Browser;
  readonly page: Page;
  /** Closes the browser; also run on exit, Ctrl-C and SIGTERM. */
  close(): Promise<void>;
}

/**
 * Launches headless Chromium with one page sized like a small laptop screen. `onExit` is
 * exposed to the workbench as `codeAutomationExit`, which the smoke-test driver calls with
 * the extension tests' outcome (0 passed, 1 failed); it must be registered before navigating.
 */
export async function launchBrowser(onExit?: (code: number) => void): Promise<WorkbenchBrowser> {
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
    // Signals are handled by cleanup.ts so the browser closes before code-server, in order.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const close = registerCleanup({
    dispose: () => browser.close().catch(() => undefined),
    // Playwright kills the browsers it launched on process exit by itself.
    disposeSync: () => undefined,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // The workbench's console also carries the extension host's console ("[Extension Host] ...").
    if (process.env.CROSVM_GUARD_VERBOSE) page.on('console', (message) => console.error(`[browser ${message.type()}] ${message.text()}`));
    if (onExit) await page.exposeFunction('codeAutomationExit', onExit);
    return { browser, page, close };
  } catch (error) {
    await close();
    throw error;
  }
}
