import type { NextFunction, Request, Response } from 'express';
import onHeaders from 'on-headers';
import { type DatabaseTally, databaseTally } from '../../db/transaction.js';
import type { Region } from '../../regions.js';

/**
 * `Server-Timing` on every response (https://www.w3.org/TR/server-timing/), for the browser's network panel:
 * time in database transactions, their attempts (more than one means a retry) and the region that served it,
 * e.g. `db;dur=1.8, tx;desc="attempts";dur=1, region;desc="gcp-europe-west1"`.
 */
export function serverTiming(region: Region) {
  return (_req: Request, res: Response, next: NextFunction) => {
    const tally: DatabaseTally = { ms: 0, attempts: 0 };
    // Written as the head goes out, when the request's transactions are done (a page renders after them).
    onHeaders(res, () => res.setHeader('Server-Timing', formatServerTiming(tally, region)));
    databaseTally.run(tally, next);
  };
}

export function formatServerTiming(tally: DatabaseTally, region: Region): string {
  return `db;dur=${tally.ms.toFixed(1)}, tx;desc="attempts";dur=${tally.attempts}, region;desc="${region}"`;
}

/** Reads the serving region back from a Server-Timing header, e.g. for a test or a load balancer's log. */
export function servingRegion(header: string | null | undefined): string | undefined {
  return header?.match(/(?:^|,)\s*region;desc="([^"]+)"/)?.[1];
}
