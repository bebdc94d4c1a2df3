import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, type BrowserContext, type CDPSession, chromium, type Locator, type Page } from 'playwright-core';
import { PROJECT_ROOT } from '../../src/config.js';
import { ensureDist, SERVER_JS } from '../support/build.js';
import { axeViolations, CHROMIUM_ARGS, findChromium, SCREENSHOTS_WANTED } from '../support/chromium.js';
import { freePort, tempDir } from '../support/cluster.js';
import { TEST_GRACE_MS, testBcryptCost } from '../support/server-process.js';

/**
 * The whole journey of a newcomer, in headless Chromium, against the real server started as a user starts
 * it (`node dist/server.js`, as `npm start` runs it) on a fresh data directory: embedded PostgreSQL, demo data and all.
 */

// The machine has no internet: without the background-networking flags Chromium keeps dialling Google.
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const SCREENSHOTS = path.join(PROJECT_ROOT, 'test-output', 'screenshots');
const DOCS_SCREENSHOTS = path.join(PROJECT_ROOT, 'docs', 'screenshots');
const LOGIN_FAILED = 'Incorrect username or password.';

let dataDir: string;
let baseUrl: string;
let server: ChildProcess | undefined;
let serverExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let output = '';
let demo: { username: string; password: string };
let browser: Browser | undefined;

const postmasterPid = () => path.join(dataDir, 'postgres', 'postmaster.pid');

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** This process's environment without what the test runner sets for its own children. */
function serverEnvironment(): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _runner, ...env } = process.env;
  return env;
}

