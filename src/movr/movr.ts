import { type Kysely, sql } from 'kysely';
import { CITIES, type City } from '../regions.js';
import type { MovrDatabase } from '../db/database.js';
import { SQLSTATE, sqlState, violatedConstraint } from '../db/errors.js';
import type { Database, VehicleType } from '../db/schema.js';
import { runStatement, runTransaction, type Tx } from '../db/transaction.js';
import { AccountGoneError, ForbiddenError, NotFoundError, RefusedError, UsernameTakenError } from './errors.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { type Page, type Ride, toUser, toVehicle, type User, type UserRef, type Vehicle } from './models.js';

export const VEHICLES_PER_PAGE = 50;
export const RIDES_SHOWN = 100;

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

export interface MovrOptions {
  /** bcrypt cost factor; 12 by default (~0.3 s per hash on a 2-core machine). */
  bcryptCost?: number;
}

const USER_COLUMNS = ['id', 'city', 'username', 'first_name', 'last_name', 'email', 'is_owner'] as const;
const VEHICLE_COLUMNS = ['id', 'city', 'type', 'owner_id', 'date_added', 'status', 'last_location', 'color', 'brand'] as const;


/**
 * The backend: each method runs exactly one callback through the retry wrapper, a transaction or, for a read of
 * one statement, that statement alone. Callbacks only touch the database (hashing happens before), so a retry
 * is safe. Reads and writes name the row's city wherever it is known, so CockroachDB looks for the row in that
 * city's region; what still crosses regions is in the README's locality map.
 */
