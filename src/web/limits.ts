import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, rateLimit } from 'express-rate-limit';
import type { MovrDatabase } from '../db/database.js';
import { DatabaseRateLimitStore } from '../db/rate-limit-store.js';
import { HttpError } from './middleware/errors.js';

export interface RateLimits {
  /** Failed log-ins allowed per username and client in the window. */
  failedLogins: number;
  /** Failed log-ins allowed per client across all usernames in the window: bounds floods of guessed usernames. */
  failedLoginsPerClient: number;
  /** Accounts a client may create in the window. */
  registrations: number;
  windowMs: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = { failedLogins: 10, failedLoginsPerClient: 50, registrations: 10, windowMs: 15 * 60 * 1000 };

export interface Limiters {
  /** Per client, then per username and client; counts only refused credentials (401). Needs res.locals.username. */
  failedLogins: RequestHandler[];
  /** Per client; counts only accounts created (303). */
  registrations: RequestHandler;
}

const client = (req: Request) => ipKeyGenerator(req.ip ?? '');

/** The limits live in the database, so they hold across every instance and restart. */
export function createLimiters(db: MovrDatabase, limits: RateLimits): Limiters {
  const common = { windowMs: limits.windowMs, standardHeaders: 'draft-8', legacyHeaders: false } as const;
  const tooManyLogins: RequestHandler = (_req, _res, next) => next(new HttpError(429, 'Too many failed log-ins. Wait a few minutes, then try again.'));
  const onlyRefusedCredentials = { skipSuccessfulRequests: true, requestWasSuccessful: (_req: Request, res: Response) => res.statusCode !== 401 };
  return {
    failedLogins: [
      rateLimit({
        ...common,
        ...onlyRefusedCredentials,
        limit: limits.failedLoginsPerClient,
        store: new DatabaseRateLimitStore(db, 'login-client:'),
        keyGenerator: client,
        handler: tooManyLogins,
      }),
      rateLimit({
        ...common,
        ...onlyRefusedCredentials,
        limit: limits.failedLogins,
        store: new DatabaseRateLimitStore(db, 'login:'),
        keyGenerator: (req, res) => `${client(req)}|${String(res.locals.username)}`,
        handler: tooManyLogins,
      }),
    ],
    registrations: rateLimit({
      ...common,
      limit: limits.registrations,
      skipFailedRequests: true,
      requestWasSuccessful: (_req, res) => res.statusCode === 303 || res.statusCode === 201, // the form's redirect, the API's 201
      store: new DatabaseRateLimitStore(db, 'signup:'),
      keyGenerator: client,
      handler: (_req, _res, next) => next(new HttpError(429, 'Too many sign-ups from your network. Try again later.')),
    }),
  };
}
