import 'dotenv/config';
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { announce, type Backend, closeBackend, connectBackend, onShutdown, openBackend, reportStartFailure, serveMetrics } from './boot.js';
import { runPrimary } from './cluster.js';
import { type Config, ConfigError, loadConfig, withSecretKey } from './config.js';
import { pruneRateLimits } from './db/rate-limit-store.js';
import { pruneSessions } from './db/session-store.js';
import { createLogger, type Logger } from './logger.js';
import { pruneApi } from './movr/api-transactions.js';
import { MovR } from './movr/movr.js';
import { developmentSecret } from './private-files.js';
import { drainServer, type Lifecycle } from './web/middleware/drain.js';
import { createMetrics } from './web/middleware/metrics.js';

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

async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve).once('error', reject);
    server.listen(port, host);
  });
  const address = server.address();
  return typeof address === 'object' && address ? address.port : port;
}

/** A cluster worker's primary passed it the database in DB_URI, so its config always has one. */
async function workerBackend(config: Config, logger: Logger): Promise<Backend> {
  if (!config.dbUri) throw new Error('a cluster worker needs DB_URI from its primary');
  return connectBackend(config.dbUri, logger);
}

/** One app serving `port`: the whole of MovR when WEB_CONCURRENCY is 1, or one cluster worker. */
async function runInstance(config: Config, logger: Logger): Promise<void> {
  const worker = cluster.isWorker;
  let backend: Backend | undefined;
  let server: Server | undefined;
  let metricsServer: Server | undefined;
  const lifecycle: Lifecycle = { draining: false };
  const { shutdown, isStopping } = onShutdown(logger, async () => {
    if (server) await drainServer(server, lifecycle, logger, config.shutdownGraceMs);
    await closeBackend(backend, metricsServer, logger);
  });

  try {
    backend = worker ? await workerBackend(config, logger) : await openBackend(config, logger);
    if (isStopping()) return;
    const { database } = backend;
    const metrics = createMetrics(database.stats);
    // Imported here, so a cluster's primary, which serves no page, never loads Express, the views or passport.
    const { createApp } = await import('./app.js');
    const app = createApp({ config, db: database, movr: new MovR(database, { bcryptCost: config.bcryptCost }), logger, metrics, lifecycle, demoLogin: backend.login });
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
    setInterval(() => void Promise.all([pruneSessions(database), pruneRateLimits(database), pruneApi(database)]).catch((error: unknown) => logger.warn({ err: error }, 'pruning failed')), PRUNE_EVERY_MS).unref();
  } catch (error) {
    reportStartFailure(error, config, logger);
    await shutdown('start-up failed', 1);
  }
}

const config = parseConfig();
const logger = createLogger(config);
if (cluster.isPrimary && config.webConcurrency > 1) void runPrimary(config, logger);
else void runInstance(config, logger);
