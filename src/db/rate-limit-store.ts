import type { ClientRateLimitInfo, Options, Store } from 'express-rate-limit';
import { sql } from 'kysely';
import type { MovrDatabase } from './database.js';
import { runStatement } from './transaction.js';

/**
 * express-rate-limit counters in the `rate_limits` table, so a limit holds across every instance and restart.
 * Our own because the maintained PostgreSQL store creates its tables at run time, which the app never does on
 * CockroachDB; these statements run on both. Each is one atomic statement, retried on 40001.
 */
export class DatabaseRateLimitStore implements Store {
  private windowMs = 60_000;
  readonly localKeys = false;

  constructor(
    private readonly db: MovrDatabase,
    /** Keeps the limiters' keys apart in the one table. */
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const row = await runStatement(this.db, (db) =>
      db
        .selectFrom('rate_limits')
        .select(['hits', 'reset_at'])
        .where('key', '=', this.prefix + key)
        .where('reset_at', '>', sql<Date>`now()`)
        .executeTakeFirst(),
    );
    return row && { totalHits: row.hits, resetTime: row.reset_at };
  }

  /** One upsert: a new window when the old one has passed, else one more hit in it. */
  async increment(key: string): Promise<ClientRateLimitInfo> {
    const row = await runStatement(this.db, (db) =>
      db
        .insertInto('rate_limits')
        .values({ key: this.prefix + key, hits: 1, reset_at: sql<Date>`now() + interval '1 millisecond' * ${this.windowMs}::INT8` })
        .onConflict((conflict) =>
          conflict.column('key').doUpdateSet({
            hits: sql<number>`CASE WHEN rate_limits.reset_at <= now() THEN 1 ELSE rate_limits.hits + 1 END`,
            reset_at: sql<Date>`CASE WHEN rate_limits.reset_at <= now() THEN excluded.reset_at ELSE rate_limits.reset_at END`,
          }),
        )
        .returning(['hits', 'reset_at'])
        .executeTakeFirstOrThrow(),
    );
    return { totalHits: row.hits, resetTime: row.reset_at };
  }

  async decrement(key: string): Promise<void> {
    await runStatement(this.db, (db) =>
      db
        .updateTable('rate_limits')
        .set({ hits: sql<number>`hits - 1` })
        .where('key', '=', this.prefix + key)
        .where('hits', '>', 0)
        .where('reset_at', '>', sql<Date>`now()`)
        .execute(),
    );
  }

  async resetKey(key: string): Promise<void> {
    await runStatement(this.db, (db) => db.deleteFrom('rate_limits').where('key', '=', this.prefix + key).execute());
  }
}

/** Deletes counters whose window has passed. */
export async function pruneRateLimits(db: MovrDatabase): Promise<void> {
  await runStatement(db, (k) => k.deleteFrom('rate_limits').where('reset_at', '<', sql<Date>`now()`).execute());
}
