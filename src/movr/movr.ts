import type { Kysely } from 'kysely';
import { DEFAULT_BCRYPT_COST } from '../config.js';
import type { MovrDatabase } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { runStatement, runTransaction, type Tx } from '../db/transaction.js';
import type { City } from '../regions.js';
import * as api from './api-transactions.js';
import type { Answer, IdempotencyKey, KeyLookup, Slice } from './api-transactions.js';
import { ForbiddenError, MovrError } from './errors.js';
import { type NewUser, type NewVehicle, type Page, type Ride, toUser, type User, type UserRef, type Vehicle } from './models.js';
import { hashPassword, verifyPassword } from './passwords.js';
import { type IssuedToken, newToken, parseToken } from './tokens.js';
import * as txn from './transactions.js';

export type { NewUser, NewVehicle } from './models.js';
export type { Answer, IdempotencyKey, KeyLookup, Slice } from './api-transactions.js';
export { IdempotencyKeyReusedError } from './api-transactions.js';
export type { IssuedToken } from './tokens.js';

/** How the JSON API answers an action: built from its result or its refusal, stored under its Idempotency-Key. */
export interface Once<T> {
  /** Absent when the request carries no Idempotency-Key: the action just runs. */
  readonly key?: IdempotencyKey;
  answer(result: T): Answer;
  refusal(error: MovrError): Answer;
}
export { RIDES_SHOWN, VEHICLES_PER_PAGE } from './transactions.js';

export interface MovrOptions {
  /** bcrypt cost factor; DEFAULT_BCRYPT_COST (12) unless told otherwise. */
  bcryptCost?: number;
}

/**
 * The backend, as movr-flask's movr.py: each method runs exactly one callback of transactions.ts through the
 * retry wrapper, a transaction or, for a read of one statement, that statement alone. Hashing happens outside.
 */
