import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger };

/** What a log line says of a request (an Express one, whose `ip` honours `trust proxy`): never its cookies, other headers or body. */
interface LoggedRequest {
  id?: unknown;
  method?: string;
  originalUrl?: string;
  url?: string;
  ip?: string;
  headers?: Record<string, unknown>;
}

/**
 * Every logger writes `req` and `res` through these, pino-http's request lines included (middleware/request-log.ts):
 * session cookies, CSRF tokens and passwords never reach the logs, so there is nothing left to redact.
 */
export const serializers = {
  req: (req: LoggedRequest) => ({ id: req.id, method: req.method, url: req.originalUrl ?? req.url, remoteAddress: req.ip, userAgent: req.headers?.['user-agent'] }),
  res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
};

export function createLogger(config: Pick<Config, 'logLevel' | 'isProduction'>): Logger {
  return pino({
    level: config.logLevel,
    serializers,
    // Readable lines for a developer at a terminal (pino-pretty is a dev dependency); JSON everywhere else.
    ...(!config.isProduction && process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { singleLine: true } } } : {}),
  });
}
