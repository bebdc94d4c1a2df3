import path from 'node:path';
import ejs from 'ejs';
import escapeHtml from 'escape-html';
import type { Express } from 'express';
import { PROJECT_ROOT } from '../config.js';

export const VIEWS = path.join(PROJECT_ROOT, 'views');

/** `<%= %>` as EJS escapes it (nothing for null or undefined), by escape-html, which leaves a clean string as it is. */
const escape = (value: unknown): string => (value === undefined || value === null ? '' : escapeHtml(String(value)));

/**
 * EJS as the app's view engine, with its documented options: `strict` (no `with` block: each template reads what it
 * names from `locals`), `root`, from which includes are named (`/partials/nav`), `escape`, and `rmWhitespace`
 * (the templates' indentation stays in the source, not in every page sent).
 */
export function useViews(app: Express, { cache }: { cache: boolean }): void {
  const options: ejs.Options = { strict: true, root: VIEWS, cache, escape, rmWhitespace: true };
  app.engine('ejs', (file, data, done) => ejs.renderFile(file, data, options, done));
  app.set('views', VIEWS);
  app.set('view engine', 'ejs');
  app.set('view cache', cache);
}
