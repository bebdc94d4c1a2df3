import { randomUUID } from 'node:crypto';
import { pinoHttp } from 'pino-http';
import { type Logger, serializers } from '../../logger.js';

const SANE_ID = /^[\w.-]{1,64}$/;
const QUIET = /^\/(?:healthz|readyz)$|^\/static\//;

/**
 * One line per request as its response ends ("request completed", or "request errored" for a 5xx: at error, but a
 * 503 at warn, since it is a deliberate refusal (busy, draining) whose cause, if any, the error handler logs),
 * with the request's id: a sane X-Request-Id from the load balancer, else a fresh UUID, sent back in the header.
 * Handlers' own lines (req.log) carry the same `req`, as pino-http binds it by default.
 */
export function requestLog(logger: Logger) {
  return pinoHttp({
    logger,
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && SANE_ID.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    // Probes and static files would drown the lines an operator reads.
    autoLogging: { ignore: (req) => QUIET.test(req.url ?? '') },
    customLogLevel: (_req, res, error) => (res.statusCode === 503 ? 'warn' : error || res.statusCode >= 500 ? 'error' : 'info'),
    // The error itself is logged by the error handler with this id; pino-http's stand-in for it has no stack worth reading.
    customErrorObject: (_req, _res, _error, { err: _standIn, ...line }: Record<string, unknown>) => line,
    // The app's serializers (logger.ts) write the request and the response, whatever logger is given, not pino-http's standard ones.
    serializers,
    wrapSerializers: false,
  });
}
