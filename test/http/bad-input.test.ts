import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { describe, test } from 'node:test';
import request from 'supertest';
import { PROJECT_ROOT } from '../../src/config.js';
import { VEHICLE_TYPES } from '../../src/vehicles.js';
import { parseCity } from '../../src/regions.js';
import { type Agent, csrfFrom, formPost, logIn, signUpAndLogIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';
import { userByUsername } from '../support/queries.js';

const SCRIPT = '<script>alert(1)</script>';
const IMG = '"><img src=x onerror=alert(1)>';
/** What must never reach a page unescaped. */
const LIVE_HTML = [SCRIPT, '<img src=x onerror=alert(1)>'];

/** A hostile form value: `raw` is what goes on the wire; `value` what the server decodes, when that is certain. */
interface Hostile {
  name: string;
  raw: string;
  value?: string;
}
const plain = (name: string, value: string): Hostile => ({ name, raw: encodeURIComponent(value), value });

const HOSTILE: Hostile[] = [
  plain('empty', ''),
  plain('whitespace only', '   '),
  plain('101 characters', 'x'.repeat(101)),
  plain('10k characters', 'y'.repeat(10_000)),
  plain('99 kB', 'z'.repeat(99_000)),
  plain('unicode and emoji', 'Zürich 🚲'),
  plain('other scripts', 'Ελλάδα 東京 café'),
  plain('NUL byte', 'nul\u0000byte!'),
  plain('control characters', 'bell\u0007 esc\u001b[31m'),
  plain('line break', 'two\r\nlines'),
  plain('DEL', 'del\u007fete-me'),
  { name: 'percent-encoded NUL', raw: 'a%00b%00cdefgh', value: 'a\u0000b\u0000cdefgh' },
  // Not valid UTF-8: the server may keep the text as sent or refuse it, but never fail.
  { name: 'overlong UTF-8 %C0%AF', raw: '%C0%AF' },
  { name: 'invalid UTF-8 %FF', raw: 'caf%FF' },
  { name: 'lone surrogate %ED%A0%80', raw: 'x%ED%A0%80y' },
  plain('SQL: OR 1=1', "' OR 1=1 --"),
  plain('SQL: DROP TABLE', "'; DROP TABLE users; --"),
  plain('HTML: script', SCRIPT),
  plain('HTML: attribute break-out', IMG),
  plain('path traversal', '../../etc/passwd'),
  plain('format strings', '100% %s %n {{7*7}} ${7*7}'),
  plain('zero-width spaces only', '\u200B\u200B\u200B'),
  plain('byte-order mark and word joiner only', '\uFEFF\u2060'),
  plain('Hangul fillers only', '\u3164\u3164'),
  plain('combining grapheme joiner only', '\u034F\u034F'),
  plain('variation selectors only', '\uFE0F\u{E0100}\u180B'),
  plain('a lone combining mark', '\u0301'),
  plain('a mark on a letter', 'Cafe\u0301'),
  plain('right-to-left override', 'gepj.\u202Eexe.txt'),
  plain('bidi isolate', 'left \u2067right\u2069 end'),
  plain('zero-width joiner inside an emoji', 'family 👩\u200D👧'),
];

/** Ways to send a field that are not one string: `fragment` replaces `field=value` in the body. */
const SHAPES: { name: string; fragment: (field: string) => string; missing: boolean }[] = [
  { name: 'given twice (a=1&a=2)', fragment: (f) => `${f}=a&${f}=b`, missing: false },
  { name: 'nested (a[b]=1)', fragment: (f) => `${f}%5Bb%5D=1`, missing: true },
  { name: 'missing', fragment: () => '', missing: true },
  { name: 'under __proto__', fragment: (f) => `__proto__%5B${f}%5D=x`, missing: true },
];

type Expected = 'accept' | 'reject' | 'either' | 'login-refused';

/** The contract's limits on fields, restated: what the app must accept. */
const printable = (min: number) => (value: string) => {
  const trimmed = value.trim();
  const reorders = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u.test(trimmed);
  const invisibleOnly = trimmed !== '' && /^[\p{Default_Ignorable_Code_Point}\p{M}\p{Cf}\p{Z}\p{White_Space}\u2800]*$/u.test(trimmed);
  return trimmed.length >= min && trimmed.length <= 100 && !/\p{Cc}/u.test(trimmed) && !reorders && !invisibleOnly;
};

interface Field {
  form: 'login' | 'register' | 'vehicle' | 'end-ride';
  name: string;
  accepts: (value: string) => boolean;
  required: boolean;
}

const FIELDS: Field[] = [
  { form: 'login', name: 'username', accepts: () => false, required: true },
  { form: 'login', name: 'password', accepts: () => false, required: true },
  { form: 'register', name: 'city', accepts: (v) => parseCity(v) !== undefined, required: true },
  { form: 'register', name: 'first_name', accepts: printable(1), required: true },
  { form: 'register', name: 'last_name', accepts: printable(1), required: true },
  // No hostile value is an email address.
  { form: 'register', name: 'email', accepts: () => false, required: true },
  { form: 'register', name: 'username', accepts: (v) => /^[A-Za-z0-9._-]{3,32}$/.test(v.trim()), required: true },
  { form: 'register', name: 'password', accepts: (v) => [...v].length >= 8 && [...v].length <= 128, required: true },
  { form: 'vehicle', name: 'type', accepts: (v) => (VEHICLE_TYPES as readonly string[]).includes(v), required: true },
  { form: 'vehicle', name: 'color', accepts: printable(1), required: true },
  { form: 'vehicle', name: 'brand', accepts: printable(0), required: false },
  { form: 'vehicle', name: 'location', accepts: printable(1), required: true },
  { form: 'end-ride', name: 'location', accepts: printable(1), required: true },
];

interface Case {
  field: Field;
  name: string;
  fragment: string;
  expected: Expected;
  /** The value the app should store when it accepts. */
  stored?: string;
}

const CASES: Case[] = FIELDS.flatMap((field) => {
  const expect = (accepted: boolean): Expected => (field.form === 'login' ? 'login-refused' : accepted ? 'accept' : 'reject');
  const stored = (value: string) => (field.name === 'password' ? value : value.trim());
  return [
    ...HOSTILE.map((h) => ({
      field,
      name: h.name,
      fragment: `${field.name}=${h.raw}`,
      expected: h.value === undefined ? (field.form === 'login' ? 'login-refused' : 'either') : expect(field.accepts(h.value)),
      ...(h.value !== undefined ? { stored: stored(h.value) } : {}),
    })),
    ...SHAPES.map((shape) => ({
      field,
      name: shape.name,
      fragment: shape.fragment(field.name),
      expected: expect(shape.missing && !field.required),
      stored: '',
    })),
  ];
});

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Every answer: never a 5xx, never internals, never live HTML from input. */
function assertSafe(response: { status: number; text: string }, what: string) {
  assert.ok(response.status < 500, `${what}: answered ${response.status}`);
  const body = response.text ?? '';
  assert.doesNotMatch(body, /^\s+at .+:\d+:\d+\)?$/m, `${what}: no stack frames`);
  assert.doesNotMatch(body, /\bat (?:async )?[\w.$<>]+ \(/, `${what}: no stack frames`);
  assert.doesNotMatch(body, /node_modules|file:\/\/|\.[cm]?[jt]s:\d+/, `${what}: no source paths`);
  assert.ok(!body.includes(PROJECT_ROOT) && !body.includes(tmpdir() + '/movr'), `${what}: no file paths`);
  assert.doesNotMatch(body, /\b[A-Z]\w*Error\b|\bError:/, `${what}: no error class names`);
  for (const payload of LIVE_HTML) assert.ok(!body.includes(payload), `${what}: ${payload} rendered unescaped`);
}

/** A 4xx that says something: a field message, the log-in message, or the error page's message. */
function assertRefusedWithMessage(response: { status: number; text: string }, what: string) {
  assert.ok(response.status >= 400 && response.status < 500, `${what}: expected a 4xx, got ${response.status}`);
  assert.match(response.text, /id="error-[\w]+"[^>]*>[^<]+|id="login-error"[^>]*>[^<]+|<p class="lead">[^<]+/, `${what}: a message`);
}

function assertShownEscaped(html: string, stored: string, what: string) {
  assert.ok(html.includes(escapeHtml(stored)), `${what}: ${JSON.stringify(stored.slice(0, 60))} is shown escaped`);
  if (/[<>"'&]/.test(stored)) assert.ok(!html.includes(stored), `${what}: and never raw`);
}

const t = useFixture({ app: { rateLimits: { failedLogins: 100_000, registrations: 100_000 } }, listen: true });

/** A logged-in agent and its CSRF token (log-in regenerated the session, so it is read afterwards). */
async function loggedIn(username: string, city = 'boston' as const) {
  const rider = await t.rider({ city, username });
  return { ...rider, token: csrfFrom((await rider.agent.get('/vehicles/add')).text) };
}

const post = (agent: Agent, path: string, body: string) => agent.post(path).type('form').send(body);
const join = (...fragments: string[]) => fragments.filter(Boolean).join('&');
const encode = (fields: Record<string, string>) => Object.entries(fields).map(([k, v]) => `${k}=${encodeURIComponent(v)}`);

describe('hostile values in every form field', () => {
  test(`when each field gets each hostile value (${CASES.length} cases), then a 4xx with a message or a success stored and shown escaped; never a 5xx`, { timeout: 60_000 }, async () => {
    const anonymous = t.agent();
    const anonymousToken = csrfFrom((await anonymous.get('/register')).text);
    const owner = await loggedIn('field-owner');
    const rider = await loggedIn('field-rider');
    const kysely = t.db.kysely;
    const rideVehicle = await t.movr.addVehicle({ id: owner.id, city: 'boston' }, { type: 'bike', color: 'blue', brand: '', location: 'Start' });
    let activeRide: string | undefined;
    const ownedVehicles = async () =>
      (await kysely.selectFrom('vehicles').select(kysely.fn.countAll<number>().as('n')).where('owner_id', '=', owner.id).executeTakeFirstOrThrow()).n;
    let vehiclesBefore = 0;
    let serial = 0;
    const counts = { accepted: 0, refused: 0 };

    for (const c of CASES) {
      const what = `${c.field.form} ${c.field.name} ${c.name}`;
      const n = ++serial;
      let response: request.Response;
      if (c.field.form === 'login') {
        const base = { username: `nobody${n}`, password: 'wrong password' };
        const { [c.field.name as keyof typeof base]: _replaced, ...rest } = base;
        response = await post(anonymous, '/login', join(`_csrf=${anonymousToken}`, ...encode(rest), c.fragment));
      } else if (c.field.form === 'register') {
        const base = { city: 'boston', first_name: 'Ada', last_name: 'Lovelace', email: `u${n}@example.com`, username: `u${n}`, password: 'correct horse' };
        const { [c.field.name as keyof typeof base]: _replaced, ...rest } = base;
        // A new visitor each time: an accepted sign-up logs its visitor in.
        const visitor = t.agent();
        const token = csrfFrom((await visitor.get('/register')).text);
        response = await post(visitor, '/register', join(`_csrf=${token}`, ...encode(rest), c.fragment));
      } else if (c.field.form === 'vehicle') {
        vehiclesBefore = await ownedVehicles();
        const base = { type: 'scooter', color: 'green', brand: 'Acme', location: `Dock ${n}` };
        const { [c.field.name as keyof typeof base]: _replaced, ...rest } = base;
        response = await post(owner.agent, '/vehicles/add', join(`_csrf=${owner.token}`, ...encode(rest), c.fragment));
      } else {
        activeRide ??= await t.ride(rider, rideVehicle.id);
        response = await post(rider.agent, `/rides/end/${activeRide}`, join(`_csrf=${rider.token}`, c.fragment));
      }
      assertSafe(response, what);

      const accepted = response.status === 303;
      if (c.expected === 'login-refused') {
        assert.ok(response.status === 401 || response.status === 422, `${what}: a failed log-in, got ${response.status}`);
        assertRefusedWithMessage(response, what);
        counts.refused++;
        continue;
      }
      if (c.expected === 'reject' || (c.expected === 'either' && !accepted)) {
        assert.equal(response.status, 422, `${what}: refused as invalid`);
        assertRefusedWithMessage(response, what);
        assert.match(response.text, new RegExp(`id="error-${c.field.name}"`), `${what}: the message is beside the field`);
        counts.refused++;
      } else {
        assert.equal(response.status, 303, `${what}: accepted, got ${response.status} ${response.text.slice(0, 300)}`);
        counts.accepted++;
      }

      // What was stored, and how it is shown.
      if (c.field.form === 'register') {
        const row = await kysely.selectFrom('users').select(['first_name', 'last_name', 'email', 'city']).where('username', '=', `u${n}`).executeTakeFirst();
        if (!accepted) {
          assert.equal(row, undefined, `${what}: no account was created`);
          continue;
        }
        assert.equal(response.headers.location, '/vehicles');
        if (c.field.name === 'password') {
          const fresh = t.agent();
          const token = csrfFrom((await fresh.get('/login')).text);
          const back = await post(fresh, '/login', join(`_csrf=${token}`, `username=u${n}`, c.fragment));
          assert.equal(back.status, 303, `${what}: the new rider logs in with that password`);
          continue;
        }
        const stored = row![c.field.name as 'first_name' | 'last_name'];
        if (c.stored !== undefined) assert.equal(stored, c.stored, `${what}: stored as given, trimmed`);
        assert.doesNotMatch(stored, /\p{Cc}/u);
        assertShownEscaped((await owner.agent.get('/users')).text, stored, `${what} on /users`);
      } else if (c.field.form === 'vehicle') {
        if (!accepted) {
          assert.equal(await ownedVehicles(), vehiclesBefore, `${what}: no vehicle was added`);
          continue;
        }
        assert.equal(await ownedVehicles(), vehiclesBefore + 1);
        const row = await kysely
          .selectFrom('vehicles')
          .select(['color', 'brand', 'last_location'])
          .where('owner_id', '=', owner.id)
          .orderBy('date_added', 'desc')
          .executeTakeFirstOrThrow();
        const column = c.field.name === 'location' ? 'last_location' : (c.field.name as 'color' | 'brand');
        const stored = row[column];
        if (c.stored !== undefined) assert.equal(stored, c.stored, `${what}: stored as given, trimmed`);
        assert.doesNotMatch(stored, /\p{Cc}/u);
        if (stored) {
          assertShownEscaped((await owner.agent.get('/vehicles')).text, stored, `${what} on /vehicles`);
          assertShownEscaped((await owner.agent.get(`/users/${owner.id}`)).text, stored, `${what} on the profile`);
        }
      } else {
        const row = await kysely.selectFrom('rides').select(['end_time', 'end_location']).where('id', '=', activeRide!).executeTakeFirstOrThrow();
        if (!accepted) {
          assert.equal(row.end_time, null, `${what}: the ride goes on`);
          continue;
        }
        assert.equal(response.headers.location, '/rides');
        const stored = row.end_location!;
        if (c.stored !== undefined) assert.equal(stored, c.stored, `${what}: stored as given, trimmed`);
        assert.doesNotMatch(stored, /\p{Cc}/u);
        const page = await rider.agent.get('/rides');
        assertSafe(page, `${what} on /rides`);
        assertShownEscaped(page.text, stored, `${what} on /rides`);
        assertShownEscaped((await rider.agent.get('/vehicles')).text, stored, `${what} on /vehicles`);
        activeRide = undefined;
      }
    }
    console.log(`# bad input: ${CASES.length} field cases, ${counts.accepted} accepted and shown escaped, ${counts.refused} refused with a message`);
  });
});

describe('hostile route parameters', () => {
  const UUID = '00000000-0000-4000-8000-000000000000';
  /** Path segments (already percent-encoded); `status` is the answer required, or any 4xx when omitted. */
  const SEGMENTS: { name: string; raw: string; status?: number }[] = [
    { name: 'whitespace', raw: '%20%09', status: 404 },
    { name: 'not a uuid', raw: 'not-a-uuid', status: 404 },
    { name: 'a number', raw: '123', status: 404 },
    { name: 'uuid with trailing NUL', raw: `${UUID}%00`, status: 404 },
    { name: 'uuid with trailing space', raw: `${UUID}%20`, status: 404 },
    { name: 'NUL', raw: '%00', status: 404 },
    { name: 'overlong UTF-8', raw: '%C0%AF', status: 400 },
    { name: 'invalid UTF-8', raw: '%FF', status: 400 },
    { name: 'lone surrogate', raw: '%ED%A0%80', status: 400 },
    { name: 'encoded path traversal', raw: '..%2F..%2Fetc%2Fpasswd', status: 404 },
    { name: 'SQL', raw: encodeURIComponent("' OR 1=1 --"), status: 404 },
    { name: 'HTML', raw: encodeURIComponent(SCRIPT), status: 404 },
    { name: 'emoji', raw: encodeURIComponent('🚲'), status: 404 },
    { name: '101 characters', raw: 'x'.repeat(101), status: 404 },
    { name: '10k characters', raw: 'x'.repeat(10_000), status: 404 },
  ];

  test(`when an id or a city in the path is hostile, then 404 (400 when it cannot be decoded), with a message; never a 5xx`, { timeout: 30_000 }, async () => {
    const me = await loggedIn('param-rider');
      // An unknown but well-formed id: 404 where the route looks it up; the users routes answer 403 for any id
    // but the rider's own, so that no answer reveals whether an account exists.
    const routes: { method: 'get' | 'post'; path: (segment: string) => string; unknownId?: number }[] = [
      { method: 'post', path: (s) => `/vehicles/remove/${s}`, unknownId: 404 },
      { method: 'post', path: (s) => `/rides/start/${s}`, unknownId: 404 },
      { method: 'post', path: (s) => `/rides/end/${s}`, unknownId: 404 },
      { method: 'get', path: (s) => `/users/${s}`, unknownId: 403 },
      { method: 'post', path: (s) => `/users/remove/${s}`, unknownId: 403 },
      { method: 'post', path: (s) => `/city/${s}`, unknownId: 404 },
    ];
    let cases = 0;
    for (const route of routes) {
      // An empty segment matches no route with a parameter (GET /users/ is the users list, so it is left out).
      const empty = route.method === 'post' ? [{ name: 'empty', raw: '', status: 404 }] : [];
      for (const segment of [...SEGMENTS, ...empty, { name: 'unknown uuid', raw: UUID, status: route.unknownId }]) {
        const path = route.path(segment.raw);
        const what = `${route.method.toUpperCase()} ${path.slice(0, 80)} (${segment.name})`;
        const response =
          route.method === 'get' ? await me.agent.get(path) : await post(me.agent, path, join(`_csrf=${me.token}`, 'location=Here'));
        cases++;
        assertSafe(response, what);
        assertRefusedWithMessage(response, what);
        if (segment.status) assert.equal(response.status, segment.status, what);
      }
    }
    // The account and the session survived all of it.
    assert.equal((await me.agent.get(`/users/${me.id}`)).status, 200);

    // A path too long for Node's HTTP parser is refused before the app (431, Node's own empty answer).
    assert.equal((await me.agent.get(`/users/${'x'.repeat(99_000)}`)).status, 431);

    // Literal traversal and static files.
    for (const path of ['/vehicles/remove/../../etc/passwd', '/static/..%2F..%2Fpackage.json', '/static/%2e%2e/%2e%2e/package.json', '/static/vendor/bootstrap/..%2F..%2F..%2Fpackage.json']) {
      const response = path.startsWith('/static') ? await me.agent.get(path) : await post(me.agent, path, `_csrf=${me.token}`);
      assertSafe(response, path);
      assert.ok(response.status >= 400 && response.status < 500, `${path}: ${response.status}`);
      assert.doesNotMatch(response.text, /"name": "movr"|root:x:0:0/, `${path}: no file served`);
      cases++;
    }

    // ?page=
    const pages: { raw: string; status: number }[] = [
      { raw: 'page=abc', status: 404 },
      { raw: 'page=-1', status: 404 },
      { raw: 'page=0', status: 404 },
      { raw: 'page=1.5', status: 404 },
      { raw: 'page=99999999999', status: 404 },
      { raw: 'page=1e400', status: 404 },
      { raw: 'page=%00', status: 404 },
      { raw: 'page=%FF', status: 404 },
      { raw: 'page=%C0%AF', status: 404 },
      { raw: `page=${encodeURIComponent("' OR 1=1 --")}`, status: 404 },
      { raw: `page=${encodeURIComponent(SCRIPT)}`, status: 404 },
      { raw: `page=${'9'.repeat(10_000)}`, status: 404 },
      { raw: 'page=1&page=2', status: 404 },
      { raw: 'page[]=1', status: 200 },
      { raw: 'page[a]=1', status: 200 },
      { raw: 'page=2', status: 200 },
      { raw: 'page=100000', status: 200 },
    ];
    for (const page of pages) {
      const response = await me.agent.get(`/vehicles?${page.raw}`);
      const what = `/vehicles?${page.raw.slice(0, 60)}`;
      assertSafe(response, what);
      assert.equal(response.status, page.status, what);
      if (page.status !== 200) assertRefusedWithMessage(response, what);
      cases++;
    }
    console.log(`# bad input: ${cases} route-parameter cases`);
  });

  test('when X-City or X-City-Lat-Long are hostile, then the page still renders for a supported city', async () => {
    const me = await loggedIn('header-rider');
    const headers: [string, string][] = [
      ['X-City', SCRIPT],
      ['X-City', "' OR 1=1 --"],
      ['X-City', '../../etc/passwd'],
      ['X-City', 'x'.repeat(8_000)],
      ['X-City', 'Zürich'],
      ['X-City-Lat-Long', '999,999'],
      ['X-City-Lat-Long', 'NaN,NaN'],
      ['X-City-Lat-Long', '1e400,1'],
      ['X-City-Lat-Long', SCRIPT],
      ['X-City-Lat-Long', `${'1'.repeat(5_000)}.5,2`],
    ];
    for (const [name, value] of headers) {
      const response = await me.agent.get('/vehicles').set(name, value);
      assertSafe(response, `${name}: ${value.slice(0, 40)}`);
      assert.equal(response.status, 200, `${name}: ${value.slice(0, 40)}`);
      assert.match(response.text, /Vehicles in Boston/, 'the home city, as the header is not a supported city');
    }
  });
});

describe('malformed bodies and CSRF on every form', () => {
  test('when the CSRF token is missing, wrong, doubled or the body is not a form, then 403; when the body is over 100 kB or has too many fields, then 413; nothing changes', { timeout: 30_000 }, async () => {
    const me = await loggedIn('csrf-rider');
    const other = await loggedIn('csrf-other');
    const vehicle = await t.movr.addVehicle(me, { type: 'bike', color: 'red', brand: '', location: 'Kept' });
    const ride = await t.movr.startRide(other, vehicle.id, 'boston');
    const anonymous = t.agent();
    const anonymousToken = csrfFrom((await anonymous.get('/register')).text);
    const valid = (fields: Record<string, string>) => encode(fields);
    const forms: { path: string; agent: Agent; token: string; fields: string[] }[] = [
      { path: '/login', agent: anonymous, token: anonymousToken, fields: valid({ username: 'csrf-rider', password: 'correct horse battery' }) },
      { path: '/register', agent: anonymous, token: anonymousToken, fields: valid({ city: 'boston', first_name: 'A', last_name: 'B', email: 'c@example.com', username: 'csrfnew', password: 'long enough' }) },
      { path: '/logout', agent: me.agent, token: me.token, fields: [] },
      { path: '/vehicles/add', agent: me.agent, token: me.token, fields: valid({ type: 'bike', color: 'red', brand: '', location: 'Nope' }) },
      { path: `/vehicles/remove/${vehicle.id}`, agent: me.agent, token: me.token, fields: [] },
      { path: `/rides/start/${vehicle.id}`, agent: me.agent, token: me.token, fields: [] },
      { path: `/rides/end/${ride.id}`, agent: other.agent, token: other.token, fields: valid({ location: 'Nope' }) },
      { path: `/users/remove/${me.id}`, agent: me.agent, token: me.token, fields: [] },
      { path: '/city/paris', agent: me.agent, token: me.token, fields: [] },
    ];
    const snapshot = async () => ({
      users: await t.db.kysely.selectFrom('users').select(['id', 'username']).orderBy('id').execute(),
      vehicles: await t.db.kysely.selectFrom('vehicles').select(['id', 'status', 'last_location']).orderBy('id').execute(),
      rides: await t.db.kysely.selectFrom('rides').select(['id', 'end_time']).orderBy('id').execute(),
    });
    const before = await snapshot();
    const manyFields = Array.from({ length: 101 }, (_, i) => `f${i}=1`);
    let cases = 0;
    for (const form of forms) {
      const bad: { name: string; send: () => request.Test; status: number }[] = [
        { name: 'no token', send: () => post(form.agent, form.path, join(...form.fields)), status: 403 },
        { name: 'wrong token', send: () => post(form.agent, form.path, join('_csrf=forged', ...form.fields)), status: 403 },
        { name: "another session's token", send: () => post(form.agent, form.path, join(`_csrf=${form.agent === anonymous ? me.token : anonymousToken}`, ...form.fields)), status: 403 },
        { name: 'token twice', send: () => post(form.agent, form.path, join(`_csrf=${form.token}`, `_csrf=${form.token}`, ...form.fields)), status: 403 },
        { name: 'token nested', send: () => post(form.agent, form.path, join(`_csrf%5Bx%5D=${form.token}`, ...form.fields)), status: 403 },
        { name: 'JSON body', send: () => form.agent.post(form.path).type('json').send(JSON.stringify({ _csrf: form.token })), status: 403 },
        { name: 'text body', send: () => form.agent.post(form.path).type('text').send(`_csrf=${form.token}`), status: 403 },
        { name: 'body over 100 kB', send: () => post(form.agent, form.path, join(`_csrf=${form.token}`, ...form.fields, `pad=${'p'.repeat(110_000)}`)), status: 413 },
        { name: '101 fields', send: () => post(form.agent, form.path, join(`_csrf=${form.token}`, ...manyFields)), status: 413 },
      ];
      for (const b of bad) {
        const response = await b.send();
        const what = `${form.path} ${b.name}`;
        assertSafe(response, what);
        assert.equal(response.status, b.status, `${what}: ${response.status}`);
        assertRefusedWithMessage(response, what);
        cases++;
      }
    }
    assert.deepEqual(await snapshot(), before, 'nothing changed');
    const page = await me.agent.get('/vehicles');
    assert.equal(page.status, 200, 'still logged in');
    assert.match(page.text, /Vehicles in Boston/, 'the city was not switched');
    console.log(`# bad input: ${cases} CSRF and body cases`);
  });
});

describe('stored HTML is shown as text everywhere', () => {
  test('when names, colours, brands and locations hold HTML, then every page that shows them escapes them', async () => {
    const escapedScript = escapeHtml(SCRIPT);
    const escapedImg = escapeHtml(IMG);
    const pages: { what: string; html: string; shows: string[] }[] = [];
    const visit = async (agent: Agent, path: string, shows: string[], from = '') => {
      const response = await agent.get(path);
      assert.equal(response.status, 200, `${from}${path}`);
      pages.push({ what: `${from}${path}`, html: response.text, shows });
    };

    const owner = t.agent();
    const signUp = await formPost(owner, '/register', { city: 'paris', first_name: SCRIPT, last_name: IMG, email: 'xss-owner@example.com', username: 'xss-owner', password: 'correct horse battery' });
    assert.equal(signUp.status, 303);
    await visit(owner, '/vehicles', [escapedScript], 'welcome flash on ');
    const ownerId = (await userByUsername(t.db.kysely, 'xss-owner'))!.id;
    const added = await formPost(owner, '/vehicles/add', { type: 'bike', color: SCRIPT, brand: IMG, location: SCRIPT }, '/vehicles/add');
    assert.equal(added.status, 303);
    const vehicleId = (await t.db.kysely.selectFrom('vehicles').select('id').where('owner_id', '=', ownerId).executeTakeFirstOrThrow()).id;
    assert.deepEqual(
      await t.db.kysely.selectFrom('vehicles').select(['color', 'brand', 'last_location']).where('id', '=', vehicleId).executeTakeFirstOrThrow(),
      { color: SCRIPT, brand: IMG, last_location: SCRIPT },
      'stored as typed',
    );
    await visit(owner, '/vehicles', [escapedScript, escapedImg], 'owner ');
    await visit(owner, `/users/${ownerId}`, [escapedScript, escapedImg], 'owner ');
    await visit(owner, '/users', [escapedScript, escapedImg], 'owner ');

    const rider = t.agent();
    const { id: riderId } = await signUpAndLogIn(rider, t.movr, 'paris', { username: 'xss-rider' });
    const started = await formPost(rider, `/rides/start/${vehicleId}`, {}, '/vehicles');
    assert.equal(started.headers.location, '/rides');
    await visit(rider, '/rides', [escapedScript, escapedImg], 'start flash and active ride on ');
    const rideId = (await t.db.kysely.selectFrom('rides').select('id').where('rider_id', '=', riderId).executeTakeFirstOrThrow()).id;
    const ended = await formPost(rider, `/rides/end/${rideId}`, { location: IMG }, '/rides');
    assert.equal(ended.headers.location, '/rides');
    await visit(rider, '/rides', [escapedScript, escapedImg], 'end flash and history on ');
    await visit(rider, '/vehicles', [escapedScript, escapedImg], 'rider ');
    await visit(rider, '/users', [escapedScript, escapedImg], 'rider ');
    await visit(owner, `/users/${ownerId}`, [escapedScript, escapedImg], 'owner after the ride ');

    // With a Maps key the location also goes into the map's frame title and URLs (movr.js makes the frame from them).
    const withMaps = t.buildApp({ env: { API_KEY: 'test-maps-key' } });
    const mapsAgent = request.agent(withMaps.app);
    await logIn(mapsAgent, 'xss-rider', 'correct horse battery');
    await visit(mapsAgent, '/vehicles', [escapedImg], 'with a Maps key ');
    assert.match(pages.at(-1)!.html, /data-map-title="Map of &quot;&gt;&lt;img src=x onerror=alert\(1\)&gt;"/);
    assert.match(pages.at(-1)!.html, /q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert\(1\)%3E%2C%20Paris"/);

    for (const page of pages) {
      assertSafe({ status: 200, text: page.html }, page.what);
      for (const escaped of page.shows) assert.ok(page.html.includes(escaped), `${page.what} shows ${escaped}`);
    }
  });
});
