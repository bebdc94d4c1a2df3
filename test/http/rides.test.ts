import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import type { NewVehicleRow } from '../../src/db/schema.js';
import { type Agent, csrfToken, formPost, type Rider, signUpAndLogIn } from '../support/app.js';
import { FaultInjectingPool } from '../support/fault-injection.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();

const insertVehicle = (owner: Rider, fields: Partial<NewVehicleRow> = {}) => t.vehicle(owner, { type: 'scooter', color: 'red', brand: 'Vespa', last_location: 'Union Square', ...fields });

const vehicleRow = (id: string) =>
  t.db.kysely.selectFrom('vehicles').select(['status', 'last_location']).where('id', '=', id).executeTakeFirstOrThrow();

const ridesOf = (rider: Rider) =>
  t.db.kysely
    .selectFrom('rides')
    .select(['id', 'vehicle_id', 'start_location', 'end_location', 'end_time'])
    .where('rider_id', '=', rider.id)
    .orderBy('start_time')
    .execute();

const allRides = () => t.db.kysely.selectFrom('rides').select(['id', 'rider_id', 'vehicle_id', 'end_time', 'end_location']).orderBy('id').execute();

/** A rider logged in on their own agent, and a vehicle someone else owns in the same city. */
async function riderAndVehicle(city: Rider['city'] = 'new york') {
  const owner = await t.rider({ city });
  const vehicle = await insertVehicle(owner);
  const { agent, ...rider } = await t.rider({ city });
  return { agent, rider, owner, vehicle };
}

async function startRide(agent: Agent, vehicle: string): Promise<string> {
  const response = await formPost(agent, `/rides/start/${vehicle}`);
  assert.equal(response.status, 303);
  assert.equal(response.headers.location, '/rides');
  const row = await t.db.kysely.selectFrom('rides').select('id').where('vehicle_id', '=', vehicle).where('end_time', 'is', null).executeTakeFirstOrThrow();
  return row.id;
}

/** The message beside the end-ride form's location field, if any. */
const locationError = (html: string) => html.match(/id="error-location">([^<]*)</)?.[1];

