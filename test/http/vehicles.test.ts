import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { csrfToken, formPost, type Rider, signUpAndLogIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();

const vehicleRow = (id: string) =>
  t.db.kysely.selectFrom('vehicles').select(['city', 'status', 'owner_id', 'type', 'color', 'brand', 'last_location']).where('id', '=', id).executeTakeFirstOrThrow();

const isOwner = async (rider: Rider) =>
  (await t.db.kysely.selectFrom('users').select('is_owner').where('id', '=', rider.id).executeTakeFirstOrThrow()).is_owner;

/** The vehicle ids a vehicles page lists, in page order. */
const listedIds = (html: string) => [...html.matchAll(/class="card h-100 shadow-sm vehicle-card" data-vehicle-id="([^"]+)"/g)].map((m) => m[1]);

const validVehicle = { type: 'bike', color: 'green', brand: 'Brompton', location: 'Dam Square' };

describe('GET /vehicles', () => {
  test('when logged out, then 303 to /login', async () => {
    const response = await t.agent().get('/vehicles');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/login');
  });

  test('when logged in, then only the current city’s vehicles that are not removed, newest first', async () => {
    const { agent, ...rider } = await t.rider({ city: 'boston' });
    const elsewhere = await t.rider({ city: 'paris' });
    const older = await t.vehicle(rider, { date_added: '2024-01-01T10:00:00Z', last_location: 'Older Street' });
    const newer = await t.vehicle(rider, { date_added: '2024-06-01T10:00:00Z', last_location: 'Newer Street' });
    const inUse = await t.vehicle(rider, { date_added: '2024-03-01T10:00:00Z', status: 'in_use' });
    const removed = await t.vehicle(rider, { date_added: '2024-07-01T10:00:00Z', status: 'removed' });
    const parisian = await t.vehicle(elsewhere, { date_added: '2024-08-01T10:00:00Z' });

    const response = await agent.get('/vehicles');
    assert.equal(response.status, 200);
    assert.match(response.text, /<h1[^>]*>Vehicles in Boston<\/h1>/);
    assert.deepEqual(listedIds(response.text), [newer, inUse, older]);
    assert.ok(!response.text.includes(removed));
    assert.ok(!response.text.includes(parisian));
    assert.match(response.text, /Newer Street/);
  });

  test('when there are more than 50, then pages of at most 50 and ?page=2 shows the rest', async () => {
    const { agent, ...rider } = await t.rider({ city: 'seattle' });
    const start = Date.parse('2024-01-01T00:00:00Z');
    const rows = Array.from({ length: 53 }, (_, i) => ({
      city: rider.city,
      owner_id: rider.id,
      type: 'bike' as const,
      color: `colour ${i}`,
      brand: '',
      last_location: `Spot ${i}`,
      date_added: new Date(start + i * 60_000),
    }));
    const ids = (await t.db.kysely.insertInto('vehicles').values(rows).returning('id').execute()).map((r) => r.id);
    const newestFirst = ids.slice().reverse();

    const first = await agent.get('/vehicles');
    assert.deepEqual(listedIds(first.text), newestFirst.slice(0, 50));
    assert.match(first.text, /href="\/vehicles\?page=2" rel="next">Older/);
    // A disabled pager entry is no link at all: the keyboard cannot reach ?page=0.
    assert.match(first.text, /<span class="page-link" aria-disabled="true">Newer<\/span>/);
    assert.doesNotMatch(first.text, /page=0/);
    const second = await agent.get('/vehicles?page=2');
    assert.equal(second.status, 200);
    assert.deepEqual(listedIds(second.text), newestFirst.slice(50));
    assert.match(second.text, /<span class="page-link" aria-disabled="true">Older<\/span>/);
    assert.doesNotMatch(second.text, /page=3/);
  });

  test('when the page is 0, negative, not a number or repeated, then 404', async () => {
    const { agent } = await t.rider();
    for (const query of ['page=0', 'page=-1', 'page=abc', 'page=1.5', 'page=1&page=2', 'page=%2B2', 'page=0x2', 'page=1e1', 'page=%202', 'page=01']) {
      const response = await agent.get(`/vehicles?${query}`);
      assert.equal(response.status, 404, query);
      assert.match(response.text, /Not found/);
    }
  });
});

describe('GET, POST /vehicles/add', () => {
  test('when logged out, then both send to /login', async () => {
    const agent = t.agent();
    assert.equal((await agent.get('/vehicles/add')).headers.location, '/login');
    const post = await formPost(agent, '/vehicles/add', validVehicle);
    assert.equal(post.status, 303);
    assert.equal(post.headers.location, '/login');
    assert.equal(await t.db.kysely.selectFrom('vehicles').select('id').executeTakeFirst(), undefined);
  });

  test('when the form is valid, then 303 /vehicles, the vehicle is in the home city even when the current city is another one, and the user becomes an owner', async () => {
    const { agent, ...rider } = await t.rider({ city: 'amsterdam' });
    assert.equal((await formPost(agent, '/city/rome', {})).headers.location, '/vehicles');
    const form = await agent.get('/vehicles/add');
    assert.equal(form.status, 200);
    assert.match(form.text, /listed in your home city, Amsterdam/);
    assert.equal(await isOwner(rider), false);

    const response = await formPost(agent, '/vehicles/add', validVehicle, '/vehicles/add');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/vehicles');
    const rows = await t.db.kysely.selectFrom('vehicles').select(['city', 'owner_id', 'type', 'color', 'brand', 'last_location', 'status']).execute();
    assert.deepEqual(rows, [{ city: 'amsterdam', owner_id: rider.id, type: 'bike', color: 'green', brand: 'Brompton', last_location: 'Dam Square', status: 'available' }]);
    assert.equal(await isOwner(rider), true);

    // The list then shows the home city, as if chosen, with the new vehicle highlighted.
    const home = await agent.get('/vehicles');
    assert.match(home.text, /Your green bike is listed in Amsterdam, your home city\./);
    assert.match(home.text, /Vehicles in Amsterdam/);
    assert.match(home.text, /data-just-added>[\s\S]*Dam Square/);
  });

  test('when the brand is left out, then the vehicle is added with an empty brand', async () => {
    const { agent } = await t.rider();
    const response = await formPost(agent, '/vehicles/add', { type: 'skateboard', color: 'blue', location: 'Pier 1' });
    assert.equal(response.status, 303);
    const row = await t.db.kysely.selectFrom('vehicles').select(['brand', 'city']).executeTakeFirstOrThrow();
    assert.deepEqual(row, { brand: '', city: 'new york' });
  });

  test('when fields are invalid, then 422 with a message beside each field, the values kept, and nothing added', async () => {
    const { agent, ...rider } = await t.rider();
    const cases: { fields: Record<string, string>; field: string; message: RegExp; kept?: RegExp }[] = [
      { fields: { ...validVehicle, type: 'hoverboard' }, field: 'type', message: /Type: choose bike, scooter or skateboard\./, kept: /value="Dam Square"/ },
      { fields: { ...validVehicle, color: '   ' }, field: 'color', message: /Colour is required\./, kept: /value="Brompton"/ },
      { fields: { ...validVehicle, location: 'x'.repeat(101) }, field: 'location', message: /Location must be at most 100 characters\./, kept: new RegExp(`value="${'x'.repeat(101)}"`) },
      { fields: { ...validVehicle, brand: 'Bad\u0007Brand' }, field: 'brand', message: /Brand may only contain printable characters\./, kept: /value="green"/ },
      { fields: { ...validVehicle, location: 'Line one\nLine two' }, field: 'location', message: /Location may only contain printable characters\./ },
    ];
    for (const { fields, field, message, kept } of cases) {
      const response = await formPost(agent, '/vehicles/add', fields, '/vehicles/add');
      assert.equal(response.status, 422, field);
      const beside = response.text.match(new RegExp(`id="error-${field}">([^<]*)<`))?.[1];
      assert.ok(beside, `a message beside ${field}`);
      assert.match(beside, message);
      if (kept) assert.match(response.text, kept);
    }
    assert.equal(await t.db.kysely.selectFrom('vehicles').select('id').executeTakeFirst(), undefined);
    assert.equal(await isOwner(rider), false);
  });

  test('when the fields hold markup, then it is stored as text and shown escaped', async () => {
    const { agent } = await t.rider();
    await formPost(agent, '/vehicles/add', { ...validVehicle, color: '<script>alert(1)</script>' });
    const page = await agent.get('/vehicles');
    assert.ok(!page.text.includes('<script>alert(1)</script>'));
    assert.match(page.text, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
  });

  test('when the CSRF token is missing, then 403 and nothing is added', async () => {
    const { agent } = await t.rider();
    const response = await agent.post('/vehicles/add').type('form').send(validVehicle);
    assert.equal(response.status, 403);
    assert.equal(await t.db.kysely.selectFrom('vehicles').select('id').executeTakeFirst(), undefined);
  });
});

describe('POST /vehicles/remove/:id', () => {
  test('when the owner removes an available vehicle, then 303 to their profile, it is removed, and is_owner is cleared after the last one', async () => {
    const { agent, ...owner } = await t.rider({ city: 'rome' });
    await formPost(agent, '/vehicles/add', validVehicle);
    await formPost(agent, '/vehicles/add', { ...validVehicle, location: 'Colosseum' });
    const [first, second] = (await t.db.kysely.selectFrom('vehicles').select('id').orderBy('date_added').execute()).map((r) => r.id);
    assert.ok(first && second);

    const once = await formPost(agent, `/vehicles/remove/${first}`);
    assert.equal(once.status, 303);
    assert.equal(once.headers.location, `/users/${owner.id}`);
    assert.equal((await vehicleRow(first)).status, 'removed');
    assert.equal(await isOwner(owner), true, 'still owns one');
    const profile = await agent.get(`/users/${owner.id}`);
    assert.match(profile.text, /Vehicle removed\./);
    assert.ok(!profile.text.includes(`data-vehicle-id="${first}"`));
    assert.ok(profile.text.includes(`data-vehicle-id="${second}"`));

    await formPost(agent, `/vehicles/remove/${second}`);
    assert.equal((await vehicleRow(second)).status, 'removed');
    assert.equal(await isOwner(owner), false);
    assert.doesNotMatch((await agent.get('/vehicles')).text, /Colosseum/);
  });

  test('when the vehicle is someone else’s, then 403 and nothing changes', async () => {
    const owner = await t.rider({ city: 'boston' });
    const vehicle = await t.vehicle(owner);
    const { agent } = await t.rider({ city: 'boston' });
    const response = await formPost(agent, `/vehicles/remove/${vehicle}`);
    assert.equal(response.status, 403);
    assert.equal((await vehicleRow(vehicle)).status, 'available');
    // 403 comes before any other rule: in use or already removed, someone else's is still someone else's.
    const inUse = await t.vehicle(owner, { status: 'in_use' });
    const removed = await t.vehicle(owner, { status: 'removed' });
    assert.equal((await formPost(agent, `/vehicles/remove/${inUse}`)).status, 403);
    assert.equal((await formPost(agent, `/vehicles/remove/${removed}`)).status, 403);
    assert.equal((await vehicleRow(inUse)).status, 'in_use');
  });

  test('when the vehicle is someone else’s in another city, then 403 too', async () => {
    const owner = await t.rider({ city: 'los angeles' });
    const vehicle = await t.vehicle(owner);
    const { agent } = await t.rider({ city: 'boston' });
    assert.equal((await formPost(agent, `/vehicles/remove/${vehicle}`)).status, 403);
    assert.equal((await vehicleRow(vehicle)).status, 'available');
  });

  test('when the id is malformed, unknown or already removed, then 404', async () => {
    const { agent, ...owner } = await t.rider();
    const removed = await t.vehicle(owner, { status: 'removed' });
    for (const id of ['not-a-uuid', '123', '00000000-0000-4000-8000-000000000000', removed]) {
      const response = await formPost(agent, `/vehicles/remove/${id}`);
      assert.equal(response.status, 404, id);
    }
  });

  test('when the vehicle is in use, then 303 back to the profile with a flash message and nothing changes', async () => {
    const { agent, ...owner } = await t.rider();
    const vehicle = await t.vehicle(owner);
    await t.db.kysely.updateTable('users').set({ is_owner: true }).where('id', '=', owner.id).execute();
    const rider = t.agent();
    await signUpAndLogIn(rider, t.movr);
    assert.equal((await formPost(rider, `/rides/start/${vehicle}`)).headers.location, '/rides');

    const response = await formPost(agent, `/vehicles/remove/${vehicle}`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, `/users/${owner.id}`);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
    assert.equal(await isOwner(owner), true);
    const profile = await agent.get(response.headers.location);
    assert.match(profile.text, /That vehicle is in use; it can be removed once the ride ends\./);
  });

  test('when the Referer is another site, then the refusal still sends back to our own profile page', async () => {
    const { agent, ...owner } = await t.rider();
    const vehicle = await t.vehicle(owner, { status: 'in_use' });
    const _csrf = await csrfToken(agent, '/register');
    const response = await agent.post(`/vehicles/remove/${vehicle}`).set('Referer', 'https://evil.example/phish').type('form').send({ _csrf });
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, `/users/${owner.id}`);
  });

  test('when the CSRF token is missing, then 403 and the vehicle stays', async () => {
    const { agent, ...owner } = await t.rider();
    const vehicle = await t.vehicle(owner);
    const response = await agent.post(`/vehicles/remove/${vehicle}`).type('form').send({});
    assert.equal(response.status, 403);
    assert.equal((await vehicleRow(vehicle)).status, 'available');
  });

  test('when logged out, then 303 to /login and the vehicle stays', async () => {
    const owner = await t.rider();
    const vehicle = await t.vehicle(owner);
    const response = await formPost(t.agent(), `/vehicles/remove/${vehicle}`);
    assert.equal(response.headers.location, '/login');
    assert.equal((await vehicleRow(vehicle)).status, 'available');
  });
});
