import session from 'express-session';
import { sql } from 'kysely';
import type { City } from '../regions.js';
import type { MovrDatabase } from './database.js';
import { prepare } from './prepared.js';
import { runStatement } from './transaction.js';

declare module 'express-session' {
  interface SessionData {
    /** A city the rider chose with POST /city/:city. */
    chosenCity?: string;
    /** When the web layer last moved the stored expiry forward (ms since the epoch). */
    renewedAt?: number;
    /** passport's: the logged-in user, whose account the store checks on every read. */
    passport?: { user?: { id: string; city: City } };
  }
}

type Callback = (error?: unknown, value?: session.SessionData | null) => void;

/** The read of every request with a session cookie, compiled once (db/prepared.ts): the session of a live account. */
const readSession = prepare(['sid'], (db, { sid }) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', (join) => join.onRef('users.city', '=', 'sessions.user_city').onRef('users.id', '=', 'sessions.user_id'))
    .where('sessions.sid', '=', sid)
    .where('sessions.revoked', '=', false)
    .where('sessions.expire', '>', sql<Date>`now()`)
    .where('users.username', 'is not', null)
    .select('sessions.sess'),
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
  constructor(private readonly db: MovrDatabase) {
    super();
  }

  override get(sid: string, callback: Callback): void {
    settle(callback, async () => {
      const [row] = await runStatement(this.db, (db) => readSession(db, { sid }));
      return row ? parseSession(row.sess) : null;
    });
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

const parseSession = (sess: unknown) => (typeof sess === 'string' ? JSON.parse(sess) : sess) as session.SessionData;

function settle<T>(callback: Callback | undefined, work: () => Promise<T>): void {
  work().then(
    (value) => callback?.(null, (value ?? null) as session.SessionData | null),
    (error: unknown) => callback?.(error),
  );
}
