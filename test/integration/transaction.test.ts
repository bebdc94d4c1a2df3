import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import type { MovrDatabase } from '../../src/db/database.js';
import { TransactionOutcomeUnknownError, TransactionRetryLimitError } from '../../src/db/errors.js';
import { type DatabaseKind, type RetryOptions, runTransaction, type TransactionStats, type Tx } from '../../src/db/transaction.js';
import { useFixture } from '../support/fixture.js';
import { type Fault, FaultInjectingPool } from '../support/fault-injection.js';

const BEGIN = 'start transaction isolation level serializable';
const SAVEPOINT = 'SAVEPOINT cockroach_restart';
const RELEASE = 'RELEASE SAVEPOINT cockroach_restart';
const ROLLBACK_TO = 'ROLLBACK TO SAVEPOINT cockroach_restart';
const COMMIT = 'commit';
const ROLLBACK = 'rollback';
const UPDATE = 'UPDATE test_counters SET n = n + 1 WHERE id = 1';
const SELECT = 'SELECT n FROM test_counters WHERE id = 1';
const ROWS = 8;

const t = useFixture({
  reset: false,
  setup: ({ db }) => sql`CREATE TABLE test_counters (id int PRIMARY KEY, n int NOT NULL CONSTRAINT test_counters_n_check CHECK (n >= 0))`.execute(db.kysely),
});

beforeEach(async () => {
  await sql`TRUNCATE test_counters`.execute(t.db.kysely);
  await sql`INSERT INTO test_counters (id, n) SELECT i, 0 FROM generate_series(1, ${ROWS}) AS i`.execute(t.db.kysely);
});

async function counters(): Promise<number[]> {
  const { rows } = await sql<{ n: number }>`SELECT n FROM test_counters ORDER BY id`.execute(t.db.kysely);
  return rows.map((row) => row.n);
}

/** Runs UPDATE then SELECT on counter 1 (the statements UPDATE and SELECT above); returns the counter. */
async function increment(tx: Tx): Promise<number> {
  await sql.raw(UPDATE).execute(tx);
  const { rows } = await sql.raw<{ n: number }>(SELECT).execute(tx);
  return rows[0]!.n;
}

function statsOf(db: MovrDatabase): TransactionStats {
  return { ...db.stats };
}

function stats(values: Partial<TransactionStats>): TransactionStats {
  return { attempts: 0, retries: 0, committed: 0, failed: 0, retryLimitReached: 0, outcomeUnknown: 0, ...values };
}

/** A database handle over a fault-injecting pool, with the statements of opening it forgotten. */
async function faulty(kind: DatabaseKind, retry: Partial<RetryOptions> = { baseDelayMs: 0 }) {
  const pool = new FaultInjectingPool({ connectionString: t.connectionString, max: 2 });
  const db = await t.open({ kind, pool, retry });
  pool.clear();
  return { db, pool };
}

/** A fault-injecting handle (see faulty) with `faults` armed. */
async function armed(kind: DatabaseKind, faults: Fault[], retry?: Partial<RetryOptions>) {
  const handle = await faulty(kind, retry);
  for (const fault of faults) handle.pool.inject(fault);
  return handle;
}

/** Runs `increment` once on a handle with `faults` armed; it must return 1. */
async function incrementOnce(kind: DatabaseKind, ...faults: Fault[]) {
  const handle = await armed(kind, faults);
  assert.equal(await runTransaction(handle.db, increment), 1);
  return handle;
}

/** Counter 1 holds `value`, and the handle's statistics are `expected`. */
async function assertCounter(db: MovrDatabase, value: number, expected: Partial<TransactionStats>) {
  assert.equal((await counters())[0], value);
  assert.deepEqual(statsOf(db), stats(expected));
}

