import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../logger.js';

declare module 'http' {
  interface IncomingMessage {
    /** This request's id: a sane X-Request-Id from the load balancer, else a fresh UUID. */
    id: string;
    /** A logger bound to this request, made when first asked for (the error handler). */
    log: Logger;
  }
}

const SANE_ID = /^[\w.-]{1,64}$/;
const unlogged = (url: string) => url === '/healthz' || url === '/readyz' || url.startsWith('/static/');

/**
 * One line per request at info when its response ends ("request completed", or "request errored" for a
 * 5xx), and the X-Request-Id header. Written instead of pino-http, which builds a child logger with the
 * serialized request (every header, redacted) for every request: the line keeps what an operator reads.
 */
export function requestLog(logger: Logger) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && SANE_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', id);
    req.id = id;
    let child: Logger | undefined;
    Object.defineProperty(req, 'log', { configurable: true, get: () => (child ??= logger.child({ req: { id, method: req.method, url: req.originalUrl } })) });
    if (unlogged(req.url)) return next();
    const started = Date.now();
    const done = () => {
      res.off('finish', done);
      res.off('close', done);
      const line = {
        req: { id, method: req.method, url: req.originalUrl, remoteAddress: req.ip, userAgent: req.headers['user-agent'] },
        res: { statusCode: res.statusCode },
        responseTime: Date.now() - started,
      };
      // A 5xx's error itself is logged by the error handler, through req.log, with this id.
      logger.info(line, res.statusCode >= 500 ? 'request errored' : 'request completed');
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}
