import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { ensureDist, ROOT, SERVER_JS } from '../support/build.js';
import { useFixture } from '../support/fixture.js';
import { childEnvironment, errorsLogged, killGroup, type ServerProcess, startServerProcess } from '../support/server-process.js';

/**
 * The real server process against CockroachDB, played by PostgreSQL: a database whose version() says CockroachDB
 * (a function of that name in `public`, ahead of pg_catalog on the search path), so the app takes its CockroachDB
 * path, and an event trigger that records every DDL statement, so "never creates or alters tables" is counted.
 */

const run = promisify(execFile);
const started: ServerProcess[] = [];
after(() => {
  for (const server of started) killGroup(server.child, 'SIGKILL');
});

const t = useFixture({ reset: false });

/** Makes the database at `url` pose as CockroachDB and log DDL; returns a client on it. */
async function poseAsCockroach(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const name = new URL(url).pathname.slice(1);
  await client.query(`CREATE FUNCTION public.version() RETURNS text LANGUAGE sql AS $$ SELECT 'CockroachDB CCL v24.1.0 (x86_64-pc-linux-gnu, built 2024/05/01, go1.22.0)' $$`);
  await client.query(`ALTER DATABASE "${name}" SET search_path = public, pg_catalog`);
  await client.query('CREATE TABLE test_ddl_log (tag text, at timestamptz DEFAULT now())');
  await client.query(`CREATE FUNCTION test_log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO test_ddl_log (tag) VALUES (tg_tag); END $$`);
  await client.query('CREATE EVENT TRIGGER test_ddl ON ddl_command_start EXECUTE FUNCTION test_log_ddl()');
  return client;
}

async function ddlLogged(client: pg.Client) {
  return (await client.query<{ tag: string }>('SELECT tag FROM test_ddl_log')).rows.map((row) => row.tag);
}

const tables = async (client: pg.Client) =>
  (await client.query<{ t: string }>(`SELECT table_name || '.' || column_name AS t FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1`)).rows.map((row) => row.t);

const production = (url: string) => ({
  NODE_ENV: 'production',
  SECRET_KEY: 'a-cockroach-test-secret-of-at-least-32-characters',
  // The alias the contract accepts.
  DB_URI: url.replace(/^postgresql:/, 'cockroachdb:'),
  METRICS_PORT: '0',
  LOG_LEVEL: 'info',
});

/** Starts the server expecting it to refuse: its exit code and everything it printed. */
async function refusedStart(url: string) {
  await ensureDist();
  const result = await run(process.execPath, [SERVER_JS], { cwd: ROOT, env: { ...childEnvironment(), ...production(url), PORT: '0', HOST: '127.0.0.1' }, timeout: 30_000 }).then(
    () => assert.fail('the server started'),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  return { code: result.code, output: `${result.stdout}${result.stderr}` };
}

describe('the server started against CockroachDB', () => {
  test('when the database is empty, then it stops with a message naming both files to load, and creates nothing', async () => {
    const url = await t.createDatabase();
    const client = await poseAsCockroach(url);
    const before = await tables(client);
    const { code, output } = await refusedStart(url);
    assert.equal(code, 1);
    assert.match(output, /"kind":"cockroachdb"/, 'it took the CockroachDB path');
    assert.match(output, /dbinit\.sql/);
    assert.match(output, /dbinit-multiregion\.sql/);
    assert.deepEqual(await ddlLogged(client), [], 'no DDL ran');
    assert.deepEqual(await tables(client), before);
    await client.end();
  });

  test('when the schema is from an older dbinit.sql, then it stops naming the upgrade file to load, and alters nothing', async () => {
    const url = await t.createDatabase();
    const setup = new pg.Client({ connectionString: url });
    await setup.connect();
    await setup.query('CREATE TABLE users (city text, id uuid); CREATE TABLE schema_info (version int PRIMARY KEY); INSERT INTO schema_info VALUES (1)');
    await setup.end();
    const client = await poseAsCockroach(url);
    const before = await tables(client);
    const { code, output } = await refusedStart(url);
    assert.equal(code, 1);
    assert.match(output, /db\/cockroach\/upgrade-002\.sql/);
    assert.deepEqual(await ddlLogged(client), [], 'no DDL ran');
    assert.deepEqual(await tables(client), before);
    await client.end();
  });

  test('when the schema is current, then it serves, a rider signs up through the CockroachDB retry protocol, and no DDL ran', async () => {
    const client = await poseAsCockroach(t.connectionString);
    const before = await tables(client);
    const server = await startServerProcess({ env: production(t.connectionString) });
    started.push(server);
    assert.match(server.output(), /"kind":"cockroachdb"/);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    const page = await fetch(`${server.url}/register`, { headers: { 'x-forwarded-proto': 'https' } });
    const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
    const cookies = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
    const body = new URLSearchParams({ _csrf: csrf, city: 'rome', first_name: 'Roach', last_name: 'Rider', email: 'roach@example.com', username: 'roach', password: 'password123' });
    const created = await fetch(`${server.url}/register`, { method: 'POST', headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' }, body, redirect: 'manual' });
    assert.equal(created.status, 303);
    assert.equal(created.headers.get('location'), '/vehicles');
    assert.equal((await client.query(`SELECT count(*)::int AS n FROM users WHERE username = 'roach'`)).rows[0].n, 1);
    killGroup(server.child, 'SIGTERM');
    assert.equal((await server.exited).code, 0);
    assert.deepEqual(errorsLogged(server), []);
    assert.deepEqual(await ddlLogged(client), [], 'no DDL ran');
    assert.deepEqual(await tables(client), before);
    await client.end();
  });
});
