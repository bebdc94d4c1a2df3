import express from 'express';
import { cityLabel } from '../../regions.js';
import { flash } from '../flash.js';
import { cityParam } from '../forms.js';
import { notFound } from '../middleware/errors.js';
import { requireLogin } from '../middleware/passport.js';
import { saveSession } from '../middleware/session.js';

/** `/city/:city`: the rider's explicit choice of city, kept in the session. */
export function cityRouter(): express.Router {
  const router = express.Router();

  router.post('/:city', requireLogin, async (req, res) => {
    const city = cityParam.safeParse(req.params.city);
    if (!city.success) throw notFound('MovR does not run in that city.');
    req.session.chosenCity = city.data;
    flash(req, res, 'info', `Showing ${cityLabel(city.data)}.`);
    await saveSession(req);
    res.redirect(303, '/vehicles');
  });

  return router;
}
