import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';
import { PROJECT_ROOT } from '../../src/config.js';
import { findFreePort } from '../../src/db/embedded-postgres.js';

/**
 * The whole journey of a newcomer, in headless Chromium, against the real server started as a user starts
 * it (`node --import tsx src/server.ts`) on a fresh data directory: embedded PostgreSQL, demo data and all.
 */

const CHROMIUM = '/usr/bin/chromium';
// The machine has no internet: without the background-networking flags Chromium keeps dialling Google.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
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

/** Starts `node --import tsx src/server.ts` and resolves once it has printed its URL and the demo login. */
async function startServer(): Promise<void> {
  const port = await findFreePort(20_000 + Math.floor(Math.random() * 10_000));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
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

/** A full-page screenshot into test-output/screenshots/, and into docs/screenshots/ for the README when asked. */
async function screenshot(page: Page, name: string, { docs = false } = {}) {
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  // The README's images change only when asked (UPDATE_SCREENSHOTS=1 npm test), so a test run leaves the tree clean.
  if (docs && process.env.UPDATE_SCREENSHOTS === '1') copyFileSync(file, path.join(DOCS_SCREENSHOTS, `${name}.png`));
}

const pathOf = (page: Page) => new URL(page.url()).pathname;

/**
 * Clicks a link or a form's button and waits for the next page to load, even when it has the same URL
 * (a form posted back to itself, a redirect to the page the form was on); then checks where it landed.
 */
async function follow(page: Page, target: Locator, expectedPath: string | RegExp) {
  await page.evaluate('window.movrPreviousPage = true');
  await target.click();
  await page.waitForFunction('!window.movrPreviousPage');
  await page.waitForLoadState('load');
  if (typeof expectedPath === 'string') assert.equal(pathOf(page), expectedPath);
  else assert.match(pathOf(page), expectedPath);
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 });
const flashes = (page: Page) => page.locator('main .alert');

async function logIn(page: Page, username: string, password: string, expectedPath: string) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await follow(page, page.getByRole('button', { name: 'Log in' }), expectedPath);
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

const vehicleIds = (page: Page) => page.locator('#vehicle-list article').evaluateAll((cards) => cards.map((card) => card.getAttribute('data-vehicle-id')));

/** Starts a ride on the nth available vehicle of the current city that the rider does not own. */
async function rideAVehicle(page: Page, nth = 0): Promise<string> {
  const card = page
    .locator('#vehicle-list article')
    .filter({ has: page.getByRole('button', { name: 'Start ride', exact: true }) })
    .nth(nth);
  const location = (await card.locator('dt', { hasText: /^Location$/ }).locator('xpath=following-sibling::dd[1]').innerText()).trim();
  await follow(page, card.getByRole('button', { name: 'Start ride', exact: true }), '/rides');
  return location;
}

