import { type Kysely, sql } from 'kysely';
import type { MovrDatabase } from '../db/database.js';
import { prepare } from '../db/prepared.js';
import type { Database } from '../db/schema.js';
import { runStatement, type Tx } from '../db/transaction.js';
import { CITIES, type City } from '../regions.js';
import { MovrError } from './errors.js';
import { type Ride, toUser, toVehicle, type User, type UserRef, type Vehicle } from './models.js';
import { cityListing, ridesQuery, USER_COLUMNS, VEHICLE_COLUMNS } from './transactions.js';

/**
 * The JSON API's transaction callbacks (bearer tokens, idempotency keys, listings by cursor), run by MovR like
 * those of transactions.ts: each only touches the database, so running it again is safe.
 */

/** How long a repeated POST gets its first answer back. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

/** An answer as the web layer made it: a status and a body it can send again as is. */
export interface Answer {
  readonly status: number;
  readonly body: string;
  /** Set on the first answer given again to a repeat of its Idempotency-Key: this request acted on nothing. */
  readonly repeated?: true;
}

/** The Idempotency-Key of a request, and where its row lives. */
export interface IdempotencyKey {
  /** `user:<id>`, or `client:<address>` for sign-up and tokens. */
  readonly scope: string;
  readonly key: string;
  /** A keyed hash of the method, path and body. */
  readonly fingerprint: string;
  /** The rider's home city, where the row is kept. */
  readonly city: City;
  /** Every city a row of this scope may be in: a client's sign-ups go to several. */
  readonly cities: readonly City[];
}

/** A key used again, within its 24 hours, for another request. */
export class IdempotencyKeyReusedError extends MovrError {
  override readonly status = 422;

  constructor() {
    super('This Idempotency-Key was already used for a different request.');
  }
}

/**
 * The first answer stored under the key, or undefined after claiming the key for this transaction. The claim is a
 * row written before the action, so that a concurrent request with the same key waits on it and, once this
 * transaction commits, retries (40001) and finds the answer. Rows of the other cities the scope may use are read
 * too: SERIALIZABLE then lets only one of two claims in different cities commit.
 */
export async function claimKey(tx: Tx, claim: IdempotencyKey): Promise<Answer | undefined> {
  const prior = await storedAnswer(tx, claim);
  if (prior) return prior;
  await tx
    .insertInto('idempotency_keys')
    .values({ ...keyRow(claim), status: 0, body: '' })
    .onConflict((conflict) =>
      conflict
        .columns(['city', 'scope', 'key'])
        .doUpdateSet({ fingerprint: claim.fingerprint, status: 0, body: '', expires_at: expiresAt() })
        // Only an expired row is taken over; a live one was found above.
        .where('idempotency_keys.expires_at', '<=', sql<Date>`now()`),
    )
    .execute();
  return undefined;
}

/** A key as a lookup sees it: in any of its scope's cities. */
export type KeyLookup = Omit<IdempotencyKey, 'city'>;

