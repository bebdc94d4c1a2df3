import { type Kysely, type RawBuilder, sql } from 'kysely';
import { SQLSTATE, sqlState, violatedConstraint } from '../db/errors.js';
import { prepare } from '../db/prepared.js';
import type { Database } from '../db/schema.js';
import type { Tx } from '../db/transaction.js';
import { CITIES, type City } from '../regions.js';
import type { VehicleStatus } from '../vehicles.js';
import { AccountGoneError, ForbiddenError, NotFoundError, RefusedError, UsernameTakenError } from './errors.js';
import { type NewUser, type NewVehicle, type Page, type Ride, toUser, toVehicle, type User, type UserRef, type Vehicle } from './models.js';

/**
 * The callbacks MovR runs through the retry wrapper, as movr-flask's transactions.py: each only touches the
 * database, so running it again is safe. They name the row's city wherever it is known (docs/cockroachdb.md's locality map).
 */

export const VEHICLES_PER_PAGE = 50;
export const RIDES_SHOWN = 100;

export const USER_COLUMNS = ['id', 'city', 'username', 'first_name', 'last_name', 'email', 'is_owner'] as const;
export const VEHICLE_COLUMNS = ['id', 'city', 'type', 'owner_id', 'date_added', 'status', 'last_location', 'color', 'brand', 'located_at'] as const;

const ALREADY_RIDING = 'You are already on a ride: end it before starting another.';
const NOT_AVAILABLE = 'That vehicle is not available right now.';

export async function addUser(tx: Tx, input: Omit<NewUser, 'password'>, passwordHash: string): Promise<User> {
  const row = await tx
    .insertInto('users')
    .values({ city: input.city, first_name: input.firstName, last_name: input.lastName, email: input.email, username: input.username, password_hash: passwordHash })
    .returning(USER_COLUMNS)
    .executeTakeFirstOrThrow()
    .catch(refuseDuplicate({ users_username_key: () => new UsernameTakenError() }));
  return toUser(row);
}

/** A user with their password hash, for log-in only. */
export function credentials(db: Kysely<Database>, username: string) {
  return db.selectFrom('users').select([...USER_COLUMNS, 'password_hash']).where('username', '=', username).executeTakeFirst();
}

export async function getUser(db: Kysely<Database>, ref: UserRef): Promise<User | undefined> {
  const row = await db
    .selectFrom('users')
    .select(USER_COLUMNS)
    .where('city', '=', ref.city)
    .where('id', '=', ref.id)
    .where('username', 'is not', null)
    .executeTakeFirst();
  return row && toUser(row);
}

// The pages' reads are compiled once (db/prepared.ts): building a Kysely query costs more than answering it.
const usersOfCity = prepare(['city'], (db, { city }) =>
  db.selectFrom('users').select(USER_COLUMNS).where('city', '=', city).where('username', 'is not', null).orderBy('username'),
);

export async function getUsers(db: Kysely<Database>, city: City): Promise<User[]> {
  return (await usersOfCity(db, { city })).map(toUser);
}

/** The row stays for ride history, emptied of personal data; the username is freed. */
export async function removeUser(tx: Tx, actor: UserRef): Promise<void> {
  const account = await riderAccount(tx, actor);
  const reasons = [];
  if (account.active_ride_id !== null) reasons.push('End your ride before deleting your account.');
  if (await ownsVehicles(tx, actor)) reasons.push('Remove your vehicles before deleting your account.');
  if (reasons.length > 0) throw new RefusedError(reasons.join(' '));
  await tx
    .updateTable('users')
    .set({ username: null, password_hash: null, first_name: '', last_name: '', email: '', is_owner: false })
    .where('city', '=', actor.city)
    .where('id', '=', actor.id)
    .execute();
}

export async function addVehicle(tx: Tx, owner: UserRef, input: NewVehicle): Promise<Vehicle> {
  await assertAccount(tx, owner);
  const row = await tx
    .insertInto('vehicles')
    .values({ city: owner.city, owner_id: owner.id, type: input.type, color: input.color, brand: input.brand, last_location: input.location })
    .returning(VEHICLE_COLUMNS)
    .executeTakeFirstOrThrow();
  await setOwner(tx, owner, true);
  return toVehicle(row);
}

