import type { NextFunction, Request, Response } from 'express';
import session from 'express-session';
import type { Config } from '../config.js';
import type { City } from '../regions.js';
import { DatabaseSessionStore } from './session-store.js';

declare module 'express-session' {
  interface SessionData {
    /** A city the rider chose with POST /city/:city. */
    chosenCity?: string;
    /** When renewSession last moved the stored expiry forward (ms since the epoch). */
    renewedAt?: number;
    /** passport's: the logged-in user (web/auth.ts SessionUser). */
    passport?: { user?: { id: string; city: City } };
  }
}

export const SESSION_COOKIE = 'movr.sid';
const WEEK_MS = 7 * 24 * 3600 * 1000;
/** The stored expiry of a session in use lags the cookie's by at most this. */
export const SESSION_RENEW_AFTER_MS = 3600 * 1000;

/** Sessions in the database (web/session-store.ts), so every instance sees a log-in and a log-out at once. */
export function sessionMiddleware(config: Pick<Config, 'secretKey' | 'isProduction'>, store: DatabaseSessionStore) {
  const handler = session({
    name: SESSION_COOKIE,
    secret: config.secretKey,
    store,
    resave: false,
    saveUninitialized: false,
    // The cookie is sent again only with the stored session (renewSession below), so both slide together.
    rolling: false,
    // Behind the TLS-terminating load balancer, `trust proxy` lets Express see https and send secure cookies.
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.isProduction, maxAge: WEEK_MS },
  });
  const cookiePrefix = `${SESSION_COOKIE}=`;
  // A GET or HEAD without a session cookie has no session to load and (saveUninitialized: false) none to save,
  // yet express-session would make one to throw away: a random id, two hashes, wrapped res.end and writeHead.
  const loadSession = (req: Request, res: Response, next: NextFunction) => {
    const reading = req.method === 'GET' || req.method === 'HEAD';
    if (reading && !req.headers.cookie?.includes(cookiePrefix)) return next();
    // A page's session read also brings the riding bar's ride (web/session-store.ts); express-session calls the
    // store's get() within handler(), synchronously.
    store.rideWithNextRead = reading;
    try {
      handler(req, res, next);
    } finally {
      store.rideWithNextRead = false;
    }
  };
  return [loadSession, renewSession];
}

/**
 * Sessions slide: one ends a week after the rider's last request, give or take SESSION_RENEW_AFTER_MS. Rather
 * than a store write and a signed Set-Cookie per request, the session is saved again, row and cookie with a new
 * week, once it is more than SESSION_RENEW_AFTER_MS old.
 */
function renewSession(req: Request, _res: Response, next: NextFunction): void {
  const expires = req.session?.cookie.expires;
  if (expires instanceof Date && expires.getTime() < Date.now() + WEEK_MS - SESSION_RENEW_AFTER_MS) req.session.renewedAt = Date.now();
  next();
}

/** Ends this request's session everywhere (a revoked tombstone) and tells the browser to forget its cookie. */
export async function endSession(req: Request, res: Response): Promise<void> {
  await new Promise<void>((resolve, reject) => req.session.destroy((error) => (error ? reject(error) : resolve())));
  res.clearCookie(SESSION_COOKIE, { path: '/' });
}

/** Ends every session of the user, on every instance, and this request's. */
export async function endEverySession(req: Request, res: Response, user: { city: City; id: string }): Promise<void> {
  if (!(req.sessionStore instanceof DatabaseSessionStore)) throw new Error('sessions are not in the database');
  await req.sessionStore.revokeUser(user);
  await endSession(req, res);
}
