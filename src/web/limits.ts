import { isIPv6 } from 'node:net';
import type { Request, RequestHandler } from 'express';
import { ipKeyGenerator, type RateLimitInfo, rateLimit } from 'express-rate-limit';
import type { MovrDatabase } from '../db/database.js';
import { DatabaseRateLimitStore } from '../db/rate-limit-store.js';
import { HttpError } from './middleware/errors.js';
import { hashTurn } from './password-work.js';

export interface RateLimits {
  /** Failed log-ins allowed per username and client in the window. */
  failedLogins: number;
  /**
   * Failed password attempts (log-ins and sign-ups) allowed per client across all usernames in the window: five
   * riders of one NAT can each use up their username's limit before it binds, and a flood of guesses gets no more.
   */
  failedLoginsPerClient: number;
  /** The same per IPv6 /48 (a site): many /64s of one site cannot multiply the per-client budget without bound. */
  failedLoginsPerSite: number;
  /** Accounts a client may create in the window. */
  registrations: number;
  windowMs: number;
  /** Requests that may wait for the hash in progress: with bcrypt at cost 12 (~0.3 s), a waiting log-in is done within about 1 s. */
  hashWaiting: number;
  /** A request still waiting after this is answered 503 rather than hashed late; only a machine short of CPU gets there. */
  hashMaxWaitMs: number;
  /** Hashes running or waiting per client: one, so a client's flood queues nothing but its own single request. */
  hashesPerClient: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  failedLogins: 10,
  failedLoginsPerClient: 50,
  failedLoginsPerSite: 200,
  registrations: 10,
  windowMs: 15 * 60 * 1000,
  hashWaiting: 2,
  hashMaxWaitMs: 5_000,
  hashesPerClient: 1,
};

export interface Limiters {
  /**
   * Every request that may cost a password hash (log-in, sign-up, API tokens), first on its route: counted per client
   * and per IPv6 site before any work, given back only when it succeeds (status below 400), never because the
   * client hung up. Invalid forms count too; a client whose hash is already under way is refused (503) before.
   */
  passwordBudget: RequestHandler[];
  /** Per username and client, then the hash's turn; needs res.locals.username. */
  failedLogins: RequestHandler[];
  /** Accounts created per client, counted before the hash, given back when none was made (422, 503); then the hash's turn. */
  registrations: RequestHandler[];
}

/** A client is an IPv4 address or an IPv6 /64, the usual allocation to one subscriber. */
const client = (req: Request) => ipKeyGenerator(req.ip ?? '', 64);
const site = (req: Request) => ipKeyGenerator(req.ip ?? '', 48);

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The per-client password budget's count, which ranks the request for its hash. */
      passwordBudget?: RateLimitInfo;
    }
  }
}

/** The limits live in the database, so they hold across every instance and restart. */
export function createLimiters(db: MovrDatabase, limits: RateLimits): Limiters {
  const common = { windowMs: limits.windowMs, standardHeaders: 'draft-8', legacyHeaders: false } as const;
  const tooManyLogins: RequestHandler = (_req, _res, next) => next(new HttpError(429, 'Too many failed log-ins. Wait a few minutes, then try again.'));
  // Given back on 'finish' alone (express-rate-limit's skipSuccessfulRequests); a hang-up never finishes.
  const failuresOnly = { skipSuccessfulRequests: true } as const;
  const { precheck, turn } = hashTurn({
    waiting: limits.hashWaiting,
    maxWaitMs: limits.hashMaxWaitMs,
    perClient: limits.hashesPerClient,
    client,
    rank: (req) => req.passwordBudget?.used ?? 0,
  });
  return {
    passwordBudget: [
      precheck,
      rateLimit({
        ...common,
        ...failuresOnly,
        limit: limits.failedLoginsPerSite,
        skip: (req) => !isIPv6(req.ip ?? ''),
        store: new DatabaseRateLimitStore(db, 'password-site:'),
        keyGenerator: site,
        handler: tooManyLogins,
      }),
      rateLimit({
        ...common,
        ...failuresOnly,
        limit: limits.failedLoginsPerClient,
        requestPropertyName: 'passwordBudget',
        store: new DatabaseRateLimitStore(db, 'login-client:'),
        keyGenerator: client,
        handler: tooManyLogins,
      }),
    ],
    failedLogins: [
      rateLimit({
        ...common,
        ...failuresOnly,
        limit: limits.failedLogins,
        store: new DatabaseRateLimitStore(db, 'login:'),
        keyGenerator: (req, res) => `${client(req)}|${String(res.locals.username)}`,
        handler: tooManyLogins,
      }),
      turn,
    ],
    registrations: [
      rateLimit({
        ...common,
        limit: limits.registrations,
        skipSuccessfulRequests: true,
        // "Successful" here means no account was made: refused after the hash, never hashed, or an API sign-up's
        // answer given again for its repeated Idempotency-Key.
        requestWasSuccessful: (_req, res) => res.statusCode === 422 || res.statusCode === 503 || res.locals.answeredAgain === true,
        store: new DatabaseRateLimitStore(db, 'signup:'),
        keyGenerator: client,
        handler: (_req, _res, next) => next(new HttpError(429, 'Too many sign-ups from your network. Try again later.')),
      }),
      turn,
    ],
  };
}
