import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import type { CDPSession, Page } from 'playwright-core';
import { PROJECT_ROOT } from '../../src/config.js';

/**
 * Where Chromium-family browsers usually live: Debian and other Linux packages, snap, macOS, Windows. Chromium's
 * headless shell first: the same Blink and V8 without the browser's own UI, what Playwright itself runs headless
 * tests in; the browser test's Chromium took 31 s of CPU in it instead of 42 in the full browser.
 */
export const CHROMIUM_CANDIDATES = [
  '/usr/bin/chromium-headless-shell',
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
  '/snap/bin/chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe',
  'C:\\Program Files (x86)\\Google\\Chrome\\Application\\chrome.exe',
];

/**
 * What the tests launch it with: no sandbox (tests run as root in CI), nothing in the background, and the
 * compositor in the browser process and one renderer for every page, which took the browser test's Chromium from
 * about 49 to 40 s of CPU.
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--in-process-gpu',
  '--renderer-process-limit=1',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-extensions',
  '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,BackForwardCache,PaintHolding',
  '--disable-smooth-scrolling',
  '--disable-lcd-text',
];

const runnable = (file: string) => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The browser the browser test drives: `CHROME_PATH` when set (it must run), else the first of the usual places.
 * Never a downloaded build. Throws one line saying how to get one.
 */
export function findChromium(chromePath = process.env.CHROME_PATH, candidates: readonly string[] = CHROMIUM_CANDIDATES): string {
  if (chromePath) {
    if (runnable(chromePath)) return chromePath;
    throw new Error(`CHROME_PATH is ${chromePath}, which is not an executable: point it at Chromium or Chrome.`);
  }
  const found = candidates.find(runnable);
  if (found) return found;
  throw new Error('No Chromium or Chrome found: install one (Debian: apt-get install chromium-headless-shell, or chromium; macOS: brew install --cask chromium) or set CHROME_PATH to its executable.');
}

/**
 * Screenshots of what a rider sees, into test-output/screenshots/, are taken only when asked (SCREENSHOTS=1), or
 * with UPDATE_SCREENSHOTS=1, which also refreshes the README's: nothing asserts on them, and they cost Chromium
 * about 3 s of CPU per run.
 */
export const SCREENSHOTS_WANTED = process.env.SCREENSHOTS === '1' || process.env.UPDATE_SCREENSHOTS === '1';

let axeSource: string | undefined;

/** Each page's DevTools session with the Runtime domain on, for axe-core's injection. */
const runtimeSessions = new WeakMap<Page, Promise<CDPSession>>();
function runtimeSession(page: Page): Promise<CDPSession> {
  let session = runtimeSessions.get(page);
  if (!session) {
    session = page
      .context()
      .newCDPSession(page)
      .then(async (opened) => (await opened.send('Runtime.enable'), opened));
    runtimeSessions.set(page, session);
  }
  return session;
}

/**
 * axe-core's violations on the page as it stands, a line each (rule, impact, help, the first three places). Its
 * source goes in through the DevTools protocol, once per document, so the page's CSP does not stand in the way; as a
 * script compiled with a name, not evaluated, so that V8 finds it compiled on every page after the first (89 ms of
 * Chromium's CPU per document instead of 142 here).
 */
export async function axeViolations(page: Page): Promise<string[]> {
  axeSource ??= readFileSync(path.join(PROJECT_ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  if (!(await page.evaluate('typeof window.axe === "object"'))) {
    const session = await runtimeSession(page);
    const { scriptId, exceptionDetails } = await session.send('Runtime.compileScript', { expression: axeSource, sourceURL: 'axe.min.js', persistScript: true });
    if (!scriptId) throw new Error(`axe-core did not compile: ${exceptionDetails?.text}`);
    const { exceptionDetails: failed } = await session.send('Runtime.runScript', { scriptId });
    if (failed) throw new Error(`axe-core did not load: ${failed.exception?.description ?? failed.text}`);
  }
  return page.evaluate<string[]>(`
    axe.run(document, { resultTypes: ['violations'] }).then((result) =>
      result.violations.map((v) => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')))`);
}
