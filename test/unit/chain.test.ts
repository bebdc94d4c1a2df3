import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { chain } from '../../src/web/chain.js';

/** An app whose one chain runs `steps`, then a route that answers with what they recorded. */
function appWith(...steps: Parameters<typeof chain>) {
  const app = express();
  app.use((_req, res, next) => {
    res.locals.seen = [];
    next();
  });
  app.use(chain(...steps));
  app.get('/', (_req, res) => res.send((res.locals.seen as string[]).join(',')));
  app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => res.status(418).send(`${error.message}; ${(res.locals.seen as string[]).join(',')}`));
  return app;
}

const step = (name: string) => (_req: Request, res: Response, next: NextFunction) => {
  (res.locals.seen as string[]).push(name);
  next();
};

describe('a chain of middleware', () => {
  test('when each step calls next, then they run in order (arrays flattened) and the routes after them', async () => {
    const response = await request(appWith(step('a'), [step('b'), step('c')], step('d'))).get('/');
    assert.equal(response.status, 200);
    assert.equal(response.text, 'a,b,c,d');
  });

  test('when a step passes an error, throws or rejects, then the error handler gets it and no later step runs', async () => {
    const failures = {
      passed: (_req: Request, _res: Response, next: NextFunction) => next(new Error('passed')),
      thrown: () => {
        throw new Error('thrown');
      },
      rejected: async () => {
        await Promise.resolve();
        throw new Error('rejected');
      },
    };
    for (const [name, failing] of Object.entries(failures)) {
      const response = await request(appWith(step('a'), failing, step('never'))).get('/');
      assert.equal(response.status, 418, name);
      assert.equal(response.text, `${name}; a`);
    }
  });

  test('when a step answers without calling next, then nothing after it runs', async () => {
    const answering = (_req: Request, res: Response) => void res.send('answered');
    const response = await request(appWith(step('a'), answering, step('never'))).get('/');
    assert.equal(response.text, 'answered');
  });
});
