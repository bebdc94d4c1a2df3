import type { Server } from 'node:http';
import type { Router } from 'express';
import pg from 'pg';
import { createApp } from '../src/app.js';
import { loadConfig, withSecretKey } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import type { TransactionStats } from '../src/db/transaction.js';
import { createLogger } from '../src/logger.js';
import { MovR } from '../src/movr/movr.js';
import { currentUser, requireLogin } from '../src/web/auth.js';
import { notFound } from '../src/web/errors.js';
import { uuidParam } from '../src/web/forms.js';
import { currentLocality } from '../src/web/locality.js';

/**
 * The app as src/server.ts builds it, on the bench's database (DB_URI), plus the floor handlers: each runs the
 * same MovR call (so the same SQL in the same transaction) as its page behind the same middleware, then sends
 * a fixed string instead of rendering. Started by scripts/bench.ts as a child process; stops on SIGTERM/SIGINT.
 *
 * Environment: DB_URI, PORT, SECRET_KEY and LOG_LEVEL as for the app; BENCH_POOL_SIZE, the pg pool size.
 */
const FLOOR = '/__bench/floor';

/** What the app sent to the database, counted for the bench, which asks over IPC ('stats'). */
const counts = { statements: 0, transactions: 0, sessionReads: 0, sessionWrites: 0 };
const originalQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0];
  const text = (typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '')).trimStart();
  counts.statements += 1;
  if (/^(start transaction|begin)\b/i.test(text)) counts.transactions += 1;
  else if (/^select sess from "?sessions"?/i.test(text)) counts.sessionReads += 1;
  else if (/^(insert into|update|delete from) "?sessions"?/i.test(text)) counts.sessionWrites += 1;
  return originalQuery.apply(this, args);
} as typeof pg.Client.prototype.query;
let stats: TransactionStats | undefined;
process.on('message', (message) => {
  if (message === 'stats') process.send?.({ ...counts, retries: stats?.retries ?? 0 });
});

function floorRoutes(movr: MovR) {
  return (router: Router) => {
    router.get(`${FLOOR}/login`, (req, res) => {
      if (req.user) return res.redirect(303, '/vehicles');
      res.type('html').send('floor');
    });
    router.get(`${FLOOR}/vehicles`, requireLogin, async (_req, res) => {
      await movr.getVehicles(currentLocality(res).city, 1);
      res.type('html').send('floor');
    });
    // The body is the active ride's id (or '-'), so the bench's start/end cycle can end it.
    router.get(`${FLOOR}/rides`, requireLogin, async (req, res) => {
      const rides = await movr.getRides(currentUser(req));
      res.type('html').send(rides.find((ride) => ride.endTime === null)?.id ?? '-');
    });
    router.post(`${FLOOR}/rides/start/:vehicleId`, requireLogin, async (req, res) => {
      const id = uuidParam.safeParse(req.params.vehicleId);
      if (!id.success) throw notFound();
      res.locals.refusedRedirect = '/vehicles';
      await movr.startRide(currentUser(req), id.data, currentLocality(res).city);
      res.redirect(303, `${FLOOR}/rides`);
    });
    router.post(`${FLOOR}/rides/end/:rideId`, requireLogin, async (req, res) => {
      const id = uuidParam.safeParse(req.params.rideId);
      const location = typeof req.body?.location === 'string' ? req.body.location : '';
      if (!id.success || !location) throw notFound();
      res.locals.refusedRedirect = '/rides';
      await movr.endRide(currentUser(req), id.data, location, currentLocality(res).city);
      res.redirect(303, `${FLOOR}/rides`);
    });
  };
}

async function main() {
  const config = withSecretKey(loadConfig());
  if (!config.dbUri) throw new Error('bench-server needs DB_URI');
  const logger = createLogger(config);
  const poolSize = process.env.BENCH_POOL_SIZE ? Number(process.env.BENCH_POOL_SIZE) : undefined;
  const db = await openDatabase({ connectionString: config.dbUri, logger, ...(poolSize ? { poolSize } : {}) });
  stats = db.stats;
  const movr = new MovR(db);
  const app = createApp({ config, db, movr, logger, extraRoutes: floorRoutes(movr) });
  const server: Server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.closeAllConnections();
    server.close(() => void db.close().finally(() => process.exit(0)));
    setTimeout(() => process.exit(1), 5000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
