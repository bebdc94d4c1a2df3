import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { OPERATIONS } from '../../src/web/api/operations.js';
import { CHROMIUM_ARGS, findChromium } from '../support/chromium.js';
import { useFixture } from '../support/fixture.js';

/** /api/docs in a real Chromium: Swagger UI runs under the app's Content-Security-Policy and lists every operation. */

let browser: Browser | undefined;
const t = useFixture({
  listen: true,
  reset: false,
  setup: async () => (browser = await chromium.launch({ executablePath: findChromium(), args: [...CHROMIUM_ARGS] })),
  teardown: async () => browser?.close(),
});

describe('/api/docs', () => {
  test('when a person opens it, then Swagger UI renders every operation from the served document, with nothing refused by the CSP', async () => {
    const page = await browser!.newPage();
    const refused: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') refused.push(message.text());
    });
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('response', (response) => {
      if (response.status() >= 400) refused.push(`${response.status()} ${response.url()}`);
    });
    await page.goto(`${t.url}/api/docs`);
    await page.locator('.opblock').nth(OPERATIONS.length).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('.opblock').count(), OPERATIONS.length + 1, 'the operations and openapi.json');
    assert.match(await page.locator('.info .title').innerText(), /MovR API/);
    assert.deepEqual(refused, []);
    assert.deepEqual(requests.filter((url) => !url.startsWith(t.url)), [], 'no request leaves the app');
    await page.close();
  });
});
