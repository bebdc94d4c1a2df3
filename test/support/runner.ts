/**
 * The test runner test/support/run.ts starts: node:test's run() on the files in the order given (the longest first;
 * `node --test` would sort them by name), reported as `node --test` reports (spec on a terminal, else TAP).
 */
import { availableParallelism } from 'node:os';
import { run } from 'node:test';
import { spec, tap } from 'node:test/reporters';
import { parseArgs } from 'node:util';

const { values, positionals: files } = parseArgs({
  allowPositionals: true,
  options: {
    'test-concurrency': { type: 'string' },
    'test-name-pattern': { type: 'string', multiple: true },
    'test-only': { type: 'boolean' },
  },
});

const controller = new AbortController();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => controller.abort());

const stream = run({
  files,
  concurrency: Number(values['test-concurrency'] ?? Math.max(availableParallelism() - 1, 1)),
  only: values['test-only'] ?? false,
  testNamePatterns: values['test-name-pattern'],
  signal: controller.signal,
});
stream.on('test:fail', (event) => {
  if (event.nesting === 0) process.exitCode = 1;
});
stream.compose(process.stdout.isTTY ? new spec() : tap).pipe(process.stdout);
