import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { City } from '../regions.js';
import { VEHICLE_STATUSES, VEHICLE_TYPES, type VehicleStatus, type VehicleType } from '../vehicles.js';

/**
 * The one description of MovR's tables: the Kysely types below are derived from it, and `npm run ddl` writes the
 * CockroachDB files from it. A schema change is made here (with `since: N`), in a new frozen migration N under
 * migrations/, and by running `npm run ddl`; test/unit/cockroach-ddl.test.ts fails until all three agree.
 */

/** Bump when the schema changes; CockroachDB DDL files record it in `schema_info` and the app checks it at start. */
export const SCHEMA_VERSION = 5;

/** What a migration after the first changes, in words, and the statements that move data for it, in SQL both databases run. */
export interface SchemaChange {
  readonly summary: string;
  readonly data: readonly { readonly why: string; readonly sql: string }[];
  /** Set when instances of the previous version must be stopped before this version's schema is loaded: why. */
  readonly stopPreviousVersion?: string;
}

/** A SQL type (CockroachDB's name), what Kysely reads and writes for it, and the values a CHECK allows, if any. */
export interface SqlType<Read = unknown, Write = Read> {
  readonly sql: string;
  /** `'cities'`: the cities of src/regions.ts (or of the layout the DDL generator is given). */
  readonly oneOf?: 'cities' | readonly string[];
  /** Type only: never set. */
  readonly _type?: (write: Write) => Read;
}

const sqlType = <Read, Write = Read>(sql: string, oneOf?: SqlType['oneOf']): SqlType<Read, Write> => (oneOf ? { sql, oneOf } : { sql });

const STRING = sqlType<string>('STRING');
const UUID = sqlType<string>('UUID');
const BOOL = sqlType<boolean>('BOOL');
const INT = sqlType<number>('INT');
const JSONB = sqlType<unknown>('JSONB');
/** Read it as milliseconds in SQL; nothing reads the raw value. */
const INTERVAL = sqlType<unknown>('INTERVAL');
const TIMESTAMPTZ = sqlType<Date, Date | string>('TIMESTAMPTZ');
/** connect-pg-simple's `expire` column type, kept from the first schema. */
const TIMESTAMP = sqlType<Date, Date | string>('TIMESTAMP(6)');
const CITY = sqlType<City>('STRING', 'cities');
/** A city copied from a checked row, not checked again. */
const CITY_COPY = sqlType<City>('STRING');
const VEHICLE_TYPE = sqlType<VehicleType>('STRING', VEHICLE_TYPES);
const VEHICLE_STATUS = sqlType<VehicleStatus>('STRING', VEHICLE_STATUSES);

export interface ColumnDef<Read = unknown, Write = never, Nullable extends boolean = boolean, Defaulted extends boolean = boolean> {
  readonly type: SqlType<Read, Write>;
  readonly notNull: boolean;
  /** SQL expression. */
  readonly default?: string;
  /** The schema version that added it; 1 when absent. */
  readonly since?: number;
  /** Type only: never set. */
  readonly _column?: { nullable: Nullable; defaulted: Defaulted };
}

type Since = { since?: number };
const required = <R, W>(type: SqlType<R, W>, options: Since = {}): ColumnDef<R, W, false, false> => ({ type, notNull: true, ...options });
const defaulted = <R, W>(type: SqlType<R, W>, sqlDefault: string, options: Since = {}): ColumnDef<R, W, false, true> => ({
  type,
  notNull: true,
  default: sqlDefault,
  ...options,
});
const nullable = <R, W>(type: SqlType<R, W>, options: Since = {}): ColumnDef<R, W, true, false> => ({ type, notNull: false, ...options });

export interface TableDef {
  readonly columns: Readonly<Record<string, ColumnDef>>;
  readonly primaryKey: readonly string[];
  /** Beyond the `oneOf` lists of the column types, which become `check_<column>`. */
  readonly checks?: readonly { readonly name: string; readonly expr: string; readonly since?: number }[];
  readonly uniques?: readonly { readonly name: string; readonly columns: readonly string[] }[];
  readonly foreignKeys?: readonly {
    readonly name: string;
    readonly columns: readonly string[];
    readonly table: string;
    readonly refColumns: readonly string[];
    /** The schema version that added it; 1 when absent. */
    readonly since?: number;
  }[];
  /** Rows belong to the city in `city`: partitioned by it, or REGIONAL BY ROW in its region, on CockroachDB. */
  readonly byCity: boolean;
  /** The schema version that added it; 1 when absent. */
  readonly since?: number;
}

export interface IndexDef {
  readonly name: string;
  readonly table: string;
  readonly unique?: boolean;
  /** Index columns, with `DESC` where needed. */
  readonly columns: readonly string[];
  /** A partial index's predicate, with literals: a query matches it only when it spells the same literal. */
  readonly where?: string;
  readonly purpose: string;
  /** The schema version that added it; 1 when absent. */
  readonly since?: number;
  /** The schema version that dropped it, if any. */
  readonly until?: number;
}

