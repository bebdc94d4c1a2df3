import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Database } from './schema.js';
import { statementName } from './prepared.js';
import { type DatabaseKind, type RetryOptions, type TransactionContext, TransactionStats } from './transaction.js';

// Let COUNT(*) and other int8 results arrive as numbers; MovR's counts stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/**
 * pg's client, which sends the SQL of a prepare()d query (db/prepared.ts) as a named prepared statement: parsed and
 * planned once per connection rather than at every execution. Kysely passes only text and values to the client,
 * so the name is added here. CockroachDB supports named statements too (it also caches plans by text).
 */
class PreparingClient extends pg.Client {
  // Typed loosely: pg's many overloads of query() cannot be restated one by one; the arguments pass through as given.
  override query(...args: unknown[]): never {
    const [text, values] = args;
    const name = typeof text === 'string' && Array.isArray(values) && args.length === 2 ? statementName(text) : undefined;
    const call = super.query as (...callArgs: unknown[]) => never;
    return name ? call.call(this, { name, text, values }) : call.apply(this, args);
  }
}

export interface DatabaseOptions {
  connectionString: string;
  /** Pool size; each instance of the app holds at most this many connections. */
  poolSize?: number;
  /** Overrides detection, to drive the CockroachDB protocol against PostgreSQL in tests. */
  kind?: DatabaseKind;
  retry?: Partial<RetryOptions>;
  /** Supplies the pg pool, e.g. one that injects faults in tests. */
  pool?: pg.Pool;
  logger?: Logger;
}

/** 'failed': the query ended in an error (refused, reset, …) before the timeout; 'no answer': the timeout came first. */
export type PingResult = 'ok' | 'failed' | 'no answer';

export interface MovrDatabase extends TransactionContext {
  readonly pool: pg.Pool;
  readonly version: string;
  /** Whether the database answers a trivial query within the timeout: 'ok', else how it failed. */
  ping(timeoutMs?: number): Promise<PingResult>;
  close(): Promise<void>;
}

/**
 * The connection string with `-c timezone=UTC` added to its `options` (kept, and put last so it wins): TIMESTAMP
 * columns such as sessions.expire are compared with now() in the session's zone. CockroachDB takes `-c` in
 * `options` too (https://www.cockroachlabs.com/docs/v25.4/connection-parameters#supported-options-parameters).
 */
export function withUtcSessions(connectionString: string): string {
  const url = new URL(connectionString);
  url.searchParams.set('options', [url.searchParams.get('options'), '-c timezone=UTC'].filter(Boolean).join(' '));
  return url.toString();
}

export function detectKind(version: string): DatabaseKind {
  return /cockroachdb/i.test(version) ? 'cockroachdb' : 'postgres';
}

export async function openDatabase(options: DatabaseOptions): Promise<MovrDatabase> {
  const pool =
    options.pool ??
    new pg.Pool({
      connectionString: withUtcSessions(options.connectionString),
      max: options.poolSize ?? 10,
      // Fail fast while the database is down, so pages answer 503 instead of hanging.
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 30_000,
      query_timeout: 15_000,
      application_name: 'movr',
      Client: PreparingClient,
    });
  // An idle client losing its connection (database restart) must not crash the process.
  pool.on('error', (error) => options.logger?.warn({ err: error }, 'idle database connection lost'));
  // Nor one checked out between two statements of a transaction: pg-pool listens only on idle clients, and
  // an 'error' with no listener throws. The transaction's next statement fails instead, and pg-pool drops it.
  pool.on('connect', (client) => client.on('error', (error) => options.logger?.warn({ err: error }, 'database connection lost mid-transaction')));

  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    const { rows } = await sql<{ version: string }>`SELECT version() AS version`.execute(kysely);
    const version = rows[0]?.version ?? '';
    const database: MovrDatabase = {
      kysely,
      pool,
      version,
      kind: options.kind ?? detectKind(version),
      stats: new TransactionStats(),
      ...(options.retry ? { retry: options.retry } : {}),
      async ping(timeoutMs = 2000) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<PingResult>((resolve) => (timer = setTimeout(() => resolve('no answer'), timeoutMs)));
        const query = sql`SELECT 1`.execute(kysely).then(
          (): PingResult => 'ok',
          (): PingResult => 'failed',
        );
        try {
          return await Promise.race([query, timeout]);
        } finally {
          clearTimeout(timer);
        }
      },
      close: () => kysely.destroy(),
    };
    return database;
  } catch (error) {
    await kysely.destroy().catch(() => {});
    throw error;
  }
}
