import type { Server } from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { NextFunction, Request, Response } from 'express';
import onHeaders from 'on-headers';

/** What the server tells the app about its own life: from a shutdown signal on, `draining` is true. */
export interface Lifecycle {
  draining: boolean;
}

/**
 * Draining for a rolling update: each connection serves this response and closes, so clients move on. Decided
 * as the head is written, so a request already running when the signal came closes too.
 */
export function closeWhileDraining(lifecycle: Lifecycle) {
  return (_req: Request, res: Response, next: NextFunction): void => {
    onHeaders(res, () => lifecycle.draining && res.setHeader('Connection', 'close'));
    next();
  };
}

/** From the signal until the listener closes: the load balancer sees /readyz fail and stops sending here. */
export const GRACE_MS = 3_000;
/** A connection accepted just before the listener closed has sent its request by then. */
const SETTLE_MS = 300;
/** After the grace, requests in flight get this long to finish before their connections are cut. */
const FINISH_MS = 5_000;

/**
 * Shuts an HTTP server down for a rolling update: from the signal /readyz answers 503 and every response carries
 * `Connection: close` (closeWhileDraining above), so each busy keep-alive connection ends after its next
 * answer; after the grace no new connection is accepted and idle ones are closed (closing an idle socket earlier
 * could drop a request already on the wire); every request received is answered before its connection closes.
 * Only a request still running FINISH_MS later is cut off.
 */
export async function drainServer(server: Server, lifecycle: Lifecycle, logger: Logger, graceMs = GRACE_MS): Promise<void> {
  lifecycle.draining = true;
  await sleep(graceMs);
  // net's close, not http's: http's would also drop every idle connection at once, including one accepted a moment
  // ago whose request is still on the wire. Idle ones are swept just after, as they become idle.
  const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()));
  await sleep(SETTLE_MS);
  server.closeIdleConnections();
  const sweeper = setInterval(() => server.closeIdleConnections(), 100);
  try {
    const finished = await Promise.race([closed.then(() => true), sleep(FINISH_MS).then(() => false)]);
    if (!finished) {
      logger.warn('requests still running after the drain; closing their connections');
      server.closeAllConnections();
    }
  } finally {
    clearInterval(sweeper);
  }
}
