import express from 'express';
import type { MovrDatabase, PingResult } from '../../db/database.js';
import type { Lifecycle } from '../middleware/drain.js';

const PING_TIMEOUT_MS = 2000;

/** /readyz's answer to each outcome of the database check: a 503 says which, for the operator. */
const READINESS: Record<PingResult, string> = {
  ok: 'ready',
  failed: 'database unavailable: the query failed',
  'no answer': `database unavailable: no answer within ${PING_TIMEOUT_MS} ms`,
};

/** `/healthz` and `/readyz`; `/metrics` has its own port (server.ts), never the riders'. */
export function healthRouter(db: Pick<MovrDatabase, 'ping'>, lifecycle: Readonly<Lifecycle>): express.Router {
  const router = express.Router();

  router.get('/healthz', (_req, res) => {
    res.type('text').send('ok');
  });

  router.get('/readyz', async (_req, res) => {
    // Draining: the load balancer must stop sending new requests here before the listener closes.
    const state = lifecycle.draining ? 'shutting down' : READINESS[await db.ping(PING_TIMEOUT_MS)];
    res.status(state === READINESS.ok ? 200 : 503).type('text').send(state);
  });

  return router;
}
