import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable, TransactionOutcomeUnknownError, TransactionRetryLimitError } from '../../db/errors.js';
import { AccountGoneError, MovrError, RefusedError } from '../../movr/errors.js';
import { flash } from '../flash.js';
import { endSession } from './session.js';

/** An HTTP answer thrown from a route; the central handler renders its page with the message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A refused action with the page its form was on: the rider goes back there with the message as a flash. */
export class RefusedAction extends HttpError {
  constructor(
    message: string,
    readonly redirectTo: string,
  ) {
    super(409, message);
    this.name = 'RefusedAction';
  }
}

/** For a route's `.catch()`: a refusal from the backend goes back to `redirectTo`; anything else passes on. */
export const refusedGoesBackTo =
  (redirectTo: string) =>
  (error: unknown): never => {
    throw error instanceof RefusedError ? new RefusedAction(error.message, redirectTo) : error;
  };

export const notFound = (what = 'That page does not exist.') => new HttpError(404, what);

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Logged out',
  403: 'Not allowed',
  404: 'Not found',
  413: 'Too large',
  409: 'Not possible right now',
  422: 'Check the form',
  429: 'Too many requests',
  500: 'Something went wrong',
  503: 'Temporarily unavailable',
};

/** The page the refused form was on, when the Referer names one of ours; never an absolute URL from outside. */
export function backTo(req: Request, fallback: string): string {
  const referer = req.get('referer');
  if (!referer) return fallback;
  try {
    const url = new URL(referer);
    if (url.host !== req.get('host')) return fallback;
    return url.pathname.startsWith('/') && !url.pathname.startsWith('//') ? url.pathname + url.search : fallback;
  } catch {
    return fallback;
  }
}

interface Classified {
  status: number;
  message: string;
}

function classify(error: unknown): Classified {
  // Ours carry their status and a message meant for the rider.
  if (error instanceof HttpError || error instanceof MovrError) return { status: error.status, message: error.message };
  if (error instanceof TransactionRetryLimitError || isDatabaseUnavailable(error)) {
    return { status: 503, message: 'MovR is busy or its database is unreachable. Please try again in a moment.' };
  }
  if (error instanceof TransactionOutcomeUnknownError) {
    return { status: 503, message: 'We could not confirm whether that went through. Check your rides before trying again.' };
  }
  // body-parser, csrf-csrf and http-errors set a 4xx status with a safe message (413, 400, 403).
  const { status, statusCode, code } = (error ?? {}) as { status?: unknown; statusCode?: unknown; code?: unknown };
  const httpStatus = status ?? statusCode;
  if (typeof httpStatus === 'number' && httpStatus >= 400 && httpStatus < 500) {
    if (code === 'EBADCSRFTOKEN') return { status: 403, message: 'This form has expired or did not come from MovR. Go back, reload the page and try again.' };
    if (httpStatus === 413) return { status: 413, message: 'That request is too large.' };
    return { status: httpStatus, message: TITLES[httpStatus] ?? 'That request could not be handled.' };
  }
  return { status: 500, message: 'Something went wrong on our side.' };
}

/** The one error middleware: every thrown error becomes a status and a page, or a flash and a redirect. */
export function errorHandler(logger: Logger, { showDetails }: { showDetails: boolean }) {
  const renderError = (error: unknown, req: Request, res: Response) => {
    const { status, message } = classify(error);
    // An HttpError is an answer we chose (e.g. 503 while busy hashing), not a failure to log.
    if (status >= 500 && !(error instanceof HttpError)) (req.log ?? logger).error({ err: error }, 'request failed');
    res.status(status);
    if (status === 503 && !res.get('Retry-After')) res.set('Retry-After', '5');
    res.render('error', {
      title: TITLES[status] ?? 'Error',
      status,
      message,
      details: showDetails && status >= 500 && error instanceof Error ? error.stack : undefined,
    });
  };
  return (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    // The flash needs the cookie secret, the log-out a session: without them, their status page instead.
    if ((error instanceof RefusedError || error instanceof RefusedAction) && req.secret) {
      flash(req, res, 'danger', error.message);
      return res.redirect(303, backTo(req, error instanceof RefusedAction ? error.redirectTo : '/vehicles'));
    }
    if (error instanceof AccountGoneError && req.session) {
      // Deleted by another session meanwhile: this one ends too, and nothing was done.
      return endSession(req, res).then(
        () => res.redirect(303, '/login'),
        (failed: unknown) => renderError(failed, req, res),
      );
    }
    renderError(error, req, res);
  };
}
