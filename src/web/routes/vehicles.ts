import express from 'express';
import type { MovR } from '../../movr/movr.js';
import { cityLabel } from '../../regions.js';
import { flash } from '../flash.js';
import { pageQuery, parseForm, uuidParam, vehicleForm } from '../forms.js';
import { notFound, refusedGoesBackTo } from '../middleware/errors.js';
import { currentUser, requireLogin } from '../middleware/passport.js';
import { saveSession } from '../middleware/session.js';

/** `/vehicles`: the current city's vehicles, and adding and removing one's own. */
export function vehiclesRouter(movr: MovR): express.Router {
  const router = express.Router();
  router.use(requireLogin);

  router.get('/', async (req, res) => {
    const page = pageQuery.safeParse(req.query.page);
    if (!page.success) throw notFound();
    const { city } = res.locals.locality;
    const vehicles = await movr.getVehicles(city, page.data ?? 1);
    res.render('vehicles', { title: `Vehicles in ${cityLabel(city)}`, vehicles, userId: currentUser(req).id });
  });

  router.get('/add', (_req, res) => {
    res.render('vehicles-add', { title: 'Add a vehicle', errors: {}, values: {} });
  });

  router.post('/add', async (req, res) => {
    const user = currentUser(req);
    const form = parseForm(vehicleForm, req.body);
    if (!form.ok) {
      res.locals.activeRide = await movr.getActiveRide(user);
      return res.status(422).render('vehicles-add', { title: 'Add a vehicle', errors: form.errors, values: form.values });
    }
    const vehicle = await movr.addVehicle(user, form.value);
    // The vehicle is listed in the home city: show that city, as if chosen, so the rider sees it there.
    req.session.chosenCity = vehicle.city;
    flash(req, res, 'success', `Your ${vehicle.color} ${vehicle.type} is listed in ${cityLabel(vehicle.city)}, your home city. It is highlighted below.`);
    await saveSession(req);
    res.redirect(303, '/vehicles');
  });

  /** The confirmation step before removing a vehicle (a page without JavaScript, a dialog with it). */
  router.get('/remove/:id', async (req, res) => {
    const user = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such vehicle.');
    // Someone else's vehicle is 403 before anything else, as for the POST.
    const vehicle = await movr.getOwnVehicle(user, id.data);
    const what = `${vehicle.color} ${vehicle.type}${vehicle.brand ? ` (${vehicle.brand})` : ''}`;
    res.render('confirm', {
      title: 'Remove this vehicle?',
      heading: 'Remove this vehicle?',
      details: [`Your ${what} at ${vehicle.location} will no longer be listed in ${cityLabel(vehicle.city)}. Past rides on it stay in their riders' history.`],
      blockers: vehicle.status === 'in_use' ? ['wait for the ride on it to end: a vehicle in use cannot be removed.'] : [],
      action: `/vehicles/remove/${vehicle.id}`,
      confirmLabel: 'Remove vehicle',
      cancel: { href: `/users/${user.id}`, label: 'Keep it' },
    });
  });

  router.post('/remove/:id', async (req, res) => {
    const user = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such vehicle.');
    await movr.removeVehicle(user, id.data).catch(refusedGoesBackTo(`/users/${user.id}`));
    flash(req, res, 'success', 'Vehicle removed.');
    res.redirect(303, `/users/${user.id}`);
  });

  return router;
}
