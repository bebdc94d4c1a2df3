import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashPassword } from '../../src/movr/passwords.js';
import { freePort } from '../support/cluster.js';
import { useFixture } from '../support/fixture.js';
import { Browser, csrfOf } from '../support/http-client.js';
import { killGroup, type ServerProcess, startServerProcess } from '../support/server-process.js';

/**
 * Riders who never touch each other's rows, on two production instances over one PostgreSQL (SERIALIZABLE):
 * none is told "busy", and serialization retries stay a small fraction of their actions.
 */

const RIDERS = 12;
/** Rides per rider: a count, not a time, so that a slow machine runs the same trial, only slower. */
const RIDES = 10;
const PASSWORD = 'correct horse battery staple';
let servers: (ServerProcess & { metrics: string })[] = [];

const t = useFixture({
  reset: false,
  // PostgreSQL keeps a committed serializable transaction's read locks while any transaction that overlapped it is
  // open, cluster-wide, and past a limit merges them into coarse ones that conflict with everything: another file's
  // transaction held open for seconds would make these riders retry for the neighbours, so they get their own.
  ownCluster: true,
  async setup({ connectionString }) {
    servers = await Promise.all(
      ['gcp-us-east1', 'gcp-europe-west1'].map(async (region) => {
        const metricsPort = await freePort();
        const env = { NODE_ENV: 'production', SECRET_KEY: 'a-riders-test-secret-of-at-least-32-characters', DB_URI: connectionString, REGION: region, LOG_LEVEL: 'warn', METRICS_PORT: String(metricsPort) };
        return Object.assign(await startServerProcess({ env }), { metrics: `http://127.0.0.1:${metricsPort}/metrics` });
      }),
    );
  },
  async teardown() {
    for (const server of servers) killGroup(server.child, 'SIGKILL');
  },
});

/** A counter of the instances' metrics, summed over both. */
async function counter(name: string): Promise<number> {
  let sum = 0;
  for (const server of servers) {
    const text = await (await fetch(server.metrics)).text();
    sum += Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1] ?? 0);
  }
  return sum;
}

describe('riders on their own vehicles', () => {
  test(`when ${RIDERS} riders start and end rides on their own vehicles across two instances, then none is told busy and retries are rare`, { timeout: 60_000 }, async () => {
    const hash = await hashPassword(PASSWORD, 4);
    const riders = [];
    // One after another: an instance hashes one password at a time and lets only two more wait.
    for (let i = 0; i < RIDERS; i++) {
      const city = (['new york', 'boston', 'paris', 'rome'] as const)[i % 4]!;
      const username = `rider${i}`;
      const user = await t.db.kysely
        .insertInto('users')
        .values({ city, first_name: 'Own', last_name: 'Rider', email: `${username}@example.com`, username, password_hash: hash, is_owner: true })
        .returning('id')
        .executeTakeFirstOrThrow();
      const vehicle = await t.db.kysely
        .insertInto('vehicles')
        .values({ city, owner_id: user.id, type: 'bike', color: 'blue', brand: '', last_location: 'Home' })
        .returning('id')
        .executeTakeFirstOrThrow();
      const browser = new Browser({ 'x-forwarded-proto': 'https', 'x-forwarded-for': `192.0.2.${i + 1}` });
      const login = await browser.post(`${servers[i % 2]!.url}/login`, { username, password: PASSWORD });
      assert.equal(login.status, 303);
      const token = csrfOf((await browser.get(`${servers[i % 2]!.url}/rides`)).text);
      riders.push({ browser, token, vehicle: vehicle.id });
    }
    const retriesBefore = await counter('movr_transaction_retries_total');
    // Every answer, as `start 303 /rides` or `end 503`: a refusal would be a 303 with a flash, so the page is checked too.
    const answers = new Map<string, number>();
    const record = (answer: string) => answers.set(answer, (answers.get(answer) ?? 0) + 1);
    let actions = 0;
    // The riders' requests in flight at once: the trial is worth something only if they overlapped.
    let inFlight = 0;
    let overlapped = 0;
    const send = async <T>(request: Promise<T>) => {
      overlapped = Math.max(overlapped, ++inFlight);
      try {
        return await request;
      } finally {
        inFlight--;
      }
    };
    await Promise.all(
      riders.map(async ({ browser, token, vehicle }, i) => {
        for (let n = 0; n < RIDES; n++) {
          // Every action may land on either instance, as behind the load balancer.
          const start = await send(browser.postWith(`${servers[(i + n) % 2]!.url}/rides/start/${vehicle}`, token));
          actions++;
          record(`start ${start.status} ${start.location ?? ''}`);
          const page = await browser.get(`${servers[(i + n + 1) % 2]!.url}/rides`);
          const ride = page.text.match(/action="\/rides\/end\/([0-9a-f-]{36})"/)?.[1];
          if (!ride) {
            record('no active ride after the start');
            continue;
          }
          const end = await send(browser.postWith(`${servers[(i + n) % 2]!.url}/rides/end/${ride}`, token, { location: `Stop ${n}` }));
          actions++;
          record(`end ${end.status} ${end.location ?? ''}`);
          const after = await browser.get(`${servers[(i + n + 1) % 2]!.url}/rides`);
          if (/action="\/rides\/end\//.test(after.text)) record('still riding after the end');
        }
      }),
    );
    const retries = (await counter('movr_transaction_retries_total')) - retriesBefore;
    const shown = [...answers].map(([answer, n]) => `${n}× ${answer}`).join(', ');
    console.log(`${RIDERS} riders × ${RIDES} rides: ${actions} actions (${shown}), up to ${overlapped} at once, ${retries} retries`);
    assert.equal(actions, RIDERS * RIDES * 2, 'every rider started and ended each ride');
    assert.ok(overlapped >= RIDERS / 2, `the riders' starts and ends overlapped: up to ${overlapped} at once`);
    assert.deepEqual(
      [...answers.keys()].sort(),
      ['end 303 /rides', 'start 303 /rides'],
      `every start and end succeeds, none is told busy (503): ${shown}`,
    );
    assert.ok(retries <= actions * 0.05, `${retries} retries for ${actions} actions`);
  });
});