/** Starts `node dist/server.js` and resolves once it has printed its URL and the demo login. */
async function startServer(): Promise<void> {
  const port = await freePort();
  await ensureDist();
  const child = spawn(process.execPath, [SERVER_JS], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...serverEnvironment(),
      MOVR_DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      // Empty means unset (and wins over a developer's .env): the embedded database, no Google map, dev mode.
      DB_URI: '',
      API_KEY: '',
      SECRET_KEY: '',
      REGION: '',
      NODE_ENV: 'development',
      SHUTDOWN_GRACE_MS: String(TEST_GRACE_MS),
      BCRYPT_COST: testBcryptCost(),
    },
  });
  server = child;
  serverExit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));

  const deadline = Date.now() + 90_000;
  for (;;) {
    const url = output.match(/MovR is running at (http:\/\/\S+)/)?.[1];
    const login = output.match(/Demo login: username "([^"]+)", password "([^"]+)"/);
    if (url && login) {
      baseUrl = url;
      demo = { username: login[1]!, password: login[2]! };
      return;
    }
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the server exited during start-up:\n${output}`);
    if (Date.now() > deadline) throw new Error(`the server did not print its URL and demo login within 90 s:\n${output}`);
    await sleep(100);
  }
}

/** Stops whatever is still running: the server (SIGTERM, then SIGKILL), then any postgres left behind. */
async function stopEverything(): Promise<void> {
  await browser?.close().catch(() => {});
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    const exited = await Promise.race([serverExit.then(() => true), sleep(10_000).then(() => false)]);
    if (!exited) {
      server.kill('SIGKILL');
      await serverExit;
    }
  }
  if (dataDir && existsSync(postmasterPid())) {
    const pid = Number(readFileSync(postmasterPid(), 'utf8').split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
      process.kill(pid, 'SIGQUIT');
      for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

interface Problem {
  page: string;
  what: string;
}

/** Statuses a step means to provoke (a failed log-in, a 404 page); anything else >= 400 is a problem. */
const expectedFailures = new Set<string>();
const problems: Problem[] = [];

/** A context whose pages report console errors, page errors, failed requests and error responses. */
async function newContext(viewport = DESKTOP): Promise<BrowserContext> {
  assert.ok(browser, 'Chromium is not running');
  const context = await browser.newContext({ viewport, baseURL: baseUrl });
  context.setDefaultTimeout(10_000);
  context.on('page', watch);
  return context;
}

/** Pages whose own scripts never run, with the DevTools session that keeps them off. */
const withoutScripts = new WeakMap<Page, CDPSession>();

/**
 * A page that loads as in a browser with JavaScript turned off (what `javaScriptEnabled: false` does), but
 * through a DevTools session of its own, so that axe-core, whose checks wait on timers, can be let run.
 */
async function newPageWithoutScripts(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  const session = await context.newCDPSession(page);
  await session.send('Emulation.setScriptExecutionDisabled', { value: true });
  withoutScripts.set(page, session);
  return page;
}

function watch(page: Page) {
  const expected = (status: number, url: string) => expectedFailures.has(`${status} ${new URL(url).pathname}`);
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Chromium also logs every error response it loads; those are judged by status below.
    const status = Number(message.text().match(/status of (\d{3})/)?.[1]);
    if (status && expected(status, message.location().url || page.url())) return;
    problems.push({ page: page.url(), what: `console error: ${message.text()}` });
  });
  page.on('pageerror', (error) => problems.push({ page: page.url(), what: `uncaught: ${error.message}` }));
  page.on('requestfailed', (request) => {
    const error = request.failure()?.errorText ?? '';
    // The favicon is fetched after the load event, so moving on to the next page may cancel it.
    if (error === 'net::ERR_ABORTED' && request.resourceType() === 'other' && new URL(request.url()).pathname === '/static/img/movr.svg') return;
    problems.push({ page: page.url(), what: `request failed: ${request.method()} ${request.url()} ${error}` });
  });
  page.on('response', (response) => {
    if (response.status() >= 400 && !expected(response.status(), response.url())) {
      problems.push({ page: page.url(), what: `${response.status()} for ${response.request().method()} ${response.url()}` });
    }
  });
}

/** What a rider sees on the screen, into test-output/screenshots/, and into docs/screenshots/ for the README, when asked. */
async function screenshot(page: Page, name: string, { docs = false } = {}) {
  if (!SCREENSHOTS_WANTED) return;
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, animations: 'disabled' });
  // The README's images change only when asked (UPDATE_SCREENSHOTS=1 npm test), so a test run leaves the tree clean.
  if (docs && process.env.UPDATE_SCREENSHOTS === '1') copyFileSync(file, path.join(DOCS_SCREENSHOTS, `${name}.png`));
}

const pathOf = (page: Page) => new URL(page.url()).pathname;

interface Scan {
  page: string;
  width: number;
  violations: string[];
}
/** Every axe-core scan of the run, for the summary printed at the end. */
const scans: Scan[] = [];
/** The page states already scanned (the width and the structure's hash), and how many audits found one of them again. */
const scanned = new Set<string>();
let seenAgain = 0;

/**
 * The page's structure without its text or attribute values: tags, classes, attribute names, open dialogs and
 * hidden parts, alike children (rows of a list, in any order) counted once. What axe-core judges depends on it; the
 * same structure with other riders, vehicles or times is the same page state.
 */
const STRUCTURE = `(() => {
  const sig = (el) => {
    const parts = [...new Set([...el.children].map(sig))].sort();
    const names = [...el.attributes].map((a) => a.name).filter((n) => n !== 'class').sort().join(' ');
    const state = (el.open ? '!open' : '') + (el.hidden ? '!hidden' : '') + (el.disabled ? '!disabled' : '');
    return el.tagName + '.' + [...el.classList].sort().join('.') + '[' + names + ']' + state + '(' + parts.join(',') + ')';
  };
  return sig(document.documentElement);
})()`;

/**
 * axe-core on the page as it stands, at the journey's width, once per page state and width; any violation fails the
 * test (the phone journey covers the phone layouts). axeViolations (support/chromium.ts) evaluates it through the
 * DevTools protocol, so it works in a context without JavaScript too.
 */
async function audit(page: Page, label = `${pathOf(page)}${new URL(page.url()).search}`) {
  const width = (page.viewportSize() ?? DESKTOP).width;
  // The page's own scripts did not run at load and will not now; only axe's do, for the audit.
  await withoutScripts.get(page)?.send('Emulation.setScriptExecutionDisabled', { value: false });
  const state = createHash('sha256').update(`${width} ${await page.evaluate<string>(STRUCTURE)}`).digest('hex');
  if (scanned.has(state)) seenAgain++;
  else {
    scanned.add(state);
    const violations = await axeViolations(page);
    scans.push({ page: label, width, violations });
    assert.deepEqual(violations, [], `axe-core on ${label} at ${width}px`);
  }
  await withoutScripts.get(page)?.send('Emulation.setScriptExecutionDisabled', { value: true });
}

/** Goes to a page as a rider typing its address would, and audits it. */
async function visit(page: Page, where: string, expectedPath = where.split('?')[0]!) {
  await page.goto(where);
  assert.equal(pathOf(page), expectedPath);
  await audit(page);
}

/**
 * Clicks a link or a form's button and waits for the next page to load, even when it has the same URL
 * (a form posted back to itself, a redirect to the page the form was on); then checks where it landed, and
 * audits the page.
 */
async function follow(page: Page, target: Locator, expectedPath: string | RegExp) {
  await page.evaluate('window.movrPreviousPage = true');
  await target.click();
  await page.waitForFunction('!window.movrPreviousPage');
  await page.waitForLoadState('load');
  if (typeof expectedPath === 'string') assert.equal(pathOf(page), expectedPath);
  else assert.match(pathOf(page), expectedPath);
  await audit(page);
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 });
const flashes = (page: Page) => page.locator('main .alert');
const rideBar = (page: Page) => page.locator('#ride-bar');
const dialog = (page: Page) => page.getByRole('dialog');

async function logIn(page: Page, username: string, password: string, expectedPath: string) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await follow(page, page.getByRole('button', { name: 'Log in', exact: true }), expectedPath);
}

/** Opens the nav's city menu and picks a city, as a rider would. */
async function switchCity(page: Page, city: string) {
  const cityMenu = page.getByRole('button', { name: /Current city/ });
  // At phone width the menu sits behind the navbar toggler.
  if (!(await cityMenu.isVisible())) await page.getByRole('button', { name: 'Menu' }).click();
  const menu = page.locator('.dropdown-menu.show');
  if (!(await menu.isVisible())) await cityMenu.click();
  await follow(page, menu.getByRole('button', { name: city, exact: true }), '/vehicles');
  await assertText(heading(page), `Vehicles in ${city}`);
  await assertText(flashes(page), `Showing ${city}.`);
}

async function assertText(locator: Locator, expected: string | RegExp) {
  const text = (await locator.innerText()).replace(/\s+/g, ' ').trim();
  if (typeof expected === 'string') assert.ok(text.includes(expected), `expected "${expected}" in "${text}"`);
  else assert.match(text, expected);
}

async function assertNoHorizontalOverflow(page: Page) {
  const { scrollWidth, innerWidth } = await page.evaluate<{ scrollWidth: number; innerWidth: number }>(
    '({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })',
  );
  assert.ok(scrollWidth <= innerWidth, `${pathOf(page)} is ${scrollWidth}px wide in a ${innerWidth}px window`);
}

/** The ride table's start time: written in the ride city's own zone and manner, not in UTC. */
const STARTED = { weekday: 'short', day: 'numeric', month: 'short', hour: 'numeric', minute: '2-digit' } as const;
async function assertLocalTime(time: Locator, locale: string, timeZone: string) {
  const when = new Date((await time.getAttribute('datetime'))!);
  const shown = (await time.innerText()).trim();
  // Europe's 24-hour clock with two digits ("00:05"), the US's 12-hour one ("12:05 AM").
  const options = { ...STARTED, hour: locale === 'en-US' ? 'numeric' : '2-digit' } as const;
  assert.equal(shown, new Intl.DateTimeFormat(locale, { ...options, timeZone }).format(when), `a time in ${timeZone}`);
  assert.notEqual(shown, new Intl.DateTimeFormat(locale, { ...options, timeZone: 'UTC' }).format(when), 'not UTC');
}

const vehicleIds = (page: Page) => page.locator('#vehicle-list article').evaluateAll((cards) => cards.map((card) => card.getAttribute('data-vehicle-id')));
const vehicleLocations = (page: Page) => page.locator('#vehicle-list .vehicle-location').allInnerTexts();

/** Starts a ride on the nth available vehicle of the current city that the rider does not own. */
async function rideAVehicle(page: Page, nth = 0): Promise<string> {
  const card = page
    .locator('#vehicle-list article')
    .filter({ has: page.getByRole('button', { name: 'Start ride', exact: true }) })
    .nth(nth);
  const location = (await card.locator('dt', { hasText: /^Location$/ }).locator('xpath=following-sibling::dd[1]').innerText()).trim();
  await follow(page, card.getByRole('button', { name: 'Start ride', exact: true }), '/rides');
  await assertText(flashes(page), `Your ride started at ${location}. Enjoy!`);
  return location;
}

/** While riding, the bar is on the page: the vehicle, where from, how long, and the way to end it. */
async function assertRidingBar(page: Page, from: string) {
  assert.ok(await rideBar(page).isVisible(), `the riding bar shows on ${pathOf(page)}`);
  await assertText(rideBar(page), `From ${from}`);
  await assertText(rideBar(page), /started (just now|\d+ min ago)/);
  assert.ok(await rideBar(page).getByRole('link', { name: 'End ride' }).isVisible());
}

/** Adds a vehicle through the form and checks it is shown, highlighted, in the home city. */
async function addVehicle(page: Page, fields: { color: string; brand: string; location: string }, homeCity: string) {
  await follow(page, page.getByRole('link', { name: 'Add a vehicle' }).first(), '/vehicles/add');
  await page.getByRole('radio', { name: 'Bike' }).check();
  await page.getByLabel('Colour').fill(fields.color);
  await page.getByLabel('Brand (optional)').fill(fields.brand);
  await page.getByLabel('Location').fill(fields.location);
  await follow(page, page.getByRole('button', { name: 'Add vehicle' }), '/vehicles');
  await assertText(heading(page), `Vehicles in ${homeCity}`);
  assert.equal(await page.title(), `Vehicles in ${homeCity} · MovR`);
  await assertText(flashes(page), `Your ${fields.color} bike is listed in ${homeCity}, your home city.`);
  const added = page.locator('#vehicle-list article[data-just-added]');
  assert.equal(await added.count(), 1, 'one vehicle is highlighted');
  await assertText(added, fields.location);
  await assertText(added, 'Just added');
  assert.equal(await page.locator('#vehicle-list article').first().getAttribute('data-vehicle-id'), await added.getAttribute('data-vehicle-id'), 'first in the list');
  assert.ok(await added.isVisible());
  return added;
}

describe('a rider in Chromium against the real server', { timeout: 300_000 }, () => {
  before(async () => {
    // No skipping: a machine without Chromium or Chrome fails here, with one line saying how to get one.
    const executablePath = findChromium();
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = tempDir('movr-browser-');
    // Both at once; whichever started is stopped by `after` when the other fails.
    const [launched, started] = await Promise.allSettled([chromium.launch({ executablePath, args: [...CHROMIUM_ARGS] }), startServer()]);
    if (launched.status === 'fulfilled') browser = launched.value;
    if (launched.status === 'rejected') throw launched.reason;
    if (started.status === 'rejected') throw started.reason;
  });

  after(async () => {
    await stopEverything();
    const pages = [...new Set(scans.map((scan) => scan.page.replace(/[0-9a-f-]{36}/g, ':id').replace(/\?.*/, '')))];
    const failed = scans.filter((scan) => scan.violations.length > 0).length;
    console.log(
      `axe-core: ${scans.length} scans (${scans.filter((scan) => scan.width === PHONE.width).length} at ${PHONE.width}px) of as many page states (${seenAgain} audits found a state already scanned) on ${pages.length} pages and dialogs, ${failed} with violations: ${pages.join(', ')}`,
    );
  });
  beforeEach(() => {
    problems.length = 0;
  });

  test('the audit can fail: axe-core, injected as every audit injects it, reports a logo added without alt text', async () => {
    const context = await newContext();
    const page = await context.newPage();
    // The log-in page as served has none (the journey audits it); with an image without text it has one.
    await page.goto('/login');
    await page.evaluate(`document.querySelector('main').append(Object.assign(document.createElement('img'), { src: '/static/img/movr.svg' }))`);
    const violations = await axeViolations(page);
    assert.ok(violations.some((line) => line.startsWith('image-alt ')), `axe-core found: ${violations.join('; ') || 'nothing'}`);
    assert.deepEqual(problems, [], 'no console errors or failed requests');
    await context.close();
  });

  test('a newcomer signs up and is in, adds a vehicle that shows highlighted at home, rides with the bar, and confirms in dialogs', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const username = 'nadia.k';
    const password = 'a bicycle made for two';

    // Logged out, / sends to log in, which says what MovR is and, in development, offers the demo rider.
    await page.goto('/');
    assert.equal(pathOf(page), '/login');
    await audit(page);
    await assertText(heading(page), 'Log in to MovR');
    await assertText(page.locator('main'), 'MovR lends bikes, scooters and skateboards between neighbours');
    await assertText(page.locator('#demo-hint'), `Try the demo rider: username ${demo.username}, password ${demo.password}`);
    await screenshot(page, 'login');

    await follow(page, page.getByRole('link', { name: 'Create an account' }), '/register');
    await assertText(heading(page), 'Create your MovR account');
    await page.getByLabel('Home city').selectOption({ label: 'Seattle' });
    await page.getByLabel('First name').fill('Nadia');
    await page.getByLabel('Last name').fill('Kowalczyk');
    await page.getByLabel('Email').fill('nadia@example.com');
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill('short');
    // One message per field: the error replaces the help text instead of repeating it.
    expectedFailures.add('422 /register');
    await follow(page, page.getByRole('button', { name: 'Sign up' }), '/register');
    expectedFailures.delete('422 /register');
    const passwordNotes = page.locator('#field-password ~ .invalid-feedback, #field-password ~ .form-text');
    assert.deepEqual(await passwordNotes.allInnerTexts(), ['Password must be 8 to 128 characters.']);

    // Signing up logs in: straight to the home city's vehicles.
    await page.getByLabel('Password').fill(password);
    await follow(page, page.getByRole('button', { name: 'Sign up' }), '/vehicles');
    await assertText(flashes(page), 'Welcome to MovR, Nadia!');
    await assertText(heading(page), 'Vehicles in Seattle');
    assert.equal(await page.title(), 'Vehicles in Seattle · MovR');
    await assertText(page.locator('nav'), `@${username}`);
    // The footer: the instance that served the page (REGION, unset: US East) and where the rider's data lives.
    await assertText(page.locator('footer'), 'Page served from US East (South Carolina) · gcp-us-east1');
    await assertText(page.locator('footer'), 'Your data lives in US West (Oregon) · gcp-us-west1');
    assert.equal(await page.locator('nav').getByText(/gcp-/).count(), 0, 'no region codes in the nav');

    // Another city's vehicles, from the nav's city menu: its own places.
    const seattleIds = await vehicleIds(page);
    const seattlePlaces = await vehicleLocations(page);
    assert.ok(seattleIds.length > 0, 'Seattle has demo vehicles');
    await switchCity(page, 'Paris');
    await assertText(page.locator('footer'), 'Page served from US East');
    const parisIds = await vehicleIds(page);
    const parisPlaces = await vehicleLocations(page);
    assert.ok(parisIds.length > 0, 'Paris has demo vehicles');
    assert.ok(!parisIds.some((id) => seattleIds.includes(id)), "Paris lists none of Seattle's vehicles");
    assert.ok(!parisPlaces.some((place) => seattlePlaces.includes(place)), `Paris (${parisPlaces}) and Seattle (${seattlePlaces}) share no place`);

    // The vehicle form: the label's words are the error's.
    await follow(page, page.locator('nav').getByRole('link', { name: 'Add a vehicle' }), '/vehicles/add');
    await assertText(page.locator('main'), 'It will be listed in your home city, Seattle, not in Paris, the city you are browsing.');
    await screenshot(page, 'add-vehicle');
    expectedFailures.add('422 /vehicles/add');
    await page.getByLabel('Location').fill('Pike Place Market');
    await follow(page, page.getByRole('button', { name: 'Add vehicle' }), '/vehicles/add');
    expectedFailures.delete('422 /vehicles/add');
    await assertText(page.locator('#error-color'), 'Colour is required.');
    assert.equal(await page.getByLabel('Colour').getAttribute('aria-describedby'), 'error-color');

    // Added while browsing Paris: shown at home, in Seattle, highlighted and first.
    const mine = await addVehicle(page, { color: 'teal', brand: 'Brompton', location: 'Pike Place Market' }, 'Seattle');
    await assertText(mine, 'Brompton');
    await assertText(mine.getByRole('button'), 'Start ride (yours)');
    await screenshot(page, 'vehicle-added');

    // No rides yet: the empty page says how to start one.
    await follow(page, page.locator('nav').getByRole('link', { name: 'My rides' }), '/rides');
    await assertText(page.locator('main'), 'No rides yet');
    assert.equal(await rideBar(page).count(), 0, 'no riding bar before a ride');
    await follow(page, page.getByRole('link', { name: 'Find a vehicle' }), '/vehicles');

    // Riding: the bar follows the rider, and no card offers another start.
    const from = await rideAVehicle(page);
    await assertText(page.locator('#active-ride'), 'Riding now');
    await assertRidingBar(page, from);
    await follow(page, page.locator('nav').getByRole('link', { name: 'Vehicles' }), '/vehicles');
    await assertRidingBar(page, from);
    assert.equal(await page.getByRole('button', { name: /Start ride/ }).count(), 0, 'no Start ride while riding');
    assert.ok((await page.getByRole('button', { name: 'End your ride first' }).count()) > 0, 'the reason is on the buttons');
    await assertText(page.locator('#vehicle-list article.vehicle-card-riding'), 'Your ride');
    await follow(page, page.locator('nav').getByRole('link', { name: 'Riders' }), '/users');
    await assertRidingBar(page, from);
    await screenshot(page, 'users');

    // Ending asks first, in a dialog; Keep riding changes nothing.
    await rideBar(page).getByRole('link', { name: 'End ride' }).click();
    await dialog(page).waitFor();
    await assertText(dialog(page).getByRole('heading'), 'End your ride?');
    await assertText(dialog(page), from);
    assert.equal(pathOf(page), '/users');
    await audit(page, 'dialog: End your ride?');
    await screenshot(page, 'dialog-end-ride');
    await dialog(page).getByRole('link', { name: 'Keep riding' }).click();
    await dialog(page).waitFor({ state: 'hidden' });
    await assertRidingBar(page, from);

    await rideBar(page).getByRole('link', { name: 'End ride' }).click();
    await dialog(page).waitFor();
    await dialog(page).getByLabel('Location').fill('Space Needle');
    await follow(page, dialog(page).getByRole('button', { name: 'End ride' }), '/rides');
    await assertText(flashes(page), 'Ride ended at Space Needle.');
    assert.equal(await rideBar(page).count(), 0, 'no riding bar once ended');
    const row = page.locator('#ride-history tbody tr').first();
    await assertText(row, from);
    await assertText(row, 'Space Needle');
    await assertText(row.locator('td[data-label="City"]'), 'Seattle');
    await assertText(row.locator('td[data-label="Duration"]'), /^(under a minute|\d+ min)$/);
    await assertLocalTime(row.locator('td[data-label="Started"] time'), 'en-US', 'America/Los_Angeles');
    await screenshot(page, 'rides-history');

    // The profile: deleting is refused with every reason, removing a vehicle asks first.
    await follow(page, page.locator('nav').getByRole('link', { name: `@${username}` }), /^\/users\/[0-9a-f-]{36}$/);
    const profilePath = pathOf(page);
    await assertText(heading(page), 'Nadia Kowalczyk');
    await screenshot(page, 'profile');
    await page.getByRole('button', { name: 'Delete my account' }).click();
    await dialog(page).waitFor();
    await assertText(dialog(page).locator('#blockers'), 'Remove your vehicle.');
    assert.equal(await dialog(page).getByRole('button', { name: 'Delete my account' }).count(), 0, 'nothing to confirm yet');
    await audit(page, 'dialog: Delete your account? (refused)');
    await dialog(page).getByRole('link', { name: 'Back' }).click();
    await dialog(page).waitFor({ state: 'hidden' });

    const listed = page.locator('#my-vehicles li').filter({ hasText: 'Pike Place Market' });
    await listed.getByRole('button', { name: 'Remove' }).click();
    await dialog(page).waitFor();
    await assertText(dialog(page), 'Your teal bike (Brompton) at Pike Place Market will no longer be listed in Seattle.');
    await audit(page, 'dialog: Remove this vehicle?');
    await follow(page, dialog(page).getByRole('button', { name: 'Remove vehicle' }), profilePath);
    await assertText(flashes(page), 'Vehicle removed.');
    await assertText(page.locator('main'), 'You have no vehicles listed.');

    await page.getByRole('button', { name: 'Delete my account' }).click();
    await dialog(page).waitFor();
    await assertText(dialog(page), `frees the username @${username}`);
    await follow(page, dialog(page).getByRole('button', { name: 'Delete my account' }), '/login');
    await assertText(flashes(page), 'Your account was deleted.');
    assert.equal(await page.locator('nav').getByText(`@${username}`).count(), 0, 'logged out');

    // The account is gone: the same message as for any failed log-in.
    expectedFailures.add('401 /login');
    await logIn(page, username, password, '/login');
    await assertText(page.locator('#login-error'), LOGIN_FAILED);
    await logIn(page, 'nobody-at-all', password, '/login');
    await assertText(page.locator('#login-error'), LOGIN_FAILED);
    expectedFailures.delete('401 /login');

    await context.close();
    assert.deepEqual(problems, [], 'no console errors or failed requests');
  });

  test('without JavaScript, every confirmation is a page of its own; New York times are local; refusals list every reason', async () => {
    const context = await newContext(DESKTOP);
    const page = await newPageWithoutScripts(context);
    await visit(page, '/login');
    assert.equal(await page.evaluate('typeof window.bootstrap'), 'undefined', 'no script of the page ran');
    await follow(page, page.getByRole('button', { name: 'Log in as the demo rider' }), '/vehicles');
    await assertText(heading(page), 'Vehicles in New York');
    const places = await vehicleLocations(page);
    assert.ok(places.length >= 3, 'demo vehicles in New York');
    assert.ok(places.includes('Union Square') || places.includes('Bryant Park') || places.some((place) => /Park|Square|Grand Central|Hudson|Chelsea|Astor|Columbus|Battery/.test(place)), `New York places: ${places}`);
    assert.ok(!places.includes('Harbour Front'));

    await follow(page, page.locator('nav').getByRole('link', { name: 'My rides' }), '/rides');
    const history = await page.locator('#ride-history tbody tr').count();
    assert.ok(history > 0, 'the demo rider starts with a ride history');
    await assertLocalTime(page.locator('#ride-history td[data-label="Started"] time').first(), 'en-US', 'America/New_York');
    await assertText(page.locator('#ride-history td[data-label="Duration"]').first(), /^(\d+ min|\d+ h \d\d min)$/);

    // A ride: ending it goes through its confirmation page, with the location carried over.
    await follow(page, page.locator('nav').getByRole('link', { name: 'Vehicles' }), '/vehicles');
    const from = await rideAVehicle(page);
    await assertRidingBar(page, from);
    await page.getByLabel('Location').fill('Bryant Park');
    await follow(page, page.locator('#active-ride').getByRole('button', { name: 'End ride' }), /^\/rides\/end\/[0-9a-f-]{36}$/);
    const endPath = pathOf(page);
    await assertText(heading(page), 'End your ride?');
    assert.equal(await page.getByLabel('Location').inputValue(), 'Bryant Park');
    await follow(page, page.getByRole('link', { name: 'Keep riding' }), '/rides');
    await assertRidingBar(page, from);

    // Adding a vehicle while riding: at home, highlighted; the other cards say why they cannot start.
    await addVehicle(page, { color: 'mint', brand: 'Trek', location: 'Washington Square Arch' }, 'New York');
    assert.ok((await page.getByRole('button', { name: 'End your ride first' }).count()) > 0);
    await screenshot(page, 'vehicles', { docs: true });

    // Deleting the account: its page lists everything to do first; a POST all the same is refused with all of it.
    await follow(page, page.locator('nav').getByRole('link', { name: '@demo' }), /^\/users\/[0-9a-f-]{36}$/);
    const profileUrl = page.url();
    const myId = pathOf(page).split('/')[2]!;
    await assertText(page.locator('#delete-blockers'), 'end your ride in progress');
    await follow(page, page.getByRole('button', { name: 'Delete my account' }), `/users/remove/${myId}`);
    assert.deepEqual(await page.locator('#blockers li').allInnerTexts(), ['End your ride in progress.', 'Remove your vehicle.']);
    const csrf = await page.locator('input[name=_csrf]').first().inputValue();
    const refused = await page.request.post(`/users/remove/${myId}`, { form: { _csrf: csrf }, headers: { Referer: profileUrl }, maxRedirects: 0 });
    assert.equal(refused.status(), 303);
    assert.equal(refused.headers().location, `/users/${myId}`);
    await visit(page, `/users/${myId}`);
    await assertText(flashes(page), 'To delete your account, first end your ride in progress, and remove your vehicle.');

    // Removing the vehicle: its own confirmation page; Keep it changes nothing, Remove vehicle removes it.
    const mine = page.locator('#my-vehicles li').filter({ hasText: 'Washington Square Arch' });
    await follow(page, mine.getByRole('button', { name: 'Remove' }), /^\/vehicles\/remove\/[0-9a-f-]{36}$/);
    await assertText(heading(page), 'Remove this vehicle?');
    await follow(page, page.getByRole('link', { name: 'Keep it' }), `/users/${myId}`);
    await follow(page, mine.getByRole('button', { name: 'Remove' }), /^\/vehicles\/remove\/[0-9a-f-]{36}$/);
    await follow(page, page.getByRole('button', { name: 'Remove vehicle' }), `/users/${myId}`);
    await assertText(flashes(page), 'Vehicle removed.');

    await visit(page, '/rides');
    await screenshot(page, 'rides', { docs: true });
    await page.getByLabel('Location').fill('Bryant Park');
    await follow(page, page.locator('#active-ride').getByRole('button', { name: 'End ride' }), endPath);
    await follow(page, page.getByRole('button', { name: 'End ride' }), '/rides');
    await assertText(flashes(page), 'Ride ended at Bryant Park.');
    assert.equal(await page.locator('#ride-history tbody tr').count(), history + 1);
    await assertLocalTime(page.locator('#ride-history td[data-label="Started"] time').first(), 'en-US', 'America/New_York');

    expectedFailures.add('404 /no-such-page');
    const missing = await page.goto('/no-such-page');
    assert.equal(missing?.status(), 404);
    await audit(page);
    await assertText(page.locator('main'), 'That page does not exist.');
    expectedFailures.delete('404 /no-such-page');

    await context.close();
    assert.deepEqual(problems, [], 'no console errors or failed requests');
  });

  test('at phone width: the nav collapses, the riding bar stays in reach, Rome times are local, the pager and stale forms behave', async () => {
    const context = await newContext(PHONE);
    const page = await context.newPage();
    await visit(page, '/login');
    await assertNoHorizontalOverflow(page);
    await screenshot(page, 'login-phone', { docs: true });
    await logIn(page, demo.username, demo.password, '/vehicles');
    await assertText(heading(page), 'Vehicles in New York');

    const toggler = page.getByRole('button', { name: 'Menu' });
    assert.ok(await toggler.isVisible(), 'the navbar toggler shows at phone width');
    assert.ok(!(await page.getByRole('link', { name: 'My rides' }).isVisible()), 'the menu starts collapsed');
    await assertNoHorizontalOverflow(page);

    // The keyboard's focus is plain to see on the nav's gradient.
    await toggler.focus();
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Tab');
    const ring = await page.evaluate(`(() => {
      const style = getComputedStyle(document.activeElement);
      return { label: document.activeElement.getAttribute('aria-label'), style: style.outlineStyle, width: parseFloat(style.outlineWidth), color: style.outlineColor };
    })()`);
    assert.deepEqual(ring, { label: 'Menu', style: 'solid', width: 3, color: 'rgb(255, 255, 255)' });

    // The collapsed menu opens, and still switches city: to Rome, for a ride there.
    await toggler.click();
    // As a rider would, once the menu has opened: Bootstrap marks it .show when its animation ends.
    await page.locator('#nav-menu.show').waitFor();
    await page.getByRole('button', { name: /Current city/ }).click();
    await assertText(page.locator('.dropdown-menu.show'), 'Rome');
    await assertNoHorizontalOverflow(page);
    await screenshot(page, 'nav-phone');
    await switchCity(page, 'Rome');
    const from = await rideAVehicle(page);
    await page.goto('/vehicles');
    await audit(page);
    await assertRidingBar(page, from);
    // Sticky at the bottom of the screen, whatever the scroll.
    const box = await rideBar(page).boundingBox();
    assert.ok(box && box.y + box.height <= PHONE.height + 1 && box.y + box.height >= PHONE.height - 2, `the bar sits at the bottom: ${JSON.stringify(box)}`);
    await assertNoHorizontalOverflow(page);
    await screenshot(page, 'vehicles-phone', { docs: true });

    await rideBar(page).getByRole('link', { name: 'End ride' }).click();
    await dialog(page).waitFor();
    await dialog(page).getByLabel('Location').fill('Piazza Navona');
    await audit(page, 'dialog: End your ride? (phone)');
    await follow(page, dialog(page).getByRole('button', { name: 'End ride' }), '/rides');
    await assertText(flashes(page), 'Ride ended at Piazza Navona.');
    const rome = page.locator('#ride-history tbody tr').first();
    await assertText(rome.locator('td[data-label="City"]'), 'Rome');
    await assertLocalTime(rome.locator('td[data-label="Started"] time'), 'en-GB', 'Europe/Rome');
    await assertNoHorizontalOverflow(page);
    await screenshot(page, 'rides-phone', { docs: true });

    for (const where of ['/users', '/vehicles/add', '/register']) {
      await visit(page, where, where === '/register' ? '/register' : where);
      await assertNoHorizontalOverflow(page);
    }

    // The pager: a page past the end offers Newer, and a disabled link is no link at all.
    await visit(page, '/vehicles?page=2');
    assert.equal(await page.getByRole('link', { name: 'Older' }).count(), 0, 'no Older link on the last page');
    assert.equal(await page.locator('a[href="/vehicles?page=0"]').count(), 0);
    await follow(page, page.getByRole('link', { name: 'Newer' }), '/vehicles');

    // A stale form: the 403 page keeps the rider's own nav.
    await visit(page, '/vehicles/add');
    await page.evaluate(`document.querySelector('form[action="/vehicles/add"] input[name=_csrf]').value = 'stale'`);
    await page.getByLabel('Colour').fill('gold');
    await page.getByLabel('Location').fill('Piazza di Spagna');
    expectedFailures.add('403 /vehicles/add');
    await follow(page, page.getByRole('button', { name: 'Add vehicle' }), '/vehicles/add');
    expectedFailures.delete('403 /vehicles/add');
    await assertText(heading(page), 'Not allowed');
    await toggler.click();
    await assertText(page.locator('nav'), '@demo');

    await context.close();
    assert.deepEqual(problems, [], 'no console errors or failed requests');
  });

  test('SIGTERM stops the server and its database within 10 s, with exit code 0', async () => {
    assert.ok(server, 'the server was started');
    assert.ok(existsSync(postmasterPid()), 'the embedded PostgreSQL is running');
    const postgresPid = Number(readFileSync(postmasterPid(), 'utf8').split('\n')[0]);
    await browser?.close();
    browser = undefined;

    const started = Date.now();
    server.kill('SIGTERM');
    const exit = await Promise.race([serverExit, sleep(10_000).then(() => undefined)]);
    assert.ok(exit, `the server was still running 10 s after SIGTERM:\n${output}`);
    assert.deepEqual(exit, { code: 0, signal: null }, output);
    assert.ok(Date.now() - started < 10_000);
    assert.ok(!existsSync(postmasterPid()), 'postmaster.pid is gone');
    assert.ok(!alive(postgresPid), `postgres (pid ${postgresPid}) has exited`);
  });
});