/** A city's vehicles that are not removed, newest first: the listing of the pages and the API. */
export const cityListing = (db: Kysely<Database>, city: never) =>
  db
    .selectFrom('vehicles')
    .select(VEHICLE_COLUMNS)
    .where('city', '=', city)
    // Removed vehicles are skipped as the index is read: status is in no index, so that rides' updates of it stay HOT.
    .where('status', '<>', sql.lit('removed'))
    .orderBy('date_added', 'desc')
    .orderBy('id', 'desc');

const vehiclesOfCity = prepare(['city', 'offset'], (db, { city, offset }) =>
  cityListing(db, city)
    .limit(VEHICLES_PER_PAGE + 1)
    .offset(offset),
);

export async function getVehicles(db: Kysely<Database>, city: City, page: number): Promise<Page<Vehicle>> {
  const rows = await vehiclesOfCity(db, { city, offset: (page - 1) * VEHICLES_PER_PAGE });
  return { items: rows.slice(0, VEHICLES_PER_PAGE).map(toVehicle), page, hasNext: rows.length > VEHICLES_PER_PAGE };
}

const vehiclesOfOwner = prepare(['city', 'id'], (db, { city, id }) =>
  db
    .selectFrom('vehicles')
    .select(VEHICLE_COLUMNS)
    .where('city', '=', city)
    .where('owner_id', '=', id)
    .where('status', '<>', sql.lit('removed'))
    .orderBy('date_added', 'desc'),
);

export async function getOwnedVehicles(db: Kysely<Database>, owner: UserRef): Promise<Vehicle[]> {
  return (await vehiclesOfOwner(db, owner)).map(toVehicle);
}

/** The actor's own vehicle, not removed: ForbiddenError for someone else's, NotFoundError for an unknown or removed one. */
export async function getOwnVehicle(tx: Tx, actor: UserRef, vehicleId: string): Promise<Vehicle> {
  const vehicle = await findVehicle(tx, vehicleId, actor.city);
  if (vehicle.owner_id !== actor.id) throw new ForbiddenError('You can only remove your own vehicles.');
  if (vehicle.status === 'removed') throw new NotFoundError('No such vehicle.');
  return toVehicle(vehicle);
}

export async function removeVehicle(tx: Tx, actor: UserRef, vehicleId: string): Promise<void> {
  // Vehicles live in their owner's city, so the actor's own are found in one region.
  const vehicle = await findVehicle(tx, vehicleId, actor.city);
  await assertAccount(tx, actor);
  if (vehicle.owner_id !== actor.id) throw new ForbiddenError('You can only remove your own vehicles.');
  if (vehicle.status === 'removed') throw new NotFoundError('No such vehicle.');
  if (vehicle.status !== 'available') throw new RefusedError('That vehicle is in use; it can be removed once the ride ends.');
  await moveVehicle(tx, vehicle, { status: 'removed' });
  if (!(await ownsVehicles(tx, actor))) await setOwner(tx, actor, false);
}

/**
 * Two claims, each a conditional update of one row by its primary key: the vehicle's status from available to
 * in_use, and the rider's active_ride_id from null to the new ride. Whoever loses a race updates no row (or, under
 * SERIALIZABLE, retries and sees the winner's claim) and is refused. No index holds status, end_time or
 * active_ride_id, so these updates are HOT: they add no index entry for other riders' reads to conflict with.
 */
export async function startRide(tx: Tx, rider: UserRef, vehicleId: string, preferredCity: City): Promise<Ride> {
  const vehicle = await findVehicle(tx, vehicleId, preferredCity);
  if (vehicle.status === 'removed') throw new NotFoundError('No such vehicle.');
  const account = await riderAccount(tx, rider);
  // Refused either way; riding already is the reason to give first.
  if (account.active_ride_id !== null) throw new RefusedError(ALREADY_RIDING);
  if (vehicle.status !== 'available') throw new RefusedError(NOT_AVAILABLE);
  const claimed = await tx
    .updateTable('vehicles')
    .set({ status: 'in_use' })
    .where('city', '=', vehicle.city)
    .where('id', '=', vehicle.id)
    .where('status', '=', sql.lit('available'))
    .executeTakeFirst();
  if (claimed.numUpdatedRows === 0n) throw new RefusedError(NOT_AVAILABLE);
  // The new row comes back from the insert: reading it by index would lock the index page other starts insert into.
  const ride = await tx
    .insertInto('rides')
    .values({ city: vehicle.city, vehicle_id: vehicle.id, rider_id: rider.id, rider_city: rider.city, start_location: vehicle.last_location })
    .returning(['id', 'city', 'vehicle_id as vehicleId', 'start_location as startLocation', 'start_time as startTime'])
    .executeTakeFirstOrThrow();
  const riding = await tx
    .updateTable('users')
    .set({ active_ride_city: ride.city, active_ride_id: ride.id })
    .where('city', '=', rider.city)
    .where('id', '=', rider.id)
    .where('active_ride_id', 'is', null)
    .executeTakeFirst();
  if (riding.numUpdatedRows === 0n) throw new RefusedError(ALREADY_RIDING);
  return { ...ride, vehicleType: vehicle.type, vehicleColor: vehicle.color, vehicleBrand: vehicle.brand, endLocation: null, endTime: null, lengthMs: null };
}

