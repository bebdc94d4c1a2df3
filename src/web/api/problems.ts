import { STATUS_CODES } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';
import { isDatabaseUnavailable, TransactionOutcomeUnknownError, TransactionRetryLimitError } from '../../db/errors.js';
import { MovrError, UsernameTakenError } from '../../movr/errors.js';
import { IdempotencyKeyReusedError } from '../../movr/movr.js';
import { HttpError } from '../middleware/errors.js';
import type { Problem } from './schemas.js';

/** What an operation answers: a status and a JSON body (a problem from 400 on), or none. */
export interface Reply {
  status: number;
  body?: unknown;
}

export const PROBLEM_TYPE = 'application/problem+json';

/** An RFC 9457 problem of type about:blank: the title is the status's own phrase, the detail says what happened. */
export function problem(status: number, detail: string, errors?: Problem['errors']): Reply {
  const body: Problem = { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail, ...(errors ? { errors } : {}) };
  return { status, body };
}

/** One entry per field, the first message of each, as the forms show them. */
export function fieldErrors(issues: readonly { path: readonly PropertyKey[]; message: string }[], prefix?: string): Problem['errors'] {
  const seen = new Map<string, string>();
  for (const issue of issues) {
    const field = String(issue.path[0] ?? prefix ?? 'body');
    if (!seen.has(field)) seen.set(field, issue.message);
  }
  return [...seen].map(([field, message]) => ({ field, message }));
}

/** A refusal of the backend as a problem: its status is its own (practica's AppError); a 422 names its field. */
export function refusal(error: MovrError): Reply {
  if (error instanceof UsernameTakenError) return problem(422, error.message, [{ field: 'username', message: error.message }]);
  if (error instanceof IdempotencyKeyReusedError) return problem(422, error.message, [{ field: 'Idempotency-Key', message: error.message }]);
  return problem(error.status, error.message);
}

/** Writes a reply, with the headers its status needs. `text` is the body already serialized (a stored answer). */
export function send(res: Response, status: number, text: string | undefined): void {
  if (status === 401) res.set('WWW-Authenticate', 'Bearer realm="movr"');
  if (status === 503 && !res.get('Retry-After')) res.set('Retry-After', '5');
  res.status(status);
  if (text === undefined || status === 204) {
    res.end();
    return;
  }
  res.type(status >= 400 ? PROBLEM_TYPE : 'application/json').send(text);
}

export function sendReply(res: Response, reply: Reply): void {
  send(res, reply.status, reply.body === undefined ? undefined : JSON.stringify(reply.body));
}

/** Any error under /api as a problem: never an HTML page, never a 500 for bad input. */
export function classify(error: unknown): Reply {
  if (error instanceof MovrError) return refusal(error);
  if (error instanceof TransactionRetryLimitError || isDatabaseUnavailable(error)) return problem(503, 'MovR is busy or its database is unreachable. Try again in a moment.');
  if (error instanceof TransactionOutcomeUnknownError) return problem(503, 'Whether that went through is unknown: read your rides before trying again.');
  // The password work's refusal while busy (web/password-work.ts), with its own Retry-After.
  if (error instanceof HttpError && error.status === 503) return problem(503, error.message);
  // body-parser's errors and the limiters' carry a 4xx status and a safe message.
  const { status, statusCode, type, message } = (error ?? {}) as { status?: unknown; statusCode?: unknown; type?: unknown; message?: unknown };
  const httpStatus = typeof status === 'number' ? status : statusCode;
  if (typeof httpStatus === 'number' && httpStatus >= 400 && httpStatus < 500) {
    if (type === 'entity.parse.failed') return problem(400, 'The body is not valid JSON.');
    if (type === 'entity.too.large') return problem(413, 'The body is over 100 kB.');
    if (type === 'encoding.unsupported' || type === 'charset.unsupported') return problem(415, 'Send the body as JSON in UTF-8.');
    return problem(httpStatus, typeof message === 'string' && httpStatus === 429 ? message : (STATUS_CODES[httpStatus] ?? 'Bad request'));
  }
  return problem(500, 'Something went wrong on our side.');
}

export function problemHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const reply = classify(error);
    if (reply.status >= 500 && !(error instanceof HttpError)) (req.log ?? logger).error({ err: error }, 'API request failed');
    sendReply(res, reply);
  };
}
