import { Router } from 'express';
import type { MovR } from '../../movr/movr.js';
import { currentUser, requireLogin } from '../auth.js';
import { notFound } from '../errors.js';
import { flash } from '../flash.js';
import { pageQuery, parseForm, uuidParam, vehicleForm } from '../forms.js';
import { currentLocality } from '../locality.js';

export function vehicleRoutes(movr: MovR): Router {
  const router = Router();
  router.use('/vehicles', requireLogin);

  router.get('/vehicles', async (req, res) => {
    const page = pageQuery.safeParse(req.query.page);
    if (!page.success) throw notFound();
    const { city } = currentLocality(res);
    const vehicles = await movr.getVehicles(city, page.data ?? 1);
    res.render('vehicles', { title: `Vehicles in ${city}`, vehicles, userId: currentUser(req).id });
  });

  router.get('/vehicles/add', (_req, res) => {
    res.render('vehicles-add', { title: 'Add a vehicle', errors: {}, values: {} });
  });

  router.post('/vehicles/add', async (req, res) => {
    const form = parseForm(vehicleForm, req.body);
    if (!form.ok) return res.status(422).render('vehicles-add', { title: 'Add a vehicle', errors: form.errors, values: form.values });
    const vehicle = await movr.addVehicle(currentUser(req), form.value);
    flash(req, 'success', `Your ${vehicle.type} was added in ${vehicle.city}.`);
    res.redirect(303, '/vehicles');
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

  return router;
}
