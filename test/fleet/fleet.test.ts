import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { hashPassword } from '../../src/movr/passwords.js';
import { GRACE_MS } from '../../src/web/middleware/drain.js';
import type { City } from '../../src/regions.js';
import { useFixture } from '../support/fixture.js';
import { Browser, csrfOf } from '../support/http-client.js';
import { killGroup, type ServerProcess, startServerProcess } from '../support/server-process.js';

/**
 * Two production instances of the real server on one PostgreSQL, over real HTTP: what the contract promises
 * for the fleet ("Many instances, one database") holds across them, under concurrent requests of one rider.
 */

const TRIALS = 20;
const PASSWORD = 'correct horse battery staple';
let servers: ServerProcess[] = [];
let seeded = 0;
/** The user whose failed log-ins were counted, checked again after a restart. */
let limitedUsername = '';

const env = (region: string) => ({
  NODE_ENV: 'production',
  SECRET_KEY: 'a-fleet-test-secret-of-at-least-32-characters',
  DB_URI: '',
  REGION: region,
  LOG_LEVEL: 'warn',
});

/** A rider behind the load balancer: https as the balancer saw it, and the client's address. */
const rider = (client = '192.0.2.10') => new Browser({ 'x-forwarded-proto': 'https', 'x-forwarded-for': client });

/** A user straight in the database, with a cheap hash (bcrypt reads the cost from the hash). */
async function seedUser(city: City = 'new york') {
  const username = `fleet${++seeded}`;
  const row = await t.db.kysely
    .insertInto('users')
    .values({ city, first_name: 'Fleet', last_name: 'Rider', email: `${username}@example.com`, username, password_hash: await hashPassword(PASSWORD, 4) })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, username, city };
}

async function logIn(browser: Browser, server: ServerProcess, username: string) {
  const answer = await browser.post(`${server.url}/login`, { username, password: PASSWORD });
  assert.equal(answer.status, 303, `log-in of ${username}: ${answer.status}`);
  assert.equal(answer.location, '/vehicles');
}

/** Runs `loops` request loops until stopped; resolves with how many requests they sent. */
function hammer(loops: number, send: (i: number) => Promise<unknown>) {
  let stopped = false;
  let sent = 0;
  const running = Array.from({ length: loops }, async (_, i) => {
    while (!stopped) {
      sent++;
      await send(i).catch(() => {});
    }
  });
  return async () => {
    stopped = true;
    await Promise.all(running);
    return sent;
  };
}

const writes = async () => Number((await sql<{ n: string }>`SELECT count(*) AS n FROM fleet_test_writes`.execute(t.db.kysely)).rows[0]!.n);

const t = useFixture({
  reset: false,
  async setup({ db, connectionString }) {
    // Every row the app inserts, updates or deletes is logged, so "writes nothing" can be counted exactly.
    await sql`CREATE TABLE fleet_test_writes (tbl text, op text)`.execute(db.kysely);
    await sql`CREATE FUNCTION fleet_log_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO fleet_test_writes VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$`.execute(db.kysely);
    for (const table of ['users', 'vehicles', 'rides', 'sessions', 'rate_limits', 'schema_info']) {
      await sql`CREATE TRIGGER fleet_log AFTER INSERT OR UPDATE OR DELETE ON ${sql.table(table)} FOR EACH ROW EXECUTE FUNCTION fleet_log_write()`.execute(db.kysely);
    }
    servers = await Promise.all(['gcp-us-east1', 'gcp-europe-west1'].map((region) => startServerProcess({ env: { ...env(region), DB_URI: connectionString } })));
  },
  async teardown() {
    for (const server of servers) killGroup(server.child, 'SIGKILL');
  },
});

