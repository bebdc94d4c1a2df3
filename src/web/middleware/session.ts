import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import session from 'express-session';
import type { Config } from '../../config.js';
import { DatabaseSessionStore } from '../../db/session-store.js';
import type { City } from '../../regions.js';

export const SESSION_COOKIE = 'movr.sid';
const WEEK_MS = 7 * 24 * 3600 * 1000;
/** The stored expiry of a session in use lags the cookie's by at most this. */
export const SESSION_RENEW_AFTER_MS = 3600 * 1000;

/** Sessions in the database (db/session-store.ts), so every instance sees a log-in and a log-out at once. */
export function sessionMiddleware(config: Pick<Config, 'secretKey' | 'isProduction'>, store: DatabaseSessionStore) {
  return session({
    name: SESSION_COOKIE,
    secret: config.secretKey,
    store,
    // As its docs show: a UUID (122 random bits) from Node's pooled random source, for every visitor's request.
    genid: () => randomUUID(),
    resave: false,
    // Anonymous visitors get no row: the store writes only logged-in sessions.
    saveUninitialized: false,
    // The cookie is sent again only with the stored session (renewSession below), so both slide together.
    rolling: false,
    // Behind the TLS-terminating load balancer, `trust proxy` lets Express see https and send secure cookies.
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.isProduction, maxAge: WEEK_MS },
  });
}

/**
 * Sessions slide: one ends a week after the rider's last request, give or take SESSION_RENEW_AFTER_MS. Rather
 * than a store write and a signed Set-Cookie per request, the session is saved again, row and cookie with a new
 * week, once it is more than SESSION_RENEW_AFTER_MS old.
 */
export function renewSession(req: Request, _res: Response, next: NextFunction): void {
  const expires = req.session.cookie.expires;
  if (expires instanceof Date && expires.getTime() < Date.now() + WEEK_MS - SESSION_RENEW_AFTER_MS) req.session.renewedAt = Date.now();
  next();
}

/** Saves the session now: a redirect's next page must see what this request changed (expressjs/session#360). */
export function saveSession(req: Request): Promise<void> {
  return new Promise<void>((resolve, reject) => req.session.save((error) => (error ? reject(error) : resolve())));
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
