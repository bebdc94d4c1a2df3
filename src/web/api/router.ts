import path from 'node:path';
import express, { type NextFunction, type Request, type RequestHandler, type Response, Router } from 'express';
import type { Logger } from 'pino';
import { type Config, PROJECT_ROOT } from '../../config.js';
import type { Answer, IdempotencyKey, KeyLookup, Once } from '../../movr/movr.js';
import { CITIES, type City } from '../../regions.js';
import { currentCity } from '../middleware/locality.js';
import { AnswerSeal } from './idempotency.js';
import { openApiDocument } from './openapi.js';
import { type ApiDependencies, type Context, type Operation, OPERATIONS } from './operations.js';
import { fieldErrors, problem, problemHandler, type Reply, refusal, send, sendReply } from './problems.js';
import { idempotencyKeyHeader } from './schemas.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      /** The API operation's request, parsed and authenticated, for its handler (register below). */
      apiContext?: Context<unknown, unknown, unknown>;
      /** The API request's parsed body, for the log-in limiter's username (operations.ts). */
      apiBody?: unknown;
      /** The request's Idempotency-Key, once its operation has named whose it is. */
      apiIdempotencyKey?: IdempotencyKey;
    }
  }
}

export interface ApiOptions extends ApiDependencies {
  config: Config;
  logger: Logger;
}

const expressPath = (openApiPath: string) => `/v1${openApiPath.replace(/\{(\w+)\}/g, ':$1')}`;

/** `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110). */
function bearerToken(req: Request): string | undefined {
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(req.get('authorization') ?? '');
  return match?.[1];
}

const isAnswer = (reply: Reply | Answer): reply is Answer => typeof reply.body === 'string';

/** As type-is's hasBody: a body is coming when the request says how long it is or that it is chunked. */
const hasBody = (req: Request) => req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';

/**
 * The JSON API under /api: /api/v1 (operations.ts), its OpenAPI document, and the docs page /api/docs. It never
 * reads a cookie: a token is the only credential, so there is no session to ride and nothing for CSRF to protect.
 */
export function apiRouter({ config, logger, ...deps }: ApiOptions): Router {
  const router = Router();
  const seal = new AnswerSeal(config.secretKey);

  router.use((req, res, next) => {
    res.set('Cache-Control', 'no-store');
    if (hasBody(req) && !req.is('application/json')) return sendReply(res, problem(415, 'Send the body as application/json.'));
    next();
  });
  router.use(express.json({ limit: '100kb', type: 'application/json' }));

  router.get('/v1/openapi.json', (_req, res) => {
    res.json(openApiDocument());
  });
  docsPage(router);

  for (const operation of OPERATIONS) register(router, operation, deps, config, seal);

  router.use((_req, res) => sendReply(res, problem(404, 'No such API route.')));
  router.use(problemHandler(logger));
  return router;
}

