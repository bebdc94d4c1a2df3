import cluster from 'node:cluster';
import type { Server } from 'node:http';
import path from 'node:path';
import type { IRouter } from 'express';
import pg from 'pg';

/**
 * The app as src/server.ts builds it, from the compiled `dist/` (BENCH_APP_DIR), on the bench's database (DB_URI),
 * plus the floor handlers: each runs the same MovR call (so the same SQL in the same transaction) as its page
 * behind the same middleware, then sends a fixed string instead of rendering. scripts/bench.ts transpiles this
 * file to plain JavaScript and runs it with node, as production runs the app; stops on SIGTERM/SIGINT.
 *
 * Environment: DB_URI, PORT, SECRET_KEY, NODE_ENV and LOG_LEVEL as for the app; BENCH_WORKERS, the cluster's
 * workers (WEB_CONCURRENCY); BENCH_POOL_SIZE, the pg pool size of each.
 */
const FLOOR = '/__bench/floor';
const appDir = process.env.BENCH_APP_DIR ?? path.resolve('dist');
const workers = Number(process.env.BENCH_WORKERS || 1);
const load = <T>(module: string) => import(path.join(appDir, module)) as Promise<T>;
const loadFirst = <T>(module: string, fallback: string) => load<T>(module).catch(() => load<T>(fallback));

/** What the app sent to the database, counted for the bench, which asks over IPC ('stats'). */
const counts = { statements: 0, transactions: 0, sessionReads: 0, sessionWrites: 0, retries: 0 };
const originalQuery = pg.Client.prototype.query as (...args: unknown[]) => unknown;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0];
  const text = (typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '')).trimStart();
  counts.statements += 1;
  if (/^(start transaction|begin)\b/i.test(text)) counts.transactions += 1;
  // The session read (db/session-store.ts).
  else if (/^select "?sessions"?\."?sess"?[\s,]/i.test(text)) counts.sessionReads += 1;
  else if (/^(insert into|update|delete from) "?sessions"?/i.test(text)) counts.sessionWrites += 1;
  return originalQuery.apply(this, args);
} as typeof pg.Client.prototype.query;

type Counts = typeof counts & { pids: number[] };

async function floorRoutes() {
  // The baseline of `--compare` may predate web/middleware/: its flat web/ is tried second.
  const { requireLogin, currentUser } = await loadFirst<typeof import('../src/web/middleware/passport.js')>('web/middleware/passport.js', 'web/auth.js');
  const { notFound } = await loadFirst<typeof import('../src/web/middleware/errors.js')>('web/middleware/errors.js', 'web/errors.js');
  const { uuidParam } = await load<typeof import('../src/web/forms.js')>('web/forms.js');
  return (movr: import('../src/movr/movr.js').MovR) => (router: IRouter) => {
    router.get(`${FLOOR}/login`, (req, res) => {
      if (req.user) return res.redirect(303, '/vehicles');
      res.type('html').send('floor');
    });
    router.get(`${FLOOR}/vehicles`, requireLogin, async (_req, res) => {
      await movr.getVehicles(res.locals.locality.city, 1);
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
      await movr.startRide(currentUser(req), id.data, res.locals.locality.city);
      res.redirect(303, `${FLOOR}/rides`);
    });
    router.post(`${FLOOR}/rides/end/:rideId`, requireLogin, async (req, res) => {
      const id = uuidParam.safeParse(req.params.rideId);
      const location = typeof req.body?.location === 'string' ? req.body.location : '';
      if (!id.success || !location) throw notFound();
      await movr.endRide(currentUser(req), id.data, location, res.locals.locality.city);
      res.redirect(303, `${FLOOR}/rides`);
    });
  };
}

/** One app on PORT: the whole bench server with one worker, else one cluster worker. */
async function serve() {
  const { createApp } = await load<typeof import('../src/app.js')>('app.js');
  const { loadConfig, withSecretKey } = await load<typeof import('../src/config.js')>('config.js');
  const { openDatabase } = await load<typeof import('../src/db/database.js')>('db/database.js');
  const { createLogger } = await load<typeof import('../src/logger.js')>('logger.js');
  const { MovR } = await load<typeof import('../src/movr/movr.js')>('movr/movr.js');
  const config = withSecretKey(loadConfig());
  if (!config.dbUri) throw new Error('bench-server needs DB_URI');
  const logger = createLogger(config);
  const poolSize = process.env.BENCH_POOL_SIZE ? Number(process.env.BENCH_POOL_SIZE) : undefined;
  const db = await openDatabase({ connectionString: config.dbUri, logger, ...(poolSize ? { poolSize } : {}) });
  const movr = new MovR(db);
  const app = createApp({ config, db, movr, logger, extraRoutes: (await floorRoutes())(movr) });
  process.on('message', (message) => {
    if (message === 'stats') process.send?.({ ...counts, retries: db.stats.retries, pids: [process.pid] } satisfies Counts);
  });
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

/** The cluster's primary, as src/server.ts runs one: forks the workers, sums their counts for the bench. */
function primary() {
  let stopping = false;
  const listening = new Set<number>();
  cluster.on('listening', (worker) => listening.add(worker.process.pid!));
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`bench worker ${worker.process.pid} exited (${code ?? signal})`);
      process.exit(1);
    }
  });
  for (let i = 0; i < workers; i++) cluster.fork();
  const ask = (worker: import('node:cluster').Worker) =>
    new Promise<Counts>((resolve) => {
      worker.once('message', (message: Counts) => resolve(message));
      worker.send('stats');
    });
  process.on('message', (message) => {
    if (message !== 'stats') return;
    const live = Object.values(cluster.workers ?? {}).filter((worker) => worker && listening.has(worker.process.pid!));
    void Promise.all(live.map((worker) => ask(worker!))).then((all) => {
      const sum: Counts = { statements: 0, transactions: 0, sessionReads: 0, sessionWrites: 0, retries: 0, pids: [] };
      for (const one of all) {
        for (const key of ['statements', 'transactions', 'sessionReads', 'sessionWrites', 'retries'] as const) sum[key] += one[key];
        sum.pids.push(...one.pids);
      }
      process.send?.(sum);
    });
  });
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const exits = Object.values(cluster.workers ?? {}).map((worker) => new Promise((resolve) => (worker!.isDead() ? resolve(0) : (worker!.once('exit', resolve), worker!.process.kill('SIGTERM')))));
    void Promise.all(exits).then(() => process.exit(0));
    setTimeout(() => process.exit(1), 6000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (cluster.isPrimary && workers > 1) primary();
else
  serve().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
