import 'dotenv/config';
import cluster from 'node:cluster';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { AggregatorRegistry } from 'prom-client';
import type { Lifecycle } from './app.js';
import { type Config, ConfigError, loadConfig, withSecretKey } from './config.js';
import { openDatabase, type MovrDatabase } from './db/database.js';
import type { EmbeddedPostgres } from './db/embedded-postgres.js';
import { prepareSchema } from './db/migrate.js';
import { createLogger, type Logger } from './logger.js';
import { type DemoLogin, loadDemoData } from './movr/demo-data.js';
import { MovR } from './movr/movr.js';
import { developmentSecret } from './private-files.js';
import { drainServer } from './web/drain.js';
import { createMetrics, metricsHandler } from './web/metrics.js';
import { pruneRateLimits } from './web/rate-limit-store.js';
import { pruneSessions } from './web/session-store.js';

/** Everything must be stopped within this, or the process exits anyway (the contract's 10 s, Kubernetes' 30 s). */
const SHUTDOWN_DEADLINE_MS = 9_500;
const PRUNE_EVERY_MS = 15 * 60 * 1000;

function parseConfig(): Config {
  try {
    const parsed = loadConfig();
    // Made here, not while parsing; first starts racing on one data directory agree on one secret.
    return withSecretKey(parsed, () => developmentSecret(parsed.dataDir));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(78); // EX_CONFIG
  }
}

/** The database, schema and demo data: once per machine (the single process, or the cluster's primary). */
async function openBackend(config: Config, logger: Logger) {
  let embedded: EmbeddedPostgres | undefined;
  // Loaded only when needed: production, with DB_URI, never loads the embedded database's code.
  if (!config.dbUri) embedded = await (await import('./db/embedded-postgres.js')).startEmbeddedPostgres({ dataDir: config.dataDir, logger });
  try {
    const database = await openDatabase({ connectionString: config.dbUri ?? embedded!.connectionString, logger });
    logger.info({ kind: database.kind, version: database.version }, 'connected to the database');
    await prepareSchema(database);
    const login = embedded ? await demoLogin(config, database) : undefined;
    return { database, embedded, login };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

/** The last steps of every shutdown, once no request is left: metrics port, pool, then the embedded database. */
async function closeBackend(backend: Awaited<ReturnType<typeof openBackend>> | undefined, metricsServer: Server | undefined, logger: Logger) {
  metricsServer?.close();
  await backend?.database.close().catch((error: unknown) => logger.error({ err: error }, 'closing the pool failed'));
  await backend?.embedded?.stop().catch((error: unknown) => logger.error({ err: error }, 'stopping the embedded database failed'));
}

/** The demo login is generated on first start and kept beside the database, so every start can print it. */
async function demoLogin(config: Config, database: MovrDatabase): Promise<DemoLogin | undefined> {
  const file = path.join(config.dataDir, 'demo-login.json');
  const created = await loadDemoData(database);
  if (created) writeFileSync(file, `${JSON.stringify(created)}\n`, { mode: 0o600 });
  return created ?? (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoLogin) : undefined);
}

async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve).once('error', reject);
    server.listen(port, host);
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

function announce(config: Config, port: number, login: DemoLogin | undefined, logger: Logger) {
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  logger.info({ url: `http://${shownHost}:${port}`, region: config.region, workers: config.webConcurrency }, 'MovR is listening');
  console.log(`\nMovR is running at http://${shownHost}:${port}`);
  if (login) console.log(`Demo login: username "${login.username}", password "${login.password}"\n`);
}

/** `GET /metrics` on its own port, never the riders'. A busy port costs the metrics, not the app. */
function serveMetrics(config: Config, source: Parameters<typeof metricsHandler>[0], logger: Logger): Server | undefined {
  if (config.metricsPort === 0) return undefined;
  const server = createServer(metricsHandler(source));
  server.on('error', (error) => logger.error({ err: error, port: config.metricsPort }, 'metrics port unavailable; /metrics is off'));
  server.listen(config.metricsPort, config.host);
  return server;
}

function busyPortMessage(error: unknown, config: Config): string | undefined {
  if ((error as NodeJS.ErrnoException)?.code !== 'EADDRINUSE') return undefined;
  return `Port ${config.port} is already in use: stop whatever holds it, or choose another, e.g. PORT=${config.port + 1} npm start`;
}

/**
 * Runs `stop` once on SIGTERM, SIGINT or a fatal error, then exits. A repeated signal waits for the same stop,
 * so the database is always stopped; the deadline exits anyway (the embedded database stops with its parent).
 */
