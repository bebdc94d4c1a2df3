import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { announce, type Backend, closeBackend, onShutdown, openBackend, reportStartFailure, serveMetrics } from './boot.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';

/** WEB_CONCURRENCY > 1: this process owns the database and the metrics port; its workers (server.ts) serve `port`. */
export async function runPrimary(config: Config, logger: Logger): Promise<void> {
  let backend: Backend | undefined;
  let metricsServer: Server | undefined;
  const { shutdown, isStopping } = onShutdown(logger, async () => {
    // Workers drain on their own signal (a Ctrl-C reaches the whole group) or on the one forwarded here.
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
    await Promise.all(workers.map(stopWorker));
    await closeBackend(backend, metricsServer, logger);
  });

  try {
    backend = await openBackend(config, logger);
    if (isStopping()) return;
    const { connectionString } = backend;
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
    reportStartFailure(error, config, logger);
    await shutdown('start-up failed', 1);
  }
}

function stopWorker(worker: Worker): Promise<void> {
  if (worker.isDead()) return Promise.resolve();
  return new Promise((resolve) => {
    worker.once('exit', () => resolve());
    worker.process.kill('SIGTERM');
  });
}
