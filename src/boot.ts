import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import type { Config } from './config.js';
import { openDatabase, type MovrDatabase } from './db/database.js';
import type { EmbeddedPostgres } from './db/embedded-postgres.js';
import { prepareSchema, SchemaMissingError } from './db/migrate.js';
import type { Logger } from './logger.js';
import { type DemoLogin, loadDemoData } from './movr/demo-data.js';
import { metricsHandler } from './web/middleware/metrics.js';

/** What server.ts (one process, or a cluster worker) and cluster.ts (the primary) share: the backend, shutdown, the metrics port. */

/** Everything must be stopped within this, or the process exits anyway (the contract's 10 s, Kubernetes' 30 s). */
const SHUTDOWN_DEADLINE_MS = 9_500;

export interface Backend {
  readonly database: MovrDatabase;
  /** Where the database listens: DB_URI, or the embedded server this process started. */
  readonly connectionString: string;
  readonly embedded?: EmbeddedPostgres;
  /** The demo rider, printed at start on the embedded database. */
  readonly login?: DemoLogin;
}

/** DB_URI, or the embedded database, loaded only when needed: production, with DB_URI, never loads its code. */
async function databaseServer(config: Config, logger: Logger): Promise<{ connectionString: string; embedded?: EmbeddedPostgres }> {
  if (config.dbUri) return { connectionString: config.dbUri };
  const embedded = await (await import('./db/embedded-postgres.js')).startEmbeddedPostgres({ dataDir: config.dataDir, logger });
  return { connectionString: embedded.connectionString, embedded };
}

/** The database, schema and demo data: once per machine (the single process, or the cluster's primary). */
export async function openBackend(config: Config, logger: Logger): Promise<Backend> {
  const { connectionString, embedded } = await databaseServer(config, logger);
  try {
    const database = await openDatabase({ connectionString, logger });
    logger.info({ kind: database.kind, version: database.version }, 'connected to the database');
    await prepareSchema(database);
    if (!embedded) return { database, connectionString };
    const login = await demoLogin(config, database);
    return { database, connectionString, embedded, ...(login ? { login } : {}) };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

/** A cluster worker's backend: the pool only, as its primary has started the database and prepared the schema. */
export async function connectBackend(connectionString: string, logger: Logger): Promise<Backend> {
  return { database: await openDatabase({ connectionString, logger }), connectionString };
}

/** The last steps of every shutdown, once no request is left: metrics port, pool, then the embedded database. */
export async function closeBackend(backend: Backend | undefined, metricsServer: Server | undefined, logger: Logger): Promise<void> {
  metricsServer?.close();
  await backend?.database.close().catch((error: unknown) => logger.error({ err: error }, 'closing the pool failed'));
  await backend?.embedded?.stop().catch((error: unknown) => logger.error({ err: error }, 'stopping the embedded database failed'));
}

/** The demo login is generated on first start and kept beside the database, so every start can print it. */
async function demoLogin(config: Config, database: MovrDatabase): Promise<DemoLogin | undefined> {
  const file = path.join(config.dataDir, 'demo-login.json');
  const created = await loadDemoData(database, { bcryptCost: config.bcryptCost });
  if (created) writeFileSync(file, `${JSON.stringify(created)}\n`, { mode: 0o600 });
  return created ?? (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoLogin) : undefined);
}

export function announce(config: Config, port: number, login: DemoLogin | undefined, logger: Logger): void {
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  logger.info({ url: `http://${shownHost}:${port}`, region: config.region, workers: config.webConcurrency }, 'MovR is listening');
  console.log(`\nMovR is running at http://${shownHost}:${port}`);
  if (login) console.log(`Demo login: username "${login.username}", password "${login.password}"\n`);
}

/** `GET /metrics` on its own port, never the riders'. A busy port costs the metrics, not the app. */
export function serveMetrics(config: Config, source: Parameters<typeof metricsHandler>[0], logger: Logger): Server | undefined {
  if (config.metricsPort === 0) return undefined;
  const server = createServer(metricsHandler(source));
  server.on('error', (error) => logger.error({ err: error, port: config.metricsPort }, 'metrics port unavailable; /metrics is off'));
  server.listen(config.metricsPort, config.host);
  return server;
}

/** Why the start failed, in the log; a busy port or a schema to load also in plain words on the terminal. */
export function reportStartFailure(error: unknown, config: Config, logger: Logger): void {
  if ((error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
    console.error(`Port ${config.port} is already in use: stop whatever holds it, or choose another, e.g. PORT=${config.port + 1} npm start`);
    return;
  }
  logger.fatal({ err: error }, error instanceof Error ? error.message : 'start-up failed');
  if (error instanceof SchemaMissingError) console.error(`\n${error.message}\n`);
}

/**
 * Runs `stop` once on SIGTERM, SIGINT or a fatal error, then exits. A repeated signal waits for the same stop,
 * so the database is always stopped; the deadline exits anyway (the embedded database stops with its parent).
 */
export function onShutdown(logger: Logger, stop: () => Promise<void>) {
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
