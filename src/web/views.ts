import ejs from 'ejs';

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

/**
 * The EJS engine for Express. EJS 7 no longer reads Express's 'view options', so the options are given here:
 * strict mode with the names above; leading whitespace trimmed (a seventh of a page with 50 cards); compiled
 * once when `cache` is on (every environment but development, where an edited template shows on reload).
 */
export function ejsEngine({ cache }: { cache: boolean }) {
  const options = {
    cache,
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
  return (file: string, data: object, callback: Callback) => ejs.renderFile(file, data, options, callback);
}
