import connectPgSimple from 'connect-pg-simple';
import session from 'express-session';
import type pg from 'pg';
import type { Config } from '../config.js';
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
  return session({
    name: SESSION_COOKIE,
    secret: config.secretKey,
    store: new PgStore({ pool, tableName: 'sessions', createTableIfMissing: false, pruneSessionInterval: 15 * 60 }),
    resave: false,
    saveUninitialized: false,
    rolling: true,
    // Behind the TLS-terminating load balancer, `trust proxy` lets Express see https and send the cookie.
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.isProduction, maxAge: WEEK_MS },
  });
}
