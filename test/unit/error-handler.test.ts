import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import cookieParser from 'cookie-parser';
import express from 'express';
import session from 'express-session';
import { pino } from 'pino';
import request from 'supertest';
import { TransactionOutcomeUnknownError, TransactionRetryLimitError } from '../../src/db/errors.js';
import { AccountGoneError, ForbiddenError, MovrError, NotFoundError, RefusedError, UsernameTakenError } from '../../src/movr/errors.js';
import { errorHandler, HttpError, RefusedAction, refusedGoesBackTo } from '../../src/web/middleware/errors.js';
import { useViews } from '../../src/web/view-engine.js';

const THROWN: Record<string, () => Error> = {
  movr: () => new MovrError('That is not how MovR works.'),
  notFound: () => new NotFoundError('No such vehicle.'),
  forbidden: () => new ForbiddenError(),
  refused: () => new RefusedError('That vehicle is not available right now.'),
  usernameTaken: () => new UsernameTakenError(),
  accountGone: () => new AccountGoneError(),
  http: () => new HttpError(429, 'Too many failed log-ins.'),
  refusedOnRides: () => new RefusedAction('That ride has already ended.', '/rides'),
  retryLimit: () => new TransactionRetryLimitError(10),
  outcomeUnknown: () => new TransactionOutcomeUnknownError(),
  bug: () => new TypeError('undefined is not a function'),
};

/** Only the error handler, behind as much of the app's stack as a test asks for (the app's own order). */
function appThrowing({ cookies = false, sessions = false } = {}) {
  const app = express();
  useViews(app, { cache: false });
  if (sessions) app.use(session({ secret: 'test-secret-that-is-at-least-32-characters', resave: false, saveUninitialized: false }));
  if (cookies) app.use(cookieParser('test-secret-that-is-at-least-32-characters'));
  app.get('/throw/:kind', (req) => {
    throw THROWN[req.params.kind]!();
  });
  app.use(errorHandler(pino({ level: 'silent' }), { showDetails: false }));
  return app;
}

describe('the error handler', () => {
  test('when one of ours reaches it, then the status it carries and its message; only a bug is a 500', async () => {
    const app = appThrowing();
    const expected = { refusedOnRides: 409, movr: 400, notFound: 404, forbidden: 403, refused: 409, usernameTaken: 422, accountGone: 401, http: 429, retryLimit: 503, outcomeUnknown: 503, bug: 500 };
    for (const [kind, status] of Object.entries(expected)) {
      const response = await request(app).get(`/throw/${kind}`);
      assert.equal(response.status, status, kind);
      if (status < 500) assert.ok(response.text.includes(THROWN[kind]!().message.replaceAll("'", '&#39;')), `${kind} shows its message`);
    }
    assert.ok(!(await request(app).get('/throw/bug')).text.includes('undefined is not a function'), 'a bug’s message is not shown');
  });

  test('when an action is refused, then 303 back with a flash; without the cookie secret a 409 page, never a 500', async () => {
    const refused = await request(appThrowing({ cookies: true })).get('/throw/refused').set('Referer', 'http://127.0.0.1/rides?page=2');
    assert.equal(refused.status, 303);
    assert.equal(refused.headers.location, '/vehicles', 'a Referer from another host is not followed');
    assert.match(String(refused.headers['set-cookie']), /movr\.flash=/);
    assert.equal((await request(appThrowing()).get('/throw/refused')).status, 409);
  });

  test('when a refusal carries the page its form was on, then 303 there with a flash, unless the Referer names one of ours', async () => {
    const app = appThrowing({ cookies: true });
    const back = await request(app).get('/throw/refusedOnRides');
    assert.equal(back.status, 303);
    assert.equal(back.headers.location, '/rides');
    assert.match(String(back.headers['set-cookie']), /movr\.flash=/);
    const referred = await request(app).get('/throw/refusedOnRides').set('Host', 'movr.test').set('Referer', 'http://movr.test/vehicles?page=2');
    assert.equal(referred.headers.location, '/vehicles?page=2');
    assert.equal((await request(app).get('/throw/refusedOnRides').set('Referer', 'https://elsewhere.test/x')).headers.location, '/rides');
  });

  test("when a route's promise is refused by the backend, then refusedGoesBackTo makes it a RefusedAction; anything else passes as it is", async () => {
    const refused = await Promise.reject(THROWN.refused!()).catch(refusedGoesBackTo('/vehicles')).catch((error: unknown) => error);
    assert.ok(refused instanceof RefusedAction);
    assert.equal(refused.redirectTo, '/vehicles');
    assert.equal(refused.message, 'That vehicle is not available right now.');
    const bug = THROWN.bug!();
    assert.equal(await Promise.reject(bug).catch(refusedGoesBackTo('/vehicles')).catch((error: unknown) => error), bug);
  });

  test('when the account is gone, then the session ends and 303 /login; without a session a 401 page', async () => {
    const gone = await request(appThrowing({ cookies: true, sessions: true })).get('/throw/accountGone');
    assert.equal(gone.status, 303);
    assert.equal(gone.headers.location, '/login');
    assert.equal((await request(appThrowing()).get('/throw/accountGone')).status, 401);
  });
});
