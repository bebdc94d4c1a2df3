import { type Kysely, sql } from 'kysely';
import type { SchemaChange } from '../schema.js';

/** This version in words and its data steps, which db/cockroach/upgrade-002*.sql run too (`npm run ddl` copies them). */
export const change: SchemaChange = {
  summary:
    'sessions name their user (user_city, user_id, indexed) and can be revoked (a tombstone until they expire); a ' +
    'rate_limits table holds the log-in and sign-up counters every app instance shares',
  data: [
    {
      why: "Sessions name their user, copied from passport's entry in sess; only rows not moved yet, so that running it again leaves the sessions written since alone.",
      sql: "UPDATE sessions SET user_city = sess::jsonb -> 'passport' -> 'user' ->> 'city', user_id = (sess::jsonb -> 'passport' -> 'user' ->> 'id')::uuid WHERE user_id IS NULL",
    },
    { why: 'Sessions of nobody (the old anonymous CSRF sessions) are no longer kept.', sql: 'DELETE FROM sessions WHERE user_id IS NULL' },
  ],
};

/**
 * Shared state for a fleet of app instances (frozen: later changes are new migrations).
 * - sessions name their user, indexed, so ending all of a user's sessions is an index lookup; a revoked
 *   session stays as a tombstone until it expires, so a save already in flight cannot bring it back;
 * - rate_limits holds the log-in and sign-up counters every instance shares.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const statements = [
    sql`ALTER TABLE sessions ADD COLUMN user_city text, ADD COLUMN user_id uuid, ADD COLUMN revoked boolean NOT NULL DEFAULT false`,
    ...change.data.map((step) => sql.raw(step.sql)),
    sql`CREATE INDEX sessions_user_idx ON sessions (user_city, user_id)`,
    sql`CREATE TABLE rate_limits (
      key text NOT NULL PRIMARY KEY,
      hits int NOT NULL,
      reset_at timestamptz NOT NULL
    )`,
    sql`CREATE INDEX rate_limits_reset_at_idx ON rate_limits (reset_at)`,
    sql`INSERT INTO schema_info (version) VALUES (2)`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM schema_info WHERE version = 2`.execute(db);
  await sql`DROP TABLE IF EXISTS rate_limits`.execute(db);
  await sql`DROP INDEX IF EXISTS sessions_user_idx`.execute(db);
  await sql`ALTER TABLE sessions DROP COLUMN IF EXISTS user_city, DROP COLUMN IF EXISTS user_id, DROP COLUMN IF EXISTS revoked`.execute(db);
}
