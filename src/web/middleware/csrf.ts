import { doubleCsrf } from 'csrf-csrf';
import type { Config } from '../../config.js';

/**
 * Double-submit cookie: the log-in and sign-up forms are protected without a stored session. A logged-in
 * rider's token is bound to their session id, so it dies with the session.
 */
export function csrf(config: Pick<Config, 'secretKey' | 'isProduction'>) {
  return doubleCsrf({
    getSecret: () => config.secretKey,
    getSessionIdentifier: (req) => (req.session?.passport?.user ? req.sessionID : ''),
    cookieName: config.isProduction ? '__Host-movr.csrf' : 'movr.csrf',
    cookieOptions: { sameSite: 'strict', secure: config.isProduction, httpOnly: true, path: '/' },
    getCsrfTokenFromRequest: (req) => (typeof req.body?._csrf === 'string' ? req.body._csrf : undefined),
  });
}
