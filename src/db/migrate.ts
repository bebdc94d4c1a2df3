import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import * as initial from './migrations/001-initial.js';
import * as fleet from './migrations/002-fleet.js';
import * as locatedAt from './migrations/003-vehicle-located-at.js';
import * as activeRide from './migrations/004-active-ride.js';
import * as api from './migrations/005-api.js';
import { type Mode, MULTI_REGION_DDL_FILE, PARTITIONED_DDL_FILE, REGION_COLUMN, upgradePath } from './cockroach-files.js';
import { type Database, SCHEMA_VERSION, type SchemaChange } from './schema.js';
import type { MovrDatabase } from './database.js';
import { SQLSTATE, sqlState } from './errors.js';

/** Every migration in order, named by the schema version it makes; each is frozen once released, and a schema change is a new one. */
export const MIGRATIONS = {
  '001-initial': initial,
  '002-fleet': fleet,
  '003-vehicle-located-at': locatedAt,
  '004-active-ride': activeRide,
  '005-api': api,
} satisfies Record<string, Migration & { change?: SchemaChange }>;

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

/** What the app says when it refuses an old or missing CockroachDB schema: the exact files to load, in order. */
export function schemaRefusal(found: number | undefined, layout: Mode | undefined): string {
  const load = (file: string) => `\`cockroach sql --url "$DB_URI" -f ${file}\``;
  if (found === undefined) {
    return `The movr schema is not loaded in this CockroachDB database. Load ${PARTITIONED_DDL_FILE} (geo-partitioned) or ${MULTI_REGION_DDL_FILE} (multi-region SQL), e.g. ${load(PARTITIONED_DDL_FILE)}, then start again.`;
  }
  const need = `The movr schema in this CockroachDB database is version ${found}; this app needs version ${SCHEMA_VERSION}.`;
  const startOver = `run \`DROP DATABASE movr CASCADE\` and load the current ${PARTITIONED_DDL_FILE} or ${MULTI_REGION_DDL_FILE}, then start again`;
  if (found < 1 || layout === undefined) return `${need} No upgrade file starts from that version: ${startOver} (this loses its data).`;
  const files = upgradePath(layout, found);
  const layoutFile = layout === 'partitioned' ? PARTITIONED_DDL_FILE : MULTI_REGION_DDL_FILE;
  return `${need} It has the layout of ${layoutFile}: load ${files.join(', then ')} (${files.map(load).join(', then ')}), then start again. Or, if its data can go, ${startOver}.`;
}

export class SchemaMissingError extends Error {
  constructor(found: number | undefined, layout?: Mode) {
    super(schemaRefusal(found, layout));
    this.name = 'SchemaMissingError';
  }
}

/** dbinit-multiregion.sql gives the city tables a computed region column; dbinit.sql does not. */
async function loadedLayout(db: Kysely<Database>): Promise<Mode> {
  const { rows } = await sql`
    SELECT 1 FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = 'users' AND column_name = ${REGION_COLUMN}`.execute(db);
  return rows.length > 0 ? 'multiRegion' : 'partitioned';
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
  if (version === undefined || version === null) throw new SchemaMissingError(undefined);
  if (Number(version) < SCHEMA_VERSION) throw new SchemaMissingError(Number(version), await loadedLayout(db));
}

/** Brings the schema to what this app needs: migrations on PostgreSQL, a check on CockroachDB. */
export async function prepareSchema(database: MovrDatabase): Promise<void> {
  if (database.kind === 'cockroachdb') await checkCockroachSchema(database.kysely);
  else await migrateToLatest(database.kysely);
}
