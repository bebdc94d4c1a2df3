import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import * as initial from './migrations/001-initial.js';
import * as fleet from './migrations/002-fleet.js';
import { type Database, SCHEMA_VERSION } from './schema.js';
import type { MovrDatabase } from './database.js';
import { SQLSTATE, sqlState } from './errors.js';

/** Every migration in order; each is frozen once released, and a schema change is a new one. */
export const MIGRATIONS: Record<string, Migration> = {
  '001-initial': initial,
  '002-fleet': fleet,
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/**
 * Applies pending migrations on PostgreSQL. Kysely's migrator holds an advisory lock while it migrates,
 * so two instances starting at once apply each migration exactly once.
 */
export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  const { error, results = [] } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) throw error;
  const failed = results.find((r) => r.status === 'Error');
  if (failed) throw new Error(`migration ${failed.migrationName} failed`);
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export class SchemaMissingError extends Error {
  constructor(found: number | undefined) {
    super(
      found === undefined
        ? 'The movr schema is not loaded in this CockroachDB database. Load dbinit.sql (geo-partitioned) or dbinit-multiregion.sql (multi-region SQL), e.g. `cockroach sql --url "$DB_URI" -f dbinit.sql`, then start again.'
        : `The movr schema in this CockroachDB database is version ${found}; this app needs version ${SCHEMA_VERSION}. Apply the schema changes since version ${found}, or, if its data can go, run \`DROP DATABASE movr CASCADE\` and load the current dbinit.sql or dbinit-multiregion.sql, then start again.`,
    );
    this.name = 'SchemaMissingError';
  }
}

/** CockroachDB: the app never changes the schema; it checks that the operator loaded the right one. */
export async function checkCockroachSchema(db: Kysely<Database>): Promise<void> {
  let version: number | undefined;
  try {
    const row = await db.selectFrom('schema_info').select(sql<number>`max(version)`.as('version')).executeTakeFirst();
    version = row?.version ?? undefined;
  } catch (error) {
    if (sqlState(error) !== SQLSTATE.undefinedTable) throw error;
  }
  if (version === undefined || version === null || Number(version) < SCHEMA_VERSION) throw new SchemaMissingError(version ?? undefined);
}

/** Brings the schema to what this app needs: migrations on PostgreSQL, a check on CockroachDB. */
export async function prepareSchema(database: MovrDatabase): Promise<void> {
  if (database.kind === 'cockroachdb') await checkCockroachSchema(database.kysely);
  else await migrateToLatest(database.kysely);
}
