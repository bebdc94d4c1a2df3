import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formPost, logIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture({ app: { env: { REGION: 'gcp-europe-west1' } } });

/** The header's three metrics, parsed. */
function timing(header: string | undefined) {
  const match = header?.match(/^db;dur=(\d+\.\d), tx;desc="attempts";dur=(\d+), region;desc="([\w-]+)"$/);
  assert.ok(match, `Server-Timing: ${header}`);
  return { dbMs: Number(match[1]), attempts: Number(match[2]), region: match[3] };
}

describe('Server-Timing', () => {
  test('when a visitor opens the log-in page, then it names the serving region and no transaction', async () => {
    const page = await t.agent().get('/login');
    assert.equal(page.status, 200);
    assert.deepEqual(timing(page.headers['server-timing']), { dbMs: 0, attempts: 0, region: 'gcp-europe-west1' });
  });

  test('when a rider logs in and opens a page, then each response counts its own transactions and their time', async () => {
    const rider = { username: 'timed', password: 'correct horse battery' };
    const signUp = await formPost(t.agent(), '/register', { city: 'paris', first_name: 'Tim', last_name: 'Ed', email: 'timed@example.com', ...rider });
    assert.equal(signUp.status, 303);
    const agent = t.agent();
    // A form post: the tally survives the body parser and the session store on the way to the route.
    const loggedIn = timing((await logIn(agent, rider.username, rider.password)).headers['server-timing']);
    assert.ok(loggedIn.attempts >= 1, 'log-in reads the user in a transaction');
    const vehicles = await agent.get('/vehicles');
    assert.equal(vehicles.status, 200);
    const metrics = timing(vehicles.headers['server-timing']);
    assert.equal(metrics.region, 'gcp-europe-west1');
    assert.ok(metrics.attempts >= 1, 'the vehicles page reads in at least one transaction');
    assert.ok(metrics.dbMs > 0);
    // Two pages in a row: the second does not inherit the first's tally.
    const again = timing((await agent.get('/vehicles')).headers['server-timing']);
    assert.equal(again.attempts, metrics.attempts);
  });
});