export async function endRide(tx: Tx, rider: UserRef, rideId: string, location: string, preferredCity: City): Promise<Ride> {
  const ride = await findRide(tx, rideId, preferredCity);
  if (ride.rider_id !== rider.id) throw new ForbiddenError('You can only end your own rides.');
  const account = await riderAccount(tx, rider);
  if (ride.end_time !== null || account.active_ride_id !== ride.id) throw new RefusedError('That ride has already ended.');
  // now() is the transaction's timestamp, so length is exactly end_time - start_time.
  await tx
    .updateTable('rides')
    .set({ end_time: sql`now()`, length: sql`now() - start_time`, end_location: location })
    .where('city', '=', ride.city)
    .where('id', '=', ride.id)
    .execute();
  // An active ride's vehicle is in use (startRide set both in one transaction).
  await moveVehicle(tx, { city: ride.city, id: ride.vehicle_id }, { status: 'available', last_location: location, located_at: sql<Date>`now()` });
  await tx
    .updateTable('users')
    .set({ active_ride_city: null, active_ride_id: null })
    .where('city', '=', rider.city)
    .where('id', '=', rider.id)
    .where('active_ride_id', '=', ride.id)
    .execute();
  return readRide(tx, ride.city, ride.id);
}

export async function getOwnRide(tx: Tx, rider: UserRef, rideId: string, preferredCity: City): Promise<Ride> {
  const ride = await findRide(tx, rideId, preferredCity);
  if (ride.rider_id !== rider.id) throw new ForbiddenError('You can only see your own rides.');
  return readRide(tx, ride.city, ride.id);
}

const ridesOfRider = prepare(['city', 'id'], (db, { city, id }) =>
  ridesQuery(db).where('rides.rider_city', '=', city).where('rides.rider_id', '=', id).orderBy('rides.start_time', 'desc').limit(RIDES_SHOWN),
);

export function getRides(db: Kysely<Database>, rider: UserRef): Promise<Ride[]> {
  return ridesOfRider(db, rider);
}

/** The ride in progress, named by the rider's users row, for the riding bar (web/middleware/locals.ts): each row by key. */
const activeRideOfRider = prepare(['city', 'id'], (db, { city, id }) =>
  ridesQuery(db)
    .innerJoin('users', (join) => join.onRef('users.active_ride_city', '=', 'rides.city').onRef('users.active_ride_id', '=', 'rides.id'))
    .where('users.city', '=', city)
    .where('users.id', '=', id),
);

export async function getActiveRide(db: Kysely<Database>, rider: UserRef): Promise<Ride | undefined> {
  const [ride] = await activeRideOfRider(db, rider);
  return ride;
}

/** A session that outlived its account (deleted meanwhile) acts for nobody: SERIALIZABLE orders this read against the deletion. */
export async function assertAccount(tx: Tx, actor: UserRef): Promise<void> {
  await riderAccount(tx, actor);
}

/** The actor's users row (its active ride), by key; AccountGoneError for a deleted account. */
async function riderAccount(tx: Tx, actor: UserRef) {
  const account = await tx
    .selectFrom('users')
    .select(['id', 'active_ride_id'])
    .where('city', '=', actor.city)
    .where('id', '=', actor.id)
    .where('username', 'is not', null)
    .executeTakeFirst();
  if (!account) throw new AccountGoneError();
  return account;
}

