/**
 * Waiting for quiescence instead of a fixed sleep: what the app does after its answer (the rate limiter's decrement
 * on `finish`, a session save) is over when its connections are seen idle and stay idle.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type Kysely, sql } from 'kysely';
import type pg from 'pg';

/** In this process: every client of `pool` back in the pool and nobody waiting, `checks` times in a row. */
export async function poolIdle(pool: pg.Pool, { checks = 3, everyMs = 5, timeoutMs = 10_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let quiet = 0;
  while (quiet < checks) {
    quiet = pool.totalCount === pool.idleCount && pool.waitingCount === 0 ? quiet + 1 : 0;
    if (Date.now() > deadline) throw new Error(`the app's pool was still busy after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/**
 * Across processes: the app's connections to this database (application_name `movr`) are all idle and none has
 * started a statement for `stableMs` (its last query_start unchanged), so a brief write between two looks counts too.
 */
export async function quiescent(db: Kysely<any>, { stableMs = 200, timeoutMs = 10_000, application = 'movr' } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  let quietSince = Date.now();
  for (;;) {
    const { busy, latest } = (
      await sql<{ busy: number; latest: string | null }>`
        SELECT count(*) FILTER (WHERE state <> 'idle')::int AS busy, max(query_start)::text AS latest
        FROM pg_stat_activity WHERE datname = current_database() AND application_name = ${application} AND pid <> pg_backend_pid()`.execute(db)
    ).rows[0]!;
    const mark = `${busy}|${latest}`;
    if (busy > 0 || mark !== last) {
      last = mark;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= stableMs) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`the app's connections were not quiet for ${stableMs} ms within ${timeoutMs} ms`);
    await sleep(10);
  }
}
