import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../support/cluster.js';
import { embeddedConnectionString, freshDataDir, killGroup, postmasterPid } from '../support/server-process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface Demo {
  child: ChildProcess;
  url: string;
  login: { username: string; password: string };
  instances: Map<string, string>;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: Demo[] = [];
const dataDir = freshDataDir();

/** `npm run demo:global` without npm: the launcher in its own process group, as in a terminal. */
async function startDemo(): Promise<Demo> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo-global.ts'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'development', MOVR_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', DB_URI: '', LOG_LEVEL: 'info' },
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + 60_000;
  while (!/Started in [\d.]+ s/.test(output)) {
    if (done || Date.now() > deadline) {
      killGroup(child, 'SIGKILL');
      throw new Error(`the demo did not start:\n${output}`);
    }
    await sleep(50);
  }
  const login = output.match(/Demo login: username "(\w+)", password "([^"]+)"/);
  assert.ok(login, 'the demo login is printed');
  const instances = new Map([...output.matchAll(/^\s+(gcp-[\w-]+)\s+(http:\/\/127\.0\.0\.1:\d+)/gm)].map((m) => [m[1]!, m[2]!]));
  const demo = { child, url: `http://127.0.0.1:${port}`, login: { username: login[1]!, password: login[2]! }, instances, output: () => output, exited };
  started.push(demo);
  return demo;
}

/** A browser's cookie jar over fetch: every cookie the edge or the app set goes back, unchanged. */
class Browser {
  readonly cookies = new Map<string, string>();
  constructor(private readonly base: string) {}

  cookieHeader(cookies = this.cookies): string {
    return [...cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  async request(path: string, init: RequestInit = {}) {
    const response = await fetch(`${this.base}${path}`, { ...init, redirect: 'manual', headers: { ...init.headers, cookie: this.cookieHeader() } });
    for (const set of response.headers.getSetCookie()) {
      const [pair, ...attributes] = set.split(';');
      const at = pair!.indexOf('=');
      const expired = attributes.some((a) => /^\s*max-age=0$/i.test(a) || /^\s*expires=thu, 01 jan 1970/i.test(a));
      if (expired) this.cookies.delete(pair!.slice(0, at));
      else this.cookies.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
    const text = await response.text();
    return { status: response.status, location: response.headers.get('location'), region: servingRegion(response), text };
  }

  get(path: string) {
    return this.request(path);
  }

  /** Posts a form with the hidden `_csrf` of the page it was on. */
  post(path: string, page: { text: string }, fields: Record<string, string> = {}) {
    const _csrf = page.text.match(/name="_csrf" value="([^"]+)"/)?.[1];
    assert.ok(_csrf, `a form with _csrf on the page before POST ${path}`);
    return this.request(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf, ...fields }) });
  }

  /** Picks a location on the edge's own page. */
  async travel(location: string) {
    const response = await this.request('/_edge', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ location }) });
    assert.equal(response.status, 303, `travel to ${location}`);
  }
}

/** The region named in Server-Timing, which every response of the app carries. */
function servingRegion(response: Response): string | undefined {
  return response.headers.get('server-timing')?.match(/region;desc="([^"]+)"/)?.[1];
}

async function waitForPostmasterGone(timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (postmasterPid(dataDir) && Date.now() < deadline) await sleep(50);
  return postmasterPid(dataDir) === undefined;
}

before(() => {
  // The demo runs the compiled app (dist/server.js), as `npm run demo:global` builds it first.
  const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stdout + build.stderr);
});

