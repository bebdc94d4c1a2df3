import express from 'express';
import type { MovrDatabase } from '../../db/database.js';
import type { Lifecycle } from '../middleware/drain.js';

/** `/healthz` and `/readyz`; `/metrics` has its own port (server.ts), never the riders'. */
export function healthRouter(db: Pick<MovrDatabase, 'ping'>, lifecycle: Readonly<Lifecycle>): express.Router {
  const router = express.Router();

  router.get('/healthz', (_req, res) => {
    res.type('text').send('ok');
  });

  router.get('/readyz', async (_req, res) => {
    // Draining: the load balancer must stop sending new requests here before the listener closes.
    const ready = !lifecycle.draining && (await db.ping(2000));
    res.status(ready ? 200 : 503).type('text').send(ready ? 'ready' : lifecycle.draining ? 'shutting down' : 'database unavailable');
  });

  return router;
}
