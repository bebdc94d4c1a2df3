import { type Kysely, sql } from 'kysely';

/**
 * PostgreSQL schema version 1, frozen in time: the lists of cities, vehicle types and statuses are written out as
 * they were when it was released, never read from today's modules, so "001" creates the same tables on every
 * database whenever it runs. A change to them is a new migration (test/integration/schema-constraints.test.ts
 * fails until one brings the live constraints in line with src/regions.ts). The CockroachDB files hold the same
 * schema; `npm run ddl` (tools/cockroach-ddl) writes them.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const statements = [
    sql`CREATE TABLE users (
      city text NOT NULL CONSTRAINT check_city CHECK (city IN ('new york', 'boston', 'washington dc', 'san francisco', 'seattle', 'los angeles', 'amsterdam', 'paris', 'rome')),
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      first_name text NOT NULL,
      last_name text NOT NULL,
      email text NOT NULL,
      username text,
      password_hash text,
      is_owner boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (city, id),
      CONSTRAINT users_username_key UNIQUE (username)
    )`,
    sql`CREATE TABLE vehicles (
      city text NOT NULL CONSTRAINT check_city CHECK (city IN ('new york', 'boston', 'washington dc', 'san francisco', 'seattle', 'los angeles', 'amsterdam', 'paris', 'rome')),
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      type text NOT NULL CONSTRAINT check_type CHECK (type IN ('bike', 'scooter', 'skateboard')),
      owner_id uuid NOT NULL,
      date_added timestamptz NOT NULL DEFAULT now(),
      status text NOT NULL DEFAULT 'available' CONSTRAINT check_status CHECK (status IN ('available', 'in_use', 'removed')),
      last_location text NOT NULL,
      color text NOT NULL,
      brand text NOT NULL DEFAULT '',
      PRIMARY KEY (city, id),
      CONSTRAINT fk_city_ref_users FOREIGN KEY (city, owner_id) REFERENCES users (city, id)
    )`,
    // The vehicles page: one city, not removed, newest first.
    sql`CREATE INDEX vehicles_city_listing_idx ON vehicles (city, date_added DESC, id DESC) WHERE status <> 'removed'`,
    // A profile's vehicles, and the foreign key's lookups.
    sql`CREATE INDEX vehicles_owner_idx ON vehicles (city, owner_id)`,
    sql`CREATE TABLE rides (
      city text NOT NULL CONSTRAINT check_city CHECK (city IN ('new york', 'boston', 'washington dc', 'san francisco', 'seattle', 'los angeles', 'amsterdam', 'paris', 'rome')),
      id uuid NOT NULL DEFAULT gen_random_uuid(),
      vehicle_id uuid NOT NULL,
      rider_id uuid NOT NULL,
      rider_city text NOT NULL CONSTRAINT check_rider_city CHECK (rider_city IN ('new york', 'boston', 'washington dc', 'san francisco', 'seattle', 'los angeles', 'amsterdam', 'paris', 'rome')),
      start_location text NOT NULL,
      end_location text,
      start_time timestamptz NOT NULL DEFAULT now(),
      end_time timestamptz,
      length interval,
      PRIMARY KEY (city, id),
      CONSTRAINT fk_vehicle_city_ref_vehicles FOREIGN KEY (city, vehicle_id) REFERENCES vehicles (city, id),
      CONSTRAINT fk_rider_city_ref_users FOREIGN KEY (rider_city, rider_id) REFERENCES users (city, id),
      CONSTRAINT check_ride_end CHECK ((end_time IS NULL) = (length IS NULL) AND (end_time IS NULL) = (end_location IS NULL))
    )`,
    // A rider's history, newest first.
    sql`CREATE INDEX rides_rider_idx ON rides (rider_city, rider_id, start_time DESC)`,
    // The last line of defence against double rides: at most one active ride per vehicle and per rider.
    sql`CREATE UNIQUE INDEX rides_one_active_per_vehicle_idx ON rides (city, vehicle_id) WHERE end_time IS NULL`,
    sql`CREATE UNIQUE INDEX rides_one_active_per_rider_idx ON rides (rider_city, rider_id) WHERE end_time IS NULL`,
    // connect-pg-simple's layout (its table.sql), named by us.
    sql`CREATE TABLE sessions (
      sid varchar NOT NULL PRIMARY KEY,
      sess json NOT NULL,
      expire timestamp(6) NOT NULL
    )`,
    sql`CREATE INDEX sessions_expire_idx ON sessions (expire)`,
    sql`CREATE TABLE schema_info (version int NOT NULL PRIMARY KEY)`,
    sql`INSERT INTO schema_info (version) VALUES (1)`,
  ];
  for (const statement of statements) await statement.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['schema_info', 'sessions', 'rides', 'vehicles', 'users']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(table)}`.execute(db);
  }
}