function register(router: Router, operation: Operation, deps: ApiDependencies, config: Config, seal: AnswerSeal): void {
  const prepare: RequestHandler = async (req, res, next) => {
    let user: Context<unknown, unknown, unknown>['user'] | undefined;
    const token = operation.auth ? bearerToken(req) : undefined;
    if (operation.auth) {
      user = token ? await deps.movr.tokenUser(token) : undefined;
      if (!user) return sendReply(res, problem(401, token ? 'The token is unknown, expired or revoked.' : 'Send a token: Authorization: Bearer <token>.'));
    }
    const params = operation.params ? operation.params.safeParse(req.params) : undefined;
    if (params && !params.success) return sendReply(res, problem(404, 'No such id.'));

    const rawKey = req.get('idempotency-key');
    if (operation.method === 'post' && rawKey !== undefined && !idempotencyKeyHeader.safeParse(rawKey).success) {
      return sendReply(res, problem(400, 'Idempotency-Key must be 1 to 255 printable characters.'));
    }
    const city = currentCity(req, { home: user?.city }, config.region);
    const ctx: Context<unknown, unknown, unknown> = {
      req,
      res,
      deps,
      params: params?.data,
      query: undefined,
      body: undefined,
      user: user!,
      token: token!,
      city,
      once: <T>(scope: 'user' | 'client', rowCity: City, answer: (result: T) => Reply): Once<T> => {
        const key: IdempotencyKey | undefined =
          rawKey === undefined
            ? undefined
            : scope === 'user'
              ? { scope: `user:${user!.id}`, key: rawKey, fingerprint: seal.fingerprint(req), city: rowCity, cities: [rowCity] }
              : { ...clientKey(req, rawKey, seal), city: rowCity };
        res.locals.apiIdempotencyKey = key;
        const store = (reply: Reply): Answer => {
          const text = reply.body === undefined ? '' : JSON.stringify(reply.body);
          return { status: reply.status, body: key && text ? seal.seal(key, text) : text };
        };
        return { ...(key ? { key } : {}), answer: (result) => store(answer(result)), refusal: (error) => store(refusal(error)) };
      },
    };
    res.locals.apiContext = ctx;

    const query = operation.query ? operation.query.safeParse(req.query) : undefined;
    if (query && !query.success) return sendReply(res, problem(422, 'Some parameters are invalid.', fieldErrors(query.error.issues)));
    ctx.query = query?.data;
    if (operation.body) {
      const body = operation.body.safeParse(typeof req.body === 'object' && req.body !== null && !Array.isArray(req.body) ? req.body : {});
      if (!body.success) {
        await operation.beforeInvalidBody?.(ctx as Context<unknown, unknown, undefined>);
        return sendReply(res, problem(422, 'Some fields are invalid.', fieldErrors(body.error.issues)));
      }
      ctx.body = body.data;
      res.locals.apiBody = body.data;
    }
    next();
  };

  const handle = async (_req: Request, res: Response) => {
    const ctx = res.locals.apiContext!;
    const reply = await operation.handle(ctx);
    if (!isAnswer(reply)) return sendReply(res, reply);
    // MovR's answer, sealed when it was kept under an Idempotency-Key.
    const key = res.locals.apiIdempotencyKey;
    if (reply.repeated) res.locals.answeredAgain = true;
    send(res, reply.status, reply.body === '' ? undefined : key ? seal.open(key, reply.body) : reply.body);
  };

  /**
   * A repeat of a limited POST (sign-up and log-in, whose keys are the client's) whose answer is stored gets it back
   * before the limits and the password budget. Counted, and refunded only after its answer, a repeat was refused
   * once the client's limit was full, or when sent at once after an answer whose refund had not landed yet.
   */
  const answerStoredRepeat: RequestHandler = async (req, res, next) => {
    const rawKey = req.get('idempotency-key');
    if (rawKey === undefined) return next();
    const lookup = clientKey(req, rawKey, seal);
    const stored = await deps.movr.storedAnswer(lookup);
    if (!stored) return next();
    send(res, stored.status, stored.body === '' ? undefined : seal.open(lookup, stored.body));
  };

  const limits = operation.limit ? [answerStoredRepeat, ...operation.limit(deps.limiters)] : [];
  router[operation.method](expressPath(operation.path), prepare, ...limits, handle);
}

/** A client's Idempotency-Key (sign-up, log-in: no user yet), looked up in every city its rows may be in. */
function clientKey(req: Request, rawKey: string, seal: AnswerSeal): KeyLookup {
  return { scope: `client:${req.ip ?? ''}`, key: rawKey, fingerprint: seal.fingerprint(req), cities: CITIES };
}

/** Swagger UI from the app's own node_modules (no CDN), configured by a script of its own, as the CSP wants. */
function docsPage(router: Router): void {
  router.use('/docs/assets', express.static(path.join(PROJECT_ROOT, 'node_modules/swagger-ui-dist'), { index: false }));
  router.get('/docs/init.js', (_req, res) => {
    res.type('text/javascript').send("window.ui = SwaggerUIBundle({ url: '/api/v1/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n");
  });
  router.get('/docs', (_req, res: Response, _next: NextFunction) => {
    res.type('html').send(`<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>MovR API</title>
  <link rel="icon" href="/static/img/movr.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api/docs/init.js"></script>
</body>
</html>
`);
  });
}
