import { Router } from 'express';
import type { MovrDatabase } from '../../db/database.js';
import type { Metrics } from '../metrics.js';

export function healthRoutes(db: Pick<MovrDatabase, 'ping'>, metrics: Metrics): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.type('text').send('ok');
  });
  router.get('/readyz', async (_req, res) => {
    const ready = await db.ping(2000);
    res.status(ready ? 200 : 503).type('text').send(ready ? 'ready' : 'database unavailable');
  });
  router.get('/metrics', async (req, res) => {
    // For in-cluster scrapers only: whatever came through the load balancer carries X-Forwarded-For.
    if (req.get('x-forwarded-for')) {
      res.status(404).type('text').send('Not found');
      return;
    }
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  return router;
}
