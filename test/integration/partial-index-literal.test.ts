import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import type { Database } from '../../src/db/schema.js';
import { MovR } from '../../src/movr/movr.js';
import { useFixture } from '../support/fixture.js';

/**
 * The vehicles listing's partial index (WHERE status <> 'removed') serves a query only if the planner can prove
 * the predicate from the query's filter. With a generic plan (what a prepared statement gets once the planner
 * stops re-planning it, and CockroachDB's plan_cache_mode = auto may choose) a placeholder proves nothing, so
 * MovR sends 'removed' as a literal. Checked on PostgreSQL with plan_cache_mode = force_generic_plan.
 */
describe('partial index predicates are literals', () => {
  const t = useFixture({ reset: false });
  let movr: MovR;
  const recorded: CompiledQuery[] = [];

  before(async () => {
    const kysely = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: t.db.pool }),
      log: (event) => {
        if (event.level === 'query') recorded.push(event.query);
      },
    });
    // Not destroyed: it shares the test database's pool, which the fixture closes.
    movr = new MovR({ ...t.db, kysely }, { bcryptCost: 4 });
  });

  /** The indexes a generic plan of `text` reads, seq scans discouraged so that only provability decides. */
  async function genericPlanIndexes(text: string, parameters: readonly unknown[]): Promise<string[]> {
    const client = await t.db.pool.connect();
    try {
      await client.query('SET plan_cache_mode = force_generic_plan');
      await client.query('SET enable_seqscan = off');
      await client.query(`PREPARE listing AS ${text}`);
      // EXECUTE's arguments are written out: EXPLAIN takes no bind parameters.
      const args = parameters.map((value) => (typeof value === 'number' ? String(value) : `'${String(value).replaceAll("'", "''")}'`));
      const { rows } = await client.query(`EXPLAIN (FORMAT JSON) EXECUTE listing(${args.join(', ')})`);
      await client.query('DEALLOCATE listing');
      const plan = JSON.stringify(rows[0]['QUERY PLAN']);
      return [...plan.matchAll(/"Index Name":"(\w+)"/g)].map((m) => m[1]!);
    } finally {
      await client.query('RESET ALL').catch(() => {});
      client.release();
    }
  }

  it('when the vehicles page is planned generically, then it still reads the partial listing index', async () => {
    recorded.length = 0;
    await movr.getVehicles('rome', 1);
    const listing = recorded.find((query) => /from "vehicles"/.test(query.sql))!;
    assert.match(listing.sql, /"status" <> 'removed'/, 'the predicate is sent as a literal');
    assert.ok((await genericPlanIndexes(listing.sql, listing.parameters)).includes('vehicles_city_listing_idx'));

    // The control: the same query with the literal turned into a placeholder cannot use the partial index.
    const withPlaceholder = listing.sql.replace(`"status" <> 'removed'`, `"status" <> $${listing.parameters.length + 1}`);
    const indexes = await genericPlanIndexes(withPlaceholder, [...listing.parameters, 'removed']);
    assert.ok(!indexes.includes('vehicles_city_listing_idx'), `a placeholder should hide the partial index: ${indexes.join(', ')}`);
  });

  it("when a profile lists a user's vehicles, then 'removed' is a literal there too", async () => {
    recorded.length = 0;
    await movr.getOwnedVehicles({ city: 'rome', id: '00000000-0000-4000-8000-000000000000' });
    assert.match(recorded.find((query) => /from "vehicles"/.test(query.sql))!.sql, /"status" <> 'removed'/);
  });
});