function onShutdown(logger: Logger, stop: () => Promise<void>) {
  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string, exitCode = 0) => {
    if (stopping) {
      logger.warn({ reason }, 'already shutting down; the database will still be stopped');
      return stopping;
    }
    logger.info({ reason }, 'shutting down');
    setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(exitCode || 1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    stopping = stop()
      .catch((error: unknown) => logger.error({ err: error }, 'shutdown failed'))
      .then(() => {
        logger.info('stopped');
        process.exit(exitCode);
      });
    return stopping;
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (error) => {
    logger.fatal({ err: error }, 'unhandled rejection');
    void shutdown('unhandledRejection', 1);
  });
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception');
    void shutdown('uncaughtException', 1);
  });
  return { shutdown, isStopping: () => stopping !== undefined };
}

/** One app serving `port`: the whole of MovR when WEB_CONCURRENCY is 1, or one cluster worker. */
async function runInstance(config: Config, logger: Logger) {
  const worker = cluster.isWorker;
  let backend: Awaited<ReturnType<typeof openBackend>> | undefined;
  let server: Server | undefined;
  let metricsServer: Server | undefined;
  const lifecycle: Lifecycle = { draining: false };
  const { shutdown, isStopping } = onShutdown(logger, async () => {
    if (server) await drainServer(server, lifecycle, logger);
    await closeBackend(backend, metricsServer, logger);
  });

  try {
    // A worker's primary has started the database and prepared the schema already.
    backend = worker
      ? { database: await openDatabase({ connectionString: config.dbUri!, logger }), embedded: undefined, login: undefined }
      : await openBackend(config, logger);
    if (isStopping()) return;
    const { database } = backend;
    const metrics = createMetrics(database.stats);
    // Imported here, so a cluster's primary, which serves no page, never loads Express, the views or passport.
    const { createApp } = await import('./app.js');
    const app = createApp({ config, db: database, movr: new MovR(database), logger, metrics, lifecycle, demoLogin: backend.login });
    server = createServer(app);
    const port = await listen(server, config.port, config.host);
    if (worker) {
      AggregatorRegistry.setRegistries([metrics.registry]);
      // Constructing one installs prom-client's listener that answers the primary's requests for metrics.
      new AggregatorRegistry();
    } else {
      metricsServer = serveMetrics(config, metrics.registry, logger);
      announce(config, port, backend.login, logger);
    }
    setInterval(() => void Promise.all([pruneSessions(database), pruneRateLimits(database)]).catch((error: unknown) => logger.warn({ err: error }, 'pruning failed')), PRUNE_EVERY_MS).unref();
  } catch (error) {
    const busy = busyPortMessage(error, config);
    if (busy) console.error(busy);
    else logger.fatal({ err: error }, error instanceof Error ? error.message : 'start-up failed');
    if (error instanceof Error && error.name === 'SchemaMissingError') console.error(`\n${error.message}\n`);
    await shutdown('start-up failed', 1);
  }
}

/** WEB_CONCURRENCY > 1: this process owns the database and the metrics port; its workers serve `port`. */
async function runPrimary(config: Config, logger: Logger) {
  let backend: Awaited<ReturnType<typeof openBackend>> | undefined;
  let metricsServer: Server | undefined;
  const { shutdown, isStopping } = onShutdown(logger, async () => {
    // Workers drain on their own signal (a Ctrl-C reaches the whole group) or on the one forwarded here.
    const exits = Object.values(cluster.workers ?? {}).map(
      (worker) => new Promise<void>((resolve) => (worker!.isDead() ? resolve() : (worker!.once('exit', () => resolve()), worker!.process.kill('SIGTERM')))),
    );
    await Promise.all(exits);
    await closeBackend(backend, metricsServer, logger);
  });

  try {
    backend = await openBackend(config, logger);
    if (isStopping()) return;
    const connectionString = config.dbUri ?? backend.embedded!.connectionString;
    const fork = () => cluster.fork({ DB_URI: connectionString });
    let listening = 0;
    const ready = new Promise<number>((resolve, reject) => {
      cluster.on('listening', (_worker, address) => ++listening === config.webConcurrency && resolve(address.port));
      cluster.on('exit', (worker, code, signal) => {
        if (isStopping()) return;
        if (listening < config.webConcurrency) return reject(new Error(`worker ${worker.process.pid} exited during start-up (${code ?? signal})`));
        logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting another');
        fork();
      });
    });
    for (let i = 0; i < config.webConcurrency; i++) fork();
    const port = await ready;
    const aggregator = new AggregatorRegistry();
    metricsServer = serveMetrics(config, { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() }, logger);
    announce(config, port, backend.login, logger);
  } catch (error) {
    logger.fatal({ err: error }, error instanceof Error ? error.message : 'start-up failed');
    await shutdown('start-up failed', 1);
  }
}

const config = parseConfig();
const logger = createLogger(config);
if (cluster.isPrimary && config.webConcurrency > 1) void runPrimary(config, logger);
else void runInstance(config, logger);
