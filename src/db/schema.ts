import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';
import type { VehicleStatus, VehicleType } from '../movr/domain.js';
import type { City } from '../regions.js';

/** The one description of MovR's tables: migrations, queries and the CockroachDB DDL agree with it. */

/** Bump when the schema changes; CockroachDB DDL files record it in `schema_info` and the app checks it at start. */
export const SCHEMA_VERSION = 3;

/** A timestamptz the database fills in by default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  city: City;
  id: Generated<string>;
  first_name: string;
  last_name: string;
  email: string;
  /** Null once the account is deleted, so the username can be taken again. */
  username: string | null;
  password_hash: string | null;
  is_owner: Generated<boolean>;
  created_at: DefaultTimestamp;
}

export interface VehiclesTable {
  city: City;
  id: Generated<string>;
  type: VehicleType;
  owner_id: string;
  date_added: DefaultTimestamp;
  status: Generated<VehicleStatus>;
  last_location: string;
  color: string;
  brand: string;
  /** When it arrived where it stands: added there, or a ride ended there. */
  located_at: DefaultTimestamp;
}

export interface RidesTable {
  city: City;
  id: Generated<string>;
  vehicle_id: string;
  rider_id: string;
  rider_city: City;
  start_location: string;
  end_location: string | null;
  start_time: DefaultTimestamp;
  end_time: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** INTERVAL, end_time - start_time; null while the ride is active. Read it as milliseconds in SQL. */
  length: ColumnType<unknown, unknown, unknown>;
}

/** Logged-in sessions only (see web/session-store.ts); a revoked row is a tombstone until it expires. */
export interface SessionsTable {
  sid: string;
  sess: unknown;
  expire: ColumnType<Date, Date | string, Date | string>;
  user_city: City | null;
  user_id: string | null;
  revoked: Generated<boolean>;
}

/** Hits per limiter key (e.g. failed log-ins of one username from one client) until reset_at. */
export interface RateLimitsTable {
  key: string;
  hits: number;
  reset_at: ColumnType<Date, Date | string, Date | string>;
}

export interface SchemaInfoTable {
  version: number;
}

export interface Database {
  users: UsersTable;
  vehicles: VehiclesTable;
  rides: RidesTable;
  sessions: SessionsTable;
  rate_limits: RateLimitsTable;
  schema_info: SchemaInfoTable;
}

export type UserRow = Selectable<UsersTable>;
export type NewUserRow = Insertable<UsersTable>;
export type VehicleRow = Selectable<VehiclesTable>;
export type NewVehicleRow = Insertable<VehiclesTable>;
