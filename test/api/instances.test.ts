import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { hashPassword } from '../../src/movr/passwords.js';
import { useFixture } from '../support/fixture.js';
import { Browser } from '../support/http-client.js';
import { killGroup, type ServerProcess, startServerProcess } from '../support/server-process.js';
import { ApiClient } from './client.js';
import { ROOT } from '../support/build.js';

/**
 * Two production instances of the real server on one PostgreSQL, over real HTTP: a token revoked on one is dead on
 * both at once, a retried POST acts once whichever instances its copies reach, and docs/api.md's walk-through runs
 * as written.
 */

const PASSWORD = 'correct horse battery staple';
const TRIALS = 10;
let servers: ServerProcess[] = [];
let a: ApiClient;
let b: ApiClient;
let seeded = 0;

const t = useFixture({
  reset: false,
  async setup({ connectionString }) {
    const env = { NODE_ENV: 'production', SECRET_KEY: 'an-api-instances-test-secret-of-32-characters', DB_URI: connectionString, LOG_LEVEL: 'warn' };
    servers = await Promise.all(['gcp-us-east1', 'gcp-europe-west1'].map((region) => startServerProcess({ env: { ...env, REGION: region } })));
    a = await ApiClient.connect(servers[0]!.url);
    b = a.to(servers[1]!.url);
  },
  async teardown() {
    for (const server of servers) killGroup(server.child, 'SIGKILL');
  },
});

/** A user straight in the database with a cheap hash (bcrypt reads the cost from the hash), and a token from instance A. */
async function seedRider(city: 'new york' | 'paris' = 'new york') {
  const username = `instances${++seeded}`;
  const row = await t.db.kysely
    .insertInto('users')
    .values({ city, first_name: 'Two', last_name: 'Instances', email: `${username}@example.com`, username, password_hash: await hashPassword(PASSWORD, 4) })
    .returning('id')
    .executeTakeFirstOrThrow();
  const granted = await a.post('/tokens', { body: { username, password: PASSWORD } });
  assert.equal(granted.status, 201, granted.text);
  return { id: row.id, username, token: granted.body.token as string };
}

describe('two instances on one database', () => {
  test('when a token is revoked on one instance, then the other refuses it at once', async () => {
    const rider = await seedRider();
    assert.equal((await b.get('/me', { token: rider.token })).status, 200);
    assert.equal((await b.delete('/tokens/current', { token: rider.token })).status, 204);
    for (const instance of [a, b]) assert.equal((await instance.get('/me', { token: rider.token })).status, 401);
  });

  test('when the account is deleted on one instance while tokens are being granted on the other, then no token of it works anywhere afterwards', async () => {
    const rider = await seedRider('paris');
    const browser = new Browser();
    assert.equal((await browser.post(`${servers[1]!.url}/login`, { username: rider.username, password: PASSWORD })).status, 303);
    const granted: string[] = [];
    const statuses: number[] = [];
    let stopped = false;
    const grants = (async () => {
      while (!stopped) {
        const answer = await b.post('/tokens', { body: { username: rider.username, password: PASSWORD } });
        statuses.push(answer.status);
        if (answer.status === 201) granted.push(answer.body.token);
      }
    })();
    // The deletion starts once grants are flowing, so some are in flight as it commits.
    for (let i = 0; granted.length < 2 && i < 1000; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal((await a.delete('/me', { token: rider.token })).status, 204);
    const right = await b.get('/me', { token: rider.token });
    stopped = true;
    await grants;
    assert.equal(right.status, 401);
    assert.ok(statuses.includes(201), `tokens were granted while the deletion ran: ${statuses.join(' ')}`);
    for (const token of [rider.token, ...granted]) for (const instance of [a, b]) assert.equal((await instance.get('/me', { token })).status, 401);
    assert.equal((await browser.get(`${servers[0]!.url}/vehicles`)).location, '/login', 'the web session ended too');
  });

  test('when the same ride request, with one Idempotency-Key, reaches both instances at once, then one ride and the same answer twice', async () => {
    const owner = await seedRider();
    const rider = await seedRider();
    for (let trial = 0; trial < TRIALS; trial++) {
      const vehicle = await a.post('/vehicles', { token: owner.token, body: { type: 'bike', color: 'blue', location: `Dock ${trial}` } });
      const send = (instance: ApiClient) => instance.post('/rides', { token: rider.token, idempotencyKey: `ride-${trial}`, body: { vehicle_id: vehicle.body.id } });
      const [first, second] = await Promise.all([send(a), send(b)]);
      assert.equal(first.status, 201, first.text);
      assert.equal(second.text, first.text, `trial ${trial}`);
      const rides = await t.db.kysely.selectFrom('rides').select('id').where('vehicle_id', '=', vehicle.body.id).execute();
      assert.equal(rides.length, 1, `trial ${trial}`);
      const end = (instance: ApiClient) => instance.post(`/rides/${first.body.id}/end`, { token: rider.token, idempotencyKey: `end-${trial}`, body: { location: 'Home' } });
      const [ended, endedToo] = await Promise.all([end(b), end(a)]);
      assert.equal(ended.status, 200, ended.text);
      assert.equal(endedToo.text, ended.text);
    }
  });

  test('when one sign-up, with one key, reaches both instances at once from one client, then one account and one answer', async () => {
    const body = { city: 'paris', first_name: 'Twice', last_name: 'Sent', email: 'twice@example.com', username: 'twice.sent', password: PASSWORD };
    const [first, second] = await Promise.all([a.post('/users', { idempotencyKey: 'signup', body }), b.post('/users', { idempotencyKey: 'signup', body })]);
    assert.equal(first.status, 201, first.text);
    assert.equal(second.text, first.text);
    const users = await t.db.kysely.selectFrom('users').select('id').where('username', '=', 'twice.sent').execute();
    assert.equal(users.length, 1);
  });

  test('when docs/api.md’s curl walk-through runs as written, then it signs up, browses, rides, ends and deletes', async () => {
    const markdown = readFileSync(path.join(ROOT, 'docs/api.md'), 'utf8');
    const blocks = [...markdown.matchAll(/```bash\n([\s\S]*?)```/g)].map((match) => match[1]!);
    assert.ok(blocks.length >= 5);
    const child = spawn('bash', ['-euo', 'pipefail', '-c', blocks.join('\n')], { env: { ...process.env, BASE: servers[0]!.url }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, output);
    assert.match(output, /"name":"gcp-us-east1"/);
    assert.match(output, /"username": "ada\d+"/);
    assert.match(output, /\{"type":"scooter","color":"red","status":"available","location":"Boston Common"\}/);
    const rides = [...output.matchAll(/\{"id":"([0-9a-f-]{36})","start_location":"Boston Common","end_time":null\}/g)].map((m) => m[1]);
    assert.equal(rides.length, 2);
    assert.equal(rides[0], rides[1], 'the retried start is the same ride');
    assert.match(output, /\{"start_location":"Boston Common","end_location":"Harvard Square","ended":true\}/);
    assert.match(output, /remove vehicle: 204\ndelete account: 204\n/);
    assert.match(output, /HTTP\/1\.1 401/);
    assert.match(output, /www-authenticate: Bearer/i);
  });
});
