import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import request from 'supertest';
import { SESSION_COOKIE } from '../../src/web/middleware/session.js';
import { cookie, csrfFrom, csrfToken, formPost, logIn, signUpAndLogIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();


const validSignUp = { city: 'boston', first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com', username: 'ada', password: 'analytical engine' };

describe('home', () => {
  test('when logged out, / sends to /login; when logged in, to /vehicles', async () => {
    const agent = t.agent();
    assert.equal((await agent.get('/')).headers.location, '/login');
    await signUpAndLogIn(agent, t.movr);
    const home = await agent.get('/');
    assert.equal(home.status, 303);
    assert.equal(home.headers.location, '/vehicles');
    assert.equal((await agent.get('/login')).headers.location, '/vehicles');
  });
});

describe('sign up', () => {
  test('when the form is valid, then the user exists with a bcrypt hash and the rider lands on the vehicles page, logged in with a fresh session', async () => {
    const agent = t.agent();
    const response = await formPost(agent, '/register', { ...validSignUp, city: 'Boston' }, '/register');
    assert.equal(response.status, 303);
    assert.equal(response.headers.location, '/vehicles');
    assert.ok(cookie(response), 'a session starts with the account');
    const row = await t.db.kysely.selectFrom('users').selectAll().where('username', '=', 'ada').executeTakeFirstOrThrow();
    assert.equal(row.city, 'boston');
    assert.match(row.password_hash ?? '', /^v2\$\$2[aby]\$\d\d\$/);
    assert.notEqual(row.password_hash, validSignUp.password);
    const page = await agent.get('/vehicles');
    assert.equal(page.status, 200);
    assert.match(page.text, /Welcome to MovR, Ada/);
  });

  test('when fields are invalid, then 422 with a message beside each field, the values kept and never the password', async () => {
    const agent = t.agent();
    const response = await formPost(agent, '/register', { city: 'atlantis', first_name: '', last_name: 'L', email: 'not-an-email', username: 'a!', password: 'short' }, '/register');
    assert.equal(response.status, 422);
    for (const field of ['city', 'first_name', 'email', 'username', 'password']) {
      assert.match(response.text, new RegExp(`id="error-${field}"`), `an error beside ${field}`);
    }
    assert.match(response.text, /value="not-an-email"/);
    assert.doesNotMatch(response.text, /value="short"/);
    assert.equal(await t.db.kysely.selectFrom('users').select('id').executeTakeFirst(), undefined);
  });

  test('when the username is taken, then 422 with the message beside the username field', async () => {
    const agent = t.agent();
    await formPost(agent, '/register', { ...validSignUp }, '/register');
    const again = await formPost(agent, '/register', { ...validSignUp, email: 'other@example.com' }, '/register');
    assert.equal(again.status, 422);
    assert.match(again.text, /id="error-username"[^>]*>That username is taken\./);
    assert.match(again.text, /value="other@example.com"/);
    assert.doesNotMatch(again.text, /analytical engine/);
  });

  test('when one client signs up too often, then 429', async () => {
    const limited = t.buildApp({ rateLimits: { registrations: 2 } });
    const agent = limited.agent();
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await formPost(agent, '/register', { ...validSignUp, username: `limited${i}` });
      statuses.push(response.status);
    }
    assert.deepEqual(statuses, [303, 303, 429]);
  });
});

describe('log in and out', () => {
  test('when the password is wrong or the user unknown, then the same status and message', async () => {
    const agent = t.agent();
    await t.rider({ city: 'boston', username: 'known', password: 'right password' });
    const wrong = await formPost(agent, '/login', { username: 'known', password: 'wrong password' });
    const unknown = await formPost(agent, '/login', { username: 'nobody', password: 'wrong password' });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    const message = (html: string) => html.match(/id="login-error">([^<]*)</)?.[1];
    assert.equal(message(wrong.text), 'Incorrect username or password.');
    assert.equal(message(unknown.text), message(wrong.text));
    assert.doesNotMatch(wrong.text, /wrong password/);
  });

  test('when a visitor logs in with a session id chosen for them, then the session id changes (no fixation) and the cookie is HttpOnly and SameSite=Lax', async () => {
    await t.rider({ city: 'boston', username: 'fixed', password: 'right password' });
    const loginPage = await request(t.app).get('/login');
    assert.equal(cookie(loginPage), undefined, 'an anonymous visitor gets no session');
    const csrfCookie = cookie(loginPage, 'movr.csrf')!.split(';')[0]!;
    const planted = `${SESSION_COOKIE}=s%3Aplanted-by-an-attacker.x`;
    const response = await request(t.app)
      .post('/login')
      .set('Cookie', `${csrfCookie}; ${planted}`)
      .type('form')
      .send({ _csrf: csrfFrom(loginPage.text), username: 'fixed', password: 'right password' });
    assert.equal(response.status, 303);
    const afterLogin = cookie(response);
    assert.ok(afterLogin);
    assert.notEqual(afterLogin.split(';')[0], planted);
    assert.match(afterLogin, /HttpOnly/i);
    assert.match(afterLogin, /SameSite=Lax/i);
    assert.doesNotMatch(afterLogin, /Secure/i);
    assert.equal((await request(t.app).get('/vehicles').set('Cookie', afterLogin.split(';')[0]!)).status, 200);
  });

  test('when a rider logs out with POST, then the session ends; a GET or a post without CSRF does nothing', async () => {
    await t.rider({ username: 'leaving', password: 'right password' });
    const agent = t.agent();
    // The session cookie as the log-in set it (pages do not send it again within the hour).
    const loggedInCookie = cookie(await logIn(agent, 'leaving', 'right password'))!.split(';')[0]!;
    assert.equal((await agent.get('/logout')).status, 404);
    assert.equal((await agent.post('/logout').type('form').send({})).status, 403);
    assert.equal((await agent.get('/vehicles')).status, 200);
    const out = await formPost(agent, '/logout');
    assert.equal(out.status, 303);
    assert.equal(out.headers.location, '/login');
    assert.equal((await agent.get('/vehicles')).headers.location, '/login');
    assert.match((await agent.get('/login')).text, /You are logged out\./);
    // The cookie from before the log-out no longer opens a session.
    const replay = await request(t.app).get('/vehicles').set('Cookie', loggedInCookie);
    assert.equal(replay.headers.location, '/login');
  });

  test('when more than 10 log-ins fail for one username from one client, then 429, while other usernames still work', async () => {
    const agent = t.agent();
    await t.rider({ city: 'boston', username: 'target', password: 'right password' });
    await t.rider({ city: 'boston', username: 'bystander', password: 'right password' });
    const token = await csrfToken(agent);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      statuses.push((await agent.post('/login').type('form').send({ _csrf: token, username: 'target', password: `guess ${i}` })).status);
    }
    assert.deepEqual(statuses, [...Array(10).fill(401), 429]);
    const blocked = await agent.post('/login').type('form').send({ _csrf: token, username: 'target', password: 'right password' });
    assert.equal(blocked.status, 429);
    assert.equal((await logIn(t.agent(), 'bystander', 'right password')).status, 303);
  });

  test('when the login form is empty, then 422 with field messages', async () => {
    const agent = t.agent();
    const response = await formPost(agent, '/login', { username: '', password: '' });
    assert.equal(response.status, 422);
    assert.match(response.text, /id="error-username"/);
    assert.match(response.text, /id="error-password"/);
  });
});

describe('forms are protected', () => {
  test('when _csrf is missing or wrong, then 403 and nothing is created', async () => {
    const agent = t.agent();
    await agent.get('/register');
    assert.equal((await agent.post('/register').type('form').send(validSignUp)).status, 403);
    assert.equal((await agent.post('/register').type('form').send({ ...validSignUp, _csrf: 'forged' })).status, 403);
    assert.equal((await agent.post('/login').type('form').send({ username: 'ada', password: 'x' })).status, 403);
    assert.equal(await t.db.kysely.selectFrom('users').select('id').executeTakeFirst(), undefined);
  });

  test('when a body is over 100 kB, then 413', async () => {
    const agent = t.agent();
    const response = await formPost(agent, '/register', { first_name: 'x'.repeat(110_000) }, '/register');
    assert.equal(response.status, 413);
    assert.doesNotMatch(response.text, /at .*\.js:\d+/);
  });
});
