import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sql } from 'kysely';
import { SESSION_RENEW_AFTER_MS } from '../../src/web/middleware/session.js';
import { cookie } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();

const WEEK_MS = 7 * 24 * 3600 * 1000;

/** The logged-in session's row: its stored expiry and xmin, which changes whenever the row is written. */
async function loggedInRow() {
  const { rows } = await sql<{ sid: string; expire: Date; version: string; renewedAt: string | null }>`
    SELECT sid, expire, xmin::text AS version, sess::jsonb ->> 'renewedAt' AS "renewedAt"
    FROM sessions WHERE sess::jsonb -> 'passport' -> 'user' IS NOT NULL`.execute(t.db.kysely);
  assert.equal(rows.length, 1);
  return rows[0]!;
}

describe('session expiry', () => {
  test('when a logged-in rider browses, then pages leave the session row and the cookie alone', async () => {
    const { agent } = await t.rider();
    // The first page after log-in stores the new session's CSRF token: a real change.
    assert.equal((await agent.get('/vehicles')).status, 200);
    const saved = await loggedInRow();
    for (const page of ['/vehicles', '/rides', '/vehicles']) {
      const response = await agent.get(page);
      assert.equal(response.status, 200);
      assert.equal(cookie(response), undefined, 'no Set-Cookie for the session: it was saved less than an hour ago');
    }
    assert.equal((await loggedInRow()).version, saved.version, 'no write per page view');
  });

  test('when the stored session is more than an hour old, then the next request saves it and its cookie with a new week, once', async () => {
    const { agent } = await t.rider();
    // As if the session had last been saved two hours ago.
    const aged = new Date(Date.now() + WEEK_MS - 2 * SESSION_RENEW_AFTER_MS);
    await sql`UPDATE sessions SET expire = ${aged},
      sess = jsonb_set(sess::jsonb, '{cookie,expires}', to_jsonb(${aged.toISOString()}::text))::json
      WHERE sess::jsonb -> 'passport' -> 'user' IS NOT NULL`.execute(t.db.kysely);
    const before = await loggedInRow();

    const renewing = await agent.get('/vehicles');
    assert.equal(renewing.status, 200);
    const sent = cookie(renewing);
    assert.ok(sent, 'the cookie is sent again with the renewed session');
    const expires = Date.parse(sent.match(/Expires=([^;]+)/i)![1]!);
    assert.ok(Math.abs(expires - (Date.now() + WEEK_MS)) < 60_000, 'the cookie lasts a week from now');
    const renewed = await loggedInRow();
    assert.notEqual(renewed.version, before.version);
    assert.ok(renewed.renewedAt, 'marked renewed');
    assert.ok(renewed.expire.getTime() > Date.now() + WEEK_MS - 60_000, `stored expiry slid to a week from now (${renewed.expire.toISOString()})`);

    const next = await agent.get('/vehicles');
    assert.equal(next.status, 200);
    assert.equal(cookie(next), undefined, 'nor the cookie');
    assert.equal((await loggedInRow()).version, renewed.version, 'and not again on the next request');
  });
});
