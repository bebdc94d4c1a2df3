import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ejs from 'ejs';
import express from 'express';
import { VIEWS, useViews } from '../../src/web/view-engine.js';

const templates = ['', 'partials'].flatMap((dir) =>
  readdirSync(path.join(VIEWS, dir))
    .filter((file) => file.endsWith('.ejs'))
    .map((file) => path.join(VIEWS, dir, file)),
);

/** The views as app.ts sets them up. */
function viewsApp() {
  const app = express();
  useViews(app, { cache: true });
  return app;
}

const render = (app: express.Express, view: string, locals: Record<string, unknown>) =>
  new Promise<string>((resolve, reject) => app.render(view, locals, (error, out) => (error ? reject(error) : resolve(out!))));

describe('views', () => {
  it('compiles every template', () => {
    assert.ok(templates.length >= 10, `found ${templates.length} templates`);
    for (const file of templates) assert.equal(typeof ejs.compile(readFileSync(file, 'utf8'), { filename: file, strict: true, root: VIEWS }), 'function', file);
  });

  it('renders the map partial (shown only with API_KEY, so no page test reaches it) with its values encoded', () => {
    const file = path.join(VIEWS, 'partials/map.ejs');
    const html = ejs.render(readFileSync(file, 'utf8'), { apiKey: 'k&y', query: 'Place de la "Concorde", Paris', label: '<b>Concorde</b>', className: 'map-sm' }, { filename: file, strict: true });
    assert.match(html, /data-map-src="https:\/\/www\.google\.com\/maps\/embed\/v1\/place\?key=k%26y&q=Place%20de%20la%20%22Concorde%22%2C%20Paris"/);
    assert.match(html, /&lt;b&gt;Concorde&lt;\/b&gt; on Google Maps/);
    assert.match(html, /class="map map-sm"/);
  });

  it("renders a page with its partials, each seeing the page's locals, every value escaped", async () => {
    const html = await render(viewsApp(), 'error', { ...visitorLocals(), title: `Gone <now> & "then" 'so'`, status: 410, message: 'a & b' });
    assert.match(html, /<title>Gone &lt;now&gt; &amp; &quot;then&quot; &#39;so&#39; · MovR<\/title>/);
    assert.match(html, /a &amp; b/);
    assert.match(html, /<nav class="navbar/, 'include("nav") from include("head")');
    assert.match(html, /<\/html>\s*$/, 'include("foot")');
  });

  it("gives each partial its own data and leaves the page's locals as they were", async () => {
    const app = viewsApp();
    const locals: Record<string, unknown> = { ...visitorLocals(), title: 'Log in', errors: { username: 'Too <short>' }, values: { username: 'al' }, value: 'the page’s own' };
    const html = await render(app, 'login', locals);
    const field = (name: string) => html.match(new RegExp(`<input[^>]*id="field-${name}"[^>]*>`))?.[0] ?? '';
    assert.match(field('username'), /is-invalid/);
    assert.match(field('username'), /value="al"/);
    assert.match(html, /id="error-username">Too &lt;short&gt;</);
    assert.doesNotMatch(field('password'), /is-invalid|aria-invalid/, "the first field's error stays with it");
    assert.match(field('password'), /value=""/);

    // The brand field is optional (required: false); the location field after it, which says nothing, is not.
    const add = await render(app, 'vehicles-add', { ...visitorLocals(), currentUser: { id: 'u1', city: 'paris', username: 'al' }, csrfToken: 't', title: 'Add', vehicleTypes: ['bike'], errors: {}, values: {} });
    const input = (name: string) => add.match(new RegExp(`<input[^>]*id="field-${name}"[^>]*>`))?.[0] ?? '';
    assert.doesNotMatch(input('brand'), /required/);
    assert.match(input('location'), /required/);
  });

  it("gives the end-ride step's location field ids of its own, so the rides page's dialog never repeats the page's", async () => {
    const html = await render(viewsApp(), 'confirm', {
      ...visitorLocals(),
      csrfToken: 't',
      heading: 'End your ride?',
      details: [],
      blockers: [],
      action: '/rides/end/r1',
      confirmLabel: 'End ride',
      cancel: { href: '/rides', label: 'Keep riding' },
      location: true,
      errors: {},
      values: { location: '' },
    });
    assert.match(html, /<label class="form-label" for="field-end-location">Location<\/label>/);
    assert.match(html, /<input[^>]*id="field-end-location"[^>]*name="location"[^>]*aria-describedby="help-end-location"/);
    assert.doesNotMatch(html, /id="field-location"|id="help-location"/);
  });
});

/** What app.ts and its middleware give every page, for a visitor who is not logged in. */
function visitorLocals() {
  const format = new Proxy({}, { get: () => (value: unknown) => String(value ?? '') });
  return { format, development: false, csrfToken: 't', messages: [], city: 'paris', cityGroups: [], path: '/x', servedRegion: 'gcp-europe-west1' };
}
