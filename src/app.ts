import path from 'node:path';
import cookieParser from 'cookie-parser';
import express, { type Express, type IRouter } from 'express';
import helmet from 'helmet';
import { type Config, PROJECT_ROOT } from './config.js';
import type { MovrDatabase } from './db/database.js';
import { DatabaseSessionStore } from './db/session-store.js';
import type { Logger } from './logger.js';
import type { DemoLogin } from './movr/demo-data.js';
import type { MovR } from './movr/movr.js';
import { cityLabel, regionLabel, regionOf } from './regions.js';
import { VEHICLE_TYPES } from './vehicles.js';
import { apiRouter } from './web/api/router.js';
import { formatDate, formatDateTime, formatDuration, formatFull, formatRelative, formatTime, STATUS_LABELS, titleCase } from './web/format.js';
import { createLimiters, DEFAULT_RATE_LIMITS, type RateLimits } from './web/limits.js';
import { csrf } from './web/middleware/csrf.js';
import { closeWhileDraining, type Lifecycle } from './web/middleware/drain.js';
import { errorHandler, HttpError } from './web/middleware/errors.js';
import { activeRide, CITY_GROUPS, pageLocals } from './web/middleware/locals.js';
import { locality } from './web/middleware/locality.js';
import { createMetrics, type Metrics } from './web/middleware/metrics.js';
import { createPassport } from './web/middleware/passport.js';
import { requestLog } from './web/middleware/request-log.js';
import { serverTiming } from './web/middleware/server-timing.js';
import { renewSession, sessionMiddleware } from './web/middleware/session.js';
import { authRouter } from './web/routes/auth.js';
import { cityRouter } from './web/routes/city.js';
import { healthRouter } from './web/routes/health.js';
import { ridesRouter } from './web/routes/rides.js';
import { usersRouter } from './web/routes/users.js';
import { vehiclesRouter } from './web/routes/vehicles.js';
import { useViews } from './web/view-engine.js';

export { DEFAULT_RATE_LIMITS, type Lifecycle, type RateLimits };

export interface AppDependencies {
  config: Config;
  db: MovrDatabase;
  movr: MovR;
  logger: Logger;
  rateLimits?: Partial<RateLimits>;
  /** Built by the server, which serves it on METRICS_PORT; a fresh one otherwise. */
  metrics?: Metrics;
  lifecycle?: Lifecycle;
  /**
   * Routes added behind the whole middleware stack (session, CSRF, passport, locals), before the app's own
   * routers. Only `npm run bench` uses it, for its floor handlers; the app never sets it.
   */
  extraRoutes?: (router: IRouter) => void;
  /** The embedded database's demo account, offered on the log-in page in development. */
  demoLogin?: DemoLogin;
}

/** Builds the Express app: middleware order, routers, 404 and error page. Never listens. */
export function createApp({ config, db, movr, logger, rateLimits, extraRoutes, demoLogin, metrics = createMetrics(db.stats), lifecycle = { draining: false } }: AppDependencies): Express {
  const app = express();
  const passport = createPassport(movr);
  const limiters = createLimiters(db, { ...DEFAULT_RATE_LIMITS, ...rateLimits });
  const sessionStore = new DatabaseSessionStore(db);
  const { doubleCsrfProtection, generateCsrfToken } = csrf(config);

  app.set('trust proxy', config.trustProxy);
  // Compiled once outside development; `npm run dev` re-reads an edited template on the next request.
  useViews(app, { cache: config.env !== 'development' });
  app.disable('x-powered-by');
  // Pages are no-store, so never revalidated: an ETag would hash every page for nothing.
  app.set('etag', false);
  app.locals.vehicleTypes = VEHICLE_TYPES;
  app.locals.development = config.env === 'development';
  app.locals.demoLogin = config.env === 'development' ? demoLogin : undefined;
  app.locals.cityGroups = CITY_GROUPS;
  app.locals.apiKey = config.apiKey;
  app.locals.servedRegion = config.region;
  app.locals.format = {
    date: formatDate,
    dateTime: formatDateTime,
    time: formatTime,
    full: formatFull,
    relative: formatRelative,
    duration: formatDuration,
    titleCase,
    city: cityLabel,
    region: regionLabel,
    regionOf,
    status: STATUS_LABELS,
  };

  app.use(requestLog(logger));
  app.use(closeWhileDraining(lifecycle));
  app.use(metrics.observeRequests);
  app.use(serverTiming(config.region));
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          // The Google map is an Embed API iframe, so only frames need Google's origin, and only with a key.
          'frame-src': config.apiKey ? ["'self'", 'https://www.google.com'] : ["'self'"],
          'form-action': ["'self'"],
          'upgrade-insecure-requests': config.isProduction ? [] : null,
        },
      },
      strictTransportSecurity: config.isProduction,
    }),
  );

  // The JSON API: bearer tokens only, it never reads a cookie, so it comes before the session and CSRF has nothing to protect there.
  app.use('/api', apiRouter({ config, logger, movr, limiters, revokeSessions: (user) => sessionStore.revokeUser(user) }));

  app.use('/static', express.static(path.join(PROJECT_ROOT, 'public'), { maxAge: config.isProduction ? '1d' : 0 }));
  app.use('/static/vendor/bootstrap', express.static(path.join(PROJECT_ROOT, 'node_modules/bootstrap/dist'), { maxAge: '7d' }));
  app.use(healthRouter(db, lifecycle));

  app.use((_req, res, next) => {
    // Pages may hold personal data and CSRF tokens: never kept by the browser or a proxy (Back after log-out).
    res.set('Cache-Control', 'no-store');
    next();
  });
  app.use(express.urlencoded({ extended: false, limit: '100kb', parameterLimit: 100 }));
  app.use(sessionMiddleware(config, sessionStore));
  app.use(renewSession);
  app.use(cookieParser(config.secretKey));
  app.use(passport.session());
  app.use(locality(config.region));
  app.use(pageLocals(generateCsrfToken));
  app.use(activeRide(movr));
  // After the locals, so that a stale form's 403 page still shows the rider's own nav.
  app.use(doubleCsrfProtection);

  if (extraRoutes) {
    const bench = express.Router();
    extraRoutes(bench);
    app.use(bench);
  }
  app.use(authRouter({ movr, passport, limiters }));
  app.use('/vehicles', vehiclesRouter(movr));
  app.use('/rides', ridesRouter(movr));
  app.use('/users', usersRouter(movr));
  app.use('/city', cityRouter());

  app.use((_req, _res, next) => next(new HttpError(404, 'That page does not exist.')));
  app.use(errorHandler(logger, { showDetails: config.env === 'development' }));
  return app;
}
