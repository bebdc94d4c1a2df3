import { Router } from 'express';
import type { MovR } from '../../movr/movr.js';
import { ForbiddenError } from '../../movr/errors.js';
import { currentUser, requireLogin } from '../auth.js';
import { notFound } from '../errors.js';
import { flash } from '../flash.js';
import { uuidParam } from '../forms.js';
import { currentLocality } from '../locality.js';
import { endEverySession } from '../session.js';

export function userRoutes(movr: MovR): Router {
  const router = Router();
  router.use('/users', requireLogin);

  router.get('/users', async (_req, res) => {
    const { city } = currentLocality(res);
    res.render('users', { title: `Riders in ${city}`, users: await movr.getUsers(city) });
  });

  router.get('/users/:id', async (req, res) => {
    const me = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such user.');
    if (id.data !== me.id) throw new ForbiddenError('You can only see your own profile.');
    const [user, vehicles] = await Promise.all([movr.getUser(me), movr.getOwnedVehicles(me)]);
    if (!user) throw notFound('No such user.');
    res.render('user', { title: 'My profile', user, vehicles });
  });

  router.post('/users/remove/:id', async (req, res) => {
    const me = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such user.');
    res.locals.refusedRedirect = `/users/${me.id}`;
    await movr.removeUser(me, id.data);
    await endEverySession(req, res, me);
    flash(req, 'info', 'Your account was deleted. Thank you for riding with MovR.');
    res.redirect(303, '/login');
  });

  return router;
}
