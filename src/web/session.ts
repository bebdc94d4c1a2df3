import { setTimeout as sleep } from 'node:timers/promises';
import connectPgSimple from 'connect-pg-simple';
import session from 'express-session';
import type pg from 'pg';
import type { Config } from '../config.js';
import { SQLSTATE, sqlState } from '../db/errors.js';
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
  const store = new PgStore({ pool: retryingSerializationFailures(typedTimestampPool(pool)), tableName: 'sessions', createTableIfMissing: false, pruneSessionInterval: 15 * 60 });
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
 * connect-pg-simple sends `to_timestamp($n)` with an untyped parameter. CockroachDB (v22.2+) overloads
 * to_timestamp for FLOAT, INT, DECIMAL and STRING and cannot choose for an untyped placeholder, so the store's
 * queries go through a pool that types it; PostgreSQL's single to_timestamp(float8) accepts the cast too.
 */
export function typedTimestampPool(pool: pg.Pool): pg.Pool {
  const query = (text: string, params?: unknown[]) => pool.query(castTimestampParams(text), params);
  return new Proxy(pool, { get: (target, key) => (key === 'query' ? query : Reflect.get(target, key)) });
}

export const castTimestampParams = (text: string) => text.replace(/to_timestamp\((\$\d+)\)/g, 'to_timestamp($1::FLOAT8)');

const STORE_RETRY = { attempts: 10, baseDelayMs: 5, maxDelayMs: 400 };

/**
 * The store's statements run outside MovR's transactions, each its own SERIALIZABLE transaction, which
 * PostgreSQL may abort with 40001 under load; express-session would then drop the write (a lost log-in or
 * flash). Each statement is idempotent (select, upsert, touch, delete), so it is simply run again.
 */
function retryingSerializationFailures(pool: pg.Pool): pg.Pool {
  const query = async (text: string, params?: unknown[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await pool.query(text, params);
      } catch (error) {
        if (sqlState(error) !== SQLSTATE.serializationFailure || attempt >= STORE_RETRY.attempts) throw error;
        await sleep(Math.random() * Math.min(STORE_RETRY.maxDelayMs, STORE_RETRY.baseDelayMs * 2 ** (attempt - 1)));
      }
    }
  };
  // connect-pg-simple calls only query(text, params) on a pool it was given (it never ends it).
  return { query } as unknown as pg.Pool;
}
