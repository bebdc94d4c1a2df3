import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import type { MovrDatabase } from '../../src/db/database.js';
import { prepareSchema, SchemaMissingError, schemaRefusal } from '../../src/db/migrate.js';
import { SCHEMA_VERSION } from '../../src/db/schema.js';
import { useFixture } from '../support/fixture.js';
import { ROOT } from '../support/build.js';


/**
 * On CockroachDB the app only checks the schema. The check runs here on PostgreSQL through a handle of kind
 * 'cockroachdb', against hand-made stand-ins for what each file leaves behind: schema_info, and the users table
 * with (dbinit-multiregion.sql) or without (dbinit.sql) its computed region column.
 */
describe('the CockroachDB schema check', () => {
  const t = useFixture({ reset: false });

  async function databaseWith(version: number | undefined, regionColumn: boolean): Promise<MovrDatabase> {
    const db = await t.open({ connectionString: await t.createDatabase(), kind: 'cockroachdb' });
    await sql`CREATE TABLE users (city text, id uuid${sql.raw(regionColumn ? ', region text' : '')})`.execute(db.kysely);
    if (version !== undefined) {
      await sql`CREATE TABLE schema_info (version int PRIMARY KEY)`.execute(db.kysely);
      for (let v = Math.min(version, 1); v <= version; v++) await sql`INSERT INTO schema_info VALUES (${v})`.execute(db.kysely);
    }
    return db;
  }

  async function refusal(db: MovrDatabase): Promise<string> {
    const error = await prepareSchema(db).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SchemaMissingError, String(error));
    return error.message;
  }

  it('when a database loaded from dbinit.sql is at version 1, then the refusal names every upgrade file in order and how to load them', async () => {
    const message = await refusal(await databaseWith(1, false));
    assert.match(message, new RegExp(`version 1; this app needs version ${SCHEMA_VERSION}`));
    assert.match(message, /layout of dbinit\.sql: load db\/cockroach\/upgrade-002\.sql, then db\/cockroach\/upgrade-003\.sql, then .*\(`cockroach sql --url "\$DB_URI" -f db\/cockroach\/upgrade-002\.sql`, then /);
    assert.doesNotMatch(message, /multiregion\.sql \(/);
  });

  it('when a database loaded from dbinit-multiregion.sql is at version 1, then the refusal names the multi-region upgrade file', async () => {
    const message = await refusal(await databaseWith(1, true));
    assert.match(message, /layout of dbinit-multiregion\.sql: load db\/cockroach\/upgrade-002-multiregion\.sql, then db\/cockroach\/upgrade-003-multiregion\.sql, then /);
  });

  it('when schema_info is missing, then the refusal names both create files; at version 0 no upgrade applies', async () => {
    assert.match(await refusal(await databaseWith(undefined, false)), /not loaded.*Load dbinit\.sql .*or dbinit-multiregion\.sql/);
    assert.match(await refusal(await databaseWith(0, false)), /version 0;.*No upgrade file starts from that version: run `DROP DATABASE movr CASCADE`/);
  });

  it('when schema_info holds the current version, then the check passes', async () => {
    await prepareSchema(await databaseWith(SCHEMA_VERSION, true));
  });

  it('when the refusal names files, then every one of them exists in the repository, in order', () => {
    for (const layout of ['partitioned', 'multiRegion'] as const) {
      for (let found = 1; found < SCHEMA_VERSION; found++) {
        const named = [...schemaRefusal(found, layout).matchAll(/-f (\S+)`/g)].map((m) => m[1]!);
        assert.equal(named.length, SCHEMA_VERSION - found, `${layout} from ${found}`);
        assert.deepEqual([...named].sort(), named, 'in version order');
        for (const file of named) assert.ok(existsSync(join(ROOT, file)), `${file} exists`);
      }
    }
  });
});
