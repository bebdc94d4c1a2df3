import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { sql } from 'kysely';
import pg from 'pg';
import { PROJECT_ROOT } from '../../src/config.js';
import { detectKind, type MovrDatabase, openDatabase } from '../../src/db/database.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { MIGRATIONS, migrateToLatest, prepareSchema, SchemaMissingError } from '../../src/db/migrate.js';
import { SCHEMA_VERSION } from '../../src/db/schema.js';
import { DEMO_USERNAME, loadDemoData } from '../../src/movr/demo-data.js';
import { MovR } from '../../src/movr/movr.js';
import { CITIES } from '../../src/regions.js';
import { LOADER_ARGS, repoModule } from '../support/build.js';
import { freePort, tempDir } from '../support/cluster.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture({ reset: false });

describe('detectKind and openDatabase', () => {
  test('when the server reports a CockroachDB version, then the kind is cockroachdb', () => {
    for (const version of [
      'CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, go1.19.10)',
      'CockroachDB CCL v24.2.4 (aarch64-unknown-linux-gnu, built 2024/10/11 17:15:02, go1.22.5 X:nocoverageredesign)',
      'CockroachDB OSS v21.2.17 (x86_64-apple-darwin19, built 2022/10/24 17:08:50, go1.16.6)',
    ]) {
      assert.equal(detectKind(version), 'cockroachdb', version);
    }
  });

  test('when the server reports a PostgreSQL version, then the kind is postgres', () => {
    for (const version of [
      'PostgreSQL 18.4 on x86_64-pc-linux-gnu, compiled by gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-22), 64-bit',
      'PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) 12.2.0, 64-bit',
      'PostgreSQL 18.6 (PGlite 0.5.14) on wasm32-unknown-emscripten, compiled by emcc, 32-bit',
    ]) {
      assert.equal(detectKind(version), 'postgres', version);
    }
  });

  test('when openDatabase asks the embedded server, then it detects postgres', () => {
    assert.match(t.db.version, /^PostgreSQL 18\./);
    assert.equal(t.db.kind, 'postgres');
  });

  test('when a page read runs again on a connection, then it runs the statement prepared there, and other SQL runs unnamed', async () => {
    const db = await openDatabase({ connectionString: t.connectionString, poolSize: 1 });
    try {
      const movr = new MovR(db);
      const prepared = async () =>
        (await db.pool.query<{ name: string; statement: string; generic_plans: number; custom_plans: number }>(
          "SELECT name, statement, generic_plans::int, custom_plans::int FROM pg_prepared_statements WHERE name LIKE 'movr\\_%'",
        )).rows;
      assert.deepEqual(await prepared(), [], 'none before the first read');
      for (let i = 0; i < 8; i++) await movr.getVehicles('rome', 1);
      const [listing, ...others] = await prepared();
      assert.deepEqual(others, []);
      assert.match(listing!.statement, /^select .* from "vehicles"/);
      // Parsed once; planned per run or reused, as PostgreSQL's plan cache decides (a LIMIT's value matters here).
      assert.equal(listing!.custom_plans + listing!.generic_plans, 8);
      await sql`SELECT ${1}::int AS one`.execute(db.kysely);
      assert.equal((await prepared()).length, 1, 'a query not made with prepare() stays unnamed');
    } finally {
      await db.close();
    }
  });

  test('when the password is wrong, then openDatabase rejects', async () => {
    const url = new URL(t.connectionString);
    url.password = 'wrong';
    await assert.rejects(openDatabase({ connectionString: url.toString() }), (error: unknown) => {
      assert.equal((error as pg.DatabaseError).code, '28P01');
      return true;
    });
  });
});

