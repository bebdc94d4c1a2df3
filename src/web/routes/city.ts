import type { IRouter } from 'express';
import { requireLogin } from '../auth.js';
import { notFound } from '../errors.js';
import { flash } from '../flash.js';
import { cityParam } from '../forms.js';
import { cityLabel } from '../../regions.js';

export function cityRoutes(router: IRouter): void {
  router.post('/city/:city', requireLogin, (req, res) => {
    const city = cityParam.safeParse(req.params.city);
    if (!city.success) throw notFound('MovR does not run in that city.');
    req.session.chosenCity = city.data;
    flash(req, 'info', `Showing ${cityLabel(city.data)}.`);
    res.redirect(303, '/vehicles');
  });
}
