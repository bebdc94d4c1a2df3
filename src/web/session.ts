import { setTimeout as sleep } from 'node:timers/promises';
import connectPgSimple from 'connect-pg-simple';
import type { NextFunction, Request, Response } from 'express';
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
    /** When renewSession last moved the stored expiry forward (ms since the epoch). */
    renewedAt?: number;
  }
}

export const SESSION_COOKIE = 'movr.sid';
const WEEK_MS = 7 * 24 * 3600 * 1000;
/** The stored expiry of a session in use lags the cookie's by at most this. */
export const SESSION_RENEW_AFTER_MS = 3600 * 1000;

/**
 * Sessions live in the database (the `sessions` table our migrations and the CockroachDB files create),
 * so app instances behind one load balancer share them and a restart keeps riders logged in.
 */
export function sessionMiddleware(config: Pick<Config, 'secretKey' | 'isProduction'>, pool: pg.Pool) {
  const PgStore = connectPgSimple(session);
  const store = new PgStore({
    pool: sessionStorePool(pool),
    tableName: 'sessions',
    createTableIfMissing: false,
    pruneSessionInterval: 15 * 60,
    // No UPDATE of the row on every request that leaves the session unchanged; renewSession slides it instead.
    disableTouch: true,
  });
  const handler = session({
    name: SESSION_COOKIE,
    secret: config.secretKey,
    store,
    resave: false,
    saveUninitialized: false,
    rolling: true,
    // Behind the TLS-terminating load balancer, `trust proxy` lets Express see https and send the cookie.
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.isProduction, maxAge: WEEK_MS },
  });
  return [handler, renewSession];
}

/**
 * Sessions slide: one ends a week after the rider's last request. express-session would touch the store on
 * every request to move the expiry: an UPDATE and a WAL flush per page view, which under SERIALIZABLE also
 * conflict with each other on the small sessions table and are retried (`npm run bench`: GET /vehicles 2.5
 * times slower). Instead the stored session is saved again once it is more than SESSION_RENEW_AFTER_MS old,
 * by marking it changed; the cookie (rolling) still gets a week from every response, so the store may end a
 * session up to that much before the browser would.
 */
function renewSession(req: Request, _res: Response, next: NextFunction): void {
  const expires = req.session?.cookie.expires;
  if (expires instanceof Date && expires.getTime() < Date.now() + WEEK_MS - SESSION_RENEW_AFTER_MS) req.session.renewedAt = Date.now();
  next();
}

/**
 * The pool connect-pg-simple queries through (it only ever calls `query(text, params)` on it):
 * - it sends `to_timestamp($n)` with an untyped parameter, which CockroachDB (v22.2+) cannot resolve among its
 *   FLOAT, INT, DECIMAL and STRING overloads; the cast suits PostgreSQL's single to_timestamp(float8) too;
 * - each of its statements is a SERIALIZABLE transaction of its own, which may fail with 40001 under load, and
 *   express-session would then drop the write (a lost log-in or flash). They are idempotent (select, upsert,
 *   delete), so they are run again, with the transactions' backoff.
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