after(async () => {
  for (const demo of started) killGroup(demo.child, 'SIGKILL');
  const pid = postmasterPid(dataDir);
  if (pid) process.kill(pid, 'SIGQUIT');
  await sleep(200);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm run demo:global', () => {
  test('when a rider travels Paris → New York → Rome through the edge, then the nearest region serves each step, the session and the ride follow, and log-out holds everywhere', async (t) => {
    const demo = await startDemo();
    t.diagnostic(demo.output().match(/Started in [\d.]+ s/)![0]);
    assert.deepEqual([...demo.instances.keys()].sort(), ['gcp-europe-west1', 'gcp-us-east1', 'gcp-us-west1']);
    assert.match(demo.output(), /\/_edge/, 'it says how to travel');
    const browser = new Browser(demo.url);

    // Paris: Europe serves, and the app hears X-City (the demo rider's home is New York, so the page shows where the header says).
    await browser.travel('paris');
    const loginPage = await browser.get('/login');
    assert.equal(loginPage.region, 'gcp-europe-west1');
    const loggedIn = await browser.post('/login', loginPage, demo.login);
    assert.equal(loggedIn.status, 303);
    assert.equal(loggedIn.location, '/vehicles');
    assert.equal(loggedIn.region, 'gcp-europe-west1');
    const paris = await browser.get('/vehicles');
    assert.equal(paris.status, 200);
    assert.equal(paris.region, 'gcp-europe-west1');
    assert.match(paris.text, /Vehicles in Paris/);

    // New York: another instance, the same session; the current city follows the header.
    await browser.travel('new york');
    const newYork = await browser.get('/vehicles');
    assert.equal(newYork.status, 200, 'still logged in');
    assert.equal(newYork.region, 'gcp-us-east1');
    assert.match(newYork.text, /Vehicles in New York/);
    assert.ok(newYork.text.includes(`@${demo.login.username}`));

    // A ride starts in New York...
    let rideId: string | undefined;
    for (const [, vehicleId] of newYork.text.matchAll(/action="\/rides\/start\/([\w-]+)"/g)) {
      const start = await browser.post(`/rides/start/${vehicleId}`, newYork);
      assert.equal(start.region, 'gcp-us-east1');
      rideId = (await browser.get('/rides')).text.match(/action="\/rides\/end\/([\w-]+)"/)?.[1];
      if (rideId) break;
    }
    assert.ok(rideId, 'a ride started in New York');

    // ...and ends in Rome, picked as a point: Europe serves, the app finds the city from X-City-Lat-Long.
    await browser.travel('41.9,12.5');
    const rides = await browser.get('/rides');
    assert.equal(rides.region, 'gcp-europe-west1');
    assert.ok(rides.text.includes(`/rides/end/${rideId}`), 'the ride in progress shows in another region');
    const ended = await browser.post(`/rides/end/${rideId}`, rides, { location: 'Piazza Navona' });
    assert.equal(ended.status, 303);
    assert.equal(ended.region, 'gcp-europe-west1');
    const rome = await browser.get('/vehicles');
    assert.match(rome.text, /Vehicles in Rome/);
    const db = new pg.Client({ connectionString: embeddedConnectionString(dataDir) });
    await db.connect();
    const { rows } = await db.query<{ ended: boolean; end_location: string }>('SELECT end_time IS NOT NULL AS ended, end_location FROM rides WHERE id = $1', [rideId]);
    await db.end();
    assert.deepEqual(rows, [{ ended: true, end_location: 'Piazza Navona' }]);

    // Log out through Europe; the same session cookie is then refused by every region.
    const session = new Map(browser.cookies);
    session.delete('movr_edge_location');
    const loggedOut = await browser.post('/logout', rome);
    assert.equal(loggedOut.status, 303);
    assert.equal(loggedOut.region, 'gcp-europe-west1');
    for (const [city, region] of [['new york', 'gcp-us-east1'], ['seattle', 'gcp-us-west1'], ['paris', 'gcp-europe-west1']] as const) {
      const response = await fetch(`${demo.url}/vehicles`, { redirect: 'manual', headers: { cookie: `${browser.cookieHeader(session)}; movr_edge_location=${encodeURIComponent(city)}` } });
      assert.equal(servingRegion(response), region);
      assert.equal(response.status, 303, `logged out in ${region}`);
      assert.equal(response.headers.get('location'), '/login');
    }

    // Ctrl-C: the edge, the three instances and the database stop within 10 s.
    const signalledAt = Date.now();
    killGroup(demo.child, 'SIGINT');
    const exit = await demo.exited;
    assert.ok(Date.now() - signalledAt < 10_000, `stopped in ${Date.now() - signalledAt} ms`);
    t.diagnostic(`stopped in ${Date.now() - signalledAt} ms`);
    assert.equal(exit.code, 0, demo.output());
    assert.ok(await waitForPostmasterGone(2000), 'the embedded database stopped');
    for (const instance of demo.instances.values()) await assert.rejects(fetch(`${instance}/healthz`), `${instance} stopped`);
  });

  test('when started again on the same data, then the same demo login works and SIGTERM stops it', async (t) => {
    const first = started[0]!;
    const again = await startDemo();
    t.diagnostic(again.output().match(/Started in [\d.]+ s/)![0]);
    assert.deepEqual(again.login, first.login);
    const browser = new Browser(again.url);
    const loggedIn = await browser.post('/login', await browser.get('/login'), again.login);
    assert.equal(loggedIn.status, 303);
    assert.equal(loggedIn.region, 'gcp-us-east1', 'a client who never picked is in New York');
    killGroup(again.child, 'SIGTERM');
    assert.equal((await again.exited).code, 0);
    assert.ok(await waitForPostmasterGone(2000));
  });
});
