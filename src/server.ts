import 'dotenv/config';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import path from 'node:path';
import { createApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { openDatabase, type MovrDatabase } from './db/database.js';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './db/embedded-postgres.js';
import { prepareSchema } from './db/migrate.js';
import { createLogger, type Logger } from './logger.js';
import { type DemoLogin, loadDemoData } from './movr/demo-data.js';
import { MovR } from './movr/movr.js';

/** Everything must be stopped within this, or the process exits anyway (Kubernetes waits longer). */
const SHUTDOWN_DEADLINE_MS = 9_500;
const DRAIN_MS = 6_000;

async function startDatabase(config: Config, logger: Logger) {
  if (config.dbUri) return { database: await openDatabase({ connectionString: config.dbUri, logger }), embedded: undefined };
  const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, logger });
  try {
    return { database: await openDatabase({ connectionString: embedded.connectionString, logger }), embedded };
  } catch (error) {
    await embedded.stop();
    throw error;
  }
}

/** The demo login is generated on first start and kept beside the database, so every start can print it. */
async function demoLogin(config: Config, database: MovrDatabase): Promise<DemoLogin | undefined> {
  const file = path.join(config.dataDir, 'demo-login.json');
  const created = await loadDemoData(database);
  if (created) writeFileSync(file, `${JSON.stringify(created)}\n`, { mode: 0o600 });
  return created ?? (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DemoLogin) : undefined);
}

async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config);
  let embedded: EmbeddedPostgres | undefined;
  let database: MovrDatabase | undefined;
  let server: Server | undefined;
  let stopping: Promise<void> | undefined;

  const shutdown = (reason: string, exitCode = 0) => {
    if (stopping) {
      logger.warn({ reason }, 'already shutting down; the database will still be stopped');
      return stopping;
    }
    logger.info({ reason }, 'shutting down');
    const forced = setTimeout(() => {
      logger.error('shutdown took too long; exiting (the embedded database is told to stop on exit)');
      process.exit(exitCode || 1);
    }, SHUTDOWN_DEADLINE_MS);
    forced.unref();
    stopping = (async () => {
      if (server) {
        const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
        const drained = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), DRAIN_MS).unref())]);
        if (!drained) {
          logger.warn('in-flight requests did not finish in time; closing their connections');
          server.closeAllConnections();
        }
      }
      await database?.close().catch((error) => logger.error({ err: error }, 'closing the pool failed'));
      await embedded?.stop().catch((error) => logger.error({ err: error }, 'stopping the embedded database failed'));
      logger.info('stopped');
      process.exit(exitCode);
    })();
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

  try {
    ({ database, embedded } = await startDatabase(config, logger));
    logger.info({ kind: database.kind, version: database.version }, 'connected to the database');
    await prepareSchema(database);
    const login = embedded ? await demoLogin(config, database) : undefined;
    if (stopping) return;

    const movr = new MovR(database);
    const app = createApp({ config, db: database, movr, logger });
    server = app.listen(config.port, config.host);
    await new Promise<void>((resolve, reject) => {
      server!.once('listening', resolve);
      server!.once('error', reject);
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
    logger.info({ url: `http://${shownHost}:${port}`, region: config.region }, 'MovR is listening');
    console.log(`\nMovR is running at http://${shownHost}:${port}`);
    if (login) console.log(`Demo login: username "${login.username}", password "${login.password}"\n`);
  } catch (error) {
    logger.fatal({ err: error }, error instanceof Error ? error.message : 'start-up failed');
    if (error instanceof Error && error.name === 'SchemaMissingError') console.error(`\n${error.message}\n`);
    await shutdown('start-up failed', 1);
  }
}

void main();
