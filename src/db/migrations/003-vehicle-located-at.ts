import { type Kysely, sql } from 'kysely';
import type { SchemaChange } from '../schema.js';

/** This version in words and its data step, which db/cockroach/upgrade-003*.sql run too (`npm run ddl` copies them). */
export const change: SchemaChange = {
  summary: 'vehicles record when they arrived where they stand (located_at), so riders see how long one has been waiting',
  data: [
    {
      why: 'Vehicles that existed before take the end of their last ride, else the day they were added; running it again sets the same values.',
      sql: 'UPDATE vehicles SET located_at = COALESCE((SELECT max(r.end_time) FROM rides r WHERE r.city = vehicles.city AND r.vehicle_id = vehicles.id), date_added)',
    },
  ],
};

/**
 * When a vehicle arrived where it stands (frozen: later changes are new migrations): set when it is added and
 * when a ride ends there, so a rider can see how long it has been waiting. Existing vehicles take the end of
 * their last ride, else the day they were added.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const statements = [
    sql`ALTER TABLE vehicles ADD COLUMN located_at timestamptz NOT NULL DEFAULT now()`,
    ...change.data.map((step) => sql.raw(step.sql)),
    sql`INSERT INTO schema_info (version) VALUES (3)`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM schema_info WHERE version = 3`.execute(db);
  await sql`ALTER TABLE vehicles DROP COLUMN IF EXISTS located_at`.execute(db);
}
