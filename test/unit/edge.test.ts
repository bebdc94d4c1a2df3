import path from 'node:path';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { createEdge, type Edge } from '../../tools/edge/edge.js';
import { locationHeaders, parseLocation, regionsByDistance, roundTripMs } from '../../tools/edge/geography.js';
import type { Region } from '../../src/regions.js';
import { type Layout, parseStatement, RowMemory, statementCost } from '../../tools/edge/latency-model.js';
import { ROOT } from '../support/build.js';

/** A stand-in for one region's instance: answers with what it received, and sets two cookies. */
function echoServer(region: Region): Server {
  return createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    res.setHeader('set-cookie', ['first=1; Path=/', 'second=2; Path=/; HttpOnly']);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ region, method: req.method, url: req.url, headers: req.headers, body }));
  });
}

const listenOn = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

const upstreams = new Map<Region, Server>();
const instances = new Map<Region, string>();
let edge: Edge;
let slowEdge: Edge;
let url: string;
let slowUrl: string;

before(async () => {
  for (const region of ['gcp-us-east1', 'gcp-us-west1', 'gcp-europe-west1'] as const) {
    const server = echoServer(region);
    upstreams.set(region, server);
    instances.set(region, `http://127.0.0.1:${await listenOn(server)}`);
  }
  edge = createEdge({ instances, healthIntervalMs: 60_000 });
  url = `http://127.0.0.1:${await listenOn(edge.server)}`;
  slowEdge = createEdge({ instances, latency: true, healthIntervalMs: 60_000 });
  slowUrl = `http://127.0.0.1:${await listenOn(slowEdge.server)}`;
});
after(async () => {
  await Promise.all([edge.close(), slowEdge.close()]);
  for (const server of upstreams.values()) if (server.listening) await new Promise((resolve) => server.close(resolve));
});

