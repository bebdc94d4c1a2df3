import { readFileSync } from 'node:fs';
import path from 'node:path';
import ejs from 'ejs';
import type { Express } from 'express';
import { PROJECT_ROOT } from '../config.js';

/**
 * Every name a template may use bare: app.locals, res.locals, each page's render data and each partial's
 * parameters. Templates compile in strict mode, where EJS declares these as plain variables instead of
 * wrapping the page in `with (locals)`, whose dynamic lookups made rendering 50 cards the costliest step of
 * a page. A name missing here is a ReferenceError at render, which the page tests catch.
 */
export const VIEW_LOCALS = [
  // app.locals (app.ts)
  'format', 'vehicleTypes', 'development', 'demoLogin',
  // res.locals (app.ts, active-ride.ts)
  'currentUser', 'csrfToken', 'messages', 'city', 'region', 'cityGroups', 'apiKey', 'path', 'servedRegion', 'activeRide',
  // pages
  'title', 'vehicles', 'userId', 'rides', 'users', 'user', 'errors', 'values', 'status', 'message', 'details',
  'heading', 'blockers', 'action', 'confirmLabel', 'cancel', 'location',
  // the engine's partial(name, data?) (below)
  'partial',
  // partials/field and partials/map
  'name', 'label', 'type', 'autocomplete', 'value', 'error', 'required', 'maxlength', 'help', 'query', 'className',
] as const;

type Callback = (error: Error | null, html?: string) => void;

const HTML_SPECIAL = /[&<>'"]/;
const HTML_SPECIALS = /[&<>'"]/g;
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', "'": '&#39;', '"': '&#34;' };

/** EJS's escaping, but most values (ids, names, dates) have nothing to escape and are returned as they are. */
export function escapeHtml(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : String(value);
  return HTML_SPECIAL.test(text) ? text.replace(HTML_SPECIALS, (char) => ENTITIES[char]!) : text;
}

type Locals = Record<string, unknown>;
type Template = (locals: Locals) => string;

/**
 * An EJS template compiled as the pages are. EJS 7 no longer reads Express's 'view options', so they are given
 * here: strict mode with the names above; leading whitespace trimmed (a seventh of a page with 50 cards).
 */
export function compileTemplate(source: string, filename: string, { cache }: { cache: boolean }): Template {
  const options = {
    filename,
    strict: true,
    localsName: 'locals',
    destructuredLocals: [...VIEW_LOCALS],
    rmWhitespace: true,
    escape: escapeHtml,
    // Express hands each render a fresh object, and strict mode reads only the names above from it: EJS's
    // defensive copy of it into a prototype-less object is work for nothing.
    unsafePrototypeLocals: true,
    // Line numbers in template errors, for development; the generated code is leaner without.
    compileDebug: !cache,
  };
  return ejs.compile(source, options) as Template;
}

/**
 * The EJS engine for Express: each template compiled once when `cache` is on (every environment but
 * development, where an edited template shows on reload).
 *
 * Templates include `views/partials/NAME.ejs` with `partial(NAME, data?)` rather than EJS's include(), which
 * copies every local twice and looks for the file on disk at each call: a tenth of the log-in page's CPU.
 */
function ejsEngine({ views, cache }: { views: string; cache: boolean }) {
  const compiled = new Map<string, Template>();
  const load = (file: string): Template => {
    let template = compiled.get(file);
    if (!template) {
      template = compileTemplate(readFileSync(file, 'utf8'), file, { cache });
      if (cache) compiled.set(file, template);
    }
    return template;
  };
  const partials = new Map<string, string>();
  const partialFile = (name: string) => {
    let file = partials.get(name);
    if (!file) partials.set(name, (file = path.join(views, 'partials', `${name}.ejs`)));
    return file;
  };
  const render = (file: string, locals: Locals): string => {
    locals.partial = (name: string, data?: Locals) => {
      const template = load(partialFile(name));
      return data ? withData(locals, data, () => template(locals)) : template(locals);
    };
    return load(file)(locals);
  };

  return (file: string, options: object, callback: Callback) => {
    const locals = options as Locals;
    let html: string;
    try {
      html = render(file, locals);
    } catch (error) {
      return callback(error as Error);
    }
    callback(null, html);
  };
}

/**
 * Runs `render` with a partial's data set on the page's own locals, then puts the page's values back. Layering the
 * data over the locals by prototype, or copying them, gave every render objects of new shapes, on which each of a
 * template's reads was ten times slower (a field partial: 0.8 µs on the page's object, 7 µs on a copy, 10–16 µs
 * through a prototype, measured in-process).
 */
function withData(locals: Locals, data: Locals, render: () => string): string {
  const keys = Object.keys(data);
  const saved = keys.map((key) => locals[key]);
  for (const key of keys) locals[key] = data[key];
  try {
    return render();
  } finally {
    // Set back, not deleted: a deletion would turn the object into a slow dictionary. A name the page did not
    // have reads as undefined again, as it did before.
    keys.forEach((key, i) => (locals[key] = saved[i]));
  }
}

/** Pages render from `views/` through the engine above; `cache` off only in development. */
export function useViews(app: Express, { cache }: { cache: boolean }): void {
  const views = path.join(PROJECT_ROOT, 'views');
  app.engine('ejs', ejsEngine({ views, cache }));
  app.set('view engine', 'ejs');
  app.set('views', views);
  app.set('view cache', cache);
}