const table = <const T extends TableDef>(definition: T): T => definition;

export const TABLES = {
  users: table({
    byCity: true,
    columns: {
      city: required(CITY),
      id: defaulted(UUID, 'gen_random_uuid()'),
      first_name: required(STRING),
      last_name: required(STRING),
      email: required(STRING),
      /** Null once the account is deleted, so the username can be taken again. */
      username: nullable(STRING),
      password_hash: nullable(STRING),
      is_owner: defaulted(BOOL, 'false'),
      created_at: defaulted(TIMESTAMPTZ, 'now()'),
      /**
       * The rider's active ride (its city and id), null when not riding: one column pair, so at most one. Set by a
       * conditional update (WHERE active_ride_id IS NULL) that is the claim; in no index, so the update stays HOT.
       */
      active_ride_city: nullable(CITY_COPY, { since: 4 }),
      active_ride_id: nullable(UUID, { since: 4 }),
    },
    primaryKey: ['city', 'id'],
    checks: [{ name: 'check_active_ride', expr: '(active_ride_city IS NULL) = (active_ride_id IS NULL)', since: 4 }],
    uniques: [{ name: 'users_username_key', columns: ['username'] }],
    // A ride that exists; not indexed, as nothing deletes rides or changes their keys, and an index would make the claim non-HOT.
    foreignKeys: [
      { name: 'fk_active_ride_ref_rides', columns: ['active_ride_city', 'active_ride_id'], table: 'rides', refColumns: ['city', 'id'], since: 4 },
    ],
  }),
  vehicles: table({
    byCity: true,
    columns: {
      city: required(CITY),
      id: defaulted(UUID, 'gen_random_uuid()'),
      type: required(VEHICLE_TYPE),
      owner_id: required(UUID),
      date_added: defaulted(TIMESTAMPTZ, 'now()'),
      status: defaulted(VEHICLE_STATUS, "'available'"),
      last_location: required(STRING),
      color: required(STRING),
      brand: defaulted(STRING, "''"),
      /** When it arrived where it stands: added there, or a ride ended there. */
      located_at: defaulted(TIMESTAMPTZ, 'now()', { since: 3 }),
    },
    primaryKey: ['city', 'id'],
    foreignKeys: [{ name: 'fk_city_ref_users', columns: ['city', 'owner_id'], table: 'users', refColumns: ['city', 'id'] }],
  }),
  rides: table({
    byCity: true,
    columns: {
      city: required(CITY),
      id: defaulted(UUID, 'gen_random_uuid()'),
      vehicle_id: required(UUID),
      rider_id: required(UUID),
      rider_city: required(CITY),
      start_location: required(STRING),
      end_location: nullable(STRING),
      start_time: defaulted(TIMESTAMPTZ, 'now()'),
      end_time: nullable(TIMESTAMPTZ),
      /** end_time - start_time; null while the ride is active. */
      length: nullable(INTERVAL),
    },
    primaryKey: ['city', 'id'],
    checks: [{ name: 'check_ride_end', expr: '(end_time IS NULL) = (length IS NULL) AND (end_time IS NULL) = (end_location IS NULL)' }],
    foreignKeys: [
      { name: 'fk_vehicle_city_ref_vehicles', columns: ['city', 'vehicle_id'], table: 'vehicles', refColumns: ['city', 'id'] },
      { name: 'fk_rider_city_ref_users', columns: ['rider_city', 'rider_id'], table: 'users', refColumns: ['city', 'id'] },
    ],
  }),
  /** Logged-in sessions only; a revoked row is a tombstone until it expires, so a save in flight cannot revive it. */
  sessions: table({
    byCity: false,
    columns: {
      sid: required(STRING),
      sess: required(JSONB),
      expire: required(TIMESTAMP),
      user_city: nullable(CITY_COPY, { since: 2 }),
      user_id: nullable(UUID, { since: 2 }),
      revoked: defaulted(BOOL, 'false', { since: 2 }),
    },
    primaryKey: ['sid'],
  }),
  /** Hits per limiter key (e.g. failed log-ins of one username from one client) until reset_at. */
  rate_limits: table({
    byCity: false,
    since: 2,
    columns: { key: required(STRING), hits: required(INT), reset_at: required(TIMESTAMPTZ) },
    primaryKey: ['key'],
  }),
  /** Bearer tokens of the JSON API, as SHA-256 hashes only, in the user's home city (the token names it). */
  api_tokens: table({
    byCity: true,
    since: 5,
    columns: {
      city: required(CITY_COPY),
      token_hash: required(STRING),
      user_id: required(UUID),
      created_at: defaulted(TIMESTAMPTZ, 'now()'),
      expires_at: required(TIMESTAMPTZ),
    },
    primaryKey: ['city', 'token_hash'],
    foreignKeys: [{ name: 'fk_api_tokens_user', columns: ['city', 'user_id'], table: 'users', refColumns: ['city', 'id'] }],
  }),
  /**
   * The first answer to a JSON API POST sent with an Idempotency-Key, sealed, until expires_at; kept in the rider's
   * home city (for sign-up, the new account's; for tokens, the account's).
   */
  idempotency_keys: table({
    byCity: true,
    since: 5,
    columns: {
      city: required(CITY_COPY),
      /** `user:<id>`, or `client:<address>` for sign-up and tokens. */
      scope: required(STRING),
      key: required(STRING),
      /** A keyed hash of the method, path and body: a repeat with another body is refused. */
      fingerprint: required(STRING),
      status: required(INT),
      body: required(STRING),
      expires_at: required(TIMESTAMPTZ),
    },
    primaryKey: ['city', 'scope', 'key'],
  }),
  schema_info: table({ byCity: false, columns: { version: required(INT) }, primaryKey: ['version'] }),
} as const satisfies Record<string, TableDef>;

