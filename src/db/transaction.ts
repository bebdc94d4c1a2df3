import { type Kysely, sql, type Transaction } from 'kysely';
import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SQLSTATE, sqlState, TransactionOutcomeUnknownError, TransactionRetryLimitError } from './errors.js';
import type { Database } from './schema.js';

export type DatabaseKind = 'postgres' | 'cockroachdb';

/** What a transaction callback gets: Kysely's Transaction, which has no commit or rollback. */
export type Tx = Transaction<Database>;

export interface RetryOptions {
  /** Runs of the callback in all, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 400 };

/** Capped exponential backoff with full jitter, after the given (1-based) failed attempt. */
export function retryDelayMs(attempt: number, { baseDelayMs, maxDelayMs }: RetryOptions = DEFAULT_RETRY): number {
  return Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
}

/** Counters for metrics: every run of a callback, every retry after a 40001, and how transactions ended. */
export class TransactionStats {
  attempts = 0;
  retries = 0;
  committed = 0;
  failed = 0;
  retryLimitReached = 0;
  outcomeUnknown = 0;
}

/** What one HTTP request spent in transactions: wall time in ms (retries and backoff included) and callback runs. */
export interface DatabaseTally {
  ms: number;
  attempts: number;
}

/**
 * The current request's tally, for its Server-Timing header (src/web/middleware/server-timing.ts). A store rather than a
 * parameter, so that MovR's methods and the routes need not carry the request; outside a request it is unset.
 */
export const databaseTally = new AsyncLocalStorage<DatabaseTally>();

export interface TransactionContext {
  readonly kysely: Kysely<Database>;
  readonly kind: DatabaseKind;
  readonly stats: TransactionStats;
  readonly retry?: Partial<RetryOptions>;
}

/**
 * Runs `callback` in one SERIALIZABLE transaction, retried on 40001 with capped, jittered backoff, so it must only
 * touch the database. CockroachDB retries under `SAVEPOINT cockroach_restart`, keeping its priority
 * (https://www.cockroachlabs.com/docs/v25.4/advanced-client-side-transaction-retries); PostgreSQL keeps a
 * savepoint's snapshot, so there the whole transaction starts again.
 */
export async function runTransaction<T>(
  context: TransactionContext,
  callback: (tx: Tx) => Promise<T>,
  options: Partial<RetryOptions> = {},
): Promise<T> {
  return tallied(() =>
    withRetries(context, options, (attempts) =>
      context.kysely
        .transaction()
        .setIsolationLevel('serializable')
        .execute((trx) => (context.kind === 'cockroachdb' ? withRestartSavepoint(trx, callback, attempts) : attempts.run(() => callback(trx)))),
    ),
  );
}

/**
 * Runs `callback`, which sends exactly one statement, as its own implicit transaction: one round trip instead
 * of three, and CockroachDB retries it itself when it can. A 40001 that still arrives is retried here as well.
 */
export async function runStatement<T>(
  context: TransactionContext,
  callback: (db: Kysely<Database>) => Promise<T>,
  options: Partial<RetryOptions> = {},
): Promise<T> {
  return tallied(() => withRetries(context, options, (attempts) => attempts.run(() => callback(context.kysely))));
}

/** Adds the time `work` takes to the current request's tally, when there is one. */
async function tallied<T>(work: () => Promise<T>): Promise<T> {
  const tally = databaseTally.getStore();
  if (!tally) return work();
  const started = performance.now();
  try {
    return await work();
  } finally {
    tally.ms += performance.now() - started;
  }
}

/** Runs `once` until it succeeds or `Attempts` says to stop, counting how it ended. */
async function withRetries<T>(
  context: TransactionContext,
  options: Partial<RetryOptions>,
  once: (attempts: Attempts) => Promise<T>,
): Promise<T> {
  const attempts = new Attempts({ ...DEFAULT_RETRY, ...context.retry, ...options }, context.stats);
  for (;;) {
    try {
      const result = await once(attempts);
      context.stats.committed += 1;
      return result;
    } catch (error) {
      try {
        await attempts.afterFailure(error);
      } catch (final) {
        context.stats.failed += 1;
        throw final;
      }
    }
  }
}

async function withRestartSavepoint<T>(trx: Tx, callback: (tx: Tx) => Promise<T>, attempts: Attempts): Promise<T> {
  await sql`SAVEPOINT cockroach_restart`.execute(trx);
  for (;;) {
    try {
      const result = await attempts.run(() => callback(trx));
      // CockroachDB commits at RELEASE; a 40001 here is retried like one from the callback.
      await sql`RELEASE SAVEPOINT cockroach_restart`.execute(trx);
      return result;
    } catch (error) {
      await attempts.afterFailure(error);
      await sql`ROLLBACK TO SAVEPOINT cockroach_restart`.execute(trx);
    }
  }
}

class Attempts {
  private count = 0;

  constructor(
    private readonly retry: RetryOptions,
    private readonly stats: TransactionStats,
  ) {}

  run<T>(callback: () => Promise<T>): Promise<T> {
    this.count += 1;
    this.stats.attempts += 1;
    const tally = databaseTally.getStore();
    if (tally) tally.attempts += 1;
    return callback();
  }

  /** Returns after the backoff when another attempt may follow; otherwise throws what the caller should see. */
  async afterFailure(error: unknown): Promise<void> {
    if (error instanceof TransactionRetryLimitError || error instanceof TransactionOutcomeUnknownError) throw error;
    const code = sqlState(error);
    if (code === SQLSTATE.statementCompletionUnknown) {
      // The commit may or may not have happened: a blind retry could apply it twice.
      this.stats.outcomeUnknown += 1;
      throw new TransactionOutcomeUnknownError({ cause: error });
    }
    if (code !== SQLSTATE.serializationFailure) throw error;
    if (this.count >= this.retry.maxAttempts) {
      this.stats.retryLimitReached += 1;
      throw new TransactionRetryLimitError(this.count, { cause: error });
    }
    this.stats.retries += 1;
    await sleep(retryDelayMs(this.count, this.retry));
  }
}
