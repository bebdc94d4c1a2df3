import type { NextFunction, Request, Response } from 'express';
import type { Ride } from '../../movr/models.js';
import type { MovR } from '../../movr/movr.js';
import { type City, REGION_NAMES, REGIONS, type Region, citiesOf } from '../../regions.js';
import { type FlashMessage, takeFlash } from '../flash.js';
import type { z } from 'zod';
import type { registerForm } from '../forms.js';
import type { Locality } from './locality.js';
import type { SessionUser } from './passport.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    /** Everything a request's handlers and its page share; app.locals (app.ts) adds the app-wide helpers. */
    interface Locals {
      /** The request's current city and its region (middleware/locality.ts). */
      locality: Locality;
      currentUser?: SessionUser;
      /** Made when first read, so a response that renders no form sets no CSRF cookie. */
      csrfToken: string;
      /** The flash messages for this page, taken when first read (a redirect on the way keeps them). */
      messages: FlashMessage[];
      /** Messages added while handling this request, for the next page (flash.ts). */
      flashOut?: FlashMessage[];
      /** The current city again (locality.city), as the views name it. */
      city: City;
      path: string;
      /** The rider's ride in progress, for the riding bar (activeRide below, or the page's own route). */
      activeRide?: Ride;
      /** The log-in form's parsed username, which the failed log-in limiter counts by (limits.ts). */
      username?: string;
      /** The sign-up form once parsed, for the handler after the sign-up limiter (routes/auth.ts). */
      registration?: z.output<typeof registerForm>;
      /** An API answer given again for a repeated Idempotency-Key (api/router.ts): the request made nothing. */
      answeredAgain?: boolean;
    }
  }
}

export interface CityGroup {
  region: Region;
  label: string;
  cities: readonly City[];
}

/** The city menu's groups, the same on every page (app.locals). */
export const CITY_GROUPS: readonly CityGroup[] = REGION_NAMES.map((region) => ({ region, label: REGIONS[region].label, cities: citiesOf(region) }));

/** What every page shows: the user, the current city, the forms' CSRF token and the flash messages. */
export function pageLocals(generateCsrfToken: (req: Request, res: Response) => string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.locals.currentUser = req.user;
    let csrfToken: string | undefined;
    Object.defineProperty(res.locals, 'csrfToken', { enumerable: true, get: () => (csrfToken ??= generateCsrfToken(req, res)) });
    let messages: FlashMessage[] | undefined;
    Object.defineProperty(res.locals, 'messages', { enumerable: true, get: () => (messages ??= takeFlash(req, res)) });
    res.locals.city = res.locals.locality.city;
    res.locals.path = req.path;
    next();
  };
}

/** The riding bar's ride for a logged-in rider's page (GET or HEAD); a form post redirects and needs none. */
export function activeRide(movr: Pick<MovR, 'getActiveRide'>) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (!req.user || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    try {
      res.locals.activeRide = await movr.getActiveRide(req.user);
    } catch (error) {
      // The page matters more than its bar: it reports the database's trouble itself if it needs the database.
      req.log.warn({ err: error }, 'active ride unavailable for the riding bar');
    }
    next();
  };
}
