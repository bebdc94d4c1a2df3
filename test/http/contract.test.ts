import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import request from 'supertest';
import { SESSION_COOKIE } from '../../src/web/middleware/session.js';
import { cookie, csrfFrom, csrfToken, formPost, logIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

/** Contract lines of their own: usernames, ids of others, caching, the log-in window, sessions at log-in and sign-up. */
const t = useFixture();

const signUp = (username: string) => ({ city: 'boston', first_name: 'Case', last_name: 'Rider', email: `${username.toLowerCase()}@example.com`, username, password: 'correct horse battery' });

describe('usernames', () => {
  test('when a rider signed up as CaseRider, then they log in as caserider or CASERIDER, and caseRIDER is taken', async () => {
    const created = await formPost(t.agent(), '/register', signUp('CaseRider'));
    assert.equal(created.status, 303);
    for (const username of ['caserider', 'CASERIDER', 'CaseRider']) {
      const answer = await formPost(t.agent(), '/login', { username, password: 'correct horse battery' }, '/login');
      assert.equal(answer.status, 303, username);
      assert.equal(answer.headers.location, '/vehicles', username);
    }
    const taken = await formPost(t.agent(), '/register', { ...signUp('caseRIDER'), email: 'other@example.com' });
    assert.equal(taken.status, 422);
    assert.match(taken.text, /taken/i);
    const rows = await t.db.kysely.selectFrom('users').select('username').where(sql<boolean>`lower(username) = 'caserider'`).execute();
    assert.equal(rows.length, 1, 'one account');
  });

  test('when failed log-ins name one username in different cases, then they count as one username: the 11th is refused', async () => {
    await formPost(t.agent(), '/register', signUp('Counted'));
    const agent = t.agent();
    const token = await csrfToken(agent);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      const username = i % 2 ? 'counted' : 'COUNTED';
      statuses.push((await agent.post('/login').type('form').send({ _csrf: token, username, password: `guess ${i}` })).status);
    }
    assert.deepEqual(statuses, [...Array(10).fill(401), 429]);
  });
});

describe('the log-in window', () => {
  test('when a log-in fails, then it counts for 15 minutes by the database clock; once the window has passed, the username may log in again', async () => {
    await formPost(t.agent(), '/register', signUp('windowed'));
    const agent = t.agent();
    const token = await csrfToken(agent);
    const fail = () => agent.post('/login').type('form').send({ _csrf: token, username: 'windowed', password: 'wrong password' });
    assert.equal((await fail()).status, 401);
    const counters = await sql<{ key: string; seconds: number }>`
      SELECT key, extract(epoch FROM reset_at - now())::float8 AS seconds FROM rate_limits WHERE key LIKE 'login:%'`.execute(t.db.kysely);
    assert.equal(counters.rows.length, 1, 'one counter for the username and client');
    const { seconds } = counters.rows[0]!;
    assert.ok(seconds > 14 * 60 + 50 && seconds <= 15 * 60, `the window ends ${seconds} s from now`);

    for (let i = 0; i < 9; i++) assert.equal((await fail()).status, 401);
    const right = () => agent.post('/login').type('form').send({ _csrf: token, username: 'windowed', password: 'correct horse battery' });
    assert.equal((await right()).status, 429, 'the limit holds inside the window');
    // The window ends: as if 15 minutes had passed.
    await sql`UPDATE rate_limits SET reset_at = now() - interval '1 millisecond' WHERE key LIKE 'login:%'`.execute(t.db.kysely);
    const again = await right();
    assert.equal(again.status, 303);
    assert.equal(again.headers.location, '/vehicles');
  });
});