describe('a rider in Chromium against the real server', { timeout: 110_000 }, () => {
  before(async () => {
    // No skipping: a machine without Chromium fails here, loudly.
    assert.ok(existsSync(CHROMIUM), `Chromium is missing at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium)`);
    accessSync(CHROMIUM, constants.X_OK);
    mkdirSync(SCREENSHOTS, { recursive: true });
    dataDir = mkdtempSync(path.join(tmpdir(), 'movr-browser-'));
    // As root the embedded PostgreSQL runs as `postgres`, which must traverse this directory (mkdtemp makes 0700).
    chmodSync(dataDir, 0o755);
    // Both at once; whichever started is stopped by `after` when the other fails.
    const [launched, started] = await Promise.allSettled([chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }), startServer()]);
    if (launched.status === 'fulfilled') browser = launched.value;
    if (launched.status === 'rejected') throw launched.reason;
    if (started.status === 'rejected') throw started.reason;
  });

  after(stopEverything);
  beforeEach(() => {
    problems.length = 0;
  });

  test('a newcomer signs up, switches city, adds a vehicle, rides, and deletes the account', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const username = 'nadia.k';
    const password = 'a bicycle made for two';

    // Logged out, / sends to log in.
    await page.goto('/');
    assert.equal(pathOf(page), '/login');
    await assertText(heading(page), 'Log in to MovR');
    await screenshot(page, 'login');

    await follow(page, page.getByRole('link', { name: 'Create an account' }), '/register');
    await assertText(heading(page), 'Create your MovR account');
    await screenshot(page, 'register');

    await page.getByLabel('Home city').selectOption({ label: 'Seattle' });
    await page.getByLabel('First name').fill('Nadia');
    await page.getByLabel('Last name').fill('Kowalczyk');
    await page.getByLabel('Email').fill('nadia@example.com');
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await follow(page, page.getByRole('button', { name: 'Sign up' }), '/login');
    await assertText(flashes(page), 'Welcome to MovR, Nadia! Log in to start riding.');

    await logIn(page, username, password, '/vehicles');
    await assertText(heading(page), 'Vehicles in Seattle');
    await assertText(page.locator('nav'), `@${username}`);

    // Another city's vehicles, from the nav's city menu.
    const seattleIds = await vehicleIds(page);
    assert.ok(seattleIds.length > 0, 'Seattle has demo vehicles');
    await switchCity(page, 'Paris');
    await assertText(flashes(page), /Showing paris/i);
    const parisIds = await vehicleIds(page);
    assert.ok(parisIds.length > 0, 'Paris has demo vehicles');
    assert.ok(!parisIds.some((id) => seattleIds.includes(id)), "Paris lists none of Seattle's vehicles");

    // A new vehicle goes to the home city, whatever city is shown.
    await follow(page, page.locator('nav').getByRole('link', { name: 'Add a vehicle' }), '/vehicles/add');
    await assertText(heading(page), 'Add a vehicle');
    await assertText(page.locator('main'), 'It will be listed in your home city, Seattle, not in Paris, the city you are browsing.');
    await screenshot(page, 'add-vehicle');
    await page.getByLabel('Bike').check();
    await page.getByLabel('Colour').fill('teal');
    await page.getByLabel('Brand (optional)').fill('Brompton');
    await page.getByLabel('Where is it?').fill('Pike Place Market');
    await follow(page, page.getByRole('button', { name: 'Add vehicle' }), '/vehicles');
    await assertText(flashes(page), /Your bike was added in seattle/i);
    await assertText(heading(page), 'Vehicles in Paris');
    assert.equal(await page.getByText('Pike Place Market').count(), 0, 'the new vehicle is not listed in Paris');

    await switchCity(page, 'Seattle');
    const mine = page.locator('#vehicle-list article').filter({ hasText: 'Pike Place Market' });
    await assertText(mine, 'teal');
    await assertText(mine, 'Brompton');
    await assertText(mine.getByRole('button'), '(yours)');

    // No rides yet: the empty page says how to start one.
    await follow(page, page.locator('nav').getByRole('link', { name: 'My rides' }), '/rides');
    await assertText(page.locator('main'), 'No rides yet');
    await screenshot(page, 'rides-empty');
    await follow(page, page.getByRole('link', { name: 'Find a vehicle' }), '/vehicles');
    await assertText(heading(page), 'Vehicles in Seattle');

    // A ride on someone else's vehicle.
    const from = await rideAVehicle(page);
    await assertText(flashes(page), `Your ride started at ${from}. Enjoy!`);
    await assertText(heading(page), 'My rides');
    await assertText(page.locator('#active-ride'), 'Riding now');
    await assertText(page.locator('#active-ride'), from);
    await screenshot(page, 'rides-active');

    await page.getByLabel('Where are you leaving it?').fill('Space Needle');
    await follow(page, page.getByRole('button', { name: 'End ride' }), '/rides');
    await assertText(flashes(page), 'Ride ended at Space Needle.');
    assert.equal(await page.locator('#active-ride').count(), 0, 'no active ride once ended');
    const row = page.locator('#ride-history tbody tr').first();
    await assertText(row, from);
    await assertText(row, 'Space Needle');
    await assertText(row, /\d+ (s|min)\b/);
    await screenshot(page, 'rides-history');

    // The profile, from the nav link @username.
    await follow(page, page.locator('nav').getByRole('link', { name: `@${username}` }), /^\/users\/[0-9a-f-]{36}$/);
    const profilePath = pathOf(page);
    await assertText(heading(page), 'Nadia Kowalczyk');
    await assertText(page.locator('main'), 'Seattle');
    const listed = page.locator('#my-vehicles li').filter({ hasText: 'Pike Place Market' });
    await assertText(listed, 'Available');
    await screenshot(page, 'profile');
    await follow(page, listed.getByRole('button', { name: 'Remove' }), profilePath);
    await assertText(flashes(page), 'Vehicle removed.');
    assert.equal(await page.getByText('Pike Place Market').count(), 0, 'the removed vehicle is gone from the profile');
    await assertText(page.locator('main'), 'You have no vehicles listed.');

    await follow(page, page.getByRole('button', { name: 'Delete my account' }), '/login');
    await assertText(heading(page), 'Log in to MovR');
    assert.equal(await page.locator('nav').getByText(`@${username}`).count(), 0, 'logged out');

    // The account is gone: the same message as for any failed log-in.
    expectedFailures.add('401 /login');
    await logIn(page, username, password, '/login');
    await assertText(page.locator('#login-error'), LOGIN_FAILED);
    await logIn(page, 'nobody-at-all', password, '/login');
    await assertText(page.locator('#login-error'), LOGIN_FAILED);
    expectedFailures.delete('401 /login');
    assert.equal(pathOf(page), '/login');

    await context.close();
    assert.deepEqual(problems, [], 'no console errors or failed requests');
  });

  test('the demo login printed at start-up shows vehicles, rides, riders, and a friendly 404', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await page.goto('/login');
    await logIn(page, demo.username, demo.password, '/vehicles');
    await assertText(heading(page), 'Vehicles in New York');
    assert.ok((await page.locator('#vehicle-list article').count()) >= 3, 'demo vehicles in New York');

    await page.goto('/rides');
    const history = await page.locator('#ride-history tbody tr').count();
    assert.ok(history > 0, 'the demo rider starts with a ride history');
    await page.goto('/vehicles');

    // Two more past rides and one under way, for a rides page with something on it.
    for (const [nth, to] of ['Union Square', 'Bryant Park'].entries()) {
      await rideAVehicle(page, nth);
      await page.getByLabel('Where are you leaving it?').fill(to);
      await follow(page, page.getByRole('button', { name: 'End ride' }), '/rides');
      await assertText(flashes(page), `Ride ended at ${to}.`);
      await page.goto('/vehicles');
    }
    await screenshot(page, 'vehicles', { docs: true });
    const from = await rideAVehicle(page, 2);
    await assertText(flashes(page), `Your ride started at ${from}. Enjoy!`);
    await assertText(page.locator('#active-ride'), `Riding now`);
    await assertText(page.locator('#active-ride'), from);
    assert.equal(await page.locator('#ride-history tbody tr').count(), history + 2);
    await screenshot(page, 'rides', { docs: true });

    await follow(page, page.locator('nav').getByRole('link', { name: 'Riders' }), '/users');
    await assertText(heading(page), 'Riders in New York');
    await assertText(page.locator('#user-list'), '@demo');
    await screenshot(page, 'users');

    expectedFailures.add('404 /no-such-page');
    const missing = await page.goto('/no-such-page');
    assert.equal(missing?.status(), 404);
    await assertText(page.locator('main'), 'That page does not exist.');
    await assertText(page.getByRole('link', { name: 'Back to MovR' }), 'Back to MovR');
    await screenshot(page, 'error-404');
    expectedFailures.delete('404 /no-such-page');

    await context.close();
    assert.deepEqual(problems, [], 'no console errors or failed requests');
  });

  test('at phone width the nav collapses and no page scrolls sideways', async () => {
    const context = await newContext(PHONE);
    const page = await context.newPage();
    await page.goto('/login');
    await assertNoHorizontalOverflow(page);
    await logIn(page, demo.username, demo.password, '/vehicles');
    await assertText(heading(page), 'Vehicles in New York');

    const toggler = page.getByRole('button', { name: 'Menu' });
    assert.ok(await toggler.isVisible(), 'the navbar toggler shows at phone width');
    assert.ok(!(await page.getByRole('link', { name: 'My rides' }).isVisible()), 'the menu starts collapsed');
    await assertNoHorizontalOverflow(page);
    await screenshot(page, 'vehicles-phone');

    // The collapsed menu opens, and still switches city.
    await toggler.click();
    await assertText(page.getByRole('link', { name: 'My rides' }), 'My rides');
    await page.getByRole('button', { name: /Current city/ }).click();
    await assertText(page.locator('.dropdown-menu.show'), 'Rome');
    await assertNoHorizontalOverflow(page);
    await screenshot(page, 'nav-phone');
    await switchCity(page, 'Rome');
    assert.ok((await page.locator('#vehicle-list article').count()) > 0, 'Rome has demo vehicles');
    await assertNoHorizontalOverflow(page);

    for (const where of ['/rides', '/users', '/vehicles/add', '/register']) {
      await page.goto(where);
      await assertNoHorizontalOverflow(page);
    }
    await page.goto('/rides');
    await screenshot(page, 'rides-phone');

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
