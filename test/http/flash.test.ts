import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cookie, formPost } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture();

/** The value a response set for the flash cookie, as sent back (URL-encoded). */
const flashCookie = (response: { headers: Record<string, unknown> }) => cookie(response, 'movr.flash')?.split(';')[0]!.slice('movr.flash='.length);

/** The messages a page shows. */
const alerts = (html: string) => [...html.matchAll(/<div class="alert[^"]*"[^>]*>\s*([^<]*?)\s*</g)].map((m) => m[1]);

describe('one-time messages (the signed flash cookie)', () => {
  test('when a redirect leaves a message, then the next page shows it once', async () => {
    const { agent } = await t.rider({ city: 'boston' });
    const moved = await formPost(agent, '/city/paris', {}, '/vehicles');
    assert.ok(flashCookie(moved)?.startsWith('s%3A'), 'the message travels in a signed cookie');
    assert.deepEqual(alerts((await agent.get('/vehicles')).text), ['Showing Paris.']);
    assert.deepEqual(alerts((await agent.get('/vehicles')).text), []);
  });

  test('when the cookie is unsigned, or its signature does not match, then no message is shown', async () => {
    const { agent } = await t.rider({ city: 'boston' });
    const signed = flashCookie(await formPost(agent, '/city/paris', {}, '/vehicles'))!;
    const forged = encodeURIComponent(JSON.stringify([{ kind: 'danger', text: 'Forged' }]));
    const tampered = signed.replace(/Paris/, 'Rome');
    assert.notEqual(tampered, signed);
    for (const value of [forged, `s%3A${forged}`, tampered]) {
      const page = await t.agent().get('/login').set('Cookie', `movr.flash=${value}`);
      assert.equal(page.status, 200);
      assert.deepEqual(alerts(page.text), [], value);
    }
    const genuine = await t.agent().get('/login').set('Cookie', `movr.flash=${signed}`);
    assert.deepEqual(alerts(genuine.text), ['Showing Paris.']);
  });
});