/** Lets `parties` callers through together, so that every transaction has read before any writes. */
function barrier(parties: number) {
  let arrived = 0;
  let release!: () => void;
  const open = new Promise<void>((resolve) => (release = resolve));
  return {
    async wait(): Promise<void> {
      if (++arrived >= parties) release();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`barrier: ${arrived}/${parties} arrived after 10 s`)), 10_000);
      });
      try {
        await Promise.race([open, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

describe('PostgreSQL path under real contention', () => {
  const contended = { maxAttempts: 50, baseDelayMs: 2, maxDelayMs: 50 };

  /** `n` transactions at once, each reading, waiting (on its first attempt) until all have read, then writing. */
  async function race(n: number, read: (tx: Tx) => Promise<number>, write: (tx: Tx, value: number, i: number) => Promise<unknown>) {
    const db = await t.open({ poolSize: n, retry: contended });
    const gate = barrier(n);
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        let first = true;
        await runTransaction(db, async (tx) => {
          const value = await read(tx);
          if (first) {
            first = false;
            await gate.wait();
          }
          await write(tx, value, i);
        });
      }),
    );
    await db.close();
    return db;
  }

  /** Each of the `n` committed once, some after a retry, and none failed. */
  function assertEachCommittedOnce(db: MovrDatabase, n: number) {
    const s = statsOf(db);
    assert.equal(s.committed, n);
    assert.ok(s.retries > 0, 'some transaction must have been retried');
    assert.equal(s.attempts, s.committed + s.retries);
    assert.equal(s.failed, 0);
  }

  for (const n of [2, 8]) {
    test(`when ${n} transactions read a counter and write it back plus one, then each commits exactly once (no lost update)`, async () => {
      const db = await race(
        n,
        async (tx) => (await sql<{ n: number }>`SELECT n FROM test_counters WHERE id = 1`.execute(tx)).rows[0]!.n,
        (tx, value) => sql`UPDATE test_counters SET n = ${value + 1} WHERE id = 1`.execute(tx),
      );
      assert.equal(db.kind, 'postgres');
      assert.equal((await counters())[0], n);
      assertEachCommittedOnce(db, n);
    });

    test(`when ${n} transactions each read the sum of all counters and write it plus one to their own, then the result is serial (no write skew)`, async () => {
      const db = await race(
        n,
        async (tx) => (await sql<{ total: number }>`SELECT sum(n)::int AS total FROM test_counters`.execute(tx)).rows[0]!.total,
        (tx, total, i) => sql`UPDATE test_counters SET n = ${total + 1} WHERE id = ${i + 1}`.execute(tx),
      );
      // Serially, each transaction sees every earlier one's write: the k-th writes (2^k - 1) + 1.
      const written = (await counters()).slice(0, n).sort((a, b) => a - b);
      assert.deepEqual(written, Array.from({ length: n }, (_, k) => 2 ** k));
      assertEachCommittedOnce(db, n);
    });
  }
});

describe('CockroachDB retry protocol, driven against PostgreSQL with injected faults', () => {
  test('when nothing fails, then the transaction runs inside SAVEPOINT/RELEASE once', async () => {
    const { db, pool } = await faulty('cockroachdb');
    assert.equal(await runTransaction(db, increment), 1);
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, UPDATE, SELECT, RELEASE, COMMIT]);
    assert.deepEqual(statsOf(db), stats({ attempts: 1, committed: 1 }));
  });

  test("when the callback's first statement gets 40001, then it rolls back to the savepoint and reruns in the same transaction", async () => {
    const { db, pool } = await incrementOnce('cockroachdb', { match: UPDATE, code: '40001' });
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, `${UPDATE} !40001`, ROLLBACK_TO, UPDATE, SELECT, RELEASE, COMMIT]);
    assert.equal(new Set(pool.statements.map((s) => s.backendPid)).size, 1, 'one connection, one transaction');
    await assertCounter(db, 1, { attempts: 2, retries: 1, committed: 1 });
  });

  test('when a later statement gets 40001, then the earlier write is undone by ROLLBACK TO SAVEPOINT and made once', async () => {
    const { db, pool } = await incrementOnce('cockroachdb', { match: SELECT, code: '40001' });
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, UPDATE, `${SELECT} !40001`, ROLLBACK_TO, UPDATE, SELECT, RELEASE, COMMIT]);
    await assertCounter(db, 1, { attempts: 2, retries: 1, committed: 1 });
  });

  test('when RELEASE SAVEPOINT gets 40001, then it is retried like the callback: ROLLBACK TO SAVEPOINT and rerun', async () => {
    const { db, pool } = await incrementOnce('cockroachdb', { match: /^RELEASE SAVEPOINT/i, code: '40001' });
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, UPDATE, SELECT, `${RELEASE} !40001`, ROLLBACK_TO, UPDATE, SELECT, RELEASE, COMMIT]);
    await assertCounter(db, 1, { attempts: 2, retries: 1, committed: 1 });
  });

  test('when COMMIT gets 40001, then a whole new transaction is begun', async () => {
    const { db, pool } = await incrementOnce('cockroachdb', { match: COMMIT, code: '40001' });
    assert.deepEqual(pool.trace(), [
      ...[BEGIN, SAVEPOINT, UPDATE, SELECT, RELEASE, `${COMMIT} !40001`, ROLLBACK],
      ...[BEGIN, SAVEPOINT, UPDATE, SELECT, RELEASE, COMMIT],
    ]);
    await assertCounter(db, 1, { attempts: 2, retries: 1, committed: 1 });
  });

  test('when the 2nd COMMIT gets 40001 too, then a third transaction commits', async () => {
    const { db, pool } = await incrementOnce('cockroachdb', { match: COMMIT, code: '40001', nth: 1 }, { match: COMMIT, code: '40001', nth: 2 });
    assert.equal(pool.trace().filter((s) => s === BEGIN).length, 3);
    await assertCounter(db, 1, { attempts: 3, retries: 2, committed: 1 });
  });
});

