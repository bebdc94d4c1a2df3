import type { City } from '../regions.js';
import type { UserRow, VehicleRow } from '../db/schema.js';
import type { VehicleStatus, VehicleType } from '../vehicles.js';

/** What the backend hands to the web layer; database rows never leave the backend. */

/** Who is acting: the logged-in user as the session knows them. */
export interface UserRef {
  readonly id: string;
  readonly city: City;
}

export interface User extends UserRef {
  readonly username: string;
  readonly firstName: string;
  readonly lastName: string;
  readonly email: string;
  readonly isOwner: boolean;
}

export interface Vehicle {
  readonly id: string;
  readonly city: City;
  readonly type: VehicleType;
  readonly ownerId: string;
  readonly dateAdded: Date;
  readonly status: VehicleStatus;
  readonly location: string;
  readonly color: string;
  readonly brand: string;
  /** When it arrived where it stands. */
  readonly locatedAt: Date;
}

export interface Ride {
  readonly id: string;
  readonly city: City;
  readonly vehicleId: string;
  readonly vehicleType: VehicleType;
  readonly vehicleColor: string;
  readonly vehicleBrand: string;
  readonly startLocation: string;
  readonly endLocation: string | null;
  readonly startTime: Date;
  readonly endTime: Date | null;
  /** Milliseconds; null while the ride is active. */
  readonly lengthMs: number | null;
}

export interface NewUser {
  city: City;
  firstName: string;
  lastName: string;
  email: string;
  username: string;
  password: string;
}

export interface NewVehicle {
  type: VehicleType;
  color: string;
  brand: string;
  location: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly page: number;
  readonly hasNext: boolean;
}

export const toUser = (row: Pick<UserRow, 'id' | 'city' | 'username' | 'first_name' | 'last_name' | 'email' | 'is_owner'>): User => ({
  id: row.id,
  city: row.city,
  username: row.username ?? '',
  firstName: row.first_name,
  lastName: row.last_name,
  email: row.email,
  isOwner: row.is_owner,
});

export const toVehicle = (row: Pick<VehicleRow, 'id' | 'city' | 'type' | 'owner_id' | 'date_added' | 'status' | 'last_location' | 'color' | 'brand' | 'located_at'>): Vehicle => ({
  id: row.id,
  city: row.city,
  type: row.type,
  ownerId: row.owner_id,
  dateAdded: row.date_added,
  status: row.status,
  location: row.last_location,
  color: row.color,
  brand: row.brand,
  locatedAt: row.located_at,
});
