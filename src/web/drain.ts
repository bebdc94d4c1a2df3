import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Lifecycle } from '../app.js';

/** From the signal until the listener closes: the load balancer sees /readyz fail and stops sending here. */
export const GRACE_MS = 3_000;
/** After the grace, requests in flight get this long to finish before their connections are cut. */
const FINISH_MS = 5_000;

/**
 * Shuts an HTTP server down for a rolling update: /readyz answers 503 and every response carries
 * `Connection: close` (app.ts reads `lifecycle.draining`); idle keep-alive sockets are closed at once and as
 * they become idle; after the grace no new connection is accepted, and every request already received is
 * answered before the connections close. Only a request still running FINISH_MS later is cut off.
 */
export async function drainServer(server: Server, lifecycle: Lifecycle, logger: Logger): Promise<void> {
  lifecycle.draining = true;
  server.closeIdleConnections();
  const sweeper = setInterval(() => server.closeIdleConnections(), 200);
  try {
    await sleep(GRACE_MS);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const finished = await Promise.race([closed.then(() => true), sleep(FINISH_MS).then(() => false)]);
    if (!finished) {
      logger.warn('requests still running after the drain; closing their connections');
      server.closeAllConnections();
    }
  } finally {
    clearInterval(sweeper);
  }
}