describe('PostgreSQL path with injected faults', () => {
  test('when a statement gets 40001, then the transaction is rolled back and a new one begun', async () => {
    const { db, pool } = await incrementOnce('postgres', { match: SELECT, code: '40001' });
    assert.deepEqual(pool.trace(), [BEGIN, UPDATE, `${SELECT} !40001`, ROLLBACK, BEGIN, UPDATE, SELECT, COMMIT]);
    await assertCounter(db, 1, { attempts: 2, retries: 1, committed: 1 });
  });

  test('when COMMIT gets 40001, then a new transaction is begun', async () => {
    const { db, pool } = await incrementOnce('postgres', { match: COMMIT, code: '40001' });
    assert.deepEqual(pool.trace(), [BEGIN, UPDATE, SELECT, `${COMMIT} !40001`, ROLLBACK, BEGIN, UPDATE, SELECT, COMMIT]);
    await assertCounter(db, 1, { attempts: 2, retries: 1, committed: 1 });
  });
});

describe('40003: outcome unknown', () => {
  test('when COMMIT gets 40003, then TransactionOutcomeUnknownError and no retry', async () => {
    for (const kind of ['cockroachdb', 'postgres'] as const) {
      const { db, pool } = await faulty(kind);
      pool.inject({ match: COMMIT, code: '40003' });
      await assert.rejects(runTransaction(db, increment), (error: unknown) => {
        assert.ok(error instanceof TransactionOutcomeUnknownError, `${kind}: ${String(error)}`);
        assert.equal((error.cause as pg.DatabaseError).code, '40003');
        return true;
      });
      const body = kind === 'cockroachdb' ? [SAVEPOINT, UPDATE, SELECT, RELEASE] : [UPDATE, SELECT];
      assert.deepEqual(pool.trace(), [BEGIN, ...body, `${COMMIT} !40003`, ROLLBACK], kind);
      assert.deepEqual(statsOf(db), stats({ attempts: 1, failed: 1, outcomeUnknown: 1 }), kind);
    }
  });

  test('when RELEASE SAVEPOINT gets 40003 (CockroachDB commits there), then TransactionOutcomeUnknownError and no retry', async () => {
    const { db, pool } = await faulty('cockroachdb');
    pool.inject({ match: RELEASE, code: '40003' });
    await assert.rejects(runTransaction(db, increment), TransactionOutcomeUnknownError);
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, UPDATE, SELECT, `${RELEASE} !40003`, ROLLBACK]);
    assert.deepEqual(statsOf(db), stats({ attempts: 1, failed: 1, outcomeUnknown: 1 }));
  });
});

