import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TransactionRetryLimitError } from '../../src/db/errors.js';
import { type DatabaseKind, runStatement } from '../../src/db/transaction.js';
import { useFixture } from '../support/fixture.js';
import { FaultInjectingPool } from '../support/fault-injection.js';

const t = useFixture({ reset: false });

/** A database handle over a fault-injecting pool, with the statements of opening it forgotten. */
async function faulty(kind: DatabaseKind, maxAttempts = 10) {
  const pool = new FaultInjectingPool({ connectionString: t.connectionString, max: 2 });
  const db = await t.open({ kind, pool, retry: { baseDelayMs: 0, maxAttempts } });
  pool.clear();
  return { db, pool };
}

const READ = /^select "username" from "users"/;
const read = (kind: DatabaseKind) => async () => {
  const { db, pool } = await faulty(kind);
  return { db, pool, run: () => runStatement(db, (q) => q.selectFrom('users').select('username').where('username', '=', 'nobody').execute()) };
};

describe('runStatement: a read of one statement', () => {
  for (const kind of ['postgres', 'cockroachdb'] as const) {
    test(`when it runs (${kind}), then the statement goes alone, with no BEGIN, savepoint or COMMIT, and counts as a commit`, async () => {
      const { db, pool, run } = await read(kind)();
      assert.deepEqual(await run(), []);
      assert.equal(pool.trace().length, 1);
      assert.match(pool.trace()[0]!, READ);
      assert.deepEqual({ ...db.stats }, { attempts: 1, retries: 0, committed: 1, failed: 0, retryLimitReached: 0, outcomeUnknown: 0 });
    });
  }

  test('when it gets 40001, then it is sent again', async () => {
    const { db, pool, run } = await read('postgres')();
    pool.inject({ match: READ, code: '40001' });
    assert.deepEqual(await run(), []);
    assert.equal(pool.trace().length, 2);
    assert.match(pool.trace()[0]!, / !40001$/);
    assert.equal(db.stats.retries, 1);
    assert.equal(db.stats.committed, 1);
  });

  test('when every attempt gets 40001, then TransactionRetryLimitError after maxAttempts', async () => {
    const { db, pool } = await faulty('postgres', 3);
    pool.inject({ match: READ, code: '40001', nth: 'every' });
    await assert.rejects(
      runStatement(db, (q) => q.selectFrom('users').select('username').where('username', '=', 'nobody').execute()),
      (error: unknown) => error instanceof TransactionRetryLimitError && error.attempts === 3,
    );
    assert.equal(pool.trace().length, 3);
    assert.equal(db.stats.failed, 1);
  });

  test('when it fails otherwise, then the error reaches the caller at once', async () => {
    const { db, pool, run } = await read('postgres')();
    pool.inject({ match: READ, code: 'XX000' });
    await assert.rejects(run(), (error: unknown) => (error as { code?: string }).code === 'XX000');
    assert.equal(pool.trace().length, 1);
    assert.equal(db.stats.failed, 1);
  });
});
