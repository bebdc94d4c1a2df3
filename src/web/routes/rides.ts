import express from 'express';
import type { MovR } from '../../movr/movr.js';
import { cityLabel } from '../../regions.js';
import { flash } from '../flash.js';
import { formatRelative } from '../format.js';
import { endRideForm, parseForm, uuidParam } from '../forms.js';
import { notFound, refusedGoesBackTo } from '../middleware/errors.js';
import { currentUser, requireLogin } from '../middleware/passport.js';

/** `/rides`: the rider's rides, and starting and ending one. */
export function ridesRouter(movr: MovR): express.Router {
  const router = express.Router();
  router.use(requireLogin);

  router.get('/', async (req, res) => {
    const rides = await movr.getRides(currentUser(req));
    res.render('rides', { title: 'My rides', rides, errors: {}, values: {} });
  });

  router.post('/start/:vehicleId', async (req, res) => {
    const id = uuidParam.safeParse(req.params.vehicleId);
    if (!id.success) throw notFound('No such vehicle.');
    const ride = await movr.startRide(currentUser(req), id.data, res.locals.locality.city).catch(refusedGoesBackTo('/vehicles'));
    flash(req, res, 'success', `Your ride started at ${ride.startLocation}. Enjoy!`);
    res.redirect(303, '/rides');
  });

  /** The confirmation step before ending a ride (a page without JavaScript, a dialog with it). */
  router.get('/end/:rideId', async (req, res) => {
    const id = uuidParam.safeParse(req.params.rideId);
    if (!id.success) throw notFound('No such ride.');
    const ride = await movr.getOwnRide(currentUser(req), id.data, res.locals.locality.city);
    if (ride.endTime !== null) {
      flash(req, res, 'info', 'That ride has already ended.');
      return res.redirect(303, '/rides');
    }
    const location = typeof req.query.location === 'string' ? req.query.location.slice(0, 100) : '';
    res.render('confirm', {
      title: 'End your ride?',
      heading: 'End your ride?',
      details: [
        `Your ${ride.vehicleColor} ${ride.vehicleType}${ride.vehicleBrand ? ` (${ride.vehicleBrand})` : ''} from ${ride.startLocation}, ${cityLabel(ride.city)}, started ${formatRelative(ride.startTime, ride.city)}.`,
        'Say where you are leaving it, so the next rider can find it.',
      ],
      blockers: [],
      action: `/rides/end/${ride.id}`,
      confirmLabel: 'End ride',
      cancel: { href: '/rides', label: 'Keep riding' },
      location: true,
      errors: {},
      values: { location },
    });
  });

  router.post('/end/:rideId', async (req, res) => {
    const rider = currentUser(req);
    const id = uuidParam.safeParse(req.params.rideId);
    if (!id.success) throw notFound('No such ride.');
    const form = parseForm(endRideForm, req.body);
    if (!form.ok) {
      // Ownership is checked before the form is judged: someone else's ride is 403 whatever was posted.
      await movr.getOwnRide(rider, id.data, res.locals.locality.city);
      const rides = await movr.getRides(rider);
      res.locals.activeRide = rides.find((ride) => ride.endTime === null);
      return res.status(422).render('rides', { title: 'My rides', rides, errors: form.errors, values: form.values });
    }
    await movr.endRide(rider, id.data, form.value.location, res.locals.locality.city).catch(refusedGoesBackTo('/rides'));
    flash(req, res, 'success', `Ride ended at ${form.value.location}.`);
    res.redirect(303, '/rides');
  });

  return router;
}