/** The answer stored under the key within its 24 hours, if any; the key used for another request is refused. */
export async function storedAnswer(db: Kysely<Database>, claim: KeyLookup): Promise<Answer | undefined> {
  const prior = await db
    .selectFrom('idempotency_keys')
    .select(['fingerprint', 'status', 'body'])
    .where('city', 'in', claim.cities)
    .where('scope', '=', claim.scope)
    .where('key', '=', claim.key)
    .where('expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
  if (!prior) return undefined;
  if (prior.fingerprint !== claim.fingerprint) throw new IdempotencyKeyReusedError();
  return { status: prior.status, body: prior.body };
}

/** Stores the answer of the action that claimed the key, in its transaction. */
export async function storeAnswer(tx: Tx, claim: IdempotencyKey, answer: Answer): Promise<void> {
  await tx
    .updateTable('idempotency_keys')
    .set({ status: answer.status, body: answer.body })
    .where('city', '=', claim.city)
    .where('scope', '=', claim.scope)
    .where('key', '=', claim.key)
    .execute();
}

/** After a refused action (rolled back): stores its answer, unless another request with the key got in first. */
export async function recordRefusal(tx: Tx, claim: IdempotencyKey, answer: Answer): Promise<Answer> {
  const prior = await claimKey(tx, claim);
  if (prior) return prior;
  await storeAnswer(tx, claim, answer);
  return answer;
}

const keyRow = (claim: IdempotencyKey) => ({
  city: claim.city,
  scope: claim.scope,
  key: claim.key,
  fingerprint: claim.fingerprint,
  expires_at: expiresAt(),
});

const expiresAt = () => sql<Date>`now() + interval '1 millisecond' * ${IDEMPOTENCY_TTL_MS}::INT8`;

export async function insertToken(tx: Tx, user: UserRef, tokenHash: string, expires: Date): Promise<void> {
  await tx.insertInto('api_tokens').values({ city: user.city, token_hash: tokenHash, user_id: user.id, expires_at: expires }).execute();
}

/** Every token of the user, on account deletion: in the deletion's transaction. */
export async function deleteUserTokens(tx: Tx, user: UserRef): Promise<void> {
  await tx.deleteFrom('api_tokens').where('city', '=', user.city).where('user_id', '=', user.id).execute();
}

/** The read of every API request: the token's user, while the token lives and the account exists. */
const userOfToken = prepare(['city', 'hash'], (db, { city, hash }) =>
  db
    .selectFrom('api_tokens')
    .innerJoin('users', (join) => join.onRef('users.city', '=', 'api_tokens.city').onRef('users.id', '=', 'api_tokens.user_id'))
    .select(USER_COLUMNS.map((column) => `users.${column}` as const))
    .where('api_tokens.city', '=', city)
    .where('api_tokens.token_hash', '=', hash)
    .where('api_tokens.expires_at', '>', sql<Date>`now()`)
    .where('users.username', 'is not', null),
);

export async function tokenUser(db: Kysely<Database>, city: City, tokenHash: string): Promise<User | undefined> {
  const [row] = await userOfToken(db, { city, hash: tokenHash });
  return row && toUser(row);
}

export async function deleteToken(db: Kysely<Database>, city: City, tokenHash: string): Promise<void> {
  await db.deleteFrom('api_tokens').where('city', '=', city).where('token_hash', '=', tokenHash).execute();
}

/** A page of a listing, and whether more follow. */
export interface Slice<T> {
  readonly items: T[];
  readonly more: boolean;
}

/** Queries ask for one row more than the page, to tell whether another page follows. */
const slice = <T>(rows: T[], limit: number): Slice<T> => ({ items: rows.slice(0, limit), more: rows.length > limit });

const vehiclesFirst = prepare(['city', 'limit'], (db, { city, limit }) => cityListing(db, city).limit(limit));

// Keyset paging on vehicles_city_newest_idx: after the cursor's vehicle, compared exactly as stored (microseconds).
const vehiclesAfter = prepare(['city', 'after', 'limit'], (db, { city, after, limit }) =>
  cityListing(db, city)
    .where(sql<boolean>`(date_added, id) < (SELECT v.date_added, v.id FROM vehicles v WHERE v.city = ${city} AND v.id = ${after})`)
    .limit(limit),
);

/** Vehicles of a city that are not removed, newest first, `limit` after the vehicle `after`. */
export async function getVehiclesAfter(db: Kysely<Database>, city: City, after: string | undefined, limit: number): Promise<Slice<Vehicle>> {
  const rows = after === undefined ? await vehiclesFirst(db, { city, limit: limit + 1 }) : await vehiclesAfter(db, { city, after, limit: limit + 1 });
  return slice(rows.map(toVehicle), limit);
}

const ridesFirst = prepare(['city', 'id', 'limit'], (db, { city, id, limit }) =>
  ridesQuery(db).where('rides.rider_city', '=', city).where('rides.rider_id', '=', id).orderBy('rides.start_time', 'desc').orderBy('rides.id', 'desc').limit(limit),
);

const ridesAfter = prepare(['city', 'id', 'afterCity', 'after', 'limit'], (db, { city, id, afterCity, after, limit }) =>
  ridesQuery(db)
    .where('rides.rider_city', '=', city)
    .where('rides.rider_id', '=', id)
    .where(
      sql<boolean>`(rides.start_time, rides.id) < (SELECT r.start_time, r.id FROM rides r WHERE r.city = ${afterCity} AND r.id = ${after} AND r.rider_id = ${id})`,
    )
    .orderBy('rides.start_time', 'desc')
    .orderBy('rides.id', 'desc')
    .limit(limit),
);

/** The rider's rides, newest first, `limit` after the ride `after` (its city and id). */
export async function getRidesAfter(db: Kysely<Database>, rider: UserRef, after: { city: City; id: string } | undefined, limit: number): Promise<Slice<Ride>> {
  const rows =
    after === undefined
      ? await ridesFirst(db, { city: rider.city, id: rider.id, limit: limit + 1 })
      : await ridesAfter(db, { city: rider.city, id: rider.id, afterCity: after.city, after: after.id, limit: limit + 1 });
  return slice(rows, limit);
}

/** Deletes expired tokens and idempotency keys (by city, on their expiry indexes), as sessions are pruned. */
export async function pruneApi(db: MovrDatabase): Promise<void> {
  await runStatement(db, (k) => k.deleteFrom('api_tokens').where('city', 'in', CITIES).where('expires_at', '<', sql<Date>`now()`).execute());
  await runStatement(db, (k) => k.deleteFrom('idempotency_keys').where('city', 'in', CITIES).where('expires_at', '<', sql<Date>`now()`).execute());
}