describe('a fleet of two instances on one database', () => {
  test('when a user deletes their account while another session of theirs is busy on the other instance, then that session is dead everywhere at once and stays dead', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    let survivors = 0;
    let lateSurvivors = 0;
    let busyRequests = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const user = await seedUser();
      const mine = rider();
      const other = rider();
      await logIn(mine, a, user.username);
      await logIn(other, b, user.username);
      const otherToken = csrfOf((await other.get(`${b.url}/vehicles/add`)).text);
      const profile = await mine.get(`${a.url}/users/${user.id}`);
      assert.equal(profile.headers.get('cache-control'), 'no-store', 'a logged-in page is never cached');

      // Switching cities back and forth: every request saves the session.
      let switches = 0;
      const stop = hammer(4, (i) => other.clone().postWith(`${servers[i % 2]!.url}/city/${++switches % 2 ? 'boston' : 'new%20york'}`, otherToken));
      await sleep(20);
      const deleted = await mine.postWith(`${a.url}/users/remove/${user.id}`, csrfOf(profile.text));
      assert.equal(deleted.status, 303, `deletion answered ${deleted.status}: ${deleted.text.slice(0, 200)}`);
      assert.equal(deleted.location, '/login');
      const right = await other.clone().get(`${b.url}/vehicles`);
      if (right.status !== 303) survivors++;
      busyRequests += await stop();

      // Whatever was in flight has landed: still dead on both instances, and unable to act.
      for (const server of servers) {
        const later = await other.clone().get(`${server.url}/vehicles`);
        if (later.status !== 303 || later.location !== '/login') lateSurvivors++;
      }
      const add = await other.clone().postWith(`${b.url}/vehicles/add`, otherToken, { type: 'bike', color: 'red', brand: 'x', location: 'Main Street' });
      assert.notEqual(add.location, '/vehicles', 'a deleted account adds nothing');
      const { n } = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM sessions WHERE user_id = ${user.id} AND NOT revoked`.execute(t.db.kysely)).rows[0]!;
      assert.equal(n, 0, 'no live session row of a deleted user');
    }
    console.log(`deletion race: ${TRIALS} trials, ${busyRequests} concurrent requests of the other session, ${survivors} served after the 303, ${lateSurvivors} later`);
    assert.equal(survivors, 0);
    assert.equal(lateSurvivors, 0);
  });

  test('when a rider logs out while requests with the same cookie are in flight on both instances, then no instance serves that cookie as logged in afterwards', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    let survivors = 0;
    let busyRequests = 0;
    for (let trial = 0; trial < TRIALS; trial++) {
      const user = await seedUser('paris');
      const tab = rider();
      await logIn(tab, a, user.username);
      const token = csrfOf((await tab.get(`${a.url}/vehicles`)).text);
      const old = tab.clone();
      let switches = 0;
      const stop = hammer(4, (i) => old.clone().postWith(`${servers[i % 2]!.url}/city/${++switches % 2 ? 'rome' : 'paris'}`, token));
      await sleep(20);
      const out = await tab.postWith(`${a.url}/logout`, token);
      assert.equal(out.status, 303);
      assert.equal(out.location, '/login');
      if ((await old.clone().get(`${b.url}/vehicles`)).status !== 303) survivors++;
      busyRequests += await stop();
      for (const server of servers) if ((await old.clone().get(`${server.url}/rides`)).status !== 303) survivors++;
    }
    console.log(`log-out race: ${TRIALS} trials, ${busyRequests} concurrent requests, ${survivors} survivors`);
    assert.equal(survivors, 0);
  });

  test('when visitors who are not logged in send GET and HEAD requests of every kind, then the database is not written', async () => {
    const before = await writes();
    const paths = ['/', '/login', '/register', '/vehicles', '/rides', '/users', '/users/123', '/no/such/page', '/static/css/movr.css', '/healthz', '/readyz'];
    let sent = 0;
    for (let i = 0; i < 150; i++) {
      const visitor = rider(`198.51.100.${i % 200}`);
      // Half come back with a cookie: a stale session id, or garbage.
      if (i % 2) visitor.cookies.set('movr.sid', i % 4 === 1 ? 's%3Astale-session-id.bogus' : 'garbage');
      const answer = await visitor.request(`${servers[i % 2]!.url}${paths[i % paths.length]}`, { method: i % 3 === 0 ? 'HEAD' : 'GET' });
      assert.ok(answer.status < 500, `${paths[i % paths.length]}: ${answer.status}`);
      sent++;
    }
    await sleep(200);
    assert.equal(await writes(), before, `${sent} anonymous requests wrote rows`);
    const sessions = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM sessions WHERE user_id IS NULL`.execute(t.db.kysely)).rows[0]!.n;
    assert.equal(sessions, 0, 'no session row without a user');
  });

  test('when one client fails to log in as one user, alternating instances, then the 11th attempt is refused by both', async () => {
    const victim = await seedUser();
    limitedUsername = victim.username;
    const attacker = rider('203.0.113.66');
    for (let attempt = 1; attempt <= 10; attempt++) {
      const answer = await attacker.post(`${servers[attempt % 2]!.url}/login`, { username: victim.username, password: 'wrong password!' });
      assert.equal(answer.status, 401, `attempt ${attempt}`);
    }
    for (const server of servers) {
      const answer = await attacker.post(`${server.url}/login`, { username: victim.username, password: PASSWORD });
      assert.equal(answer.status, 429, 'even the right password is refused while the limit holds');
    }
    // Another client is not locked out by the attack.
    await logIn(rider('203.0.113.67'), servers[0]!, victim.username);
  });

  test('when one client signs up accounts on both instances, then the accounts are counted together', async () => {
    const client = rider('203.0.113.80');
    for (let i = 1; i <= 10; i++) {
      const answer = await client.clone().post(`${servers[i % 2]!.url}/register`, {
        city: 'rome',
        first_name: 'Giulia',
        last_name: 'Rossi',
        email: `giulia${i}@example.com`,
        username: `giulia${i}`,
        password: PASSWORD,
      });
      assert.equal(answer.status, 303, `sign-up ${i}: ${answer.status}`);
      assert.equal(answer.location, '/vehicles');
    }
    const refused = await client.clone().post(`${servers[0]!.url}/register`, {
      city: 'rome',
      first_name: 'Giulia',
      last_name: 'Rossi',
      email: 'giulia11@example.com',
      username: 'giulia11',
      password: PASSWORD,
    });
    assert.equal(refused.status, 429);
  });

  test("when one client floods log-ins with guessed usernames, then it is cut off and another rider's pages and CSS stay fast", async () => {
    const [a] = servers as [ServerProcess];
    const reader = rider('192.0.2.50');
    await logIn(reader, a, (await seedUser()).username);
    const timed = async (path: string) => {
      const start = performance.now();
      const answer = await reader.get(`${a.url}${path}`);
      assert.equal(answer.status, 200, path);
      return performance.now() - start;
    };
    const sample = async (count: number) => {
      const pages: number[] = [];
      const css: number[] = [];
      for (let i = 0; i < count; i++) {
        pages.push(await timed('/vehicles'));
        css.push(await timed('/static/css/movr.css'));
      }
      return { page: median(pages), css: median(css) };
    };
    const calm = await sample(10);
    const statuses = new Map<number, number>();
    const flooder = rider('203.0.113.99');
    let guess = 0;
    const FLOOD = 64;
    const flood = Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        while (guess < FLOOD) {
          const answer = await flooder.post(`${servers[i % 2]!.url}/login`, { username: `nobody${++guess}`, password: 'guessing-passwords' });
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        }
      }),
    );
    let flooding = true;
    void flood.then(() => (flooding = false));
    const pages: number[] = [];
    const css: number[] = [];
    while (flooding) {
      pages.push(await timed('/vehicles'));
      css.push(await timed('/static/css/movr.css'));
    }
    await flood;
    const during = { page: median(pages), css: median(css) };
    console.log(
      `log-in flood: ${guess} attempts (${[...statuses].map(([s, n]) => `${n}× ${s}`).join(', ')}); ${pages.length} page and CSS loads meanwhile; ` +
        `median /vehicles ${calm.page.toFixed(1)} → ${during.page.toFixed(1)} ms (max ${Math.max(...pages).toFixed(0)}), CSS ${calm.css.toFixed(1)} → ${during.css.toFixed(1)} ms (max ${Math.max(...css).toFixed(0)})`,
    );
    assert.ok((statuses.get(401) ?? 0) <= 50, 'at most 50 failures per client are even tried');
    assert.ok((statuses.get(429) ?? 0) >= FLOOD - 50, 'the rest are refused without a hash');
    // Before the fix (bcrypt on the shared thread pool, no per-client limit) the CSS took 6.4 s.
    assert.ok(during.css < 500, `CSS during the flood: ${during.css} ms`);
    assert.ok(during.page < 1000, `page during the flood: ${during.page} ms`);
  });

  test('when an instance gets SIGTERM under keep-alive load, then every request it received is answered, with Connection: close from the signal on, and it exits 0 within 10 s', async () => {
    const server = servers[1]!;
    const user = await seedUser();
    const tab = rider();
    await logIn(tab, server, user.username);
    const cookie = [...tab.cookies].map(([n, v]) => `${n}=${v}`).join('; ');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let signalAt = Infinity;
    const outcomes: { sentAt: number; receivedAt?: number; status?: number; close?: boolean; error?: string }[] = [];
    const once = (path: string) =>
      new Promise<void>((resolve) => {
        const outcome: (typeof outcomes)[number] = { sentAt: performance.now() };
        outcomes.push(outcome);
        const req = http.get(`${server.url}${path}`, { agent, headers: { cookie, 'x-forwarded-proto': 'https' } }, (res) => {
          res.resume();
          res.on('end', () => {
            outcome.status = res.statusCode;
            outcome.receivedAt = performance.now();
            outcome.close = res.headers.connection === 'close';
            resolve();
          });
        });
        req.on('error', (error: NodeJS.ErrnoException) => {
          outcome.error = error.code ?? error.message;
          resolve();
        });
      });
    let refused = false;
    const loops = Array.from({ length: 8 }, async (_, i) => {
      while (!refused) {
        await once(i % 2 ? '/vehicles' : '/rides');
        if (outcomes.at(-1)?.error === 'ECONNREFUSED') refused = true;
      }
    });
    await sleep(700);
    signalAt = performance.now();
    const exit = server.exited;
    killGroup(server.child, 'SIGTERM');
    // The signal takes a moment to arrive: from the first 503 of /readyz on, the instance is draining.
    let ready: Response | undefined;
    while ((ready = await fetch(`${server.url}/readyz`).catch(() => undefined))?.status === 200) await sleep(10);
    const drainingAt = performance.now();
    const { code } = await exit;
    const exitedAfter = performance.now() - signalAt;
    refused = true;
    await Promise.all(loops);
    agent.destroy();

    const beforeSignal = outcomes.filter((o) => o.sentAt < signalAt);
    const afterSignal = outcomes.filter((o) => o.sentAt >= signalAt);
    const servedAfter = afterSignal.filter((o) => o.status !== undefined);
    // Connections still in the listener's backlog when it closes are reset by the kernel: refused, never read.
    const refusedAtClose = (o: (typeof outcomes)[number]) =>
      o.error === 'ECONNREFUSED' || (o.error === 'ECONNRESET' && Math.abs(o.sentAt - signalAt - GRACE_MS) < 300);
    const errors = outcomes.filter((o) => o.error && !refusedAtClose(o));
    console.log(
      `SIGTERM under load: ${beforeSignal.length} requests before the signal, ${servedAfter.length} served during the drain, ` +
        `${afterSignal.length - servedAfter.length} refused as the listener closed, ${errors.length} cut off ${JSON.stringify(errors.map((e) => [e.error, Math.round(e.sentAt - signalAt)]))}; exit ${code} after ${exitedAfter.toFixed(0)} ms`,
    );
    assert.equal(ready?.status, 503, '/readyz fails from the signal on');
    assert.equal(code, 0);
    assert.ok(exitedAfter < 10_000, `exited after ${exitedAfter} ms`);
    assert.deepEqual(errors, [], 'no request was reset');
    assert.ok(beforeSignal.every((o) => o.status === 200), 'every request sent before the signal got its page');
    assert.ok(servedAfter.length > 0, 'requests kept being answered during the grace');
    // 50 ms of slack: an answer written just before the signal may still be on its way when /readyz says 503.
    const answeredWhileDraining = outcomes.filter((o) => o.receivedAt !== undefined && o.receivedAt > drainingAt + 50);
    assert.ok(answeredWhileDraining.length > 0);
    assert.ok(answeredWhileDraining.every((o) => o.close), 'every answer once draining closes its connection, those already running included');
  });

  test('when an instance restarts, then the limits it counted still hold, and the invariants of the data hold', async () => {
    servers[1] = await startServerProcess({ env: { ...env('gcp-europe-west1'), DB_URI: t.connectionString } });
    const attacker = rider('203.0.113.66');
    assert.ok(limitedUsername, 'the user attacked earlier');
    const answer = await attacker.post(`${servers[1]!.url}/login`, { username: limitedUsername, password: PASSWORD });
    assert.equal(answer.status, 429, 'the failed log-ins counted before the restart still count');

    const check = async (query: ReturnType<typeof sql<{ n: number }>>, what: string) =>
      assert.equal((await query.execute(t.db.kysely)).rows[0]!.n, 0, what);
    await check(sql`SELECT count(*)::int AS n FROM vehicles v JOIN users u ON u.city = v.city AND u.id = v.owner_id WHERE u.username IS NULL AND v.status <> 'removed'`, 'a deleted account owns a live vehicle');
    await check(sql`SELECT count(*)::int AS n FROM rides r JOIN users u ON u.city = r.rider_city AND u.id = r.rider_id WHERE u.username IS NULL AND r.end_time IS NULL`, 'a deleted account rides');
    await check(sql`SELECT count(*)::int AS n FROM users WHERE username IS NULL AND is_owner`, 'a deleted account is an owner');
    await check(sql`SELECT count(*)::int AS n FROM (SELECT vehicle_id FROM rides WHERE end_time IS NULL GROUP BY city, vehicle_id HAVING count(*) > 1) x`, 'a vehicle has two active rides');
    await check(sql`SELECT count(*)::int AS n FROM (SELECT rider_id FROM rides WHERE end_time IS NULL GROUP BY rider_city, rider_id HAVING count(*) > 1) x`, 'a rider has two active rides');
  });
});

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}
