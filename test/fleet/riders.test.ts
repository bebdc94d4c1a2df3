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
const RUN_MS = 5_000;
const PASSWORD = 'correct horse battery staple';
let servers: (ServerProcess & { metrics: string })[] = [];

const t = useFixture({
  reset: false,
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
  // Still failing: non-HOT updates (status and end_time are in index predicates) insert into btree leaf pages that
  // every rider's reads lock as a whole while tables are small; see the commit message for the measured cause.
  const todo = 'ride updates that PostgreSQL can make HOT (no index on status or end_time)';
  test(`when ${RIDERS} riders start and end rides on their own vehicles across two instances, then none is told busy and retries are rare`, { timeout: 60_000, todo }, async () => {
    const hash = await hashPassword(PASSWORD, 4);
    const riders = [];
    // One after another: an instance hashes one password at a time and lets only two more wait.
    for (let i = 0; i < RIDERS; i++) {
      riders.push(
        await (async () => {
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
        return { browser, token, vehicle: vehicle.id };
        })(),
      );
    }
    const retriesBefore = await counter('movr_transaction_retries_total');
    const statuses = new Map<number, number>();
    let actions = 0;
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const until = performance.now() + RUN_MS;
    await Promise.all(
      riders.map(async ({ browser, token, vehicle }, i) => {
        for (let n = 0; performance.now() < until; n++) {
          // Every action may land on either instance, as behind the load balancer.
          const start = await browser.postWith(`${servers[(i + n) % 2]!.url}/rides/start/${vehicle}`, token);
          actions++;
          count(start.status);
          const page = await browser.get(`${servers[(i + n + 1) % 2]!.url}/rides`);
          const ride = page.text.match(/action="\/rides\/end\/([0-9a-f-]{36})"/)?.[1];
          if (!ride) continue;
          const end = await browser.postWith(`${servers[(i + n) % 2]!.url}/rides/end/${ride}`, token, { location: `Stop ${n}` });
          actions++;
          count(end.status);
        }
      }),
    );
    const retries = (await counter('movr_transaction_retries_total')) - retriesBefore;
    const busy = statuses.get(503) ?? 0;
    console.log(`${RIDERS} riders for ${RUN_MS / 1000} s: ${actions} actions (${[...statuses].map(([s, n]) => `${n}× ${s}`).join(', ')}), ${retries} retries`);
    assert.equal(busy, 0, 'no rider is told busy');
    assert.deepEqual([...statuses.keys()], [303], 'every start and end succeeds');
    assert.ok(retries <= actions * 0.05, `${retries} retries for ${actions} actions`);
  });
});
