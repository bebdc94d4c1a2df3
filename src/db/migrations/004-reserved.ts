import { type Kysely, sql } from 'kysely';
import type { SchemaChange } from '../schema.js';

/** This version in words: it changes no table, so db/cockroach/upgrade-004*.sql only record it. */
export const change: SchemaChange = {
  summary: 'no table changes: it keeps schema versions one per migration',
  data: [],
};

/** Schema version 4, frozen: it only records itself, so versions stay one per migration. */
export async function up(db: Kysely<any>): Promise<void> {
  await sql`INSERT INTO schema_info (version) VALUES (4)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM schema_info WHERE version = 4`.execute(db);
}
