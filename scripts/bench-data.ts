import { createHash } from 'node:crypto';
import { hashPassword } from '../src/movr/passwords.js';
import { VEHICLE_TYPES } from '../src/vehicles.js';
import { CITIES, type City } from '../src/regions.js';

/**
 * A realistic MovR data set written with a few INSERT … SELECT generate_series statements, for the bench and
 * the query-plan test. Deterministic: ids are md5-derived v4 UUIDs, so the caller knows them without a query.
 *
 *   users [0, HEAVY)                 riders with exactly RIDES_PER_HEAVY ended rides each (the rides page)
 *   users [HEAVY, HEAVY + CYCLISTS)  riders with no rides, each with vehicle i of their city kept for them
 *   users [RESERVED_USERS, users)    everyone else: the random rides' riders, some of them riding now
 *
 * User g and vehicle v live in CITIES[g % 9] and CITIES[v % 9]; a vehicle's owner, an active ride's rider and
 * most other riders share the vehicle's city (1 ride in 10 is by a visitor from the next city). Rides respect
 * the partial unique indexes: at most one active ride per vehicle and per rider, and every other ride ended.
 */

export interface BenchSizes {
  users: number;
  vehicles: number;
  rides: number;
}

export const FULL_SIZES: BenchSizes = { users: 10_000, vehicles: 20_000, rides: 100_000 };
export const QUICK_SIZES: BenchSizes = { users: 2_000, vehicles: 4_000, rides: 20_000 };

export const HEAVY_RIDERS = 54;
/** As the issue measures the rides page: a rider with 20 rides. */
export const RIDES_PER_HEAVY = 20;
export const CYCLISTS = 54;
const RESERVED_USERS = HEAVY_RIDERS + CYCLISTS; // a multiple of 9, so user RESERVED_USERS + 9k + m lives in CITIES[m]
const RESERVED_VEHICLES = CYCLISTS; // vehicle i is cyclist i's; also a multiple of 9
export const BENCH_PASSWORD = 'bench-password-1';

export interface BenchRider {
  id: string;
  city: City;
  username: string;
}

export interface BenchCyclist extends BenchRider {
  vehicleId: string;
}

export interface BenchData {
  sizes: BenchSizes;
  /** Riders with exactly RIDES_PER_HEAVY ended rides each, spread over the cities. */
  heavyRiders: BenchRider[];
  /** Riders with no ride and a vehicle of their own city nobody else rides. */
  cyclists: BenchCyclist[];
  activeRides: number;
  seconds: number;
}