export class MovR {
  private readonly bcryptCost: number;
  /** Compared against for an unknown username, at the same cost, so timing does not reveal which usernames exist. */
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly db: MovrDatabase,
    options: MovrOptions = {},
  ) {
    this.bcryptCost = options.bcryptCost ?? 12;
  }

  private run<T>(callback: (tx: Tx) => Promise<T>): Promise<T> {
    return runTransaction(this.db, callback);
  }

  /** A read of exactly one statement, without BEGIN/COMMIT around it (see runStatement). */
  private read<T>(callback: (db: Kysely<Database>) => Promise<T>): Promise<T> {
    return runStatement(this.db, callback);
  }

  async addUser(input: NewUser): Promise<User> {
    const passwordHash = await hashPassword(input.password, this.bcryptCost);
    try {
      return await this.run(async (tx) => {
        const row = await tx
          .insertInto('users')
          .values({
            city: input.city,
            first_name: input.firstName,
            last_name: input.lastName,
            email: input.email,
            username: input.username,
            password_hash: passwordHash,
          })
          .returning(USER_COLUMNS)
          .executeTakeFirstOrThrow();
        return toUser(row);
      });
    } catch (error) {
      if (sqlState(error) === SQLSTATE.uniqueViolation && violatedConstraint(error) === 'users_username_key') {
        throw new UsernameTakenError();
      }
      throw error;
    }
  }

  /** The user whose username and password these are; undefined for an unknown user and a wrong password alike. */
  async authenticate(username: string, password: string): Promise<User | undefined> {
    const row = await this.read((db) =>
      db.selectFrom('users').select([...USER_COLUMNS, 'password_hash']).where('username', '=', username).executeTakeFirst(),
    );
    this.dummyHash ??= hashPassword('movr-dummy-password', this.bcryptCost);
    const matches = await verifyPassword(password, row?.password_hash ?? (await this.dummyHash));
    return row && row.password_hash && matches ? toUser(row) : undefined;
  }

  async getUser(ref: UserRef): Promise<User | undefined> {
    const row = await this.read((db) =>
      db
        .selectFrom('users')
        .select(USER_COLUMNS)
        .where('city', '=', ref.city)
        .where('id', '=', ref.id)
        .where('username', 'is not', null)
        .executeTakeFirst(),
    );
    return row && toUser(row);
  }

  async getUserByUsername(username: string): Promise<User | undefined> {
    const row = await this.read((db) =>
      db.selectFrom('users').select(USER_COLUMNS).where('username', '=', username).executeTakeFirst(),
    );
    return row && toUser(row);
  }

  async getUsers(city: City): Promise<User[]> {
    const rows = await this.read((db) =>
      db
        .selectFrom('users')
        .select(USER_COLUMNS)
        .where('city', '=', city)
        .where('username', 'is not', null)
        .orderBy('username')
        .execute(),
    );
    return rows.map(toUser);
  }

  /**
   * Deletes the actor's own account: refused while riding or owning vehicles that are not removed. The row
   * stays for ride history, emptied of personal data, and the username is freed. From the commit on, the
   * session store serves none of the account's sessions.
   */
  async removeUser(actor: UserRef, userId: string): Promise<void> {
    if (actor.id !== userId) throw new ForbiddenError('You can only delete your own account.');
    await this.run(async (tx) => {
      await assertAccount(tx, actor);
      const reasons = [];
      if (await activeRide(tx, actor)) reasons.push('End your ride before deleting your account.');
      if (await ownsVehicles(tx, actor)) reasons.push('Remove your vehicles before deleting your account.');
      if (reasons.length > 0) throw new RefusedError(reasons.join(' '));
      await tx
        .updateTable('users')
        .set({ username: null, password_hash: null, first_name: '', last_name: '', email: '', is_owner: false })
        .where('city', '=', actor.city)
        .where('id', '=', actor.id)
        .execute();
    });
  }

  /** Adds a vehicle in its owner's home city. */
  async addVehicle(owner: UserRef, input: NewVehicle): Promise<Vehicle> {
    return this.run(async (tx) => {
      await assertAccount(tx, owner);
      const row = await tx
        .insertInto('vehicles')
        .values({
          city: owner.city,
          owner_id: owner.id,
          type: input.type,
          color: input.color,
          brand: input.brand,
          last_location: input.location,
        })
        .returning(VEHICLE_COLUMNS)
        .executeTakeFirstOrThrow();
      await tx
        .updateTable('users')
        .set({ is_owner: true })
        .where('city', '=', owner.city)
        .where('id', '=', owner.id)
        .where('is_owner', '=', false)
        .execute();
      return toVehicle(row);
    });
  }

  /** Vehicles of a city that are not removed, newest first, a page at a time. */
  async getVehicles(city: City, page = 1): Promise<Page<Vehicle>> {
    const rows = await this.read((db) =>
      db
        .selectFrom('vehicles')
        .select(VEHICLE_COLUMNS)
        .where('city', '=', city)
        // A literal, not a parameter: a generic plan cannot prove a partial index's predicate from a placeholder.
        .where('status', '<>', sql.lit('removed'))
        .orderBy('date_added', 'desc')
        .orderBy('id', 'desc')
        .limit(VEHICLES_PER_PAGE + 1)
        .offset((page - 1) * VEHICLES_PER_PAGE)
        .execute(),
    );
    return { items: rows.slice(0, VEHICLES_PER_PAGE).map(toVehicle), page, hasNext: rows.length > VEHICLES_PER_PAGE };
  }

  async getOwnedVehicles(owner: UserRef): Promise<Vehicle[]> {
    const rows = await this.read((db) =>
      db
        .selectFrom('vehicles')
        .select(VEHICLE_COLUMNS)
        .where('city', '=', owner.city)
        .where('owner_id', '=', owner.id)
        .where('status', '<>', sql.lit('removed'))
        .orderBy('date_added', 'desc')
        .execute(),
    );
    return rows.map(toVehicle);
  }

  /** Marks the owner's vehicle removed, never while it is in use; the owner stays an owner while any remain. */
  async removeVehicle(actor: UserRef, vehicleId: string): Promise<void> {
    await this.run(async (tx) => {
      // Vehicles live in their owner's city, so the actor's own are found in one region.
      const vehicle = await findVehicle(tx, vehicleId, actor.city);
      await assertAccount(tx, actor);
      if (vehicle.owner_id !== actor.id) throw new ForbiddenError('You can only remove your own vehicles.');
      if (vehicle.status === 'removed') throw new NotFoundError('No such vehicle.');
      const removed = await tx
        .updateTable('vehicles')
        .set({ status: 'removed' })
        .where('city', '=', vehicle.city)
        .where('id', '=', vehicle.id)
        .where('status', '=', 'available')
        .executeTakeFirst();
      if (removed.numUpdatedRows === 0n) throw new RefusedError('That vehicle is in use; it can be removed once the ride ends.');
      if (!(await ownsVehicles(tx, actor))) {
        await tx.updateTable('users').set({ is_owner: false }).where('city', '=', actor.city).where('id', '=', actor.id).execute();
      }
    });
  }

  /**
   * Starts a ride: claims the vehicle only if it is available and only if the rider has no active ride, in
   * one transaction. Two riders racing for one scooter get one ride between them: SERIALIZABLE isolation
   * makes the loser retry and see the claim. A rider who already rides is refused by the partial unique index
   * on active rides (the insert fails, and the claim with it), not by reading that index first: on PostgreSQL
   * every start reading and writing the same few pages of it made concurrent starts abort each other
   * (`npm run bench`: 0.4 retries per ride, some starts failing after 10 attempts).
   */
  async startRide(rider: UserRef, vehicleId: string, preferredCity: City): Promise<Ride> {
    try {
      return await this.run(async (tx) => {
        const vehicle = await findVehicle(tx, vehicleId, preferredCity);
        if (vehicle.status === 'removed') throw new NotFoundError('No such vehicle.');
        await assertAccount(tx, rider);
        const claimed = await tx
          .updateTable('vehicles')
          .set({ status: 'in_use' })
          .where('city', '=', vehicle.city)
          .where('id', '=', vehicle.id)
          .where('status', '=', 'available')
          .executeTakeFirst();
        if (claimed.numUpdatedRows === 0n) {
          // Refused either way; riding already is the reason to give first.
          if (await activeRide(tx, rider)) throw new RefusedError('You are already on a ride: end it before starting another.');
          throw new RefusedError('That vehicle is not available right now.');
        }
        const { id } = await tx
          .insertInto('rides')
          .values({
            city: vehicle.city,
            vehicle_id: vehicle.id,
            rider_id: rider.id,
            rider_city: rider.city,
            start_location: vehicle.last_location,
          })
          .returning('id')
          .executeTakeFirstOrThrow();
        return readRide(tx, vehicle.city, id);
      });
    } catch (error) {
      if (sqlState(error) === SQLSTATE.uniqueViolation) {
        const constraint = violatedConstraint(error);
        if (constraint === 'rides_one_active_per_rider_idx') throw new RefusedError('You are already on a ride: end it before starting another.');
        if (constraint === 'rides_one_active_per_vehicle_idx') throw new RefusedError('That vehicle is not available right now.');
      }
      throw error;
    }
  }

  /** Ends the rider's own active ride: sets end time, length and end location, and frees the vehicle there. */
  async endRide(rider: UserRef, rideId: string, location: string, preferredCity: City): Promise<Ride> {
    return this.run(async (tx) => {
      const ride = await findRide(tx, rideId, preferredCity);
      if (ride.rider_id !== rider.id) throw new ForbiddenError('You can only end your own rides.');
      await assertAccount(tx, rider);
      if (ride.end_time !== null) throw new RefusedError('That ride has already ended.');
      // now() is the transaction's timestamp, so length is exactly end_time - start_time.
      await tx
        .updateTable('rides')
        .set({ end_time: sql`now()`, length: sql`now() - start_time`, end_location: location })
        .where('city', '=', ride.city)
        .where('id', '=', ride.id)
        .execute();
      await tx
        .updateTable('vehicles')
        .set({ status: 'available', last_location: location })
        .where('city', '=', ride.city)
        .where('id', '=', ride.vehicle_id)
        .where('status', '=', 'in_use')
        .execute();
      return readRide(tx, ride.city, ride.id);
    });
  }

  /** The rider's own ride: ForbiddenError for someone else's, NotFoundError for an unknown id. */
  async getOwnRide(rider: UserRef, rideId: string, preferredCity: City): Promise<Ride> {
    return this.run(async (tx) => {
      const ride = await findRide(tx, rideId, preferredCity);
      if (ride.rider_id !== rider.id) throw new ForbiddenError('You can only see your own rides.');
      return readRide(tx, ride.city, ride.id);
    });
  }

  /** The rider's rides, newest first (the most recent RIDES_SHOWN). */
  async getRides(rider: UserRef): Promise<Ride[]> {
    return this.read((db) =>
      ridesQuery(db)
        .where('rides.rider_city', '=', rider.city)
        .where('rides.rider_id', '=', rider.id)
        .orderBy('rides.start_time', 'desc')
        .limit(RIDES_SHOWN)
        .execute(),
    );
  }

  /** The rider's ride in progress, if any (the partial index of active rides finds it). */
  async getActiveRide(rider: UserRef): Promise<Ride | undefined> {
    return this.read((db) =>
      ridesQuery(db)
        .where('rides.rider_city', '=', rider.city)
        .where('rides.rider_id', '=', rider.id)
        .where('rides.end_time', 'is', null)
        .executeTakeFirst(),
    );
  }
}

