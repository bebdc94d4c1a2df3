import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger };

export function createLogger(config: Pick<Config, 'logLevel' | 'isProduction'>): Logger {
  return pino({
    level: config.logLevel,
    // Session cookies and CSRF tokens never reach the logs.
    redact: ['req.headers.cookie', 'res.headers["set-cookie"]', 'req.body.password', 'req.body._csrf'],
    // Readable lines for a developer at a terminal (pino-pretty is a dev dependency); JSON everywhere else.
    ...(!config.isProduction && process.stdout.isTTY ? { transport: { target: 'pino-pretty', options: { singleLine: true } } } : {}),
  });
}
