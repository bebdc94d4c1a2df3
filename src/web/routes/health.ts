import express from 'express';
import type { MovrDatabase } from '../../db/database.js';
import type { Lifecycle } from '../middleware/drain.js';

const PING_TIMEOUT_MS = 2000;

/** `/healthz` and `/readyz`; `/metrics` has its own port (server.ts), never the riders'. */
export function healthRouter(db: Pick<MovrDatabase, 'ping'>, lifecycle: Readonly<Lifecycle>): express.Router {
  const router = express.Router();

  router.get('/healthz', (_req, res) => {
    res.type('text').send('ok');
  });

  router.get('/readyz', async (_req, res) => {
    // Draining: the load balancer must stop sending new requests here before the listener closes.
    if (lifecycle.draining) return void res.status(503).type('text').send('shutting down');
    const database = await db.ping(PING_TIMEOUT_MS);
    if (database === 'ok') return void res.type('text').send('ready');
    // Says which, for the operator: a refused connection answers at once, a silent database after the timeout.
    res
      .status(503)
      .type('text')
      .send(database === 'failed' ? 'database unavailable: the query failed' : `database unavailable: no answer within ${PING_TIMEOUT_MS} ms`);
  });

  return router;
}
