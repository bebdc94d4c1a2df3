import type { IRouter } from 'express';
import type { MovR } from '../../movr/movr.js';
import { cityLabel } from '../../regions.js';
import { currentUser, requireLogin } from '../auth.js';
import { notFound } from '../errors.js';
import { flash } from '../flash.js';
import { formatRelative } from '../format.js';
import { endRideForm, parseForm, uuidParam } from '../forms.js';
import { currentLocality } from '../locality.js';

export function rideRoutes(router: IRouter, movr: MovR): void {
  router.use('/rides', requireLogin);

  router.get('/rides', async (req, res) => {
    const rides = await movr.getRides(currentUser(req));
    // The active ride is the newest, so the riding bar needs no query of its own here.
    res.locals.activeRide = rides.find((ride) => ride.endTime === null);
    res.render('rides', { title: 'My rides', rides, errors: {}, values: {} });
  });

  router.post('/rides/start/:vehicleId', async (req, res) => {
    const id = uuidParam.safeParse(req.params.vehicleId);
    if (!id.success) throw notFound('No such vehicle.');
    res.locals.refusedRedirect = '/vehicles';
    const ride = await movr.startRide(currentUser(req), id.data, currentLocality(res).city);
    flash(req, 'success', `Your ride started at ${ride.startLocation}. Enjoy!`);
    res.redirect(303, '/rides');
  });

  /** The confirmation step before ending a ride (a page without JavaScript, a dialog with it). */
  router.get('/rides/end/:rideId', async (req, res) => {
    const id = uuidParam.safeParse(req.params.rideId);
    if (!id.success) throw notFound('No such ride.');
    const ride = await movr.getOwnRide(currentUser(req), id.data, currentLocality(res).city);
    if (ride.endTime !== null) {
      flash(req, 'info', 'That ride has already ended.');
      return res.redirect(303, '/rides');
    }
    res.locals.activeRide = ride;
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

  router.post('/rides/end/:rideId', async (req, res) => {
    const rider = currentUser(req);
    const id = uuidParam.safeParse(req.params.rideId);
    if (!id.success) throw notFound('No such ride.');
    res.locals.refusedRedirect = '/rides';
    const form = parseForm(endRideForm, req.body);
    if (!form.ok) {
      // Ownership is checked before the form is judged: someone else's ride is 403 whatever was posted.
      await movr.getOwnRide(rider, id.data, currentLocality(res).city);
      const rides = await movr.getRides(rider);
      res.locals.activeRide = rides.find((ride) => ride.endTime === null);
      return res.status(422).render('rides', { title: 'My rides', rides, errors: form.errors, values: form.values });
    }
    await movr.endRide(rider, id.data, form.value.location, currentLocality(res).city);
    flash(req, 'success', `Ride ended at ${form.value.location}.`);
    res.redirect(303, '/rides');
  });
}