describe('sessions at log-in and sign-up', () => {
  test('when a logged-in rider posts the log-in form again, even with another account, then 303 /vehicles and they stay who they were', async () => {
    const first = await t.rider({ username: 'staying' });
    await formPost(t.agent(), '/register', signUp('intruder'));
    const token = csrfFrom((await first.agent.get('/vehicles')).text);
    const answer = await first.agent.post('/login').type('form').send({ _csrf: token, username: 'intruder', password: 'correct horse battery' });
    assert.equal(answer.status, 303);
    assert.equal(answer.headers.location, '/vehicles');
    assert.equal((await first.agent.get(`/users/${first.id}`)).status, 200, 'still the first rider');
  });

  test('when a logged-in rider signs up another account, then the new account gets a fresh session id and the old id opens nothing', async () => {
    const agent = t.agent();
    const before = cookie(await logIn(agent, (await t.rider({ username: 'firstaccount' })).username, 'correct horse battery'))!.split(';')[0]!;
    const created = await formPost(agent, '/register', signUp('secondaccount'));
    assert.equal(created.status, 303);
    assert.equal(created.headers.location, '/vehicles');
    const after = cookie(created)?.split(';')[0];
    assert.ok(after?.startsWith(`${SESSION_COOKIE}=`), 'a session cookie with the account');
    assert.notEqual(after, before, 'a fresh session id');
    const second = await t.db.kysely.selectFrom('users').select('id').where('username', '=', 'secondaccount').executeTakeFirstOrThrow();
    assert.equal((await request(t.app).get(`/users/${second.id}`).set('Cookie', after!)).status, 200, 'the new id is the new account');
    assert.equal((await request(t.app).get('/vehicles').set('Cookie', before)).headers.location, '/login', 'the old id is gone');
  });

  test('when a visitor signs up with a session id chosen for them, then the account gets another one', async () => {
    const page = await request(t.app).get('/register');
    const csrfCookie = cookie(page, 'movr.csrf')!.split(';')[0]!;
    const planted = `${SESSION_COOKIE}=s%3Aplanted-by-an-attacker.x`;
    const created = await request(t.app)
      .post('/register')
      .set('Cookie', `${csrfCookie}; ${planted}`)
      .type('form')
      .send({ _csrf: csrfFrom(page.text), ...signUp('planted') });
    assert.equal(created.status, 303);
    const given = cookie(created)?.split(';')[0];
    assert.ok(given?.startsWith(`${SESSION_COOKIE}=`));
    assert.notEqual(given, planted);
  });
});

describe('ids of others on /users/...', () => {
  test('when a rider asks for an unknown id or someone else\'s, then the same 403 for both, so no answer tells whether an account exists', async () => {
    const me = await t.rider({ username: 'asker' });
    const other = await t.rider({ username: 'existing' });
    const unknown = randomUUID();
    const token = csrfFrom((await me.agent.get('/vehicles')).text);
    const answers = [];
    for (const id of [unknown, other.id]) {
      const page = await me.agent.get(`/users/${id}`);
      const removal = await me.agent.post(`/users/remove/${id}`).type('form').send({ _csrf: token });
      assert.equal(page.status, 403, `GET /users/${id}`);
      assert.equal(removal.status, 403, `POST /users/remove/${id}`);
      answers.push([page.text.replaceAll(id, 'ID'), removal.text.replaceAll(id, 'ID')]);
    }
    assert.deepEqual(answers[0], answers[1], 'the same pages');
    assert.ok(await t.db.kysely.selectFrom('users').select('id').where('id', '=', other.id).where('username', '=', 'existing').executeTakeFirst(), 'nothing changed');
  });
});

describe('caching', () => {
  test('when a rider is logged in, then every page served to them, redirects and error pages included, carries Cache-Control: no-store', async () => {
    const me = await t.rider({ username: 'cached' });
    const other = await t.rider({ username: 'notcached' });
    const vehicle = await t.vehicle(me);
    const { agent } = me;
    const token = csrfFrom((await agent.get('/vehicles')).text);
    const answers: [string, request.Response][] = [];
    for (const path of ['/', '/login', '/register', '/vehicles', '/vehicles?page=1', '/vehicles/add', '/rides', '/users', `/users/${me.id}`, `/users/${other.id}`, '/users/nope', '/no/such/page']) {
      answers.push([`GET ${path}`, await agent.get(path)]);
    }
    const post = (path: string, fields: Record<string, string> = {}) => agent.post(path).type('form').send({ _csrf: token, ...fields });
    answers.push(['POST /city/paris', await post('/city/paris')]);
    answers.push(['POST /vehicles/add (invalid)', await post('/vehicles/add', { type: 'tank' })]);
    answers.push(['POST /rides/start (own vehicle)', await post(`/rides/start/${vehicle}`)]);
    answers.push(['POST /vehicles/remove (in use)', await post(`/vehicles/remove/${vehicle}`)]);
    answers.push(['POST /users/remove (someone else)', await post(`/users/remove/${other.id}`)]);
    const statuses = new Set(answers.map(([, answer]) => answer.status));
    for (const status of [200, 303, 403, 404, 422]) assert.ok(statuses.has(status), `a ${status} among the answers`);
    assert.deepEqual(
      answers.filter(([, answer]) => answer.headers['cache-control'] !== 'no-store').map(([what, answer]) => `${what}: ${answer.status} ${answer.headers['cache-control']}`),
      [],
    );
  });
});