interface Echo {
  region: Region;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

async function through(base: string, path: string, init: RequestInit = {}): Promise<{ response: Response; echo: Echo }> {
  const response = await fetch(`${base}${path}`, { redirect: 'manual', ...init });
  return { response, echo: (await response.json()) as Echo };
}

/** The edge cookie for a location, as a browser would send it back. */
async function travel(base: string, fields: Record<string, string>): Promise<string> {
  const response = await fetch(`${base}/_edge`, { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual' });
  assert.equal(response.status, 303);
  return response.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
}

describe('the edge', () => {
  test('when a client never picked a location, then it is in New York, served by gcp-us-east1, with the headers Google adds', async () => {
    const { echo } = await through(url, '/vehicles?page=2');
    assert.equal(echo.region, 'gcp-us-east1');
    assert.equal(echo.url, '/vehicles?page=2');
    assert.equal(echo.headers['x-city'], 'New York');
    assert.equal(echo.headers['x-city-lat-long'], '40.7128,-74.006');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1,127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.match(echo.headers.host!, /^127\.0\.0\.1:\d+$/, 'the Host the client used');
  });

  test('when a client sends its own location headers, then the edge replaces them and appends to X-Forwarded-For', async () => {
    const { echo } = await through(url, '/', { headers: { 'x-city': 'rome', 'x-city-lat-long': '41.9,12.5', 'x-forwarded-for': '203.0.113.7' } });
    assert.equal(echo.headers['x-city'], 'New York');
    assert.equal(echo.headers['x-city-lat-long'], '40.7128,-74.006');
    assert.equal(echo.headers['x-forwarded-for'], '203.0.113.7,127.0.0.1,127.0.0.1');
  });

  test('when a client travels to Paris, then it is served by gcp-europe-west1 with X-City: Paris, cookies and bodies passing unchanged', async () => {
    const edgeCookie = await travel(url, { location: 'PARIS' });
    assert.equal(edgeCookie, 'movr_edge_location=paris');
    const cookie = `movr.sid=s%3Aabc.def; ${edgeCookie}; other=x`;
    const { response, echo } = await through(url, '/login', { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=demo&_csrf=t' });
    assert.equal(echo.region, 'gcp-europe-west1');
    assert.equal(echo.headers['x-city'], 'Paris');
    assert.equal(echo.headers['x-city-lat-long'], '48.8566,2.3522');
    assert.equal(echo.headers.cookie, cookie);
    assert.equal(echo.method, 'POST');
    assert.equal(echo.body, 'username=demo&_csrf=t');
    assert.deepEqual(response.headers.getSetCookie(), ['first=1; Path=/', 'second=2; Path=/; HttpOnly']);
  });

  test('when a client picks a latitude and longitude, then X-City is empty and the nearest region serves', async () => {
    const chicago = await travel(url, { location: '41.88, -87.63' });
    const { echo } = await through(url, '/', { headers: { cookie: chicago } });
    assert.equal(echo.region, 'gcp-us-east1');
    assert.equal(echo.headers['x-city'], '');
    assert.equal(echo.headers['x-city-lat-long'], '41.88,-87.63');
    const tokyo = await travel(url, { location: '35.68,139.69' });
    assert.equal((await through(url, '/', { headers: { cookie: tokyo } })).echo.region, 'gcp-us-west1');
  });

  test('when the travel form is wrong or cross-site, then the edge refuses it and sets nothing', async () => {
    for (const fields of [{ location: 'atlantis' }, { location: '91,0' }, { serve: 'gcp-asia-east1' }] as Record<string, string>[]) {
      const response = await fetch(`${url}/_edge`, { method: 'POST', body: new URLSearchParams(fields), redirect: 'manual' });
      assert.equal(response.status, 422, JSON.stringify(fields));
      assert.deepEqual(response.headers.getSetCookie(), []);
    }
    const crossSite = await fetch(`${url}/_edge`, { method: 'POST', headers: { 'sec-fetch-site': 'cross-site' }, body: new URLSearchParams({ location: 'rome' }), redirect: 'manual' });
    assert.equal(crossSite.status, 403);
  });

  test('when --latency is on, then a request served far from the client waits the round trip, and a local one does not', async () => {
    const paris = await travel(slowUrl, { location: 'paris' });
    const pinned = `${paris}; ${await travel(slowUrl, { serve: 'gcp-us-west1' })}`;
    let started = performance.now();
    const far = await through(slowUrl, '/', { headers: { cookie: pinned } });
    const farMs = performance.now() - started;
    assert.equal(far.echo.region, 'gcp-us-west1');
    assert.ok(farMs >= roundTripMs('gcp-europe-west1', 'gcp-us-west1'));
    assert.match(far.response.headers.get('server-timing')!, /client;desc="client to region";dur=146$/);
    started = performance.now();
    const near = await through(slowUrl, '/', { headers: { cookie: paris } });
    const nearMs = performance.now() - started;
    assert.equal(near.echo.region, 'gcp-europe-west1');
    assert.match(near.response.headers.get('server-timing')!, /client;desc="client to region";dur=0$/, 'nothing added');
    // Relative, not absolute: on a loaded machine a local request may itself take a while, but not the ocean's 146 ms more.
    assert.ok(nearMs < farMs, `served locally in ${nearMs} ms, sooner than from Oregon in ${farMs} ms`);
    const page = await (await fetch(`${slowUrl}/_edge`, { headers: { cookie: pinned } })).text();
    assert.match(page, /You are in <strong>Paris<\/strong>\. Served by <strong>gcp-us-west1 .*adds 146 ms/);
  });

  test('when the nearest instance fails its health check, then the next nearest serves', async () => {
    const watching = createEdge({ instances, healthIntervalMs: 100 });
    const watchingUrl = `http://127.0.0.1:${await listenOn(watching.server)}`;
    try {
      const paris = await travel(watchingUrl, { location: 'paris' });
      assert.equal((await through(watchingUrl, '/', { headers: { cookie: paris } })).echo.region, 'gcp-europe-west1');
      const europe = upstreams.get('gcp-europe-west1')!;
      await new Promise((resolve) => europe.close(resolve));
      const deadline = Date.now() + 5000;
      while (watching.healthy().includes('gcp-europe-west1') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(watching.healthy(), ['gcp-us-east1', 'gcp-us-west1']);
      // From Paris, South Carolina is nearer than Oregon.
      assert.equal((await through(watchingUrl, '/', { headers: { cookie: paris } })).echo.region, 'gcp-us-east1');
    } finally {
      await watching.close();
    }
  });
});

describe('geography', () => {
  test('each city is nearest to its own region', () => {
    const expected: Record<string, Region> = { 'new york': 'gcp-us-east1', boston: 'gcp-us-east1', 'washington dc': 'gcp-us-east1', seattle: 'gcp-us-west1', 'san francisco': 'gcp-us-west1', 'los angeles': 'gcp-us-west1', paris: 'gcp-europe-west1', rome: 'gcp-europe-west1', amsterdam: 'gcp-europe-west1' };
    for (const [city, region] of Object.entries(expected)) assert.equal(regionsByDistance(parseLocation(city)!)[0], region, city);
  });

  test("the edge adds exactly the headers mcingress.yaml's BackendConfig asks Google's load balancer for", () => {
    const backendConfig = parseAllDocuments(readFileSync(path.join(ROOT, 'mcingress.yaml'), 'utf8'))
      .map((doc) => doc.toJS())
      .find((doc) => doc?.kind === 'BackendConfig');
    const asked: string[] = backendConfig.spec.customRequestHeaders.headers;
    // Google's variables, filled for a client in Paris as the edge fills them.
    const google = { '{client_city}': 'Paris', '{client_city_lat_long}': '48.8566,2.3522' };
    const expected = Object.fromEntries(
      asked.map((header) => {
        const [name, template] = [header.slice(0, header.indexOf(':')), header.slice(header.indexOf(':') + 1)];
        return [name.toLowerCase(), template.replace(/\{\w+\}/g, (variable) => google[variable as keyof typeof google])];
      }),
    );
    assert.deepEqual(locationHeaders(parseLocation('paris')!), expected);
  });
});

describe('the latency model', () => {
  const cost = (layout: Layout, gateway: Region, text: string, params: readonly unknown[] = [], memory = new RowMemory()) =>
    statementCost(layout, gateway, parseStatement(text, params), memory).ms;
  const vehiclesOfParis = ['select "id" from "vehicles" where "city" = $1 order by "date_added" desc limit $2', ['paris', 50]] as const;
  const signUp = ['insert into "users" ("city", "first_name", "username") values ($1, $2, $3) returning "id"', ['paris', 'Ada', 'ada']] as const;

  test('under single-region, every statement that touches a table pays one round trip to gcp-us-east1, and none else does', () => {
    assert.equal(cost('single-region', 'gcp-europe-west1', ...vehiclesOfParis), 64);
    assert.equal(cost('single-region', 'gcp-us-west1', ...vehiclesOfParis), 66);
    assert.equal(cost('single-region', 'gcp-us-east1', ...vehiclesOfParis), 0);
    assert.equal(cost('single-region', 'gcp-europe-west1', 'SELECT 1'), 0);
    assert.equal(cost('single-region', 'gcp-europe-west1', 'BEGIN'), 0);
  });

  test("under partitioned and multi-region, a city's rows are in its region", () => {
    for (const layout of ['partitioned', 'multi-region'] as const) {
      assert.equal(cost(layout, 'gcp-europe-west1', ...vehiclesOfParis), 0, layout);
      assert.equal(cost(layout, 'gcp-us-west1', ...vehiclesOfParis), 146, layout);
      assert.equal(cost(layout, 'gcp-us-east1', ...vehiclesOfParis), 64, layout);
    }
  });

  test('a sign-up: partitioned reaches the username index in gcp-us-east1, multi-region checks the username in every region', () => {
    assert.equal(cost('partitioned', 'gcp-europe-west1', ...signUp), 64);
    assert.equal(cost('multi-region', 'gcp-europe-west1', ...signUp), 146);
    // From US East the Paris row is written in Europe, then the check asks every region.
    assert.equal(cost('multi-region', 'gcp-us-east1', ...signUp), 64 + 66);
  });

  test('sessions: global reads under partitioned; under multi-region, homed where the rider logged in', () => {
    const memory = new RowMemory();
    const write = ['insert into "sessions" ("sid", "sess", "expire", "user_city", "user_id") values ($1, $2, $3::timestamptz, $4, $5) on conflict ("sid") do update set "sess" = excluded.sess', ['abc', '{}', 'x', 'paris', 'u1']] as const;
    const read = ['select "sessions"."sess" from "sessions" inner join "users" on "users"."city" = "sessions"."user_city" where "sessions"."sid" = $1', ['abc']] as const;
    // A new session id is checked in every region, then lives where it was written.
    assert.equal(cost('multi-region', 'gcp-europe-west1', ...write, memory), 146);
    assert.equal(cost('multi-region', 'gcp-europe-west1', ...read, memory), 0, 'read where written, the rider a Parisian');
    assert.equal(cost('multi-region', 'gcp-us-east1', ...read, memory), 66 + 64, 'elsewhere: searched in every region, then the rider read in Europe');
    assert.equal(cost('partitioned', 'gcp-us-west1', ...read, memory), 146, 'the session is read locally, its rider in Paris');
    assert.equal(cost('partitioned', 'gcp-europe-west1', ...write, memory), 64 + 66, 'a write to a global-reads table waits for every region');
  });

  test('a foreign key is checked in the region of the row it names', () => {
    const startRide = ['insert into "rides" ("city", "vehicle_id", "rider_id", "rider_city", "start_location") values ($1, $2, $3, $4, $5)', ['paris', 'v', 'r', 'seattle', 'here']] as const;
    assert.equal(cost('partitioned', 'gcp-europe-west1', ...startRide), 146);
  });
});
