import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import type { NewVehicleRow } from '../../src/db/schema.js';
import { formPost, logIn, type Rider, signUpAndLogIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();

const insertVehicle = (owner: Rider, fields: Partial<NewVehicleRow> = {}) => t.vehicle(owner, { type: 'bike', color: 'black', brand: '', last_location: 'Harbour', ...fields });

const userRow = (rider: Rider) =>
  t.db.kysely.selectFrom('users').select(['username', 'password_hash', 'email', 'first_name', 'is_owner']).where('id', '=', rider.id).executeTakeFirstOrThrow();

/** Sessions whose passport user is this rider. */
const sessionsOf = async (rider: Rider) =>
  (
    await sql<{ n: number }>`SELECT count(*)::int AS n FROM sessions WHERE sess::jsonb -> 'passport' -> 'user' ->> 'id' = ${rider.id}`.execute(t.db.kysely)
  ).rows[0]!.n;

/** The @usernames a riders page lists. */
const listedUsernames = (html: string) => [...(html.match(/id="user-list">[\s\S]*?<\/ul>/)?.[0] ?? '').matchAll(/@([\w.-]+)</g)].map((m) => m[1]);

describe('GET /users', () => {
  test('when logged out, then 303 /login', async () => {
    assert.equal((await t.agent().get('/users')).headers.location, '/login');
  });

  test('when logged in, then the current city’s riders only, deleted accounts left out', async () => {
    const { agent } = await t.rider({ city: 'boston', username: 'me.boston' });
    const neighbour = await t.rider({ city: 'boston', username: 'neighbour' });
    await insertVehicle(neighbour);
    await t.rider({ city: 'paris', username: 'parisian' });
    const gone = t.agent();
    const leaver = await signUpAndLogIn(gone, t.movr, 'boston', { username: 'leaver' });
    assert.equal((await formPost(gone, `/users/remove/${leaver.id}`)).headers.location, '/login');

    const page = await agent.get('/users');
    assert.equal(page.status, 200);
    assert.match(page.text, /Riders in Boston/);
    assert.deepEqual(listedUsernames(page.text), ['me.boston', 'neighbour']);
    const items = [...page.text.matchAll(/<li class="list-group-item[\s\S]*?<\/li>/g)].map((m) => m[0]);
    assert.match(items.find((item) => item.includes('@neighbour')) ?? '', />Owner</);
    assert.doesNotMatch(items.find((item) => item.includes('@me.boston')) ?? '', />Owner</);
    // The page lists exactly the database's accounts of the city, the deleted one left out.
    const inBoston = await t.db.kysely.selectFrom('users').select('username').where('city', '=', 'boston').where('username', 'is not', null).orderBy('username').execute();
    assert.deepEqual(listedUsernames(page.text), inBoston.map((row) => row.username));
    assert.ok(await t.db.kysely.selectFrom('users').select('id').where('id', '=', leaver.id).where('username', 'is', null).executeTakeFirst(), 'the deleted account is still a row');
  });
});

describe('GET /users/:id', () => {
  test('when it is the rider’s own id, then their profile and the vehicles they own that are not removed', async () => {
    const { agent, ...me } = await t.rider({ city: 'rome', username: 'romano' });
    const kept = await insertVehicle(me, { last_location: 'Piazza Navona' });
    const removed = await insertVehicle(me, { status: 'removed', last_location: 'Via Appia' });
    const page = await agent.get(`/users/${me.id}`);
    assert.equal(page.status, 200);
    assert.match(page.text, /@romano/);
    assert.match(page.text, /romano@example\.com/);
    assert.ok(page.text.includes(`data-vehicle-id="${kept}"`));
    assert.ok(!page.text.includes(removed));
    assert.match(page.text, new RegExp(`action="/users/remove/${me.id}"`));
  });

  test('when it is someone else’s id, then 403 and none of their details', async () => {
    const other = await t.rider({ city: 'boston', username: 'private.person' });
    const { agent } = await t.rider({ city: 'boston' });
    const response = await agent.get(`/users/${other.id}`);
    assert.equal(response.status, 403);
    assert.doesNotMatch(response.text, /private\.person@example\.com/);
  });

  test('when the id is malformed, then 404', async () => {
    const { agent } = await t.rider();
    for (const id of ['nope', '1', '00000000-0000-4000-8000-00000000000g']) {
      assert.equal((await agent.get(`/users/${id}`)).status, 404, id);
    }
  });

  test('when logged out, then 303 /login', async () => {
    const other = await t.rider();
    assert.equal((await t.agent().get(`/users/${other.id}`)).headers.location, '/login');
  });
});

describe('the confirmation steps (GET, before each POST that cannot be undone)', () => {
  test('when they are the rider’s own, then a page whose form posts, or every reason it cannot yet; someone else’s: 403 or 404; nothing changes', async () => {
    const agent = t.agent();
    const me = await signUpAndLogIn(agent, t.movr, 'rome');
    const other = await signUpAndLogIn(t.agent(), t.movr, 'rome');
    const theirs = await insertVehicle(other);

    const account = await agent.get(`/users/remove/${me.id}`);
    assert.equal(account.status, 200);
    assert.match(account.text, new RegExp(`<form method="post" action="/users/remove/${me.id}"`));
    assert.equal((await agent.get(`/users/remove/${other.id}`)).status, 403);
    assert.equal((await agent.get('/users/remove/me')).status, 404);

    const mine = await insertVehicle(me, { last_location: 'Piazza Navona' });
    const vehicle = await agent.get(`/vehicles/remove/${mine}`);
    assert.equal(vehicle.status, 200);
    assert.match(vehicle.text, /Piazza Navona/);
    assert.match(vehicle.text, new RegExp(`<form method="post" action="/vehicles/remove/${mine}"`));
    assert.equal((await agent.get(`/vehicles/remove/${theirs}`)).status, 403, "someone else's vehicle: 403 first");

    // Riding and owning a vehicle: both reasons at once, and no form to post.
    assert.equal((await formPost(agent, `/rides/start/${theirs}`, {}, '/vehicles')).headers.location, '/rides');
    const blocked = await agent.get(`/users/remove/${me.id}`);
    assert.match(blocked.text, /<li>End your ride in progress\.<\/li><li>Remove your vehicle\.<\/li>/);
    assert.doesNotMatch(blocked.text, /<form method="post" action="\/users\/remove/);
    const refused = await formPost(agent, `/users/remove/${me.id}`, {}, '/vehicles');
    assert.equal(refused.status, 303);
    assert.match((await agent.get(`/users/${me.id}`)).text, /To delete your account, first end your ride in progress, and remove your vehicle\./);
    assert.equal((await userRow(me)).username, me.username);
  });
});

describe('POST /users/remove/:id', () => {
  test('when it is someone else’s account, then 403 and nothing changes', async () => {
    const victimAgent = t.agent();
    const victim = await signUpAndLogIn(victimAgent, t.movr, 'boston', { username: 'victim' });
    const { agent, ...me } = await t.rider({ city: 'boston' });
    const response = await formPost(agent, `/users/remove/${victim.id}`);
    assert.equal(response.status, 403);
    assert.equal((await userRow(victim)).username, 'victim');
    assert.equal((await userRow(me)).username, me.username);
    assert.equal((await victimAgent.get('/vehicles')).status, 200);
  });

  test('when the id is malformed, then 404', async () => {
    const { agent, ...me } = await t.rider();
    assert.equal((await formPost(agent, '/users/remove/me')).status, 404);
    assert.equal((await userRow(me)).username, me.username);
  });

  test('when the rider is on a ride, then refused: 303 back to the profile with a flash, nothing changes', async () => {
    const owner = await t.rider();
    const vehicle = await insertVehicle(owner);
    const { agent, ...me } = await t.rider();
    assert.equal((await formPost(agent, `/rides/start/${vehicle}`)).headers.location, '/rides');

    const response = await formPost(agent, `/users/remove/${me.id}`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, `/users/${me.id}`);
    assert.match((await agent.get(`/users/${me.id}`)).text, /To delete your account, first end your ride in progress\./);
    assert.equal((await userRow(me)).username, me.username);
    assert.equal(await sessionsOf(me), 1);
  });

  test('when the rider owns vehicles that are not removed, then refused with a flash; once they are removed, the account can go', async () => {
    const { agent, ...me } = await t.rider();
    const vehicle = await insertVehicle(me);
    await insertVehicle(me, { status: 'removed' });

    const refused = await formPost(agent, `/users/remove/${me.id}`);
    assert.equal(refused.status, 303);
    assert.equal(refused.headers.location, `/users/${me.id}`);
    assert.match((await agent.get(`/users/${me.id}`)).text, /To delete your account, first remove your vehicle\./);
    assert.equal((await userRow(me)).username, me.username);

    assert.equal((await formPost(agent, `/vehicles/remove/${vehicle}`)).status, 303);
    const removed = await formPost(agent, `/users/remove/${me.id}`);
    assert.equal(removed.status, 303);
    assert.equal(removed.headers.location, '/login');
  });

  test('when the rider deletes their account, then 303 /login, every session of theirs ends, and the username is free again', async () => {
    const { agent, ...me } = await t.rider({ city: 'seattle', username: 'leaving', password: 'goodbye for now' });
    const phone = t.agent();
    await logIn(phone, 'leaving', 'goodbye for now');
    assert.equal((await phone.get('/vehicles')).status, 200);
    const bystander = t.agent();
    const other = await signUpAndLogIn(bystander, t.movr, 'seattle');
    assert.equal(await sessionsOf(me), 2);

    const response = await formPost(agent, `/users/remove/${me.id}`);
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/login');
    assert.deepEqual(await userRow(me), { username: null, password_hash: null, email: '', first_name: '', is_owner: false });
    assert.equal(await sessionsOf(me), 0);
    assert.equal((await agent.get('/vehicles')).headers.location, '/login');
    assert.equal((await phone.get('/vehicles')).headers.location, '/login');
    assert.equal((await bystander.get('/vehicles')).status, 200, 'other riders stay logged in');
    assert.equal(await sessionsOf(other), 1);

    const oldLogin = await formPost(t.agent(), '/login', { username: 'leaving', password: 'goodbye for now' }, '/login');
    assert.equal(oldLogin.status, 401);
    const again = await t.rider({ city: 'boston', username: 'leaving' });
    assert.notEqual(again.id, me.id);
  });

  test('when the CSRF token is missing, then 403 and the account stays', async () => {
    const { agent, ...me } = await t.rider();
    assert.equal((await agent.post(`/users/remove/${me.id}`).type('form').send({})).status, 403);
    assert.equal((await userRow(me)).username, me.username);
  });

  test('when logged out, then 303 /login', async () => {
    const me = await t.rider();
    const response = await formPost(t.agent(), `/users/remove/${me.id}`);
    assert.equal(response.headers.location, '/login');
    assert.equal((await userRow(me)).username, me.username);
  });
});
