import express, { type NextFunction, type Request, type Response } from 'express';
import type passport from 'passport';
import { UsernameTakenError } from '../../movr/errors.js';
import type { MovR } from '../../movr/movr.js';
import { flash } from '../flash.js';
import { type FieldErrors, loginForm, parseForm, registerForm } from '../forms.js';
import type { Limiters } from '../limits.js';
import { LOGIN_FAILED, requireLogin, type SessionUser, toSessionUser } from '../middleware/passport.js';
import { SESSION_COOKIE } from '../middleware/session.js';

export interface AuthRouterOptions {
  movr: MovR;
  passport: passport.Authenticator;
  limiters: Limiters;
}

function renderLogin(res: Response, status: number, errors: FieldErrors = {}, values: Record<string, string> = {}) {
  res.status(status).render('login', { title: 'Log in', errors, values });
}

function renderRegister(res: Response, status: number, errors: FieldErrors = {}, values: Record<string, string> = {}) {
  res.status(status).render('register', { title: 'Sign up', errors, values });
}

/** passport ≥0.6 regenerates the session here: a session id fixed before log-in is worthless after it. */
const logIn = (req: Request, user: SessionUser) =>
  new Promise<void>((resolve, reject) => req.login(user, (error) => (error ? reject(error) : resolve())));

/** Validates the log-in form before it is counted per username or hashed; that limiter counts by the parsed username. */
function parseLogin(req: Request, res: Response, next: NextFunction) {
  if (req.user) return res.redirect(303, '/vehicles');
  const form = parseForm(loginForm, req.body);
  if (!form.ok) return renderLogin(res, 422, form.errors, form.values);
  res.locals.username = form.value.username;
  next();
}

/** Validates the sign-up form (counted in the password budget already) before the sign-up limiter and the hash. */
function parseRegistration(req: Request, res: Response, next: NextFunction) {
  const form = parseForm(registerForm, req.body);
  if (!form.ok) return renderRegister(res, 422, form.errors, form.values);
  res.locals.registration = form.value;
  next();
}

/** `/`, log in, log out and sign up. */
export function authRouter({ movr, passport, limiters }: AuthRouterOptions): express.Router {
  const router = express.Router();

  router.get('/', (req, res) => res.redirect(303, req.user ? '/vehicles' : '/login'));

  router.get('/login', (req, res) => (req.user ? res.redirect(303, '/vehicles') : renderLogin(res, 200)));

  router.post('/login', ...limiters.passwordBudget, parseLogin, ...limiters.failedLogins, (req, res, next) => {
    passport.authenticate('local', { session: false }, (error: unknown, user: SessionUser | false) => {
      if (error) return next(error);
      // One status and one message whether the username is unknown or the password wrong.
      if (!user) return renderLogin(res, 401, { form: LOGIN_FAILED }, { username: res.locals.username ?? '' });
      logIn(req, user).then(() => res.redirect(303, '/vehicles'), next);
    })(req, res, next);
  });

  router.post('/logout', requireLogin, async (req, res) => {
    // passport saves the session without its user, then regenerates it: the old id is revoked everywhere.
    await new Promise<void>((resolve, reject) => req.logout((error) => (error ? reject(error) : resolve())));
    res.clearCookie(SESSION_COOKIE, { path: '/' });
    flash(req, res, 'info', 'You are logged out.');
    res.redirect(303, '/login');
  });

  router.get('/register', (_req, res) => renderRegister(res, 200));

  router.post('/register', ...limiters.passwordBudget, parseRegistration, ...limiters.registrations, async (req, res) => {
    const form = res.locals.registration;
    if (!form) throw new Error('parseRegistration must run first');
    const { city, first_name, last_name, email, username, password } = form;
    let user;
    try {
      user = await movr.addUser({ city, firstName: first_name, lastName: last_name, email, username, password });
    } catch (error) {
      if (!(error instanceof UsernameTakenError)) throw error;
      return renderRegister(res, 422, { username: error.message }, { city, first_name, last_name, email, username });
    }
    await logIn(req, toSessionUser(user));
    flash(req, res, 'success', `Welcome to MovR, ${first_name}!`);
    res.redirect(303, '/vehicles');
  });

  return router;
}
