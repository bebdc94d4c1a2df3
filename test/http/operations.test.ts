import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import request from 'supertest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { type MovrDatabase, openDatabase } from '../../src/db/database.js';
import { cookie, csrfFrom, formPost, signUpAndLogIn, type TestApp } from '../support/app.js';
import { useFixture } from '../support/fixture.js';
import { DATABASE_OUTAGE_LOGS, FaultInjectingPool } from '../support/fault-injection.js';
import { poolIdle } from '../support/quiescence.js';

const t = useFixture();

const STACK_TRACE = /at .*\.[jt]s:\d+|node_modules|\/src\//;
const PRODUCTION_ENV = {
  NODE_ENV: 'production',
  SECRET_KEY: 'a-production-secret-that-is-long-enough-0123456789',
  DB_URI: 'postgresql://movr@db.internal:26257/movr?sslmode=disable',
  TRUST_PROXY: '1',
};


/**
 * A TCP proxy in front of the test database, so a test can take "the database" down (connections refused)
 * or make it hang (connections accepted, never answered) and bring it back, without touching the server.
 */
class DatabaseProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private mode: 'up' | 'silent' = 'up';
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get connectionString(): string {
    const url = new URL(t.connectionString);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  async up(): Promise<void> {
    this.mode = 'up';
    if (this.server) return;
    const server = net.createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      client.on('error', () => {});
      if (this.mode === 'silent') return;
      const upstream = net.connect(this.target.port, this.target.host);
      this.sockets.add(upstream);
      upstream.on('close', () => this.sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', () => resolve()));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Connections refused, open ones cut: the database is down. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.cutAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Open connections cut, new ones accepted but never answered: the database hangs. */
  silent(): void {
    this.mode = 'silent';
    this.cutAll();
  }

  private cutAll(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }
}

describe('health and readiness', () => {
  test('when the database answers, then /healthz and /readyz are 200', async () => {
    const healthz = await request(t.app).get('/healthz');
    assert.equal(healthz.status, 200);
    assert.equal(healthz.text, 'ok');
    const readyz = await request(t.app).get('/readyz');
    assert.equal(readyz.status, 200);
    assert.equal(healthz.headers['set-cookie'], undefined, 'probes never start sessions');
    assert.equal(readyz.headers['set-cookie'], undefined);
  });

  test('when the app’s database handle is closed, then /readyz is 503 and /healthz stays 200', async () => {
    const handle = await t.open();
    const app = t.buildApp({ db: handle });
    assert.equal((await request(app.app).get('/readyz')).status, 200);
    await handle.close();
    assert.equal((await request(app.app).get('/readyz')).status, 503);
    assert.equal((await request(app.app).get('/healthz')).status, 200);
  });

  describe('when the database goes away', () => {
    let proxy: DatabaseProxy;
    let db: MovrDatabase;
    let app: TestApp;

    before(async () => {
      const url = new URL(t.connectionString);
      proxy = new DatabaseProxy({ host: url.hostname, port: Number(url.port) });
      await proxy.up();
      // The app's own pool settings (connect timeout and all), through the proxy.
      db = await openDatabase({ connectionString: proxy.connectionString });
      app = t.buildApp({ db });
    });
    after(async () => {
      await proxy.down();
      await db.close();
    });
    beforeEach(() => proxy.up());

    test('when it refuses connections, then /readyz is 503 at once, /healthz 200, and pages a friendly 503, not 500; when it is back, then all works again', async () => {
      const agent = app.agent();
      const rider = await signUpAndLogIn(agent, app.movr);
      const vehicle = await app.movr.addVehicle(rider, { type: 'bike', color: 'blue', brand: '', location: 'Dock 5' });
      const _csrf = csrfFrom((await agent.get('/vehicles')).text);
      DATABASE_OUTAGE_LOGS.forEach((pattern) => t.expectLogged(pattern));
      await proxy.down();

      const readyz = await request(app.app).get('/readyz');
      assert.equal(readyz.status, 503);
      // The server says its check failed, not that it waited out its timeout: the refusal was answered at once.
      assert.equal(readyz.text, 'database unavailable: the query failed');
      assert.equal((await request(app.app).get('/healthz')).status, 200);

      for (const path of ['/vehicles', '/rides', '/users', `/users/${rider.id}`]) {
        const page = await agent.get(path);
        assert.equal(page.status, 503, path);
        assert.equal(page.headers['retry-after'], '5');
        assert.match(page.headers['content-type'] ?? '', /text\/html/);
        assert.match(page.text, /Temporarily unavailable/);
        assert.match(page.text, /Please try again in a moment\./);
        assert.doesNotMatch(page.text, STACK_TRACE);
        assert.doesNotMatch(page.text, /ECONNREFUSED/);
      }

      const start = await agent.post(`/rides/start/${vehicle.id}`).type('form').send({ _csrf });
      assert.equal(start.status, 503);
      assert.doesNotMatch(start.text, STACK_TRACE);

      await proxy.up();
      assert.equal((await request(app.app).get('/readyz')).status, 200);
      assert.equal(await t.db.kysely.selectFrom('rides').select('id').executeTakeFirst(), undefined);
      assert.equal((await agent.get('/vehicles')).status, 200, 'the rider is still logged in');
    });

    test('when it accepts connections but never answers, then /readyz is 503 within a few seconds and /healthz stays 200', async () => {
      proxy.silent();
      const [readyz, healthz] = await Promise.all([request(app.app).get('/readyz'), request(app.app).get('/healthz')]);
      assert.equal(healthz.status, 200);
      assert.equal(readyz.status, 503);
      // The server's own timer ended the check, not the query or the client.
      assert.equal(readyz.text, 'database unavailable: no answer within 2000 ms');
    });
  });
});

describe('metrics', () => {
  test('when requests were served, then /metrics is Prometheus text with durations labelled by route pattern, never a raw id', async () => {
    const { agent, ...owner } = await t.rider();
    const vehicle = await t.movr.addVehicle(owner, { type: 'bike', color: 'red', brand: '', location: 'Pier 17' });
    assert.equal((await formPost(agent, `/rides/start/${vehicle.id}`)).status, 303);
    const ride = (await t.movr.getRides(owner))[0]!;
    assert.equal((await formPost(agent, `/rides/end/${ride.id}`, { location: 'Pier 40' }, '/rides')).status, 303);
    assert.equal((await agent.get('/vehicles')).status, 200);
    await agent.get('/no/such/page');

    const metrics = await t.metricsClient().get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.text, /^# TYPE movr_http_request_duration_seconds histogram$/m);
    assert.match(metrics.text, /^movr_http_request_duration_seconds_count\{method="POST",route="\/rides\/start\/:vehicleId",status="303"\} 1$/m);
    assert.match(metrics.text, /^movr_http_request_duration_seconds_count\{method="POST",route="\/rides\/end\/:rideId",status="303"\} 1$/m);
    assert.match(metrics.text, /^movr_http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/vehicles",status="200"\} \d+$/m);
    assert.match(metrics.text, /route="unmatched",status="404"/);
    assert.ok(!metrics.text.includes(vehicle.id), 'no vehicle id in labels');
    assert.ok(!metrics.text.includes(ride.id), 'no ride id in labels');
    assert.doesNotMatch(metrics.text, /no\/such\/page/);
    const attempts = Number(metrics.text.match(/^movr_transaction_attempts_total (\d+)$/m)?.[1]);
    assert.ok(attempts >= 4, `transaction attempts counted (${attempts})`);
    assert.match(metrics.text, /^movr_transaction_retries_total 0$/m);
  });

  test('when a transaction is retried after a serialization failure, then movr_transaction_retries_total counts it', async () => {
    const pool = new FaultInjectingPool({ connectionString: t.connectionString });
    const app = t.buildApp({ db: await t.open({ pool }) });
    const agent = app.agent();
    const page = await agent.get('/register');
    pool.inject({ match: /^insert into "users"/i, code: '40001' });
    const response = await agent
      .post('/register')
      .type('form')
      .send({ _csrf: csrfFrom(page.text), city: 'rome', first_name: 'Re', last_name: 'Try', email: 'retry@example.com', username: 'retry', password: 'try it again' });
    assert.equal(response.status, 303);
    assert.equal((await t.db.kysely.selectFrom('users').select('username').execute()).length, 1);
    // The limiters' writes after the answer are transactions too: counted once they are over.
    await poolIdle(pool);
    const metrics = await app.metricsClient().get('/metrics');
    const counter = (name: string) => Number(metrics.text.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
    assert.equal(counter('movr_transaction_retries_total'), 1);
    assert.equal(counter('movr_transaction_attempts_total'), counter('movr_transaction_commits_total') + 1, 'one attempt more than commits');
  });

  test('when /metrics is asked of the riders\' port, then 404: metrics live on METRICS_PORT only', async () => {
    for (const forwarded of [undefined, '203.0.113.7']) {
      const asked = request(t.app).get('/metrics');
      const response = await (forwarded ? asked.set('X-Forwarded-For', forwarded) : asked);
      assert.equal(response.status, 404);
      assert.doesNotMatch(response.text, /movr_/);
    }
  });
});

describe('request ids and security headers', () => {
  test('when a request comes, then the response carries an X-Request-Id, echoing a sane one and replacing any other', async () => {
    const fresh = await request(t.app).get('/login');
    assert.match(fresh.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    const echoed = await request(t.app).get('/login').set('X-Request-Id', 'lb-1234.abc_DEF');
    assert.equal(echoed.headers['x-request-id'], 'lb-1234.abc_DEF');
    for (const insane of ['has spaces in it', 'x'.repeat(65), '<script>', 'a/b']) {
      const replaced = await request(t.app).get('/login').set('X-Request-Id', insane);
      assert.match(replaced.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/, insane);
    }
    assert.ok((await request(t.app).get('/nope')).headers['x-request-id']);
  });

  test('when there is no API_KEY, then helmet headers, a CSP without Google, and no map anywhere', async () => {
    const { agent, ...owner } = await t.rider();
    await t.movr.addVehicle(owner, { type: 'scooter', color: 'grey', brand: '', location: 'Bryant Park' });
    const page = await agent.get('/vehicles');
    const csp = page.headers['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-src 'self'(;|$)/);
    assert.match(csp, /form-action 'self'/);
    assert.doesNotMatch(csp, /google/i);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.equal(page.headers['x-frame-options'], 'SAMEORIGIN');
    assert.equal(page.headers['x-powered-by'], undefined);
    assert.equal(page.headers['strict-transport-security'], undefined, 'no HSTS outside production');
    assert.match(page.text, /Bryant Park/);
    assert.doesNotMatch(page.text, /<iframe/);
    assert.doesNotMatch(page.text, /google/i);
  });

  test('when API_KEY is set, then frame-src allows https://www.google.com and the vehicles page embeds a map', async () => {
    const mapped = t.buildApp({ env: { API_KEY: 'test-maps-key' } });
    const agent = mapped.agent();
    const owner = await signUpAndLogIn(agent, mapped.movr);
    await mapped.movr.addVehicle(owner, { type: 'scooter', color: 'grey', brand: '', location: 'Bryant Park' });
    const page = await agent.get('/vehicles');
    const frameSrc = (page.headers['content-security-policy'] ?? '').split(';').find((d: string) => d.trim().startsWith('frame-src')) ?? '';
    assert.match(frameSrc, /'self'/);
    assert.match(frameSrc, /https:\/\/www\.google\.com/);
    // The frame is made by movr.js as the card scrolls into view; the link to Google Maps is there without it.
    assert.match(page.text, /data-map-src="https:\/\/www\.google\.com\/maps\/embed\/v1\/place\?key=test-maps-key&(?:amp;)?q=Bryant%20Park%2C%20New%20York"/);
    assert.match(page.text, /class="map-fallback" href="https:\/\/www\.google\.com\/maps\/search\/\?api=1&(?:amp;)?query=Bryant%20Park%2C%20New%20York"/);
    // The profile maps the rider's own vehicles too.
    const profile = await agent.get(`/users/${owner.id}`);
    assert.match(profile.text, /data-map-src="https:\/\/www\.google\.com\/maps\/embed\/v1\/place\?key=test-maps-key&(?:amp;)?q=Bryant%20Park%2C%20New%20York"/);
  });

  test('when API_KEY is unset, then no map and no frame source beyond our own', async () => {
    const agent = t.agent();
    const owner = await signUpAndLogIn(agent, t.movr);
    await t.movr.addVehicle(owner, { type: 'bike', color: 'red', brand: '', location: 'Union Square' });
    const page = await agent.get('/vehicles');
    assert.doesNotMatch(page.text, /data-map-src|google\.com/);
    assert.doesNotMatch((await agent.get(`/users/${owner.id}`)).text, /data-map-src|google\.com/);
  });
});

describe('production mode', () => {
  let prod: TestApp;
  before(() => {
    prod = t.buildApp({ env: PRODUCTION_ENV });
  });

  /** Logs a user in on the production app, as the load balancer forwards it (https) or not. */
  async function productionLogIn(https: boolean) {
    await prod.movr.addUser({ city: 'rome', firstName: 'Prod', lastName: 'User', email: 'prod@example.com', username: `prod${https}`, password: 'production password' });
    const proto = https ? 'https' : 'http';
    const page = await request(prod.app).get('/login').set('X-Forwarded-Proto', proto);
    const csrf = cookie(page, '__Host-movr.csrf');
    assert.ok(csrf, 'the CSRF cookie has the __Host- prefix');
    assert.match(csrf, /;\s*Secure/i);
    const response = await request(prod.app)
      .post('/login')
      .set('X-Forwarded-Proto', proto)
      .set('Cookie', csrf.split(';')[0]!)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), username: `prod${https}`, password: 'production password' });
    assert.equal(response.status, 303);
    return { page, response };
  }

  test('when a rider logs in through the TLS load balancer, then the session cookie is Secure, HttpOnly, SameSite=Lax, with HSTS and upgrade-insecure-requests', async () => {
    const { page, response } = await productionLogIn(true);
    const sent = cookie(response);
    assert.ok(sent, 'a session cookie');
    assert.match(sent, /;\s*Secure/i);
    assert.match(sent, /HttpOnly/i);
    assert.match(sent, /SameSite=Lax/i);
    assert.match(page.headers['strict-transport-security'] ?? '', /max-age=\d+/);
    assert.match(page.headers['content-security-policy'] ?? '', /upgrade-insecure-requests/);
  });

  test('when the same log-in comes over plain http, then no session cookie is sent at all', async () => {
    const { response } = await productionLogIn(false);
    assert.equal(cookie(response), undefined);
  });

  test('when a route is unknown, then the 404 page shows no stack trace', async () => {
    const response = await request(prod.app).get('/definitely/not/here').set('X-Forwarded-Proto', 'https');
    assert.equal(response.status, 404);
    assert.match(response.text, /That page does not exist\./);
    assert.doesNotMatch(response.text, STACK_TRACE);
  });

  test('when the server fails unexpectedly, then 500 with no details in production, and with the stack in development', async () => {
    const pool = new FaultInjectingPool({ connectionString: t.connectionString });
    const db = await t.open({ pool });
    // A fault no rule maps: the generic 500 page.
    pool.inject({ match: /from "users"/i, code: 'XX000', nth: 'every', message: 'internal fault with secret details' });
    t.expectLogged(/internal fault with secret details|"statusCode":500\b/);
    const production = t.buildApp({ env: PRODUCTION_ENV, db });
    const login = await request(production.app).get('/login').set('X-Forwarded-Proto', 'https');
    const csrfCookie = cookie(login, '__Host-movr.csrf')!.split(';')[0]!;
    const failed = await request(production.app)
      .post('/login')
      .set('X-Forwarded-Proto', 'https')
      .set('Cookie', csrfCookie)
      .type('form')
      .send({ _csrf: csrfFrom(login.text), username: 'someone', password: 'whatever it is' });
    assert.equal(failed.status, 500);
    assert.match(failed.text, /Something went wrong on our side\./);
    assert.doesNotMatch(failed.text, /secret details|XX000/);
    assert.doesNotMatch(failed.text, STACK_TRACE);

    const development = t.buildApp({ env: { NODE_ENV: 'development' }, db });
    const agent = development.agent();
    const shown = await formPost(agent, '/login', { username: 'someone', password: 'whatever it is' }, '/login');
    assert.equal(shown.status, 500);
    assert.match(shown.text, /internal fault with secret details/);
    // The details the page hides in production are in the log, once per failed request.
    assert.equal(t.logged().filter((line) => line.includes('"msg":"request failed"') && line.includes('internal fault with secret details')).length, 2);
  });

  test('when in development, then templates are read again at each render (npm run dev); in production compiled once', () => {
    assert.equal(t.buildApp({ env: { NODE_ENV: 'development' } }).app.get('view cache'), false);
    assert.equal(prod.app.get('view cache'), true);
  });
});

describe('bad input is never a 500', () => {
  test('when a route is unknown, then a 404 page', async () => {
    const response = await t.agent().get('/no-such-page');
    assert.equal(response.status, 404);
    assert.match(response.headers['content-type'] ?? '', /text\/html/);
    assert.match(response.text, /Not found/);
    assert.equal((await t.agent().post('/no-such-page')).status, 403, 'an unknown POST still needs its CSRF token');
  });

  test('when a form field is repeated, then 422 with the form, not 500', async () => {
    const agent = t.agent();
    const _csrf = csrfFrom((await agent.get('/register')).text);
    const repeated = `_csrf=${_csrf}&city=boston&first_name=A&last_name=B&email=a%40example.com&username=one&username=two&password=long%20enough`;
    const signUp = await agent.post('/register').type('form').send(repeated);
    assert.equal(signUp.status, 422);
    assert.match(signUp.text, /id="error-username"/);
    const logIn = await agent.post('/login').type('form').send(`_csrf=${_csrf}&username=a&username=b&password=x`);
    assert.equal(logIn.status, 422);

    await signUpAndLogIn(agent, t.movr);
    const token = csrfFrom((await agent.get('/vehicles/add')).text);
    const vehicle = await agent.post('/vehicles/add').type('form').send(`_csrf=${token}&type=bike&type=scooter&color=red&location=Here`);
    assert.equal(vehicle.status, 422);
    assert.match(vehicle.text, /id="error-type"/);
    assert.equal(await t.db.kysely.selectFrom('vehicles').select('id').executeTakeFirst(), undefined);
  });

  test('when a POST carries JSON instead of a form, then 403, not 500', async () => {
    const agent = t.agent();
    const _csrf = csrfFrom((await agent.get('/register')).text);
    const json = await agent.post('/login').send({ _csrf, username: 'a', password: 'b' });
    assert.equal(json.status, 403);
    const broken = await agent.post('/login').set('Content-Type', 'application/json').send('{"not json');
    assert.equal(broken.status, 403);
  });

  test('when a path has broken percent-encoding, then 400, not 500', async () => {
    const { agent } = await t.rider();
    assert.equal((await agent.get('/users/%ZZ')).status, 400);
    const _csrf = csrfFrom((await agent.get('/vehicles')).text);
    assert.equal((await agent.post('/city/%E0%A4%A').type('form').send({ _csrf })).status, 400);
  });

  test('when a log-in username holds a NUL byte, then the form is refused, not a 500', async () => {
    const response = await formPost(t.agent(), '/login', { username: 'ada\u0000', password: 'whatever it is' }, '/login');
    assert.ok(response.status === 401 || response.status === 422, `status ${response.status}`);
    assert.match(response.text, /Incorrect username or password\./);
  });
});

describe('configuration', () => {
  const problemsOf = (env: NodeJS.ProcessEnv): string[] => {
    try {
      loadConfig(env);
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.problems;
    }
    assert.fail('expected a ConfigError');
  };

  test('when production has neither DB_URI nor SECRET_KEY, then one ConfigError names both', () => {
    const problems = problemsOf({ NODE_ENV: 'production' });
    assert.equal(problems.length, 2);
    assert.ok(problems.some((p) => p.startsWith('DB_URI')));
    assert.ok(problems.some((p) => p.startsWith('SECRET_KEY')));
    assert.throws(() => loadConfig({ NODE_ENV: 'production' }), (error: Error) => /DB_URI[\s\S]*SECRET_KEY|SECRET_KEY[\s\S]*DB_URI/.test(error.message));
  });

  test('when values are empty, then they mean unset', () => {
    const problems = problemsOf({ NODE_ENV: 'production', DB_URI: '', SECRET_KEY: '' });
    assert.ok(problems.some((p) => p.startsWith('DB_URI')));
    assert.ok(problems.some((p) => p.startsWith('SECRET_KEY') && /required/.test(p)));
    const dataDir = mkdtempSync(path.join(tmpdir(), 'movr-config-'));
    try {
      const config = loadConfig({ MOVR_DATA_DIR: dataDir, DB_URI: '', PORT: '', HOST: '', REGION: '', API_KEY: '', TRUST_PROXY: '', NODE_ENV: '', LOG_LEVEL: '', SECRET_KEY: '' });
      assert.equal(config.dbUri, undefined);
      assert.equal(config.port, 8000);
      assert.equal(config.host, '0.0.0.0');
      assert.equal(config.region, 'gcp-us-east1');
      assert.equal(config.apiKey, undefined);
      assert.equal(config.trustProxy, 'loopback');
      assert.equal(config.env, 'development');
      assert.equal(config.logLevel, 'info');
      assert.equal(config.secretKey, undefined, 'the development secret is the server’s to make');
      assert.deepEqual(readdirSync(dataDir), [], 'parsing writes no file');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('when SECRET_KEY is too short or a known default in production, then refused', () => {
    const base = { NODE_ENV: 'production', DB_URI: 'postgresql://root@localhost:26257/movr' };
    assert.deepEqual(problemsOf({ ...base, SECRET_KEY: 'short' }).map((p) => p.split(':')[0]), ['SECRET_KEY']);
    assert.deepEqual(problemsOf({ ...base, SECRET_KEY: 'x'.repeat(31) }).map((p) => p.split(':')[0]), ['SECRET_KEY']);
    assert.deepEqual(problemsOf({ ...base, SECRET_KEY: 'replace-me-with-a-long-random-string-of-32-chars' }).map((p) => p.split(':')[0]), ['SECRET_KEY']);
    const config = loadConfig({ ...base, SECRET_KEY: 'x'.repeat(32) });
    assert.equal(config.isProduction, true);
    assert.equal(config.secretKey, 'x'.repeat(32));
  });

  test('when DB_URI is cockroachdb://, then it is accepted as postgresql://; other schemes are refused', () => {
    const config = loadConfig({ DB_URI: 'cockroachdb://root@127.0.0.1:26257/movr?sslmode=disable', SECRET_KEY: 'k'.repeat(40) });
    assert.equal(config.dbUri, 'postgresql://root@127.0.0.1:26257/movr?sslmode=disable');
    assert.equal(loadConfig({ DB_URI: 'postgres://u@h/db', SECRET_KEY: 'k'.repeat(40) }).dbUri, 'postgres://u@h/db');
    assert.ok(problemsOf({ DB_URI: 'mysql://u@h/db', SECRET_KEY: 'k'.repeat(40) })[0]?.startsWith('DB_URI'));
  });

  test('when several variables are wrong, then every problem is listed at once', () => {
    const problems = problemsOf({ PORT: 'eighty', REGION: 'mars-north1', LOG_LEVEL: 'loud', NODE_ENV: 'staging', DB_URI: 'http://x' });
    assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), ['DB_URI', 'LOG_LEVEL', 'NODE_ENV', 'PORT', 'REGION']);
  });
});
