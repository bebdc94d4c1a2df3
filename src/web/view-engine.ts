import path from 'node:path';
import ejs from 'ejs';
import type { Express } from 'express';
import { PROJECT_ROOT } from '../config.js';

export const VIEWS = path.join(PROJECT_ROOT, 'views');

/**
 * EJS as the app's view engine, with two of its documented options: `strict` (no `with` block: each template reads
 * what it names from `locals`) and `root`, from which includes are named (`/partials/nav`).
 */
export function useViews(app: Express, { cache }: { cache: boolean }): void {
  const options: ejs.Options = { strict: true, root: VIEWS, cache };
  app.engine('ejs', (file, data, done) => ejs.renderFile(file, data, options, done));
  app.set('views', VIEWS);
  app.set('view engine', 'ejs');
  app.set('view cache', cache);
}
