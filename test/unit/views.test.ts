import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import express from 'express';
import { PROJECT_ROOT } from '../../src/config.js';
import { compileTemplate, escapeHtml, useViews } from '../../src/web/views.js';

const VIEWS = path.join(PROJECT_ROOT, 'views');
const templates = ['', 'partials'].flatMap((dir) =>
  readdirSync(path.join(VIEWS, dir))
    .filter((file) => file.endsWith('.ejs'))
    .map((file) => path.join(VIEWS, dir, file)),
);

describe('views', () => {
  it('escapes the five HTML specials and nothing else', () => {
    assert.equal(escapeHtml(`<a href="x" title='y'>&</a>`), '&lt;a href=&#34;x&#34; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    assert.equal(escapeHtml('Rue de Rivoli · 12'), 'Rue de Rivoli · 12');
    assert.equal(escapeHtml(42), '42');
    assert.equal(escapeHtml(null), '');
    assert.equal(escapeHtml(undefined), '');
  });

  it('compiles every template in strict mode, production and development alike', () => {
    assert.ok(templates.length >= 10, `found ${templates.length} templates`);
    for (const file of templates) {
      for (const cache of [true, false]) assert.equal(typeof compileTemplate(readFileSync(file, 'utf8'), file, { cache }), 'function', file);
    }
  });

  it('fails loudly on a name that is not a view local (a typo, or one missing from VIEW_LOCALS)', () => {
    const template = compileTemplate('<%= cty %>', 'inline.ejs', { cache: true });
    assert.throws(() => template({ city: 'paris' }), ReferenceError);
    assert.equal(compileTemplate('<%= city %>', 'inline.ejs', { cache: true })({ city: 'paris' }), 'paris');
  });

  it('renders the map partial (shown only with API_KEY, so no page test reaches it) with its values encoded', () => {
    const file = path.join(VIEWS, 'partials/map.ejs');
    const html = compileTemplate(readFileSync(file, 'utf8'), file, { cache: true })({ apiKey: 'k&y', query: 'Place de la "Concorde", Paris', label: '<b>Concorde</b>', className: 'map-sm' });
    assert.match(html, /data-map-src="https:\/\/www\.google\.com\/maps\/embed\/v1\/place\?key=k%26y&q=Place%20de%20la%20%22Concorde%22%2C%20Paris"/);
    assert.match(html, /&lt;b&gt;Concorde&lt;\/b&gt; on Google Maps/);
    assert.match(html, /class="map map-sm"/);
  });

  it("renders a page with its partials, each seeing the page's locals", async () => {
    const app = express();
    useViews(app, { cache: true });
    const html = await new Promise<string>((resolve, reject) =>
      app.render('error', { ...visitorLocals(), title: 'Gone <now>', status: 410, message: 'a & b' }, (error, out) => (error ? reject(error) : resolve(out!))),
    );
    assert.match(html, /<title>Gone &lt;now&gt; · MovR<\/title>/);
    assert.match(html, /a &amp; b/);
    assert.match(html, /<nav class="navbar/, 'partial("nav") from partial("head")');
    assert.match(html, /<\/html>\s*$/, 'partial("foot")');
    assert.doesNotMatch(html, /^[ \t]+</m, 'leading whitespace trimmed');
  });

  it("gives each partial its own data and leaves the page's locals as they were", async () => {
    const app = express();
    useViews(app, { cache: true });
    const locals: Record<string, unknown> = { ...visitorLocals(), title: 'Log in', errors: { username: 'Too <short>' }, values: { username: 'al' }, value: 'the page’s own' };
    const html = await new Promise<string>((resolve, reject) => app.render('login', locals, (error, out) => (error ? reject(error) : resolve(out!))));
    const field = (name: string) => html.match(new RegExp(`<input[^>]*id="field-${name}"[^>]*>`))?.[0] ?? '';
    assert.match(field('username'), /is-invalid/);
    assert.match(field('username'), /value="al"/);
    assert.match(html, /id="error-username">Too &lt;short&gt;</);
    assert.doesNotMatch(field('password'), /is-invalid|aria-invalid/, "the first field's error stays with it");
    assert.match(field('password'), /value=""/);

    // The brand field is optional (required: false); the location field after it, which says nothing, is not.
    const add = await new Promise<string>((resolve, reject) =>
      app.render('vehicles-add', { ...visitorLocals(), currentUser: { id: 'u1', city: 'paris', username: 'al' }, csrfToken: 't', title: 'Add', vehicleTypes: ['bike'], errors: {}, values: {} }, (error, out) => (error ? reject(error) : resolve(out!))),
    );
    const input = (name: string) => add.match(new RegExp(`<input[^>]*id="field-${name}"[^>]*>`))?.[0] ?? '';
    assert.doesNotMatch(input('brand'), /required/);
    assert.match(input('location'), /required/);
  });
});

/** What app.ts and its middleware give every page, for a visitor who is not logged in. */
function visitorLocals() {
  const format = new Proxy({}, { get: () => (value: unknown) => String(value ?? '') });
  return { format, messages: [], city: 'paris', cityGroups: [], path: '/x', servedRegion: 'gcp-europe-west1' };
}