export class MovR {
  private readonly bcryptCost: number;
  /** Compared against for an unknown username, at the same cost, so timing does not reveal which usernames exist. */
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly db: MovrDatabase,
    options: MovrOptions = {},
  ) {
    this.bcryptCost = options.bcryptCost ?? DEFAULT_BCRYPT_COST;
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
    return this.run((tx) => txn.addUser(tx, input, passwordHash));
  }

  /** The user whose username and password these are; undefined for an unknown user and a wrong password alike. */
  async authenticate(username: string, password: string): Promise<User | undefined> {
    const row = await this.read((db) => txn.credentials(db, username));
    this.dummyHash ??= hashPassword('movr-dummy-password', this.bcryptCost);
    const matches = await verifyPassword(password, row?.password_hash ?? (await this.dummyHash));
    return row?.password_hash && matches ? toUser(row) : undefined;
  }

  getUser(ref: UserRef): Promise<User | undefined> {
    return this.read((db) => txn.getUser(db, ref));
  }

  getUsers(city: City): Promise<User[]> {
    return this.read((db) => txn.getUsers(db, city));
  }

  /**
   * Deletes the actor's own account and, in the same transaction, every API token of it; from the commit on, the
   * session store serves none of its sessions.
   */
  async removeUser(actor: UserRef, userId: string): Promise<void> {
    if (actor.id !== userId) throw new ForbiddenError('You can only delete your own account.');
    await this.run(async (tx) => {
      await txn.removeUser(tx, actor);
      await api.deleteUserTokens(tx, actor);
    });
  }

  /** Adds a vehicle in its owner's home city. */
  addVehicle(owner: UserRef, input: NewVehicle): Promise<Vehicle> {
    return this.run((tx) => txn.addVehicle(tx, owner, input));
  }

  /** Vehicles of a city that are not removed, newest first, a page at a time. */
  getVehicles(city: City, page = 1): Promise<Page<Vehicle>> {
    return this.read((db) => txn.getVehicles(db, city, page));
  }

  getOwnedVehicles(owner: UserRef): Promise<Vehicle[]> {
    return this.read((db) => txn.getOwnedVehicles(db, owner));
  }

  /** The actor's own vehicle: ForbiddenError for someone else's, NotFoundError for an unknown or removed one. */
  getOwnVehicle(actor: UserRef, vehicleId: string): Promise<Vehicle> {
    return this.run((tx) => txn.getOwnVehicle(tx, actor, vehicleId));
  }

  /** Marks the owner's vehicle removed, never while it is in use; the owner stays an owner while any remain. */
  async removeVehicle(actor: UserRef, vehicleId: string): Promise<void> {
    await this.run((tx) => txn.removeVehicle(tx, actor, vehicleId));
  }

  /** Two riders racing for one vehicle get one ride between them; a rider who already rides is refused. */
  startRide(rider: UserRef, vehicleId: string, preferredCity: City): Promise<Ride> {
    return this.run((tx) => txn.startRide(tx, rider, vehicleId, preferredCity));
  }

  /** Ends the rider's own active ride and frees the vehicle at `location`. */
  endRide(rider: UserRef, rideId: string, location: string, preferredCity: City): Promise<Ride> {
    return this.run((tx) => txn.endRide(tx, rider, rideId, location, preferredCity));
  }

  /** The rider's own ride: ForbiddenError for someone else's, NotFoundError for an unknown id. */
  getOwnRide(rider: UserRef, rideId: string, preferredCity: City): Promise<Ride> {
    return this.run((tx) => txn.getOwnRide(tx, rider, rideId, preferredCity));
  }

  /** The rider's rides, newest first (the most recent RIDES_SHOWN). */
  getRides(rider: UserRef): Promise<Ride[]> {
    return this.read((db) => txn.getRides(db, rider));
  }

  /** The rider's ride in progress, if any (their users row names it). */
  getActiveRide(rider: UserRef): Promise<Ride | undefined> {
    return this.read((db) => txn.getActiveRide(db, rider));
  }

  /**
   * Runs an action of the JSON API once per Idempotency-Key: the key's claim, the action and its answer commit
   * together, so a repeat (on any instance, at the same moment included) gets the stored answer and acts no more.
   * A refusal rolls the action back; its answer is then stored on its own.
   */
  private async once<T>(once: Once<T>, action: (tx: Tx) => Promise<T>): Promise<Answer> {
    const { key } = once;
    try {
      return await this.run(async (tx) => {
        const prior = key && (await api.claimKey(tx, key));
        if (prior) return { ...prior, repeated: true };
        const answer = once.answer(await action(tx));
        if (key) await api.storeAnswer(tx, key, answer);
        return answer;
      });
    } catch (error) {
      if (!(error instanceof MovrError) || error instanceof api.IdempotencyKeyReusedError) throw error;
      const answer = once.refusal(error);
      return key ? this.run((tx) => api.recordRefusal(tx, key, answer)) : answer;
    }
  }

  /** The answer stored under an Idempotency-Key, if any; the key used for another request is refused (422). */
  storedAnswer(key: KeyLookup): Promise<Answer | undefined> {
    return this.read((db) => api.storedAnswer(db, key));
  }

  /** Signs a rider up and gives them an API token. */
  async signUp(input: NewUser, once: Once<{ user: User; token: IssuedToken }>): Promise<Answer> {
    // A repeat of a sign-up already answered gets that answer without paying for a hash.
    const { key } = once;
    const answered = key && (await this.storedAnswer(key));
    if (answered) return { ...answered, repeated: true };
    const passwordHash = await hashPassword(input.password, this.bcryptCost);
    const token = newToken(input.city);
    return this.once(once, async (tx) => {
      const user = await txn.addUser(tx, input, passwordHash);
      await api.insertToken(tx, user, token.hash, token.expiresAt);
      return { user, token };
    });
  }

  /** An API token for a user who has just proved their password (authenticate). */
  grantToken(user: User, once: Once<{ user: User; token: IssuedToken }>): Promise<Answer> {
    const token = newToken(user.city);
    return this.once(once, async (tx) => {
      await txn.assertAccount(tx, user);
      await api.insertToken(tx, user, token.hash, token.expiresAt);
      return { user, token };
    });
  }

  /** The user of a live token whose account exists; undefined for anything else. */
  async tokenUser(token: string): Promise<User | undefined> {
    const parsed = parseToken(token);
    return parsed && this.read((db) => api.tokenUser(db, parsed.city, parsed.hash));
  }

  /** Revokes the token, on every instance at once (each reads it at every request). */
  async revokeToken(token: string): Promise<void> {
    const parsed = parseToken(token);
    if (parsed) await this.read((db) => api.deleteToken(db, parsed.city, parsed.hash));
  }

  addVehicleOnce(owner: UserRef, input: NewVehicle, once: Once<Vehicle>): Promise<Answer> {
    return this.once(once, (tx) => txn.addVehicle(tx, owner, input));
  }

  startRideOnce(rider: UserRef, vehicleId: string, preferredCity: City, once: Once<Ride>): Promise<Answer> {
    return this.once(once, (tx) => txn.startRide(tx, rider, vehicleId, preferredCity));
  }

  endRideOnce(rider: UserRef, rideId: string, location: string, preferredCity: City, once: Once<Ride>): Promise<Answer> {
    return this.once(once, (tx) => txn.endRide(tx, rider, rideId, location, preferredCity));
  }

  /** Vehicles of a city that are not removed, newest first, `limit` after the vehicle `after`. */
  getVehiclesAfter(city: City, after: string | undefined, limit: number): Promise<Slice<Vehicle>> {
    return this.read((db) => api.getVehiclesAfter(db, city, after, limit));
  }

  /** The rider's rides, newest first, `limit` after the ride `after`. */
  getRidesAfter(rider: UserRef, after: { city: City; id: string } | undefined, limit: number): Promise<Slice<Ride>> {
    return this.read((db) => api.getRidesAfter(db, rider, after, limit));
  }
}
