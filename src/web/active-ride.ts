import type { NextFunction, Request, Response } from 'express';
import type { MovR } from '../movr/movr.js';

/**
 * Puts the logged-in rider's ride in progress on `res.locals.activeRide`, for the riding bar of every page.
 * A GET's comes with the session read (web/session-store.ts); otherwise it is read when a page renders, not per
 * request, so redirects cost no query. A route that already knows it (the rides page) sets the local itself.
 */
export function activeRideLocal(movr: Pick<MovR, 'getActiveRide'>) {
  return (req: Request, res: Response, next: NextFunction) => {
    const user = req.user;
    if (!user) return next();
    const render = res.render.bind(res) as (...args: unknown[]) => void;
    res.render = ((...args: unknown[]) => {
      if ('activeRide' in res.locals) return render(...args);
      // A GET changes no ride, so the one read with its session (web/session-store.ts) is still the rider's.
      const known = req.method === 'GET' || req.method === 'HEAD' ? req.rideInProgress : undefined;
      if (known !== undefined) {
        res.locals.activeRide = known ?? undefined;
        return render(...args);
      }
      movr.getActiveRide(user).then(
        (ride) => {
          res.locals.activeRide = ride;
          render(...args);
        },
        (error: unknown) => {
          // The page matters more than its bar (an error page while the database is away, say).
          req.log?.warn({ err: error }, 'active ride unavailable for the riding bar');
          res.locals.activeRide = undefined;
          render(...args);
        },
      );
    }) as Response['render'];
    next();
  };
}
