import path from 'node:path';
import cookieParser from 'cookie-parser';
import { doubleCsrf } from 'csrf-csrf';
import express, { type Express, type IRouter, type NextFunction, type Request, type Response } from 'express';
import onHeaders from 'on-headers';
import { type Config, PROJECT_ROOT } from './config.js';
import type { MovrDatabase } from './db/database.js';
import { VEHICLE_TYPES } from './vehicles.js';
import type { Logger } from './logger.js';
import type { DemoLogin } from './movr/demo-data.js';
import type { MovR } from './movr/movr.js';
import { REGION_NAMES, REGIONS, cityLabel, citiesOf, regionLabel, regionOf } from './regions.js';
import { activeRideLocal } from './web/active-ride.js';
import { createPassport, sessionUser } from './web/auth.js';
import { chain } from './web/chain.js';
import { errorHandler, HttpError } from './web/errors.js';
import { requestLog } from './web/request-log.js';
import { securityHeaders } from './web/security-headers.js';
import { type FlashMessage, takeFlash } from './web/flash.js';
import { formatDate, formatDateTime, formatDuration, formatFull, formatRelative, formatTime, STATUS_LABELS, titleCase } from './web/format.js';
import { currentLocality, locality } from './web/locality.js';
import { createMetrics, type Metrics } from './web/metrics.js';
import { createLimiters, DEFAULT_RATE_LIMITS, type RateLimits } from './web/limits.js';
import { authRoutes } from './web/routes/auth.js';
import { cityRoutes } from './web/routes/city.js';
import { healthRoutes } from './web/routes/health.js';
import { rideRoutes } from './web/routes/rides.js';
import { userRoutes } from './web/routes/users.js';
import { vehicleRoutes } from './web/routes/vehicles.js';
import { saveSessionBeforeRedirect } from './web/save-before-redirect.js';
import { DatabaseSessionStore } from './web/session-store.js';
import { serverTiming } from './web/server-timing.js';
import { sessionMiddleware } from './web/session.js';
import { useViews } from './web/views.js';

export { DEFAULT_RATE_LIMITS, type RateLimits };

/** What the server tells the app about its own life: from a shutdown signal on, `draining` is true. */
export interface Lifecycle {
  draining: boolean;
}

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
   * routes. Only `npm run bench` uses it, for its floor handlers; the app never sets it.
   */
  extraRoutes?: (router: IRouter) => void;
  /** The embedded database's demo account, offered on the log-in page in development. */
  demoLogin?: DemoLogin;
}

const CITY_GROUPS = REGION_NAMES.map((region) => ({ region, label: REGIONS[region].label, cities: citiesOf(region) }));

/** Builds the Express app: middleware order, routes, 404 and error page. Never listens. */
export function createApp({ config, db, movr, logger, rateLimits, extraRoutes, demoLogin, metrics = createMetrics(db.stats), lifecycle = { draining: false } }: AppDependencies): Express {
  const app = express();
  const passport = createPassport(movr);
  const sessionStore = new DatabaseSessionStore(db);
  const limiters = createLimiters(db, { ...DEFAULT_RATE_LIMITS, ...rateLimits });
  // Double-submit cookie: the log-in and sign-up forms are protected without a stored session. A logged-in
  // rider's token is bound to their session id, so it dies with the session.
  const { doubleCsrfProtection, generateCsrfToken } = doubleCsrf({
    getSecret: () => config.secretKey,
    getSessionIdentifier: (req) => (req.session?.passport?.user ? req.sessionID : ''),
    cookieName: config.isProduction ? '__Host-movr.csrf' : 'movr.csrf',
    cookieOptions: { sameSite: 'strict', secure: config.isProduction, httpOnly: true, path: '/' },
    getCsrfTokenFromRequest: (req) => (typeof req.body?._csrf === 'string' ? req.body._csrf : undefined),
  });

  app.set('trust proxy', config.trustProxy);
  // Compiled once outside development; `npm run dev` re-reads an edited template on the next request.
  useViews(app, { cache: config.env !== 'development' });
  app.disable('x-powered-by');
  // Pages are no-store, so never revalidated: an ETag would cost a SHA-1 of every page for nothing. Static files
  // keep theirs (serve-static makes its own).
  app.set('etag', false);
  app.locals.vehicleTypes = VEHICLE_TYPES;
  app.locals.development = config.env === 'development';
  app.locals.demoLogin = config.env === 'development' ? demoLogin : undefined;
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

  app.use(
    chain(
      requestLog(logger),
      (_req, res, next) => {
        // Draining for a rolling update: each connection serves this response and closes, so clients move on.
        // Decided as the head is written, so a request already running when the signal came closes too.
        onHeaders(res, () => lifecycle.draining && res.setHeader('Connection', 'close'));
        next();
      },
      metrics.observeRequests,
      serverTiming(config.region),
      securityHeaders({
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
    ),
  );

  app.use('/static', express.static(path.join(PROJECT_ROOT, 'public'), { maxAge: config.isProduction ? '1d' : 0 }));
  app.use('/static/vendor/bootstrap', express.static(path.join(PROJECT_ROOT, 'node_modules/bootstrap/dist'), { maxAge: '7d' }));
  healthRoutes(app, db, lifecycle);

  const pageLocals = (req: Request, res: Response, next: NextFunction) => {
    res.locals.currentUser = req.user;
    // Made only when a form renders, so other pages set no cookie.
    let csrfToken: string | undefined;
    Object.defineProperty(res.locals, 'csrfToken', { enumerable: true, get: () => (csrfToken ??= generateCsrfToken(req, res)) });
    // Taken only when a page renders, so a redirect on the way (e.g. to /login) does not swallow them.
    let messages: FlashMessage[] | undefined;
    Object.defineProperty(res.locals, 'messages', { enumerable: true, get: () => (messages ??= takeFlash(req)) });
    res.locals.city = currentLocality(res).city;
    res.locals.region = currentLocality(res).region;
    res.locals.cityGroups = CITY_GROUPS;
    res.locals.apiKey = config.apiKey;
    res.locals.path = req.path;
    res.locals.servedRegion = config.region;
    next();
  };

  app.use(
    chain(
      (_req, res, next) => {
        // Pages may hold personal data and CSRF tokens: never kept by the browser or a proxy (Back after log-out).
        res.set('Cache-Control', 'no-store');
        next();
      },
      express.urlencoded({ extended: false, limit: '100kb', parameterLimit: 100 }),
      sessionMiddleware(config, sessionStore),
      cookieParser(config.secretKey),
      saveSessionBeforeRedirect,
      sessionUser(passport),
      locality(config.region),
      pageLocals,
      activeRideLocal(movr),
      // After the locals, so that a stale form's 403 page still shows the rider's own nav.
      doubleCsrfProtection,
    ),
  );

  // Registered on the app itself: a router per module would add a router's walk to every page.
  extraRoutes?.(app);
  authRoutes(app, { movr, passport, limiters });
  vehicleRoutes(app, movr);
  rideRoutes(app, movr);
  userRoutes(app, movr);
  cityRoutes(app);

  app.use((_req, _res, next) => next(new HttpError(404, 'That page does not exist.')));
  app.use(errorHandler(logger, { showDetails: config.env === 'development' }));
  return app;
}
