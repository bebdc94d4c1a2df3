import express, { type Request } from 'express';
import { ForbiddenError, RefusedError } from '../../movr/errors.js';
import type { UserRef } from '../../movr/models.js';
import type { MovR } from '../../movr/movr.js';
import { cityLabel } from '../../regions.js';
import { flash } from '../flash.js';
import { uuidParam } from '../forms.js';
import { backTo, notFound, RefusedAction } from '../middleware/errors.js';
import { currentUser, requireLogin } from '../middleware/passport.js';
import { endEverySession } from '../middleware/session.js';

/** Everything that stands between a rider and deleting their account, all at once. */
async function deletionBlockers(movr: MovR, me: UserRef): Promise<string[]> {
  const [ride, vehicles] = await Promise.all([movr.getActiveRide(me), movr.getOwnedVehicles(me)]);
  const blockers: string[] = [];
  if (ride) blockers.push('end your ride in progress');
  if (vehicles.length > 0) {
    const inUse = vehicles.filter((vehicle) => vehicle.status === 'in_use').length;
    const some = vehicles.length === 1 ? 'your vehicle' : `your ${vehicles.length} vehicles`;
    blockers.push(`remove ${some}${inUse ? ` (${inUse === 1 ? 'one is' : `${inUse} are`} on a ride: wait for it to end)` : ''}`);
  }
  return blockers;
}

function ownId(req: Request, raw: string | undefined): string {
  const me = currentUser(req);
  const id = uuidParam.safeParse(raw);
  if (!id.success) throw notFound('No such user.');
  if (id.data !== me.id) throw new ForbiddenError('You can only see your own profile.');
  return id.data;
}

/** `/users`: the riders of the current city, and one's own profile and account. */
export function usersRouter(movr: MovR): express.Router {
  const router = express.Router();
  router.use(requireLogin);

  router.get('/', async (_req, res) => {
    const { city } = res.locals.locality;
    res.render('users', { title: `Riders in ${cityLabel(city)}`, users: await movr.getUsers(city) });
  });

  router.get('/:id', async (req, res) => {
    const me = currentUser(req);
    ownId(req, req.params.id);
    const [user, vehicles] = await Promise.all([movr.getUser(me), movr.getOwnedVehicles(me)]);
    if (!user) throw notFound('No such user.');
    res.render('user', { title: 'My profile', user, vehicles });
  });

  /** The confirmation step before deleting the account, or everything to do first. */
  router.get('/remove/:id', async (req, res) => {
    const me = currentUser(req);
    ownId(req, req.params.id);
    const blockers = await deletionBlockers(movr, me);
    res.render('confirm', {
      title: 'Delete your account?',
      heading: 'Delete your account?',
      details: [
        `This logs you out everywhere and frees the username @${me.username}. Your past rides stay, without your name. It cannot be undone.`,
      ],
      blockers: blockers.map((blocker) => `${blocker[0]!.toUpperCase()}${blocker.slice(1)}.`),
      action: `/users/remove/${me.id}`,
      confirmLabel: 'Delete my account',
      cancel: { href: `/users/${me.id}`, label: 'Keep my account' },
    });
  });

  router.post('/remove/:id', async (req, res) => {
    const me = currentUser(req);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw notFound('No such user.');
    try {
      await movr.removeUser(me, id.data);
    } catch (error) {
      if (!(error instanceof RefusedError)) throw error;
      // Every reason at once, in the confirmation page's words (with counts and vehicles on a ride).
      const blockers = await deletionBlockers(movr, me);
      if (blockers.length === 0) throw new RefusedAction(error.message, `/users/${me.id}`);
      flash(req, res, 'danger', `To delete your account, first ${blockers.join(', and ')}.`);
      return res.redirect(303, backTo(req, `/users/${me.id}`));
    }
    await endEverySession(req, res, me);
    flash(req, res, 'info', 'Your account was deleted. Thank you for riding with MovR.');
    res.redirect(303, '/login');
  });

  return router;
}
