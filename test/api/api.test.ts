import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import { pruneApi } from '../../src/movr/api-transactions.js';
import { type AppOptions, formPost, listen, logIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';
import { Browser } from '../support/http-client.js';
import { quiescent } from '../support/quiescence.js';
import { ApiClient } from './client.js';

/**
 * The JSON API over real HTTP on PostgreSQL: every row of the contract's table and every error status, each
 * answer checked against the OpenAPI document the app serves (client.ts).
 */

let api: ApiClient;
let riders = 0;
const t = useFixture({
  listen: true,
  app: { rateLimits: { failedLogins: 4, registrations: 1000 } },
  setup: async (fixture) => (api = await ApiClient.connect(fixture.url)),
});

const PASSWORD = 'correct horse battery';

/** Signs a rider up through the API; a client of its own address unless given. */
async function signUp(fields: Record<string, string> = {}, client = api) {
  const username = fields.username ?? `api${process.pid}x${++riders}`;
  const answer = await client.post('/users', {
    body: { city: 'new york', first_name: 'Api', last_name: 'Rider', email: `${username}@example.com`, username, password: PASSWORD, ...fields },
  });
  assert.equal(answer.status, 201, answer.text);
  return { token: answer.body.token as string, user: answer.body.user as { id: string; city: string; username: string }, expiresAt: answer.body.expires_at as string };
}

/** Another app over the test database (other limits, another bcrypt cost), on a port of its own until the test ends. */
async function serveAnother(options: AppOptions) {
  const server = await listen(t.buildApp(options).app);
  after(() => server.close());
  return { url: server.url, client: api.to(server.url) };
}

const vehicleBody = { type: 'scooter', color: 'red', brand: 'Vespa', location: 'Main Street' };

async function addVehicle(token: string, fields: Record<string, string> = {}) {
  const answer = await api.post('/vehicles', { token, body: { ...vehicleBody, ...fields } });
  assert.equal(answer.status, 201, answer.text);
  return answer.body as { id: string; city: string };
}

const count = async (table: 'rides' | 'vehicles' | 'users' | 'api_tokens') =>
  Number((await t.db.kysely.selectFrom(table).select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow()).n);

describe('cities and the document', () => {
  test('when anyone asks for the cities, then every region with its cities', async () => {
    const answer = await api.get('/cities');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.regions[0], { name: 'gcp-us-east1', cities: ['new york', 'boston', 'washington dc'] });
    assert.equal(answer.body.regions.length, 3);
  });

  test('when the document is read, then every operation of the contract is in it with its statuses', () => {
    const expected: Record<string, number[]> = {
      'get /cities': [200],
      'post /users': [201, 400, 413, 415, 422, 429],
      'post /tokens': [201, 401, 422, 429],
      'delete /tokens/current': [204, 401],
      'get /me': [200, 401],
      'delete /me': [204, 401, 409],
      'get /vehicles': [200, 401, 422],
      'post /vehicles': [201, 401, 422],
      'delete /vehicles/{id}': [204, 401, 403, 404, 409],
      'get /rides': [200, 401, 422],
      'post /rides': [201, 401, 404, 409, 422],
      'post /rides/{id}/end': [200, 401, 403, 404, 409, 422],
      'get /users': [200, 401, 422],
      'get /users/{id}': [200, 401, 403, 404],
    };
    for (const [operation, statuses] of Object.entries(expected)) {
      const [method, path] = operation.split(' ') as [string, string];
      const described = api.document.paths[path]?.[method];
      assert.ok(described, `${operation} is missing`);
      for (const status of [...statuses, 503]) assert.ok(described.responses[String(status)], `${operation} does not describe ${status}`);
      if (method === 'post') assert.ok(JSON.stringify(described).includes('Idempotency-Key'), `${operation}: Idempotency-Key`);
    }
  });

  test('when a person opens /api/docs, then Swagger UI from the app’s own assets, allowed by the CSP', async () => {
    const page = await fetch(`${t.url}/api/docs`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /swagger-ui-bundle\.js/);
    assert.doesNotMatch(html, /https?:\/\//, 'no CDN');
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    for (const asset of ['/api/docs/assets/swagger-ui-bundle.js', '/api/docs/assets/swagger-ui.css', '/api/docs/init.js']) {
      const response = await fetch(`${t.url}${asset}`);
      assert.equal(response.status, 200, asset);
      await response.arrayBuffer();
    }
  });
});

describe('sign-up and tokens', () => {
  test('when a rider signs up, then 201 with a user and a 30-day token that is stored only as a hash', async () => {
    const { token, user, expiresAt } = await signUp({ city: 'Boston', username: 'Mobile.Ada' });
    assert.equal(user.city, 'boston');
    assert.equal(user.username, 'mobile.ada');
    const days = (Date.parse(expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, `expires in ${days} days`);
    assert.ok(token.length >= 43);
    const rows = await t.db.kysely.selectFrom('api_tokens').select(['token_hash', 'user_id']).execute();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.user_id, user.id);
    assert.ok(!rows[0]!.token_hash.includes(token) && !token.includes(rows[0]!.token_hash));
    const me = await api.get('/me', { token });
    assert.equal(me.status, 200);
    assert.deepEqual(me.body, { id: user.id, city: 'boston', first_name: 'Api', last_name: 'Rider', email: 'Mobile.Ada@example.com', username: 'mobile.ada' });
  });

  test('when the fields are invalid or the username taken, then 422 with each field’s message, as the form says', async () => {
    const invalid = await api.post('/users', { body: { city: 'atlantis', first_name: '\u202Eevil', email: 'nope', username: 'a', password: 'short' } });
    assert.equal(invalid.status, 422);
    const fields = Object.fromEntries((invalid.body.errors as { field: string; message: string }[]).map((e) => [e.field, e.message]));
    assert.deepEqual(Object.keys(fields).sort(), ['city', 'email', 'first_name', 'last_name', 'password', 'username']);
    assert.equal(fields.password, 'Password must be 8 to 128 characters.');
    await signUp({ username: 'taken' });
    const taken = await api.post('/users', { body: { city: 'rome', first_name: 'A', last_name: 'B', email: 'a@example.com', username: 'TAKEN', password: PASSWORD } });
    assert.equal(taken.status, 422);
    assert.deepEqual(taken.body.errors, [{ field: 'username', message: 'That username is taken.' }]);
    assert.equal(await count('users'), 1);
  });

  test('when credentials are right, then a token; when wrong or unknown, then the same 401 for both', async () => {
    const { user } = await signUp({ username: 'tokenuser' });
    const granted = await api.post('/tokens', { body: { username: 'TokenUser', password: PASSWORD } });
    assert.equal(granted.status, 201);
    assert.equal(granted.body.user.id, user.id);
    assert.equal((await api.get('/me', { token: granted.body.token })).status, 200);
    const wrong = await api.post('/tokens', { body: { username: 'tokenuser', password: 'wrong password' } });
    const unknown = await api.post('/tokens', { body: { username: 'nobody', password: 'wrong password' } });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    assert.equal(wrong.body.detail, unknown.body.detail);
    assert.equal((await api.post('/tokens', { body: { username: '', password: '' } })).status, 422);
  });

  test('when the token is missing, malformed, unknown, expired or revoked, then 401 with WWW-Authenticate: Bearer', async () => {
    const { token } = await signUp();
    assert.equal((await api.get('/me')).status, 401);
    assert.equal((await api.get('/me', { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } })).status, 401);
    assert.equal((await api.get('/me', { token: 'movr.bm8.aaaa' })).status, 401);
    assert.equal((await api.get('/me', { token: `${token.slice(0, -2)}AA` })).status, 401);
    const second = (await api.post('/tokens', { body: { username: (await api.get('/me', { token })).body.username, password: PASSWORD } })).body.token as string;
    await t.db.kysely.updateTable('api_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('token_hash', 'is not', null).execute();
    assert.equal((await api.get('/me', { token })).status, 401, 'expired');
    assert.equal((await api.get('/me', { token: second })).status, 401, 'expired');
    const fresh = await signUp();
    assert.equal((await api.delete('/tokens/current', { token: fresh.token })).status, 204);
    assert.equal((await api.get('/me', { token: fresh.token })).status, 401, 'revoked');
    assert.equal((await api.delete('/tokens/current', { token: fresh.token })).status, 401);
  });

  test('when a browser’s session cookie comes to the API, then it is not read: 401, and no cookie is set', async () => {
    const { agent } = await t.rider();
    await agent.get('/vehicles');
    const cookies = (agent as unknown as { jar: { getCookies(access: unknown): { name: string; value: string }[] } }).jar.getCookies({ domain: '127.0.0.1', path: '/', secure: false, script: false });
    const cookieHeader = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    assert.match(cookieHeader, /movr\.sid=/);
    const answer = await api.get('/me', { headers: { cookie: cookieHeader } });
    assert.equal(answer.status, 401);
    assert.equal((await api.post('/vehicles', { headers: { cookie: cookieHeader }, body: vehicleBody })).status, 401);
  });
});

describe('vehicles', () => {
  test('when listing, then the current city by default (X-City, else home city), `city` to override, newest first, in pages by cursor', async () => {
    const owner = await signUp({ city: 'paris' });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await addVehicle(owner.token, { color: `colour ${i}` })).id);
    const removed = await addVehicle(owner.token);
    assert.equal((await api.delete(`/vehicles/${removed.id}`, { token: owner.token })).status, 204);
    const rider = await signUp({ city: 'rome' });

    assert.deepEqual((await api.get('/vehicles', { token: rider.token })).body, { vehicles: [], next_cursor: null }, 'home city rome');
    const viaHeader = await api.get('/vehicles', { token: rider.token, headers: { 'x-city': 'Paris' } });
    assert.deepEqual(viaHeader.body.vehicles.map((v: { id: string }) => v.id), [...ids].reverse());
    assert.deepEqual(viaHeader.body.vehicles[0], { id: ids[4], city: 'paris', type: 'scooter', status: 'available', owner_id: owner.user.id, color: 'colour 4', brand: 'Vespa', location: 'Main Street' });

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?city=paris&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await api.get(`/vehicles${query}`, { token: rider.token, headers: { 'x-city': 'boston' } });
      assert.equal(page.status, 200);
      seen.push(...page.body.vehicles.map((v: { id: string }) => v.id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(seen, [...ids].reverse());
  });

  test('when the query is invalid, then 422 naming the parameter', async () => {
    const { token } = await signUp();
    for (const [query, field] of [
      ['?city=atlantis', 'city'],
      ['?limit=0', 'limit'],
      ['?limit=101', 'limit'],
      ['?limit=ten', 'limit'],
      ['?cursor=garbage', 'cursor'],
    ] as const) {
      const answer = await api.get(`/vehicles${query}`, { token });
      assert.equal(answer.status, 422, query);
      assert.equal(answer.body.errors[0].field, field, query);
    }
  });

  test('when adding, then 201 in the home city whatever the current city; invalid fields 422', async () => {
    const { token, user } = await signUp({ city: 'seattle' });
    const answer = await api.post('/vehicles', { token, headers: { 'x-city': 'rome' }, body: { type: 'bike', color: 'green', location: 'Pike Place' } });
    assert.equal(answer.status, 201);
    assert.deepEqual({ ...answer.body, id: undefined }, { id: undefined, city: 'seattle', type: 'bike', status: 'available', owner_id: user.id, color: 'green', brand: '', location: 'Pike Place' });
    const invalid = await api.post('/vehicles', { token, body: { type: 'tank', color: '\u200B', location: 'x'.repeat(101) } });
    assert.equal(invalid.status, 422);
    assert.deepEqual(invalid.body.errors.map((e: { field: string }) => e.field).sort(), ['color', 'location', 'type']);
  });

  test('when removing, then someone else’s is 403, unknown or malformed 404, in use 409, one’s own 204', async () => {
    const owner = await signUp();
    const other = await signUp();
    const vehicle = await addVehicle(owner.token);
    assert.equal((await api.delete(`/vehicles/${vehicle.id}`, { token: other.token })).status, 403);
    assert.equal((await api.delete('/vehicles/00000000-0000-4000-8000-000000000000', { token: owner.token })).status, 404);
    assert.equal((await api.delete('/vehicles/nope', { token: owner.token })).status, 404);
    const ride = await api.post('/rides', { token: other.token, body: { vehicle_id: vehicle.id } });
    assert.equal(ride.status, 201);
    const inUse = await api.delete(`/vehicles/${vehicle.id}`, { token: owner.token });
    assert.equal(inUse.status, 409);
    assert.match(inUse.body.detail, /in use/);
    assert.equal((await api.post(`/rides/${ride.body.id}/end`, { token: other.token, body: { location: 'Park' } })).status, 200);
    assert.equal((await api.delete(`/vehicles/${vehicle.id}`, { token: owner.token })).status, 204);
    assert.equal((await api.delete(`/vehicles/${vehicle.id}`, { token: owner.token })).status, 404);
  });
});

describe('rides', () => {
  test('when riding, then 201 with the ride; a second ride 409; ending 200 frees the vehicle where it was left; ending again 409', async () => {
    const owner = await signUp({ city: 'amsterdam' });
    const [first, second] = [await addVehicle(owner.token, { location: 'Dam' }), await addVehicle(owner.token)];
    const rider = await signUp({ city: 'boston' });
    const started = await api.post('/rides', { token: rider.token, body: { vehicle_id: first.id } });
    assert.equal(started.status, 201);
    assert.equal(started.body.city, 'amsterdam');
    assert.equal(started.body.start_location, 'Dam');
    assert.equal(started.body.end_time, null);
    assert.equal(started.body.end_location, null);
    const again = await api.post('/rides', { token: rider.token, body: { vehicle_id: second.id } });
    assert.equal(again.status, 409);
    assert.match(again.body.detail, /already on a ride/);
    const taken = await api.post('/rides', { token: owner.token, body: { vehicle_id: first.id } });
    assert.equal(taken.status, 409);
    assert.equal((await api.post('/rides', { token: rider.token, body: { vehicle_id: '00000000-0000-4000-8000-000000000000' } })).status, 404);
    assert.equal((await api.post('/rides', { token: rider.token, body: { vehicle_id: 'nope' } })).status, 422);

    assert.equal((await api.post(`/rides/${started.body.id}/end`, { token: owner.token, body: {} })).status, 403, 'someone else’s, whatever the body');
    assert.equal((await api.post(`/rides/${started.body.id}/end`, { token: rider.token, body: { location: '' } })).status, 422);
    assert.equal((await api.post('/rides/00000000-0000-4000-8000-000000000000/end', { token: rider.token, body: { location: 'x' } })).status, 404);
    assert.equal((await api.post('/rides/nope/end', { token: rider.token, body: { location: 'x' } })).status, 404);
    const ended = await api.post(`/rides/${started.body.id}/end`, { token: rider.token, body: { location: 'Vondelpark' } });
    assert.equal(ended.status, 200);
    assert.equal(ended.body.end_location, 'Vondelpark');
    assert.ok(Date.parse(ended.body.end_time) >= Date.parse(ended.body.start_time));
    assert.match(ended.body.end_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal((await api.post(`/rides/${started.body.id}/end`, { token: rider.token, body: { location: 'Again' } })).status, 409);
    const listed = await api.get('/vehicles?city=amsterdam', { token: rider.token });
    assert.equal(listed.body.vehicles.find((v: { id: string }) => v.id === first.id).location, 'Vondelpark');
  });

  test('when listing rides, then one’s own, newest first, in pages by cursor', async () => {
    const owner = await signUp();
    const vehicle = await addVehicle(owner.token);
    const rider = await signUp();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const ride = await api.post('/rides', { token: rider.token, body: { vehicle_id: vehicle.id } });
      ids.push(ride.body.id);
      await api.post(`/rides/${ride.body.id}/end`, { token: rider.token, body: { location: `Stop ${i}` } });
    }
    const first = await api.get('/rides?limit=2', { token: rider.token });
    assert.deepEqual(first.body.rides.map((r: { id: string }) => r.id), [ids[2], ids[1]]);
    const second = await api.get(`/rides?limit=2&cursor=${first.body.next_cursor}`, { token: rider.token });
    assert.deepEqual(second.body.rides.map((r: { id: string }) => r.id), [ids[0]]);
    assert.equal(second.body.next_cursor, null);
    assert.deepEqual((await api.get('/rides', { token: owner.token })).body, { rides: [], next_cursor: null });
    assert.equal((await api.get('/rides?limit=-1', { token: rider.token })).status, 422);
  });
});

describe('users', () => {
  test('when listing riders, then those of the city, names only; one’s own profile with vehicles; any other id 403; malformed 404', async () => {
    const me = await signUp({ city: 'rome', first_name: 'Romano' });
    const vehicle = await addVehicle(me.token);
    await signUp({ city: 'paris' });
    const listed = await api.get('/users?city=rome', { token: me.token });
    assert.deepEqual(listed.body, { users: [{ id: me.user.id, first_name: 'Romano', last_name: 'Rider' }] });
    assert.equal((await api.get('/users?city=mars', { token: me.token })).status, 422);
    assert.equal((await api.get('/users', { token: me.token })).body.users.length, 1, 'home city');
    const profile = await api.get(`/users/${me.user.id}`, { token: me.token });
    assert.equal(profile.status, 200);
    assert.deepEqual(profile.body.vehicles.map((v: { id: string }) => v.id), [vehicle.id]);
    const other = await signUp();
    assert.equal((await api.get(`/users/${other.user.id}`, { token: me.token })).status, 403);
    assert.equal((await api.get('/users/00000000-0000-4000-8000-000000000000', { token: me.token })).status, 403);
    assert.equal((await api.get('/users/nope', { token: me.token })).status, 404);
  });

  test('when deleting the account, then refused while riding or owning (409); then 204 revokes every token and web session, and frees the username', async () => {
    const me = await signUp({ username: 'leaver' });
    const vehicle = await addVehicle(me.token);
    const owned = await api.delete('/me', { token: me.token });
    assert.equal(owned.status, 409);
    assert.match(owned.body.detail, /Remove your vehicles/);
    await api.delete(`/vehicles/${vehicle.id}`, { token: me.token });
    const second = (await api.post('/tokens', { body: { username: 'leaver', password: PASSWORD } })).body.token as string;
    const browser = t.agent();
    await logIn(browser, 'leaver', PASSWORD);
    assert.equal((await browser.get('/vehicles')).status, 200);

    assert.equal((await api.delete('/me', { token: me.token })).status, 204);
    assert.equal((await api.get('/me', { token: me.token })).status, 401);
    assert.equal((await api.get('/me', { token: second })).status, 401);
    assert.equal(await count('api_tokens'), 0);
    assert.equal((await browser.get('/vehicles')).headers.location, '/login');
    await signUp({ username: 'leaver' });
  });
});

describe('malformed requests', () => {
  test('when the body is malformed JSON, not JSON, or over 100 kB, then 400, 415, 413 as problems; an unknown route 404; never HTML', async () => {
    const { token } = await signUp();
    const malformed = await api.post('/vehicles', { token, raw: '{"type": ', headers: { 'content-type': 'application/json' } });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    assert.deepEqual(Object.keys(malformed.body).sort(), ['detail', 'status', 'title', 'type']);
    assert.equal((await api.post('/vehicles', { token, raw: 'type=bike', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status, 415);
    assert.equal((await api.post('/tokens', { raw: 'x', headers: { 'content-type': 'text/plain' } })).status, 415);
    assert.equal((await api.delete('/me', { token, raw: 'bye', headers: { 'content-type': 'text/plain' } })).status, 415);
    const big = await api.post('/vehicles', { token, body: { ...vehicleBody, color: 'x'.repeat(110_000) } });
    assert.equal(big.status, 413);
    assert.equal((await api.post('/vehicles', { token, body: [1, 2] })).status, 422);
    assert.equal((await api.post('/vehicles', { token, body: { type: 1, color: null, brand: {}, location: ['a'] } })).status, 422);
    assert.equal((await api.get('/nowhere')).status, 404);
    assert.equal((await api.request('PUT', '/me', { token })).status, 404);
    assert.equal((await api.request('OPTIONS', '/me')).status, 404);
    const outside = await fetch(`${t.url}/api/v2/vehicles`);
    assert.equal(outside.status, 404);
    assert.equal(outside.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  });
});

describe('Idempotency-Key', () => {
  test('when a POST is repeated with its key, then the first answer again and one action; another body 422; a malformed key 400', async () => {
    const { token } = await signUp();
    const first = await api.post('/vehicles', { token, idempotencyKey: 'add-1', body: vehicleBody });
    const again = await api.post('/vehicles', { token, idempotencyKey: 'add-1', body: vehicleBody });
    assert.equal(first.status, 201);
    assert.equal(again.status, 201);
    assert.equal(again.text, first.text);
    assert.equal(await count('vehicles'), 1);
    const other = await api.post('/vehicles', { token, idempotencyKey: 'add-1', body: { ...vehicleBody, color: 'blue' } });
    assert.equal(other.status, 422);
    assert.equal(other.body.errors[0].field, 'Idempotency-Key');
    assert.equal(await count('vehicles'), 1);
    // Keys are the user's own: another rider's same key acts.
    const someoneElse = await signUp();
    assert.equal((await api.post('/vehicles', { token: someoneElse.token, idempotencyKey: 'add-1', body: vehicleBody })).status, 201);
    assert.equal(await count('vehicles'), 2);
    for (const key of ['', 'x'.repeat(256), 'tab\there', 'caf\u00e9']) {
      assert.equal((await api.post('/vehicles', { token, idempotencyKey: key, body: vehicleBody })).status, 400, JSON.stringify(key));
    }
    assert.equal((await api.post('/vehicles', { token, idempotencyKey: 'x'.repeat(255), body: vehicleBody })).status, 201);
  });

  test('when a refused action is repeated, then the refusal again, even once the vehicle is free; a ride ended twice by retry, 200 twice', async () => {
    const owner = await signUp();
    const vehicle = await addVehicle(owner.token);
    const first = await signUp();
    const second = await signUp();
    const ride = await api.post('/rides', { token: first.token, idempotencyKey: 'ride', body: { vehicle_id: vehicle.id } });
    assert.equal(ride.status, 201);
    const refused = await api.post('/rides', { token: second.token, idempotencyKey: 'ride', body: { vehicle_id: vehicle.id } });
    assert.equal(refused.status, 409);
    const end = await api.post(`/rides/${ride.body.id}/end`, { token: first.token, idempotencyKey: 'end', body: { location: 'Here' } });
    const endAgain = await api.post(`/rides/${ride.body.id}/end`, { token: first.token, idempotencyKey: 'end', body: { location: 'Here' } });
    assert.equal(end.status, 200);
    assert.equal(endAgain.status, 200);
    assert.equal(endAgain.text, end.text);
    const repeat = await api.post('/rides', { token: second.token, idempotencyKey: 'ride', body: { vehicle_id: vehicle.id } });
    assert.equal(repeat.status, 409);
    assert.equal(repeat.text, refused.text);
    assert.equal(await count('rides'), 1);
  });

  test('when sign-up or a token request is repeated by the same client, then the same account and token; stored answers hold no readable token', async () => {
    const body = { city: 'boston', first_name: 'Idem', last_name: 'Potent', email: 'idem@example.com', username: 'idem', password: PASSWORD };
    const first = await api.post('/users', { idempotencyKey: 'signup', body });
    const again = await api.post('/users', { idempotencyKey: 'signup', body });
    assert.equal(first.status, 201);
    assert.equal(again.text, first.text);
    assert.equal(await count('users'), 1);
    const otherClient = api.to(t.url, { 'x-forwarded-for': '203.0.113.9' });
    const elsewhere = await otherClient.post('/users', { idempotencyKey: 'signup', body });
    assert.equal(elsewhere.status, 422, 'another client: a new sign-up, and the username is taken');

    const tokenBody = { username: 'idem', password: PASSWORD };
    const token = await api.post('/tokens', { idempotencyKey: 'login', body: tokenBody });
    const tokenAgain = await api.post('/tokens', { idempotencyKey: 'login', body: tokenBody });
    assert.equal(token.status, 201);
    assert.equal(tokenAgain.text, token.text);
    assert.equal(await count('api_tokens'), 2);
    const stored = await t.db.kysely.selectFrom('idempotency_keys').select(['body', 'fingerprint']).execute();
    assert.ok(stored.length >= 2);
    for (const row of stored) {
      assert.ok(!row.body.includes(first.body.token) && !row.body.includes(token.body.token) && !row.body.includes('idem@example.com'), 'sealed');
      assert.ok(!row.fingerprint.includes(PASSWORD));
    }
  });

  test('when an answered sign-up is repeated, then the answer comes back without a hash', { timeout: 15_000 }, async () => {
    const body = { city: 'boston', first_name: 'No', last_name: 'Hash', email: 'nohash@example.com', username: 'nohash', password: PASSWORD };
    const first = await api.post('/users', { idempotencyKey: 'answered', body });
    assert.equal(first.status, 201);
    // bcrypt at cost 20 takes about a minute here: an instance that hashed for the repeat would miss the timeout.
    const slow = await serveAnother({ bcryptCost: 20 });
    const again = await slow.client.post('/users', { idempotencyKey: 'answered', body });
    assert.equal(again.text, first.text);
  });

  test('when the key’s 24 hours have passed, then it acts again', async () => {
    const { token } = await signUp();
    await api.post('/vehicles', { token, idempotencyKey: 'old', body: vehicleBody });
    await t.db.kysely.updateTable('idempotency_keys').set({ expires_at: new Date(Date.now() - 1000) }).where('key', '=', 'old').execute();
    const later = await api.post('/vehicles', { token, idempotencyKey: 'old', body: { ...vehicleBody, color: 'blue' } });
    assert.equal(later.status, 201);
    assert.equal(await count('vehicles'), 2);
  });
});

describe('pruning', () => {
  test('when tokens and keys have expired, then pruning deletes them and keeps the live ones', async () => {
    const { token } = await signUp();
    const other = await signUp();
    await api.post('/vehicles', { token, idempotencyKey: 'kept', body: vehicleBody });
    await api.post('/vehicles', { token, idempotencyKey: 'gone', body: vehicleBody });
    await t.db.kysely.updateTable('idempotency_keys').set({ expires_at: new Date(Date.now() - 1000) }).where('key', '=', 'gone').execute();
    await t.db.kysely.updateTable('api_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('user_id', '=', other.user.id).execute();
    await pruneApi(t.db);
    assert.deepEqual((await t.db.kysely.selectFrom('idempotency_keys').select('key').execute()).map((row) => row.key), ['kept']);
    assert.equal(await count('api_tokens'), 1);
    assert.equal((await api.get('/me', { token })).status, 200);
  });
});

describe('limits shared with the forms', () => {
  test('when log-ins fail through the form and the API, then they add up to one limit: 429 with Retry-After at both doors', async () => {
    const { user } = await signUp({ username: 'guarded' });
    const browser = t.agent();
    for (let i = 0; i < 2; i++) assert.equal((await formPost(browser, '/login', { username: 'guarded', password: 'wrong password' }, '/login')).status, 401);
    for (let i = 0; i < 2; i++) assert.equal((await api.post('/tokens', { body: { username: 'guarded', password: 'wrong password' } })).status, 401);
    const limited = await api.post('/tokens', { body: { username: 'guarded', password: PASSWORD } });
    assert.equal(limited.status, 429);
    assert.equal((await formPost(browser, '/login', { username: 'guarded', password: PASSWORD }, '/login')).status, 429);
    assert.ok(user.id);
  });

  test('when accounts are created through the form and the API, then they add up to one sign-up limit', async () => {
    const { url, client } = await serveAnother({ rateLimits: { registrations: 2 } });
    const browser = new Browser();
    const form = await browser.post(`${url}/register`, { city: 'boston', first_name: 'A', last_name: 'B', email: 'f@example.com', username: 'viaform', password: PASSWORD });
    assert.equal(form.status, 303);
    await signUp({ username: 'viaapi' }, client);
    const third = await client.post('/users', { body: { city: 'boston', first_name: 'A', last_name: 'B', email: 'g@example.com', username: 'toomany', password: PASSWORD } });
    assert.equal(third.status, 429);
    assert.equal(await count('users'), 2);
  });

  test('when an API sign-up is repeated with its Idempotency-Key, back to back and once the limit is full, then the repeats give the same answer and do not count in the sign-up limit', async () => {
    const { client } = await serveAnother({ rateLimits: { registrations: 2 } });
    const body = (username: string) => ({ city: 'boston', first_name: 'A', last_name: 'B', email: `${username}@example.com`, username, password: PASSWORD });
    const first = await client.post('/users', { idempotencyKey: 'flaky-network', body: body('resent') });
    assert.equal(first.status, 201);
    for (let i = 0; i < 3; i++) assert.equal((await client.post('/users', { idempotencyKey: 'flaky-network', body: body('resent') })).text, first.text);
    await quiescent(t.db.kysely);
    assert.equal((await client.post('/users', { body: body('second') })).status, 201, 'the second account is within the limit of 2');
    // The limit is full: a repeat still gets its answer, and a new sign-up does not.
    for (let i = 0; i < 3; i++) assert.equal((await client.post('/users', { idempotencyKey: 'flaky-network', body: body('resent') })).text, first.text);
    assert.equal((await client.post('/users', { body: body('third') })).status, 429);
    await quiescent(t.db.kysely);
    assert.equal(await count('users'), 2);
    const { rows } = await sql<{ hits: number }>`SELECT hits FROM rate_limits WHERE key LIKE 'signup:%'`.execute(t.db.kysely);
    assert.deepEqual(rows, [{ hits: 3 }], 'two accounts and the refused third counted; no repeat');
  });
});