/**
 * No column that starting or ending a ride changes (vehicles.status, last_location, located_at; rides.end_*,
 * length; users.active_ride_*) may appear in an index's key or predicate: PostgreSQL then makes those updates HOT,
 * adding no index entry that other riders' SERIALIZABLE reads of the same index page would conflict with.
 */
export const INDEXES: readonly IndexDef[] = [
  {
    name: 'vehicles_city_listing_idx',
    table: 'vehicles',
    columns: ['city', 'date_added DESC', 'id DESC'],
    where: "status <> 'removed'",
    purpose: 'The vehicles page: one city, not removed, newest first.',
    until: 4,
  },
  {
    name: 'vehicles_city_newest_idx',
    table: 'vehicles',
    columns: ['city', 'date_added DESC', 'id DESC'],
    purpose: 'The vehicles page: one city, newest first; removed vehicles are skipped as read (status is in no index).',
    since: 4,
  },
  { name: 'vehicles_owner_idx', table: 'vehicles', columns: ['city', 'owner_id'], purpose: "A profile's vehicles, and the foreign key's lookups." },
  { name: 'rides_rider_idx', table: 'rides', columns: ['rider_city', 'rider_id', 'start_time DESC'], purpose: "A rider's history, newest first." },
  {
    name: 'rides_one_active_per_vehicle_idx',
    table: 'rides',
    unique: true,
    columns: ['city', 'vehicle_id'],
    where: 'end_time IS NULL',
    purpose: 'The last line of defence against double rides: at most one active ride per vehicle...',
    until: 4,
  },
  {
    name: 'rides_one_active_per_rider_idx',
    table: 'rides',
    unique: true,
    columns: ['rider_city', 'rider_id'],
    where: 'end_time IS NULL',
    purpose: '...and at most one per rider.',
    until: 4,
  },
  { name: 'sessions_expire_idx', table: 'sessions', columns: ['expire'], purpose: 'Expired sessions are pruned by expire.' },
  {
    name: 'sessions_user_idx',
    table: 'sessions',
    columns: ['user_city', 'user_id'],
    purpose: "Account deletion revokes all of a user's sessions through this index.",
    since: 2,
  },
  { name: 'rate_limits_reset_at_idx', table: 'rate_limits', columns: ['reset_at'], purpose: 'Expired counters are pruned by reset_at.', since: 2 },
  {
    name: 'api_tokens_user_idx',
    table: 'api_tokens',
    columns: ['city', 'user_id'],
    purpose: "Account deletion revokes all of a user's tokens through this index; the foreign key's lookups.",
    since: 5,
  },
  { name: 'api_tokens_expires_idx', table: 'api_tokens', columns: ['city', 'expires_at'], purpose: 'Expired tokens are pruned by expires_at, city by city.', since: 5 },
  {
    name: 'idempotency_keys_expires_idx',
    table: 'idempotency_keys',
    columns: ['city', 'expires_at'],
    purpose: 'Idempotency keys past their 24 hours are pruned by expires_at, city by city.',
    since: 5,
  },
];

/** The Kysely column type of a column: nullable columns read null, defaulted and nullable ones may be left out of inserts. */
type KyselyColumn<C> =
  C extends ColumnDef<infer R, infer W, infer N, infer D>
    ? N extends true
      ? ColumnType<R | null, W | null | undefined, W | null>
      : ColumnType<R, D extends true ? W | undefined : W, W>
    : never;

type Tables = typeof TABLES;
type TableType<T extends keyof Tables> = { -readonly [C in keyof Tables[T]['columns']]: KyselyColumn<Tables[T]['columns'][C]> };

export type Database = { [T in keyof Tables]: TableType<T> };

export type UserRow = Selectable<Database['users']>;
export type NewUserRow = Insertable<Database['users']>;
export type VehicleRow = Selectable<Database['vehicles']>;
export type NewVehicleRow = Insertable<Database['vehicles']>;
