import type { NextFunction, Request, Response } from 'express';
import type { MovR } from '../movr/movr.js';

/**
 * Puts the logged-in rider's ride in progress on `res.locals.activeRide`, for the riding bar of every page.
 * It is read when a page renders, not per request, so redirects and POSTs cost no query; a route that already
 * knows it (the rides page) sets the local itself and no query is sent.
 */
export function activeRideLocal(movr: Pick<MovR, 'getActiveRide'>) {
  return (req: Request, res: Response, next: NextFunction) => {
    const user = req.user;
    if (!user) return next();
    const render = res.render.bind(res) as (...args: unknown[]) => void;
    res.render = ((...args: unknown[]) => {
      if ('activeRide' in res.locals) return render(...args);
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