describe('POST /rides/start/:vehicleId', () => {
  test('when the vehicle is available, then 303 /rides, the ride is active and the rides page shows an end-ride form', async () => {
    const { agent, rider, vehicle } = await riderAndVehicle();
    const rideId = await startRide(agent, vehicle);
    assert.deepEqual(await vehicleRow(vehicle), { status: 'in_use', last_location: 'Union Square' });
    const [ride] = await ridesOf(rider);
    assert.equal(ride?.id, rideId);
    assert.equal(ride?.start_location, 'Union Square');
    assert.equal(ride?.end_time, null);

    const page = await agent.get('/rides');
    assert.equal(page.status, 200);
    assert.match(page.text, /Your ride started at Union Square\. Enjoy!/);
    assert.match(page.text, /id="active-ride"/);
    // Ending goes through a confirmation step first (GET), whose own form posts.
    assert.match(page.text, new RegExp(`<form method="get" action="/rides/end/${rideId}"`));
    const confirm = await agent.get(`/rides/end/${rideId}?location=Bryant%20Park`);
    assert.equal(confirm.status, 200);
    assert.match(confirm.text, new RegExp(`<form method="post" action="/rides/end/${rideId}"`));
    assert.match(confirm.text, /value="Bryant Park"/);
    assert.match(page.text, /name="location"/);
    assert.match(page.text, /Riding now: Scooter/);
    assert.match(page.text, /id="ride-bar"/);
  });

  test('when the vehicle is taken, then 303 back with a flash message and nothing changes', async () => {
    const { agent, vehicle } = await riderAndVehicle();
    const first = await startRide(agent, vehicle);
    const late = t.agent();
    const latecomer = await signUpAndLogIn(late, t.movr);

    const response = await formPost(late, `/rides/start/${vehicle}`, {}, '/vehicles');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/vehicles');
    assert.match((await late.get('/vehicles')).text, /That vehicle is not available right now\./);
    assert.deepEqual((await allRides()).map((r) => r.id), [first]);
    assert.deepEqual(await ridesOf(latecomer), []);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
  });

  test('when a refused form came from one of our pages, then the rider goes back to that page', async () => {
    const { agent, vehicle } = await riderAndVehicle();
    await startRide(agent, vehicle);
    const late = t.agent();
    await signUpAndLogIn(late, t.movr);
    const _csrf = await csrfToken(late, '/vehicles');
    const response = await late
      .post(`/rides/start/${vehicle}`)
      .set('Host', 'movr.example')
      .set('Referer', 'http://movr.example/vehicles?page=2')
      .type('form')
      .send({ _csrf });
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/vehicles?page=2');
  });

  test('when the rider already rides, then a second start is refused with a flash and the second vehicle stays available', async () => {
    const { agent, rider, owner, vehicle } = await riderAndVehicle();
    const other = await insertVehicle(owner, { last_location: 'Times Square' });
    await startRide(agent, vehicle);

    const response = await formPost(agent, `/rides/start/${other}`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/vehicles');
    assert.match((await agent.get('/vehicles')).text, /You are already on a ride: end it before starting another\./);
    assert.equal((await ridesOf(rider)).length, 1);
    assert.equal((await vehicleRow(other)).status, 'available');
  });

  test('when the owner rides their own vehicle, then the ride starts', async () => {
    const { agent, ...owner } = await t.rider();
    const vehicle = await insertVehicle(owner);
    await startRide(agent, vehicle);
    assert.equal((await ridesOf(owner)).length, 1);
  });

  test('when the vehicle is in another city than the current one, then the ride still starts there', async () => {
    const owner = await t.rider({ city: 'rome' });
    const vehicle = await insertVehicle(owner);
    const { agent } = await t.rider({ city: 'boston' });
    await startRide(agent, vehicle);
    const ride = await t.db.kysely.selectFrom('rides').select(['city', 'rider_city']).executeTakeFirstOrThrow();
    assert.deepEqual(ride, { city: 'rome', rider_city: 'boston' });
  });

  test('when the vehicle is removed, unknown or the id malformed, then 404 and no ride', async () => {
    const { agent, owner } = await riderAndVehicle();
    const removed = await insertVehicle(owner, { status: 'removed' });
    for (const id of [removed, '00000000-0000-4000-8000-000000000000', 'not-a-uuid', `${removed}x`]) {
      const response = await formPost(agent, `/rides/start/${id}`);
      assert.equal(response.status, 404, id);
    }
    assert.deepEqual(await allRides(), []);
    assert.equal((await vehicleRow(removed)).status, 'removed');
  });

  test('when logged out, then 303 /login and no ride', async () => {
    const { vehicle } = await riderAndVehicle();
    const response = await formPost(t.agent(), `/rides/start/${vehicle}`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/login');
    assert.deepEqual(await allRides(), []);
  });

  test('when the CSRF token is missing or wrong, then 403 and no ride', async () => {
    const { agent, vehicle } = await riderAndVehicle();
    assert.equal((await agent.post(`/rides/start/${vehicle}`).type('form').send({})).status, 403);
    assert.equal((await agent.post(`/rides/start/${vehicle}`).type('form').send({ _csrf: 'forged' })).status, 403);
    assert.deepEqual(await allRides(), []);
    assert.equal((await vehicleRow(vehicle)).status, 'available');
  });
});

describe('POST /rides/end/:rideId', () => {
  test('when the rider ends their ride, then 303 /rides, the history shows it with its duration, and the vehicle is available at the new location', async () => {
    const { agent, rider, vehicle } = await riderAndVehicle();
    const rideId = await startRide(agent, vehicle);
    // Five minutes of riding, so the duration shown is predictable.
    await sql`UPDATE rides SET start_time = now() - interval '5 minutes' WHERE id = ${rideId}`.execute(t.db.kysely);

    const response = await formPost(agent, `/rides/end/${rideId}`, { location: '  Central Park  ' }, '/rides');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/rides');
    assert.deepEqual(await vehicleRow(vehicle), { status: 'available', last_location: 'Central Park' });
    const [ride] = await ridesOf(rider);
    assert.equal(ride?.end_location, 'Central Park');
    assert.ok(ride?.end_time instanceof Date);

    const page = await agent.get('/rides');
    assert.match(page.text, /Ride ended at Central Park\./);
    assert.doesNotMatch(page.text, /id="active-ride"/);
    const history = page.text.match(/<table[^>]*id="ride-history"[\s\S]*?<\/table>/)?.[0] ?? '';
    assert.match(history, /<td data-label="From">Union Square<\/td>\s*<td data-label="To">Central Park<\/td>/);
    assert.match(history, /<td data-label="Duration">5 min<\/td>/);
    assert.match((await agent.get('/vehicles')).text, /Central Park/);
  });

  test('when the ride is another rider’s, then 403 whatever the location field holds, and nothing changes', async () => {
    const { agent: riderAgent, vehicle } = await riderAndVehicle();
    const rideId = await startRide(riderAgent, vehicle);
    const intruder = t.agent();
    await signUpAndLogIn(intruder, t.movr);
    for (const location of ['Somewhere', '', 'x'.repeat(500)]) {
      const response = await formPost(intruder, `/rides/end/${rideId}`, { location }, '/rides');
      assert.equal(response.status, 403, JSON.stringify(location.slice(0, 10)));
    }
    const missing = await formPost(intruder, `/rides/end/${rideId}`, {}, '/rides');
    assert.equal(missing.status, 403);
    const [ride] = await allRides();
    assert.equal(ride?.end_time, null);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
  });

  test('when the location is empty or too long, then 422 re-rendering the rides page with the message beside the field', async () => {
    const { agent, vehicle } = await riderAndVehicle();
    const rideId = await startRide(agent, vehicle);
    const empty = await formPost(agent, `/rides/end/${rideId}`, { location: '   ' }, '/rides');
    assert.equal(empty.status, 422);
    assert.equal(locationError(empty.text), 'Location is required.');
    assert.match(empty.text, new RegExp(`action="/rides/end/${rideId}"`));

    const long = 'y'.repeat(101);
    const tooLong = await formPost(agent, `/rides/end/${rideId}`, { location: long }, '/rides');
    assert.equal(tooLong.status, 422);
    assert.equal(locationError(tooLong.text), 'Location must be at most 100 characters.');
    assert.match(tooLong.text, new RegExp(`value="${long}"`));

    const control = await formPost(agent, `/rides/end/${rideId}`, { location: 'a\u0000b' }, '/rides');
    assert.equal(control.status, 422);
    assert.equal(locationError(control.text), 'Location may only contain printable characters.');

    const [ride] = await allRides();
    assert.equal(ride?.end_time, null);
    assert.equal((await vehicleRow(vehicle)).status, 'in_use');
  });

  test('when the ride has already ended, then ending it again is refused with a flash and nothing changes', async () => {
    const { agent, vehicle } = await riderAndVehicle();
    const rideId = await startRide(agent, vehicle);
    await formPost(agent, `/rides/end/${rideId}`, { location: 'Battery Park' }, '/rides');
    const again = await formPost(agent, `/rides/end/${rideId}`, { location: 'Elsewhere' }, '/rides');
    assert.equal(again.status, 303);
    assert.equal(again.headers.location, '/rides');
    assert.match((await agent.get('/rides')).text, /That ride has already ended\./);
    const [ride] = await allRides();
    assert.equal(ride?.end_location, 'Battery Park');
    assert.deepEqual(await vehicleRow(vehicle), { status: 'available', last_location: 'Battery Park' });
  });

  test('when the ride id is malformed or unknown, then 404', async () => {
    const { agent } = await riderAndVehicle();
    for (const id of ['not-a-uuid', '00000000-0000-4000-8000-000000000000']) {
      assert.equal((await formPost(agent, `/rides/end/${id}`, { location: 'Here' }, '/rides')).status, 404, id);
      assert.equal((await formPost(agent, `/rides/end/${id}`, { location: '' }, '/rides')).status, 404, `${id} with a bad form`);
    }
  });

  test('when the CSRF token is missing, then 403 and the ride goes on', async () => {
    const { agent, vehicle } = await riderAndVehicle();
    const rideId = await startRide(agent, vehicle);
    assert.equal((await agent.post(`/rides/end/${rideId}`).type('form').send({ location: 'Here' })).status, 403);
    assert.equal((await allRides())[0]?.end_time, null);
  });
});

describe('the riding bar', () => {
  test('when a ride starts elsewhere (another instance), then the next page shows it, read by the riding bar\'s own step after the session', async () => {
    const pool = new FaultInjectingPool({ connectionString: t.connectionString });
    const app = t.buildApp({ db: await t.open({ pool }) });
    const agent = app.agent();
    const rider = await signUpAndLogIn(agent, t.movr);
    const vehicle = await insertVehicle(await t.rider({ city: rider.city }));
    assert.doesNotMatch((await agent.get('/vehicles')).text, /id="ride-bar"/);

    await t.movr.startRide(rider, vehicle, rider.city);
    pool.clear();
    const page = await agent.get('/vehicles');
    assert.match(page.text, /id="ride-bar"/);
    assert.match(page.text, /Riding: red scooter · Vespa/);
    assert.deepEqual(
      pool.trace().map((statement) => statement.match(/^select .*? from "(\w+)"/i)?.[1] ?? statement),
      ['sessions', 'rides', 'vehicles'],
      'the session, the ride in progress, then the listing',
    );

    // A POST reads no ride for the bar: it redirects, and the next page reads it afresh.
    const csrf = await csrfToken(agent, '/rides');
    pool.clear();
    const ended = await agent.post(`/rides/end/${(await t.movr.getActiveRide(rider))!.id}`).type('form').send({ _csrf: csrf, location: 'Bryant Park' });
    assert.equal(ended.status, 303);
    const sessionRead = pool.trace().find((statement) => /^select .* from "sessions"/i.test(statement));
    assert.ok(sessionRead, pool.trace().join('\n'));
    assert.doesNotMatch(sessionRead, /"rides"/);
    assert.doesNotMatch((await agent.get('/vehicles')).text, /id="ride-bar"/);
  });
});

describe('GET /rides', () => {
  test('when logged out, then 303 /login', async () => {
    assert.equal((await t.agent().get('/rides')).headers.location, '/login');
  });

  test('when the rider has no rides, then an empty page pointing to the vehicles', async () => {
    const { agent } = await t.rider();
    const page = await agent.get('/rides');
    assert.equal(page.status, 200);
    assert.match(page.text, /No rides yet/);
  });

  test('when the rider has several rides, then only theirs, newest first', async () => {
    const { agent, owner, vehicle } = await riderAndVehicle();
    const second = await insertVehicle(owner, { last_location: 'Wall Street' });
    const first = await startRide(agent, vehicle);
    await formPost(agent, `/rides/end/${first}`, { location: 'First Stop' }, '/rides');
    const latest = await startRide(agent, second);
    await formPost(agent, `/rides/end/${latest}`, { location: 'Second Stop' }, '/rides');
    // Pin the start times, so the order does not hang on clock resolution.
    await sql`UPDATE rides SET start_time = '2024-01-01T10:00:00Z', end_time = '2024-01-01T10:10:00Z', length = interval '10 minutes' WHERE id = ${first}`.execute(t.db.kysely);
    await sql`UPDATE rides SET start_time = '2024-02-01T10:00:00Z', end_time = '2024-02-01T10:01:30Z', length = interval '90 seconds' WHERE id = ${latest}`.execute(t.db.kysely);
    const ownerAgent = t.agent();
    const someoneElse = await signUpAndLogIn(ownerAgent, t.movr);
    const theirs = await insertVehicle(someoneElse, { last_location: 'Not Mine Avenue' });
    const theirRide = await startRide(ownerAgent, theirs);
    await formPost(ownerAgent, `/rides/end/${theirRide}`, { location: 'Their Stop' }, '/rides');

    const page = await agent.get('/rides');
    const history = page.text.match(/<table[^>]*id="ride-history"[\s\S]*?<\/table>/)?.[0] ?? '';
    const ends = [...history.matchAll(/<td data-label="To">(First Stop|Second Stop|Their Stop)<\/td>/g)].map((m) => m[1]);
    assert.deepEqual(ends, ['Second Stop', 'First Stop']);
    assert.match(history, /<td data-label="Duration">2 min<\/td>/);
    assert.match(history, /<td data-label="Duration">10 min<\/td>/);
    assert.doesNotMatch(page.text, /Not Mine Avenue|Their Stop/);
  });
});
