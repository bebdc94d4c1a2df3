import { type Request, type RequestHandler, type Response, Router } from 'express';
import type passport from 'passport';
import type { MovR } from '../../movr/movr.js';
import { UsernameTakenError } from '../../movr/errors.js';
import { LOGIN_FAILED, requireLogin, type SessionUser } from '../auth.js';
import { flash } from '../flash.js';
import { type FieldErrors, loginForm, parseForm, registerForm } from '../forms.js';

export interface AuthRouteOptions {
  movr: MovR;
  passport: passport.Authenticator;
  loginLimiter: RequestHandler;
  registerLimiter: RequestHandler;
}

function renderLogin(res: Response, status: number, errors: FieldErrors = {}, values: Record<string, string> = {}) {
  res.status(status).render('login', { title: 'Log in', errors, values });
}

function renderRegister(res: Response, status: number, errors: FieldErrors = {}, values: Record<string, string> = {}) {
  res.status(status).render('register', { title: 'Sign up', errors, values });
}

/** passport.authenticate as a promise: the verified user, or false with passport's message. */
function authenticateLocal(instance: passport.Authenticator, req: Request, res: Response): Promise<SessionUser | false> {
  return new Promise((resolve, reject) => {
    instance.authenticate('local', { session: false }, (error: unknown, user: SessionUser | false) =>
      error ? reject(error) : resolve(user),
    )(req, res, reject);
  });
}

export function authRoutes({ movr, passport, loginLimiter, registerLimiter }: AuthRouteOptions): Router {
  const router = Router();

  router.get('/', (req, res) => res.redirect(303, req.user ? '/vehicles' : '/login'));

  router.get('/login', (req, res) => (req.user ? res.redirect(303, '/vehicles') : renderLogin(res, 200)));

  router.post('/login', loginLimiter, async (req, res) => {
    if (req.user) return res.redirect(303, '/vehicles');
    const form = parseForm(loginForm, req.body);
    if (!form.ok) return renderLogin(res, 422, form.errors, form.values);
    // passport-local reads req.body: hand it the parsed form only.
    req.body = form.value;
    const user = await authenticateLocal(passport, req, res);
    // One status and one message whether the username is unknown or the password wrong.
    if (!user) return renderLogin(res, 401, { form: LOGIN_FAILED }, { username: form.value.username });
    // passport ≥0.6 regenerates the session here, so a session id fixed before login is worthless.
    await new Promise<void>((resolve, reject) => req.login(user, (error) => (error ? reject(error) : resolve())));
    res.redirect(303, '/vehicles');
  });

  router.post('/logout', requireLogin, async (req, res) => {
    // passport ≥0.6 regenerates the session on logout: the old id is worthless from here on.
    await new Promise<void>((resolve, reject) => req.logout((error) => (error ? reject(error) : resolve())));
    flash(req, 'info', 'You are logged out.');
    res.redirect(303, '/login');
  });

  router.get('/register', (_req, res) => renderRegister(res, 200));

  router.post('/register', registerLimiter, async (req, res) => {
    const form = parseForm(registerForm, req.body);
    if (!form.ok) return renderRegister(res, 422, form.errors, form.values);
    const { city, first_name, last_name, email, username, password } = form.value;
    try {
      await movr.addUser({ city, firstName: first_name, lastName: last_name, email, username, password });
    } catch (error) {
      if (!(error instanceof UsernameTakenError)) throw error;
      const { password: _omitted, ...values } = form.value;
      return renderRegister(res, 422, { username: error.message }, values);
    }
    flash(req, 'success', `Welcome to MovR, ${first_name}! Log in to start riding.`);
    res.redirect(303, '/login');
  });

  return router;
}
