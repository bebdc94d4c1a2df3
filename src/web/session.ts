import { setTimeout as sleep } from 'node:timers/promises';
import connectPgSimple from 'connect-pg-simple';
import session from 'express-session';
import type pg from 'pg';
import type { Config } from '../config.js';
import { SQLSTATE, sqlState } from '../db/errors.js';
import { DEFAULT_RETRY, retryDelayMs } from '../db/transaction.js';
import type { FlashMessage } from './flash.js';

declare module 'express-session' {
  interface SessionData {
    /** A city the rider chose with POST /city/:city. */
    chosenCity?: string;
    flash?: FlashMessage[];
  }
}

export const SESSION_COOKIE = 'movr.sid';
const WEEK_MS = 7 * 24 * 3600 * 1000;

/**
 * Sessions live in the database (the `sessions` table our migrations and the CockroachDB files create),
 * so app instances behind one load balancer share them and a restart keeps riders logged in.
 */
export function sessionMiddleware(config: Pick<Config, 'secretKey' | 'isProduction'>, pool: pg.Pool) {
  const PgStore = connectPgSimple(session);
  const store = new PgStore({ pool: sessionStorePool(pool), tableName: 'sessions', createTableIfMissing: false, pruneSessionInterval: 15 * 60 });
  return session({
    name: SESSION_COOKIE,
    secret: config.secretKey,
    store,
    resave: false,
    saveUninitialized: false,
    rolling: true,
    // Behind the TLS-terminating load balancer, `trust proxy` lets Express see https and send the cookie.
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.isProduction, maxAge: WEEK_MS },
  });
}

/**
 * The pool connect-pg-simple queries through (it only ever calls `query(text, params)` on it):
 * - it sends `to_timestamp($n)` with an untyped parameter, which CockroachDB (v22.2+) cannot resolve among its
 *   FLOAT, INT, DECIMAL and STRING overloads; the cast suits PostgreSQL's single to_timestamp(float8) too;
 * - each of its statements is a SERIALIZABLE transaction of its own, which may fail with 40001 under load, and
 *   express-session would then drop the write (a lost log-in or flash). They are idempotent (select, upsert,
 *   touch, delete), so they are run again, with the transactions' backoff.
 */
export function sessionStorePool(pool: pg.Pool): pg.Pool {
  const query = async (text: string, params?: unknown[]) => {
    const typed = castTimestampParams(text);
    for (let attempt = 1; ; attempt++) {
      try {
        return await pool.query(typed, params);
      } catch (error) {
        if (sqlState(error) !== SQLSTATE.serializationFailure || attempt >= DEFAULT_RETRY.maxAttempts) throw error;
        await sleep(retryDelayMs(attempt));
      }
    }
  };
  return { query } as unknown as pg.Pool;
}

export const castTimestampParams = (text: string) => text.replace(/to_timestamp\((\$\d+)\)/g, 'to_timestamp($1::FLOAT8)');