describe('retry limit', () => {
  test('when every attempt gets 40001 (CockroachDB protocol), then TransactionRetryLimitError after maxAttempts and nothing written', async () => {
    const { db, pool } = await armed('cockroachdb', [{ match: SELECT, code: '40001', nth: 'every' }], { maxAttempts: 4, baseDelayMs: 0 });
    await assert.rejects(runTransaction(db, increment), (error: unknown) => {
      assert.ok(error instanceof TransactionRetryLimitError, String(error));
      assert.equal(error.attempts, 4);
      assert.equal((error.cause as pg.DatabaseError).code, '40001');
      return true;
    });
    const failed = [UPDATE, `${SELECT} !40001`];
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, ...failed, ROLLBACK_TO, ...failed, ROLLBACK_TO, ...failed, ROLLBACK_TO, ...failed, ROLLBACK]);
    await assertCounter(db, 0, { attempts: 4, retries: 3, failed: 1, retryLimitReached: 1 });
  });

  test('when every attempt gets 40001 (PostgreSQL), then TransactionRetryLimitError after maxAttempts transactions and nothing written', async () => {
    const { db, pool } = await armed('postgres', [{ match: SELECT, code: '40001', nth: 'every' }], { maxAttempts: 3, baseDelayMs: 0 });
    await assert.rejects(runTransaction(db, increment), (error: unknown) => error instanceof TransactionRetryLimitError && error.attempts === 3);
    const once = [BEGIN, UPDATE, `${SELECT} !40001`, ROLLBACK];
    assert.deepEqual(pool.trace(), [...once, ...once, ...once]);
    await assertCounter(db, 0, { attempts: 3, retries: 2, failed: 1, retryLimitReached: 1 });
  });

  test('when COMMIT keeps getting 40001, then the limit counts those attempts too', async () => {
    const { db, pool } = await armed('cockroachdb', [{ match: COMMIT, code: '40001', nth: 'every' }], { maxAttempts: 2, baseDelayMs: 0 });
    await assert.rejects(runTransaction(db, increment), (error: unknown) => error instanceof TransactionRetryLimitError && error.attempts === 2);
    assert.equal(pool.trace().filter((s) => s === BEGIN).length, 2);
    await assertCounter(db, 0, { attempts: 2, retries: 1, failed: 1, retryLimitReached: 1 });
  });
});

describe('errors that are not retried', () => {
  const failing = async (tx: Tx) => {
    await sql`UPDATE test_counters SET n = n + 1 WHERE id = 2`.execute(tx);
    await sql`UPDATE test_counters SET n = n - 1 WHERE id = 1`.execute(tx); // violates n >= 0
  };

  for (const kind of ['cockroachdb', 'postgres'] as const) {
    test(`when a statement violates a CHECK constraint (${kind}), then the driver's error propagates unchanged, once, and nothing is written`, async () => {
      const { db, pool } = await faulty(kind);
      await assert.rejects(runTransaction(db, failing), (error: unknown) => {
        assert.ok(error instanceof pg.DatabaseError, String(error));
        assert.equal(error.code, '23514');
        assert.equal(error.constraint, 'test_counters_n_check');
        return true;
      });
      const trace = pool.trace();
      assert.equal(trace.filter((s) => s === BEGIN).length, 1);
      assert.ok(!trace.includes(ROLLBACK_TO), 'no savepoint retry');
      assert.equal(trace.at(-1), ROLLBACK);
      assert.deepEqual(await counters(), Array(ROWS).fill(0));
      assert.deepEqual(statsOf(db), stats({ attempts: 1, failed: 1 }));
    });
  }

  test('when the callback throws its own error, then that very error propagates and nothing is written', async () => {
    const { db, pool } = await faulty('cockroachdb');
    const refusal = new Error('refused by the callback');
    await assert.rejects(
      runTransaction(db, async (tx) => {
        await increment(tx);
        throw refusal;
      }),
      (error: unknown) => error === refusal,
    );
    assert.deepEqual(pool.trace(), [BEGIN, SAVEPOINT, UPDATE, SELECT, ROLLBACK]);
    assert.equal((await counters())[0], 0);
    assert.deepEqual(statsOf(db), stats({ attempts: 1, failed: 1 }));
  });
});