describe('migrations', () => {
  const ALL_MIGRATIONS = Object.keys(MIGRATIONS);
  const migrationRows = async (db: MovrDatabase) =>
    (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db.kysely)).rows.map((r) => r.name);

  test('when migrations run twice, then the second run applies nothing', async () => {
    const db = await t.open({ connectionString: await t.createDatabase() });
    assert.deepEqual(await migrateToLatest(db.kysely), ALL_MIGRATIONS);
    assert.deepEqual(await migrateToLatest(db.kysely), []);
    assert.deepEqual(await migrationRows(db), ALL_MIGRATIONS);
    const { rows } = await sql<{ version: number }>`SELECT version FROM schema_info ORDER BY version`.execute(db.kysely);
    assert.deepEqual(rows, ALL_MIGRATIONS.map((_, i) => ({ version: i + 1 })));
    await db.close();
  });

  test('when two instances migrate a fresh database at the same moment, then both succeed and the migration runs once', async () => {
    for (let round = 0; round < 3; round++) {
      const connectionString = await t.createDatabase();
      const [a, b] = await Promise.all([t.open({ connectionString }), t.open({ connectionString })]);
      const results = await Promise.all([migrateToLatest(a!.kysely), migrateToLatest(b!.kysely)]);
      assert.deepEqual(results.flat(), ALL_MIGRATIONS, `round ${round}`);
      assert.deepEqual(await migrationRows(a!), ALL_MIGRATIONS);
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  test("when kind is 'cockroachdb' and the schema is missing, then prepareSchema names dbinit.sql and creates nothing", async () => {
    const connectionString = await t.createDatabase();
    const db = await t.open({ connectionString, kind: 'cockroachdb' });
    await assert.rejects(prepareSchema(db), (error: unknown) => {
      assert.ok(error instanceof SchemaMissingError, String(error));
      assert.match(error.message, /dbinit\.sql/);
      return true;
    });
    const { rows } = await sql<{ tables: number }>`
      SELECT count(*)::int AS tables FROM information_schema.tables WHERE table_schema = 'public'`.execute(db.kysely);
    assert.deepEqual(rows, [{ tables: 0 }]);
    await db.close();
  });

  test("when kind is 'cockroachdb' and the schema is there, then prepareSchema passes, and an old version is refused", async () => {
    const db = await t.open({ kind: 'cockroachdb' });
    await prepareSchema(db);
    await sql`DELETE FROM schema_info WHERE version = ${SCHEMA_VERSION}`.execute(db.kysely);
    try {
      const newest = `upgrade-${String(SCHEMA_VERSION).padStart(3, '0')}.sql`;
      await assert.rejects(prepareSchema(db), (error: unknown) => error instanceof SchemaMissingError && error.message.includes(`version ${SCHEMA_VERSION - 1}`) && error.message.includes(newest));
    } finally {
      await sql`INSERT INTO schema_info (version) VALUES (${SCHEMA_VERSION})`.execute(db.kysely);
    }
  });
});

describe('demo data', () => {
  test('when loaded into an empty database, then every city has users, vehicles and past rides, and the demo login works; a second load adds nothing', async () => {
    await t.reset();
    const db = t.db;
    const login = await loadDemoData(db);
    assert.ok(login);
    assert.equal(login.username, DEMO_USERNAME);

    const perCity = await sql<{ city: string; users: number; vehicles: number; rides: number }>`
      SELECT c.city,
        (SELECT count(*) FROM users u WHERE u.city = c.city)::int AS users,
        (SELECT count(*) FROM vehicles v WHERE v.city = c.city)::int AS vehicles,
        (SELECT count(*) FROM rides r WHERE r.city = c.city)::int AS rides
      FROM unnest(${[...CITIES]}::text[]) AS c(city)`.execute(db.kysely);
    assert.equal(perCity.rows.length, 9);
    for (const row of perCity.rows) {
      assert.ok(row.users > 0 && row.vehicles > 0 && row.rides > 0, JSON.stringify(row));
    }

    const movr = t.createMovr();
    const demo = await movr.authenticate(login.username, login.password);
    assert.equal(demo?.username, DEMO_USERNAME);
    assert.equal(await movr.authenticate(login.username, 'not the password'), undefined);

    const { rows: [facts] } = await sql<{ with_password: number; active_rides: number; bad_lengths: number; bad_owner_flags: number; bad_usernames: number; vehicles_away: number }>`
      SELECT
        (SELECT count(*) FROM users WHERE password_hash IS NOT NULL)::int AS with_password,
        (SELECT count(*) FROM rides WHERE end_time IS NULL)::int AS active_rides,
        (SELECT count(*) FROM rides WHERE length IS DISTINCT FROM end_time - start_time OR end_time < start_time)::int AS bad_lengths,
        (SELECT count(*) FROM users u WHERE u.is_owner <> EXISTS (SELECT 1 FROM vehicles v WHERE v.city = u.city AND v.owner_id = u.id))::int AS bad_owner_flags,
        (SELECT count(*) FROM users WHERE username !~ '^[A-Za-z0-9._-]{3,32}$')::int AS bad_usernames,
        (SELECT count(*) FROM vehicles WHERE status <> 'available')::int AS vehicles_away`.execute(db.kysely);
    assert.deepEqual(facts, { with_password: 1, active_rides: 0, bad_lengths: 0, bad_owner_flags: 0, bad_usernames: 0, vehicles_away: 0 });

    const counts = async () =>
      (await sql<{ n: string }>`SELECT concat_ws('/', (SELECT count(*) FROM users), (SELECT count(*) FROM vehicles), (SELECT count(*) FROM rides)) AS n`.execute(db.kysely)).rows[0]?.n;
    const before = await counts();
    assert.equal(await loadDemoData(db), undefined);
    assert.equal(await counts(), before);
  });
});

describe('embedded PostgreSQL', () => {
  const base = tempDir('movr-embedded-test-');
  // Not created here: startEmbeddedPostgres creates it, as it does for a fresh MOVR_DATA_DIR.
  const dataDir = path.join(base, 'data');
  /** Processes a failed test could leave behind, with the signal that ends each at once. */
  const strays: [number, NodeJS.Signals][] = [];

  after(() => {
    for (const [pid, signal] of strays) if (alive(pid)) process.kill(pid, signal);
    rmSync(base, { recursive: true, force: true });
  });

  const postmasterPid = (server: Pick<EmbeddedPostgres, 'clusterDir'>) =>
    Number(readFileSync(path.join(server.clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

  async function query<T>(connectionString: string, text: string): Promise<T[]> {
    const client = new pg.Client({ connectionString });
    await client.connect();
    try {
      return (await client.query(text)).rows as T[];
    } finally {
      await client.end();
    }
  }

  test('when started, then it serves SERIALIZABLE by default; when stopped, then the server is gone', async () => {
    const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
    const pid = postmasterPid(server);
    try {
      assert.ok(server.clusterDir.startsWith(dataDir), `cluster kept in ${server.clusterDir}`);
      assert.deepEqual(await query(server.connectionString, 'SHOW default_transaction_isolation'), [{ default_transaction_isolation: 'serializable' }]);
      await query(server.connectionString, 'CREATE TABLE survives_restarts (id int)');
    } finally {
      await server.stop();
    }
    assert.equal(alive(pid), false);
    assert.equal(existsSync(path.join(server.clusterDir, 'postmaster.pid')), false);
    await assert.rejects(query(server.connectionString, 'SELECT 1'));
  });

  test('when the node process that started it is SIGKILLed, then the next start on that data directory stops the orphan and works', async () => {
    const script = path.join(base, 'start-embedded.mjs');
    const moduleUrl = pathToFileURL(repoModule('src/db/embedded-postgres')).href;
    writeFileSync(
      script,
      `import { readFileSync } from 'node:fs';
import { startEmbeddedPostgres } from ${JSON.stringify(moduleUrl)};
const server = await startEmbeddedPostgres({ dataDir: process.argv[2], port: Number(process.argv[3]) });
const postmaster = Number(readFileSync(server.clusterDir + '/postmaster.pid', 'utf8').split('\\n')[0]);
process.stdout.write(JSON.stringify({ connectionString: server.connectionString, clusterDir: server.clusterDir, postmaster }) + '\\n');
setInterval(() => {}, 60_000);
`,
    );
    const child = spawn(process.execPath, [...LOADER_ARGS, script, dataDir, String(await freePort())], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    strays.push([child.pid!, 'SIGKILL']);
    const started = JSON.parse(await firstLine(child, 30_000)) as { connectionString: string; clusterDir: string; postmaster: number };
    const { connectionString, postmaster: orphan } = started;
    strays.push([orphan, 'SIGQUIT']); // immediate shutdown of a postmaster and its children
    assert.equal(started.clusterDir, path.join(dataDir, 'postgres'));

    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.equal(alive(orphan), true, 'the server outlives a SIGKILLed parent');
    assert.deepEqual(await query(connectionString, 'SELECT 1 AS one'), [{ one: 1 }]);

    const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
    try {
      assert.equal(alive(orphan), false, 'the orphan was stopped');
      assert.notEqual(postmasterPid(server), orphan);
      assert.deepEqual(await query(server.connectionString, "SELECT to_regclass('survives_restarts') IS NOT NULL AS kept"), [{ kept: true }]);
    } finally {
      await server.stop();
    }
  });

  test('when postmaster.pid names a dead process or an unrelated live one, then the file is cleared, the server starts and the other process is left alone', async () => {
    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
    const dead = spawnSync('true').pid!;
    const unrelated = spawn('sleep', ['60'], { stdio: 'ignore' });
    strays.push([unrelated.pid!, 'SIGKILL']);
    try {
      for (const pid of [dead, unrelated.pid!]) {
        writeFileSync(pidFile, `${pid}\n${path.join(dataDir, 'postgres')}\n`);
        const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
        try {
          assert.notEqual(postmasterPid(server), pid);
          assert.deepEqual(await query(server.connectionString, 'SELECT 1 AS one'), [{ one: 1 }]);
        } finally {
          await server.stop();
        }
      }
      assert.equal(alive(unrelated.pid!), true);
    } finally {
      unrelated.kill('SIGKILL');
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function firstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    for await (const line of lines) return line;
    throw new Error('the child exited before printing its line');
  } finally {
    clearTimeout(timer);
  }
}
