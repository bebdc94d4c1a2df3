import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { findChromium } from '../support/chromium.js';
import { tempDir } from '../support/cluster.js';

const made: string[] = [];
const scratch = (): string => {
  const dir = tempDir('movr-chrome-');
  made.push(dir);
  return dir;
};
after(() => made.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('finding a browser for the browser test', () => {
  it('when CHROME_PATH names an executable, then it is used; when it names nothing runnable, then one line says so', () => {
    const dir = scratch();
    const fake = path.join(dir, 'chrome');
    writeFileSync(fake, '#!/bin/sh\n');
    chmodSync(fake, 0o755);
    assert.equal(findChromium(fake, []), fake);
    assert.throws(() => findChromium(path.join(dir, 'missing'), [fake]), /^Error: CHROME_PATH is .*missing, which is not an executable/);
  });

  it('when CHROME_PATH is unset, then the first usual place that runs; when there is none, then one line naming how to get one', () => {
    const dir = scratch();
    const second = path.join(dir, 'google-chrome');
    writeFileSync(second, '#!/bin/sh\n');
    chmodSync(second, 0o755);
    assert.equal(findChromium(undefined, [path.join(dir, 'chromium'), second]), second);
    assert.throws(() => findChromium(undefined, [path.join(dir, 'chromium')]), (error: Error) => !error.message.includes('\n') && /apt-get install chromium.*CHROME_PATH/.test(error.message));
  });
});
