import type { NextFunction, Request, Response } from 'express';
import passport from 'passport';
import { Strategy as LocalStrategy } from 'passport-local';
import type { User } from '../../movr/models.js';
import type { MovR } from '../../movr/movr.js';
import type { City } from '../../regions.js';
import { loginForm } from '../forms.js';

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
    new LocalStrategy(async (username, password, done) => {
      try {
        // The form's own rules (lower case, no control characters) decide what is looked up.
        const form = loginForm.safeParse({ username, password });
        const user = form.success ? await movr.authenticate(form.data.username, form.data.password) : undefined;
        done(null, user ? toSessionUser(user) : false, user ? undefined : { message: LOGIN_FAILED });
      } catch (error) {
        done(error);
      }
    }),
  );
  // The session store reads a session only while its account exists, so what it holds never outlives the user.
  instance.serializeUser<SessionUser>((user, done) => done(null, toSessionUser(user)));
  instance.deserializeUser<SessionUser>((user, done) => done(null, user));
  return instance;
}

export function toSessionUser(user: Pick<User, 'id' | 'city' | 'username'>): SessionUser {
  return { id: user.id, city: user.city, username: user.username };
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
