import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../support/build.js';

const root = ROOT;
const SKIPPED = new Set(['.git', '.ci', 'node_modules', 'dist', '.movr']);
const SOURCE = /\.(ts|js|mjs|cjs|json|ya?ml|sh|ejs)$|^Dockerfile$/;

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIPPED.has(entry.name)) continue;
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(file);
    else if (SOURCE.test(entry.name)) yield file;
  }
}

describe('the repository', () => {
  it('when cloned with nothing beside it, then no file reads outside it (the shared folder beside it exists only for CI)', () => {
    const files = [...sourceFiles(root)];
    assert.ok(files.length > 50, `found ${files.length} source files`);
    const needle = ['..', 'shared'].join('/');
    const outside = files.filter((file) => readFileSync(file, 'utf8').includes(needle)).map((file) => path.relative(root, file));
    assert.deepEqual(outside, []);
  });
});