describe('backoff', () => {
  /** Time from each injected failure to the next attempt's first statement. */
  async function waits(retry: Partial<RetryOptions>, attempts: number) {
    const { db, pool } = await faulty('postgres', { ...retry, maxAttempts: attempts });
    pool.inject({ match: UPDATE, code: '40001', nth: 'every' });
    const started = performance.now();
    await assert.rejects(runTransaction(db, increment), TransactionRetryLimitError);
    const elapsed = performance.now() - started;
    const { statements } = pool;
    const gaps: number[] = [];
    statements.forEach((s, i) => {
      const next = statements.slice(i + 1).find((t) => t.sql === BEGIN);
      if (s.injected && next) gaps.push(next.at - s.at);
    });
    assert.equal(gaps.length, attempts - 1);
    return { elapsed, total: gaps.reduce((a, b) => a + b, 0) };
  }

  test('when baseDelayMs is set, then retries wait a jittered delay, capped by maxDelayMs', async () => {
    // 7 waits, each uniform in [0, 40] ms: a total under 20 ms has a probability of about 1e-6.
    const withBackoff = await waits({ baseDelayMs: 40, maxDelayMs: 40 }, 8);
    assert.ok(withBackoff.total >= 20, `waited ${withBackoff.total} ms in all`);
    // Uncapped, 1000·2^k ms would add up to about 15 s; capped at 30 ms the 5 waits stay far below 5 s.
    const capped = await waits({ baseDelayMs: 1000, maxDelayMs: 30 }, 6);
    assert.ok(capped.elapsed < 5000, `took ${capped.elapsed} ms`);
  });
});

describe('PostgreSQL fact: the savepoint protocol cannot retry a real conflict', () => {
  /**
   * ROLLBACK TO SAVEPOINT keeps the transaction's snapshot, so after a concurrent update every rerun reads
   * the same old value and fails with 40001 again. This is why runTransaction rolls back and begins anew on
   * PostgreSQL (db-study §3, S1) and keeps the savepoint loop for CockroachDB only.
   */
  async function conflict(kind: DatabaseKind) {
    const db = await t.open({ kind, retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 } });
    const reads: number[] = [];
    let first = true;
    const outcome = runTransaction(db, async (tx) => {
      const { rows } = await sql<{ n: number }>`SELECT n FROM test_counters WHERE id = 1`.execute(tx);
      reads.push(rows[0]!.n);
      if (first) {
        first = false;
        // Another session commits a change after this transaction took its snapshot.
        await sql`UPDATE test_counters SET n = 100 WHERE id = 1`.execute(t.db.kysely);
      }
      await sql`UPDATE test_counters SET n = ${rows[0]!.n + 1} WHERE id = 1`.execute(tx);
    });
    return { db, reads, outcome };
  }

  test("when kind is 'cockroachdb' on real PostgreSQL, then every rerun sees the old snapshot and it ends in TransactionRetryLimitError", async () => {
    const { db, reads, outcome } = await conflict('cockroachdb');
    await assert.rejects(outcome, (error: unknown) => {
      assert.ok(error instanceof TransactionRetryLimitError, String(error));
      assert.equal((error.cause as pg.DatabaseError).code, '40001');
      return true;
    });
    assert.deepEqual(reads, [0, 0, 0, 0]);
    assert.equal((await counters())[0], 100);
    assert.deepEqual(statsOf(db), stats({ attempts: 4, retries: 3, failed: 1, retryLimitReached: 1 }));
  });

  test("when kind is 'postgres', then the new transaction sees the other's commit and succeeds", async () => {
    const { db, reads, outcome } = await conflict('postgres');
    await outcome;
    assert.deepEqual(reads, [0, 100]);
    assert.equal((await counters())[0], 101);
    assert.deepEqual(statsOf(db), stats({ attempts: 2, retries: 1, committed: 1 }));
  });
});

describe('the callback cannot end its transaction', () => {
  // Type level, checked by `npm run typecheck`: a Tx with commit or rollback would make Has<…> `true`, and the
  // annotated parameter below would not accept `false`.
  type Has<K extends PropertyKey> = K extends keyof Tx ? true : false;
  const typeHasNo = (_commit: Has<'commit'>, _rollback: Has<'rollback'>) => {};
  typeHasNo(false, false);

  test('when the callback looks for commit or rollback on its handle, then there are none', async () => {
    await runTransaction(t.db, async (tx) => {
      assert.equal('commit' in tx, false);
      assert.equal('rollback' in tx, false);
      // Nor can it open another transaction on the same connection.
      assert.throws(() => tx.transaction(), /not supported/);
    });
  });
});
