import type { IRouter } from 'express';
import type { MovR } from '../../movr/movr.js';
import { cityLabel } from '../../regions.js';
import { currentUser, requireLogin } from '../auth.js';
import { notFound } from '../errors.js';
import { flash } from '../flash.js';
import { pageQuery, parseForm, uuidParam, vehicleForm } from '../forms.js';
import { currentLocality } from '../locality.js';

export function vehicleRoutes(router: IRouter, movr: MovR): void {
  router.use('/vehicles', requireLogin);

  router.get('/vehicles', async (req, res) => {
    const page = pageQuery.safeParse(req.query.page);
    if (!page.success) throw notFound();
    const { city } = currentLocality(res);
    const vehicles = await movr.getVehicles(city, page.data ?? 1);
    res.render('vehicles', { title: `Vehicles in ${cityLabel(city)}`, vehicles, userId: currentUser(req).id });
  });

  router.get('/vehicles/add', (_req, res) => {
    res.render('vehicles-add', { title: 'Add a vehicle', errors: {}, values: {} });
  });

  router.post('/vehicles/add', async (req, res) => {
    const form = parseForm(vehicleForm, req.body);
    if (!form.ok) return res.status(422).render('vehicles-add', { title: 'Add a vehicle', errors: form.errors, values: form.values });
    const vehicle = await movr.addVehicle(currentUser(req), form.value);
    // The vehicle is listed in the home city: show that city, as if chosen, so the rider sees it there.
    req.session.chosenCity = vehicle.city;
    flash(req, 'success', `Your ${vehicle.color} ${vehicle.type} is listed in ${cityLabel(vehicle.city)}, your home city. It is highlighted below.`);
    res.redirect(303, '/vehicles');
  });

  /** The confirmation step before removing a vehicle (a page without JavaScript, a dialog with it). */
  router.get('/vehicles/remove/:id', async (req, res) => {
    const user = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such vehicle.');
    const vehicle = (await movr.getOwnedVehicles(user)).find((owned) => owned.id === id.data);
    if (!vehicle) throw notFound('You have no such vehicle.');
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

  router.post('/vehicles/remove/:id', async (req, res) => {
    const user = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such vehicle.');
    res.locals.refusedRedirect = `/users/${user.id}`;
    await movr.removeVehicle(user, id.data);
    flash(req, 'success', 'Vehicle removed.');
    res.redirect(303, `/users/${user.id}`);
  });
}