/** What the loader needs of a pg Client or Pool. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/** The v4-shaped UUID the SQL below derives from the same key (md5, version and variant nibbles set). */
export function benchUuid(key: string): string {
  const hex = createHash('md5').update(key).digest('hex').split('');
  hex[12] = '4';
  hex[16] = '8';
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const uuidSql = (prefix: string, expr: string) => `overlay(overlay(md5('${prefix}' || (${expr})) placing '4' from 13) placing '8' from 17)::uuid`;
const arraySql = (items: readonly string[]) => `ARRAY[${items.map((item) => `'${item.replaceAll("'", "''")}'`).join(', ')}]::text[]`;
const CITY_ARRAY = arraySql(CITIES);
const pickSql = (items: readonly string[], expr: string) => `(${arraySql(items)})[1 + ((${expr}) % ${items.length})]`;
const cityOf = (expr: string) => `(${CITY_ARRAY})[1 + ((${expr}) % 9)]`;

const FIRST_NAMES = ['Ada', 'Bruno', 'Chloe', 'Dmitri', 'Emeka', 'Fatima', 'Giulia', 'Hiro', 'Ines', 'Jonas', 'Keiko', 'Luca', 'Maya', 'Noor'];
const LAST_NAMES = ['Alvarez', 'Bakker', 'Chen', 'Dubois', 'Eriksen', 'Fontaine', 'Garcia', 'Haddad', 'Ivanova', 'Jansen', 'Kowalski', 'Rossi', 'Smith'];
const COLORS = ['red', 'blue', 'green', 'black', 'white', 'yellow', 'orange', 'silver'];
const BRANDS = ['Razor', 'Segway', 'Xiaomi', 'Trek', 'Brompton', 'Boosted', 'VanMoof', 'Specialized', ''];
const PLACES = ['Central Station', 'City Hall', 'Market Square', 'Riverside Park', 'University Campus', 'Harbour Front', 'Old Town', 'Museum District', '12 Canal Street', 'Airport Terminal 2'];

export const benchUsername = (g: number) => `rider${String(g).padStart(6, '0')}`;

/** Loads the data set into an empty, migrated database (one transaction), then ANALYZEs. */
export async function loadBenchData(db: Queryable, sizes: BenchSizes): Promise<BenchData> {
  const { users: U, vehicles: V, rides: R } = sizes;
  const activeRides = Math.min(300, Math.floor((U - RESERVED_USERS - 9) / 9), Math.floor((V - RESERVED_VEHICLES) / 23));
  const randomRides = R - HEAVY_RIDERS * RIDES_PER_HEAVY - activeRides;
  if (U < RESERVED_USERS + 9 * 10 || V < RESERVED_VEHICLES + 9 * 10 || randomRides < 0 || activeRides < 1) {
    throw new Error(`bench data set too small: ${JSON.stringify(sizes)}`);
  }
  const started = performance.now();
  // Cost 4 keeps logging in the bench's riders cheap; the app's own cost (12) applies to hashes it makes.
  const passwordHash = await hashPassword(BENCH_PASSWORD, 4);
  const userGroups = Math.floor(U / 9); // owner 9k + m, k < userGroups, is in CITIES[m] and below U
  const otherGroups = Math.floor((U - RESERVED_USERS) / 9);
  const vehicleSpan = V - RESERVED_VEHICLES;
  const vehicleGroups = Math.floor(vehicleSpan / 9);

  const statements: [string, unknown[]][] = [
    [
      `INSERT INTO users (city, id, first_name, last_name, email, username, password_hash, created_at)
       SELECT ${cityOf('g')}, ${uuidSql('u', 'g::text')}, ${pickSql(FIRST_NAMES, 'g * 7')}, ${pickSql(LAST_NAMES, 'g * 5 + g / 13')},
              'rider' || g || '@example.com', 'rider' || lpad(g::text, 6, '0'), $1,
              now() - make_interval(secs => (g * 7919) % 63072000)
       FROM generate_series(0, $2::int - 1) AS g`,
      [passwordHash, U],
    ],
    [
      // About 1 vehicle in 23 is removed; never one kept for a cyclist or an active ride (v % 23 = 8 there).
      `INSERT INTO vehicles (city, id, type, owner_id, date_added, status, last_location, color, brand)
       SELECT ${cityOf('v')}, ${uuidSql('v', 'v::text')}, ${pickSql(VEHICLE_TYPES, 'v')},
              ${uuidSql('u', `(9 * ((v / 9 * 31 + 7) % ${userGroups}) + v % 9)::text`)},
              now() - make_interval(secs => (v * 7919) % 31536000 + v % 7),
              CASE WHEN v >= ${RESERVED_VEHICLES} AND v % 23 = 22 THEN 'removed' ELSE 'available' END,
              ${pickSql(PLACES, 'v * 3')}, ${pickSql(COLORS, 'v / 3')}, ${pickSql(BRANDS, 'v / 7')}
       FROM generate_series(0, $1::int - 1) AS v`,
      [V],
    ],
    [`UPDATE users SET is_owner = true WHERE (city, id) IN (SELECT city, owner_id FROM vehicles)`, []],
    [
      // The heavy riders' rides, on vehicles of their own city.
      `INSERT INTO rides (city, vehicle_id, rider_id, rider_city, start_location, end_location, start_time, end_time, length)
       SELECT ${cityOf('h')}, ${uuidSql('v', `(${RESERVED_VEHICLES} + 9 * (((h * ${RIDES_PER_HEAVY} + k) * 37) % ${vehicleGroups}) + h % 9)::text`)},
              ${uuidSql('u', 'h::text')}, ${cityOf('h')}, ${pickSql(PLACES, 'h + k')}, ${pickSql(PLACES, 'h + k * 3 + 1')},
              t.start, t.start + t.len, t.len
       FROM generate_series(0, ${HEAVY_RIDERS - 1}) AS h, generate_series(0, ${RIDES_PER_HEAVY - 1}) AS k,
            LATERAL (SELECT now() - make_interval(days => k * 3, secs => 3600 + h * 97) AS start,
                            make_interval(mins => 5 + (h * 7 + k * 11) % 40, secs => k % 60) AS len) AS t`,
      [],
    ],
    [
      // Everyone else's past rides; a tenth by a rider from the next city.
      `INSERT INTO rides (city, vehicle_id, rider_id, rider_city, start_location, end_location, start_time, end_time, length)
       SELECT ${cityOf('x.v')}, ${uuidSql('v', 'x.v::text')}, ${uuidSql('u', 'x.u::text')}, ${cityOf('x.u')},
              ${pickSql(PLACES, 'r')}, ${pickSql(PLACES, 'r * 7 + 3')}, t.start, t.start + t.len, t.len
       FROM generate_series(0, $1::int - 1) AS r,
            LATERAL (SELECT ${RESERVED_VEHICLES} + (r * 7919) % ${vehicleSpan} AS v) AS w,
            LATERAL (SELECT w.v, ${RESERVED_USERS} + 9 * ((r::bigint * 104729) % ${otherGroups})::int + (w.v + CASE WHEN r % 10 = 0 THEN 1 ELSE 0 END) % 9 AS u) AS x,
            LATERAL (SELECT now() - make_interval(secs => 3600 + (r * 7919) % 31536000) AS start,
                            make_interval(mins => 5 + r % 40, secs => r % 60) AS len) AS t`,
      [randomRides],
    ],
    [
      // Rides going on now: distinct vehicles (v = RESERVED_VEHICLES + 23k) and distinct riders of their city.
      `INSERT INTO rides (city, vehicle_id, rider_id, rider_city, start_location, start_time)
       SELECT ${cityOf('x.v')}, ${uuidSql('v', 'x.v::text')}, ${uuidSql('u', `(${RESERVED_USERS} + 9 * k + x.v % 9)::text`)},
              ${cityOf(`${RESERVED_USERS} + 9 * k + x.v % 9`)}, ${pickSql(PLACES, 'k')}, now() - make_interval(mins => k % 30)
       FROM generate_series(0, $1::int - 1) AS k, LATERAL (SELECT ${RESERVED_VEHICLES} + 23 * k AS v) AS x`,
      [activeRides],
    ],
    [`UPDATE vehicles SET status = 'in_use' WHERE (city, id) IN (SELECT city, vehicle_id FROM rides WHERE end_time IS NULL)`, []],
    // Each rider's users row names their ride in progress, as startRide sets it.
    [
      `UPDATE users SET active_ride_city = r.city, active_ride_id = r.id FROM rides r
       WHERE r.rider_city = users.city AND r.rider_id = users.id AND r.end_time IS NULL`,
      [],
    ],
  ];

  await db.query('BEGIN');
  try {
    for (const [text, values] of statements) await db.query(text, values);
    await db.query('COMMIT');
  } catch (error) {
    await db.query('ROLLBACK').catch(() => {});
    throw error;
  }
  await db.query('ANALYZE users, vehicles, rides');

  const rider = (g: number): BenchRider => ({ id: benchUuid(`u${g}`), city: CITIES[g % 9]!, username: benchUsername(g) });
  return {
    sizes,
    heavyRiders: Array.from({ length: HEAVY_RIDERS }, (_, h) => rider(h)),
    cyclists: Array.from({ length: CYCLISTS }, (_, i) => ({ ...rider(HEAVY_RIDERS + i), vehicleId: benchUuid(`v${i}`) })),
    activeRides,
    seconds: (performance.now() - started) / 1000,
  };
}