/**
 * Inside the action's transaction: the actor's account still exists. A session that outlived its account (a request
 * in flight during the deletion) then acts for nobody: SERIALIZABLE orders this read against the deletion's write.
 */
async function assertAccount(tx: Tx, actor: UserRef): Promise<void> {
  const account = await tx
    .selectFrom('users')
    .select('id')
    .where('city', '=', actor.city)
    .where('id', '=', actor.id)
    .where('username', 'is not', null)
    .executeTakeFirst();
  if (!account) throw new AccountGoneError();
}

/** Looks in the likely city first, then in all cities at once (a point lookup per city on the primary key). */
async function findVehicle(tx: Tx, id: string, preferredCity: City) {
  const query = tx.selectFrom('vehicles').select(VEHICLE_COLUMNS).where('id', '=', id);
  const vehicle =
    (await query.where('city', '=', preferredCity).executeTakeFirst()) ??
    (await query.where('city', 'in', CITIES).executeTakeFirst());
  if (!vehicle) throw new NotFoundError('No such vehicle.');
  return vehicle;
}

async function findRide(tx: Tx, id: string, preferredCity: City) {
  const query = tx.selectFrom('rides').select(['id', 'city', 'rider_id', 'vehicle_id', 'end_time']).where('id', '=', id);
  const ride =
    (await query.where('city', '=', preferredCity).executeTakeFirst()) ??
    (await query.where('city', 'in', CITIES).executeTakeFirst());
  if (!ride) throw new NotFoundError('No such ride.');
  return ride;
}

function activeRide(tx: Tx, rider: UserRef) {
  return tx
    .selectFrom('rides')
    .select('id')
    .where('rider_city', '=', rider.city)
    .where('rider_id', '=', rider.id)
    .where('end_time', 'is', null)
    .executeTakeFirst();
}

/** True when the user owns a vehicle that is not removed (vehicles live in their owner's city). */
async function ownsVehicles(tx: Tx, owner: UserRef): Promise<boolean> {
  const vehicle = await tx
    .selectFrom('vehicles')
    .select('id')
    .where('city', '=', owner.city)
    .where('owner_id', '=', owner.id)
    .where('status', '<>', 'removed')
    .limit(1)
    .executeTakeFirst();
  return vehicle !== undefined;
}

function ridesQuery(db: Kysely<Database>) {
  return db
    .selectFrom('rides')
    .innerJoin('vehicles', (join) => join.onRef('vehicles.city', '=', 'rides.city').onRef('vehicles.id', '=', 'rides.vehicle_id'))
    .select([
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
    ]);
}

function readRide(tx: Tx, city: City, id: string): Promise<Ride> {
  return ridesQuery(tx).where('rides.city', '=', city).where('rides.id', '=', id).executeTakeFirstOrThrow();
}
