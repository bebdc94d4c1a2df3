import { type Kysely, sql } from 'kysely';
import type { SchemaChange } from '../schema.js';

/** This version in words and its data step, which db/cockroach/upgrade-004*.sql run too (`npm run ddl` copies them). */
export const change: SchemaChange = {
  summary:
    "a rider's active ride is held by their users row (active_ride_city, active_ride_id), claimed by a conditional " +
    'update, instead of partial unique indexes on end_time; the vehicles listing index loses its status predicate. ' +
    'Starting and ending a ride then change no indexed column, so PostgreSQL updates the rows in place (HOT) and ' +
    "riders on their own vehicles no longer abort each other's SERIALIZABLE transactions",
  stopPreviousVersion:
    'instances of version 3 neither claim nor clear users.active_ride_id and rely on the dropped unique indexes, ' +
    'so running them beside version 4 could give a rider two rides',
  data: [
    {
      why:
        'Riders on a ride now take it into their users row (UPDATE ... FROM: https://www.cockroachlabs.com/docs/v24.3/update#update-using-values-from-a-different-table); ' +
        'only rows not set yet, so that running it again changes nothing.',
      sql:
        'UPDATE users SET active_ride_city = r.city, active_ride_id = r.id FROM rides r ' +
        'WHERE r.rider_city = users.city AND r.rider_id = users.id AND r.end_time IS NULL AND users.active_ride_id IS NULL',
    },
  ],
};

/**
 * The one-active-ride rules without indexes on what a ride changes (frozen: later changes are new migrations).
 * Every index entry a non-HOT update adds lands in a btree leaf page that other riders' SERIALIZABLE reads lock as
 * a whole, so the partial unique indexes on `end_time IS NULL` and the listing's `status <> 'removed'` predicate made
 * riders who share no row abort each other. Now:
 * - a rider's active ride is their users row's active_ride_city/id, set by `UPDATE ... WHERE active_ride_id IS NULL`
 *   (the claim: at most one, as there is one column pair), a foreign key to the ride, cleared when it ends;
 * - a vehicle is claimed by its status going from available to in_use, as before;
 * - the listing index keeps every vehicle, newest first, and the page skips removed ones as it reads;
 * - rides pages are filled to 70% only, so that ending a ride finds room for a HOT update.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const statements = [
    sql`ALTER TABLE users ADD COLUMN active_ride_city text, ADD COLUMN active_ride_id uuid`,
    ...change.data.map((step) => sql.raw(step.sql)),
    sql`ALTER TABLE users ADD CONSTRAINT check_active_ride CHECK ((active_ride_city IS NULL) = (active_ride_id IS NULL))`,
    // Not indexed: rides are never deleted nor their keys changed, and an index on the pair would make the claim non-HOT.
    sql`ALTER TABLE users ADD CONSTRAINT fk_active_ride_ref_rides FOREIGN KEY (active_ride_city, active_ride_id) REFERENCES rides (city, id)`,
    // PostgreSQL only (CockroachDB has no heap pages): a ride is updated once, soon after its insert filled the page,
    // so pages keep room for that update to stay HOT on the same page.
    sql`ALTER TABLE rides SET (fillfactor = 70)`,
    sql`CREATE INDEX vehicles_city_newest_idx ON vehicles (city, date_added DESC, id DESC)`,
    sql`DROP INDEX vehicles_city_listing_idx`,
    sql`DROP INDEX rides_one_active_per_vehicle_idx`,
    sql`DROP INDEX rides_one_active_per_rider_idx`,
    sql`INSERT INTO schema_info (version) VALUES (4)`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DELETE FROM schema_info WHERE version = 4`.execute(db);
  await sql`CREATE UNIQUE INDEX IF NOT EXISTS rides_one_active_per_rider_idx ON rides (rider_city, rider_id) WHERE end_time IS NULL`.execute(db);
  await sql`CREATE UNIQUE INDEX IF NOT EXISTS rides_one_active_per_vehicle_idx ON rides (city, vehicle_id) WHERE end_time IS NULL`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS vehicles_city_listing_idx ON vehicles (city, date_added DESC, id DESC) WHERE status <> 'removed'`.execute(db);
  await sql`DROP INDEX IF EXISTS vehicles_city_newest_idx`.execute(db);
  await sql`ALTER TABLE rides RESET (fillfactor)`.execute(db);
  await sql`ALTER TABLE users DROP CONSTRAINT IF EXISTS fk_active_ride_ref_rides, DROP CONSTRAINT IF EXISTS check_active_ride`.execute(db);
  await sql`ALTER TABLE users DROP COLUMN IF EXISTS active_ride_city, DROP COLUMN IF EXISTS active_ride_id`.execute(db);
}
