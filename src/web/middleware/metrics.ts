import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';
import type { NextFunction, Request, Response } from 'express';
import type { TransactionStats } from '../../db/transaction.js';

export interface Metrics {
  readonly registry: Registry;
  /** Express middleware timing each request by its route pattern. */
  observeRequests(req: Request, res: Response, next: NextFunction): void;
}

/** One registry per app, so tests can build several apps in one process. */
export function createMetrics(stats: TransactionStats): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const duration = new Histogram({
    name: 'movr_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  const fromStats = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  fromStats('movr_transaction_attempts_total', 'Runs of a transaction callback, first attempts and retries', () => stats.attempts);
  fromStats('movr_transaction_retries_total', 'Retries after a serialization failure (SQLSTATE 40001)', () => stats.retries);
  fromStats('movr_transaction_commits_total', 'Transactions committed', () => stats.committed);
  fromStats('movr_transaction_failures_total', 'Transactions that ended in an error', () => stats.failed);
  fromStats('movr_transaction_retry_limit_total', 'Transactions abandoned at the retry limit', () => stats.retryLimitReached);
  fromStats('movr_transaction_outcome_unknown_total', 'Transactions whose commit could not be confirmed (SQLSTATE 40003)', () => stats.outcomeUnknown);

  return {
    registry,
    observeRequests(req, res, next) {
      const end = duration.startTimer();
      res.on('finish', () => {
        // The pattern (/rides/end/:rideId), never the raw path, keeps the label set small.
        const route = req.route ? routePattern(req.baseUrl, String(req.route.path)) : res.statusCode === 404 ? 'unmatched' : 'middleware';
        end({ method: req.method, route, status: String(res.statusCode) });
      });
      next();
    },
  };
}

/** A router's own root is its mount path: `/vehicles`, not `/vehicles/`. */
const routePattern = (mount: string, path: string) => (mount && path === '/' ? mount : mount + path);

/** The node:http handler of the metrics port: `GET /metrics` in Prometheus text, 404 for anything else. */
export function metricsHandler(source: { readonly contentType: string; metrics(): Promise<string> }) {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found');
      return;
    }
    source.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': source.contentType }).end(text),
      () => res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable'),
    );
  };
}