/** Sets the vehicle's status (and more) by its primary key. */
async function moveVehicle(
  tx: Tx,
  vehicle: { city: City; id: string },
  changes: { status: VehicleStatus; last_location?: string; located_at?: RawBuilder<Date> },
): Promise<void> {
  await tx.updateTable('vehicles').set(changes).where('city', '=', vehicle.city).where('id', '=', vehicle.id).execute();
}

async function setOwner(tx: Tx, user: UserRef, isOwner: boolean): Promise<void> {
  await tx.updateTable('users').set({ is_owner: isOwner }).where('city', '=', user.city).where('id', '=', user.id).where('is_owner', '=', !isOwner).execute();
}

/** Looks in the likely city first, then in all cities at once (a point lookup per city on the primary key). */
async function findVehicle(tx: Tx, id: string, preferredCity: City) {
  const query = tx.selectFrom('vehicles').select(VEHICLE_COLUMNS).where('id', '=', id);
  const vehicle = (await query.where('city', '=', preferredCity).executeTakeFirst()) ?? (await query.where('city', 'in', CITIES).executeTakeFirst());
  if (!vehicle) throw new NotFoundError('No such vehicle.');
  return vehicle;
}

async function findRide(tx: Tx, id: string, preferredCity: City) {
  const query = tx.selectFrom('rides').select(['id', 'city', 'rider_id', 'vehicle_id', 'end_time']).where('id', '=', id);
  const ride = (await query.where('city', '=', preferredCity).executeTakeFirst()) ?? (await query.where('city', 'in', CITIES).executeTakeFirst());
  if (!ride) throw new NotFoundError('No such ride.');
  return ride;
}

/** True when the user owns a vehicle that is not removed (vehicles live in their owner's city). */
async function ownsVehicles(tx: Tx, owner: UserRef): Promise<boolean> {
  const vehicle = await tx
    .selectFrom('vehicles')
    .select('id')
    .where('city', '=', owner.city)
    .where('owner_id', '=', owner.id)
    .where('status', '<>', sql.lit('removed'))
    .limit(1)
    .executeTakeFirst();
  return vehicle !== undefined;
}

/** A catch handler turning a unique violation of a known constraint into the domain error it means. */
function refuseDuplicate(byConstraint: Record<string, () => Error>) {
  return (error: unknown): never => {
    const constraint = sqlState(error) === SQLSTATE.uniqueViolation ? violatedConstraint(error) : undefined;
    throw constraint && Object.hasOwn(byConstraint, constraint) ? byConstraint[constraint]!() : error;
  };
}

/** A Ride's fields from `rides` joined with its `vehicles` row. */
const RIDE_COLUMNS = [
  'rides.id as id',
  'rides.city as city',
  'rides.vehicle_id as vehicleId',
  'vehicles.type as vehicleType',
  'vehicles.color as vehicleColor',
  'vehicles.brand as vehicleBrand',
  'rides.start_location as startLocation',
  'rides.end_location as endLocation',
  'rides.start_time as startTime',
  'rides.end_time as endTime',
  sql<number | null>`(extract(epoch from rides.length) * 1000)::float8`.as('lengthMs'),
] as const;

export function ridesQuery(db: Kysely<Database>) {
  return db
    .selectFrom('rides')
    .innerJoin('vehicles', (join) => join.onRef('vehicles.city', '=', 'rides.city').onRef('vehicles.id', '=', 'rides.vehicle_id'))
    .select(RIDE_COLUMNS);
}

/**
 * Two reads by primary key rather than the join: for a small table PostgreSQL may join through all of the city's
 * vehicles, and SERIALIZABLE then conflicts with every other rider's vehicle there.
 */
async function readRide(tx: Tx, city: City, id: string): Promise<Ride> {
  const ride = await tx
    .selectFrom('rides')
    .select(['id', 'city', 'vehicle_id as vehicleId', 'start_location as startLocation', 'end_location as endLocation', 'start_time as startTime', 'end_time as endTime'])
    .select(sql<number | null>`(extract(epoch from length) * 1000)::float8`.as('lengthMs'))
    .where('city', '=', city)
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  const vehicle = await tx
    .selectFrom('vehicles')
    .select(['type as vehicleType', 'color as vehicleColor', 'brand as vehicleBrand'])
    .where('city', '=', city)
    .where('id', '=', ride.vehicleId)
    .executeTakeFirstOrThrow();
  return { ...ride, ...vehicle };
}
