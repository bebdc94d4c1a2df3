import type { Request } from 'express';
import session from 'express-session';
import { type Kysely, sql } from 'kysely';
import type { MovrDatabase } from '../db/database.js';
import { prepare } from '../db/prepared.js';
import type { Database } from '../db/schema.js';
import { runStatement } from '../db/transaction.js';
import type { Ride } from '../movr/models.js';
import { RIDE_COLUMNS } from '../movr/transactions.js';
import type { City } from '../regions.js';

declare global {
  namespace Express {
    interface Request {
      /** The rider's ride in progress (null: none) as the session read found it; undefined when not read. */
      rideInProgress?: Ride | null;
    }
  }
}

type Callback = (error?: unknown, value?: session.SessionData | null) => void;

/** Rides along with a loaded session to createSession, which puts it on the request; a symbol, so never saved. */
const RIDE_IN_PROGRESS = Symbol('ride in progress');
type LoadedSession = session.SessionData & { [RIDE_IN_PROGRESS]?: Ride | null };

/** The read of every request with a session cookie, compiled once (db/prepared.ts): the session of a live account. */
const sessionQuery = (db: Kysely<Database>, sid: never) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', (join) => join.onRef('users.city', '=', 'sessions.user_city').onRef('users.id', '=', 'sessions.user_id'))
    .where('sessions.sid', '=', sid)
    .where('sessions.revoked', '=', false)
    .where('sessions.expire', '>', sql<Date>`now()`)
    .where('users.username', 'is not', null);

const readSession = prepare(['sid'], (db, { sid }) => sessionQuery(db, sid).select('sessions.sess'));

/**
 * A GET's read (it renders a page) also brings the rider's ride in progress for the riding bar that every logged-in
 * page shows (web/active-ride.ts): one indexed lookup more (rides_one_active_per_rider_idx, at most one row)
 * instead of a statement and a round trip more per page. Other requests do without: on the multi-region layout
 * that lookup reaches every region for a rider who is not riding.
 */
const readSessionAndRide = prepare(['sid'], (db, { sid }) =>
  sessionQuery(db, sid)
    .leftJoin('rides', (join) => join.onRef('rides.rider_city', '=', 'users.city').onRef('rides.rider_id', '=', 'users.id').on('rides.end_time', 'is', null))
    .leftJoin('vehicles', (join) => join.onRef('vehicles.city', '=', 'rides.city').onRef('vehicles.id', '=', 'rides.vehicle_id'))
    .select(['sessions.sess', ...RIDE_COLUMNS]),
);

/**
 * Sessions in the database, shared by every instance. Written by hand because revocation must hold for a fleet,
 * which connect-pg-simple's unconditional upsert cannot promise:
 * - only a logged-in session is ever stored (anonymous visitors write nothing);
 * - ending a session leaves a revoked tombstone until it expires, and a save never updates a revoked row, so a
 *   request that loaded the session before log-out cannot write it back afterwards;
 * - a read checks, in the same statement, that the account still exists, so a deleted user's sessions end at once.
 */
export class DatabaseSessionStore extends session.Store {
  /**
   * Whether the next get() also reads the ride in progress: set by web/session.ts just before express-session,
   * which calls get() synchronously, loads a GET's session. Only what a read costs depends on it, never what a
   * page shows: without the ride, the riding bar reads it itself.
   */
  rideWithNextRead = false;

  constructor(private readonly db: MovrDatabase) {
    super();
  }

  override get(sid: string, callback: Callback): void {
    const withRide = this.rideWithNextRead;
    this.rideWithNextRead = false;
    settle(callback, async () => {
      if (!withRide) {
        const [row] = await runStatement(this.db, (db) => readSession(db, { sid }));
        return row ? parseSession(row.sess) : null;
      }
      const [row] = await runStatement(this.db, (db) => readSessionAndRide(db, { sid }));
      if (!row) return null;
      const { sess, ...ride } = row;
      const loaded = parseSession(sess);
      loaded[RIDE_IN_PROGRESS] = ride.id === null ? null : (ride as Ride);
      return loaded;
    });
  }

  /** express-session's, for a session this store loaded: also hands the ride in progress read with it to the request. */
  override createSession(req: Request, sess: session.SessionData): session.Session & session.SessionData {
    req.rideInProgress = (sess as LoadedSession)[RIDE_IN_PROGRESS];
    return super.createSession(req, sess);
  }

  override set(sid: string, sess: session.SessionData, callback?: Callback): void {
    settle(callback, async () => {
      const user = sess.passport?.user;
      if (!user) return; // nobody logged in: nothing worth a row
      const expire = sess.cookie.expires ? new Date(sess.cookie.expires) : new Date(Date.now() + 86_400_000);
      await runStatement(this.db, (db) =>
        db
          .insertInto('sessions')
          // Typed timestamptz: the column is a plain timestamp, which would ignore a zone written in the text.
          .values({ sid, sess: JSON.stringify(sess), expire: sql<Date>`${expire.toISOString()}::timestamptz`, user_city: user.city, user_id: user.id })
          .onConflict((conflict) =>
            conflict
              .column('sid')
              .doUpdateSet({ sess: sql`excluded.sess`, expire: sql`excluded.expire` })
              // A revoked session stays revoked, and a sid never changes hands.
              .where('sessions.revoked', '=', false)
              .whereRef('sessions.user_id', '=', 'excluded.user_id'),
          )
          .execute(),
      );
    });
  }

  /**
   * Ends every session of a user, on every instance: one indexed statement (sessions_user_idx). Run after the
   * account's deletion commits, which already ended them for reads; the tombstones stop in-flight saves, and a
   * statement of its own never makes the deletion conflict with those sessions' saves.
   */
  async revokeUser(user: { city: City; id: string }): Promise<void> {
    await runStatement(this.db, (db) =>
      db
        .updateTable('sessions')
        .set({ revoked: true, sess: '{}' })
        .where('user_city', '=', user.city)
        .where('user_id', '=', user.id)
        .where('revoked', '=', false)
        .execute(),
    );
  }

  override destroy(sid: string, callback?: Callback): void {
    settle(callback, () =>
      runStatement(this.db, (db) => db.updateTable('sessions').set({ revoked: true, sess: '{}' }).where('sid', '=', sid).execute()),
    );
  }
}

/** Deletes expired sessions, tombstones included. */
export async function pruneSessions(db: MovrDatabase): Promise<void> {
  await runStatement(db, (k) => k.deleteFrom('sessions').where('expire', '<', sql<Date>`now()`).execute());
}

const parseSession = (sess: unknown) => (typeof sess === 'string' ? JSON.parse(sess) : sess) as LoadedSession;

function settle<T>(callback: Callback | undefined, work: () => Promise<T>): void {
  work().then(
    (value) => callback?.(null, (value ?? null) as session.SessionData | null),
    (error: unknown) => callback?.(error),
  );
}
