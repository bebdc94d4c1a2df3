import type { NextFunction, Request, Response } from 'express';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import type { City } from '../regions.js';
import type { MovR } from '../movr/movr.js';
import type { User } from '../movr/models.js';

/** What the session keeps of the logged-in user: enough to act for them without a query per request. */
export interface SessionUser {
  id: string;
  city: City;
  username: string;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface User extends SessionUser {}
  }
}

export const LOGIN_FAILED = 'Incorrect username or password.';

/** A passport instance of the app's own, so several apps (tests) never share strategies. */
export function createPassport(movr: MovR): passport.Authenticator {
  const instance = new passport.Passport();
  instance.use(
    // The route validated the form (web/forms.ts) and left the parsed values in res.locals.login: only those count.
    new LocalStrategy({ passReqToCallback: true }, async (req, _rawUsername, _rawPassword, done) => {
      try {
        const { username, password } = (req.res?.locals.login ?? {}) as { username?: string; password?: string };
        const user = username && password ? await movr.authenticate(username, password) : undefined;
        done(null, user ? toSessionUser(user) : false, user ? undefined : { message: LOGIN_FAILED });
      } catch (error) {
        done(error);
      }
    }),
  );
  // The session store reads a session only while its account exists, so what it holds never outlives the user.
  instance.serializeUser<SessionUser>((user, done) => done(null, toSessionUser(user as SessionUser)));
  instance.deserializeUser<SessionUser>((user, done) => done(null, user));
  return instance;
}

export function toSessionUser(user: Pick<User, 'id' | 'city' | 'username'>): SessionUser {
  return { id: user.id, city: user.city, username: user.username };
}

/**
 * passport.session() where a log-in or log-out may happen; a GET or HEAD only needs req.user, which the session
 * holds as is (deserializeUser above is the identity), without passport's per-request strategy machinery.
 */
export function sessionUser(instance: passport.Authenticator) {
  const full = instance.session();
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return full(req, res, next);
    const user = req.session?.passport?.user;
    if (user) req.user = user as SessionUser;
    next();
  };
}

/** Pages that need a logged-in user: anyone else is sent to log in. */
export function requireLogin(req: Request, res: Response, next: NextFunction): void {
  if (req.user) return next();
  res.redirect(303, '/login');
}

export function currentUser(req: Request): SessionUser {
  if (!req.user) throw new Error('requireLogin must run before currentUser');
  return req.user;
}
