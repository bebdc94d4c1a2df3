import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { type CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import { BENCH_PASSWORD, type BenchData, loadBenchData, RIDES_PER_HEAVY } from '../../scripts/bench-data.js';
import type { Database } from '../../src/db/schema.js';
import { MovR } from '../../src/movr/movr.js';
import { CITIES } from '../../src/regions.js';
import { DatabaseSessionStore } from '../../src/db/session-store.js';
import { useFixture } from '../support/fixture.js';

/**
 * The plans PostgreSQL chooses for the queries behind each page, on generated data shaped like the bench's
 * (scripts/bench-data.ts) and ANALYZEd, with the planner's defaults: each must reach its rows through the
 * index meant for it, never by reading a whole table. The SQL is what MovR really sends: its methods run on a
 * Kysely whose `log` records every compiled query, and each is explained with its own parameters.
 */

const SIZES = { users: 3_600, vehicles: 7_200, rides: 24_000 };
const INDEX_SCANS = new Set(['Index Scan', 'Index Only Scan', 'Bitmap Index Scan']);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}

const describeNode = (node: PlanNode) =>
  [node['Node Type'], node['Index Name'] && `using ${node['Index Name']}`, node['Relation Name'] && `on ${node['Relation Name']}`].filter(Boolean).join(' ');

describe('query plans on realistic data', () => {
  const t = useFixture({ reset: false });
  let data: BenchData;
  let movr: MovR;
  let movrKysely: Kysely<Database>;
  const recorded: CompiledQuery[] = [];

  /** The data-changing and reading statements `call` sent, transaction control left out. */
  async function queriesOf(call: () => Promise<unknown>): Promise<CompiledQuery[]> {
    recorded.length = 0;
    await call();
    return recorded.filter((query) => /^\s*(select|update|insert|delete)\b/i.test(query.sql));
  }

  function find(queries: CompiledQuery[], pattern: RegExp): CompiledQuery {
    const matches = queries.filter((query) => pattern.test(query.sql));
    assert.equal(matches.length, 1, `expected one query matching ${pattern}, got:\n${queries.map((q) => q.sql).join('\n')}`);
    return matches[0]!;
  }

  /** EXPLAIN (without ANALYZE, so an UPDATE changes nothing) with the query's own parameters: a custom plan. */
  async function plan(query: CompiledQuery): Promise<PlanNode[]> {
    const { rows } = await t.db.pool.query(`EXPLAIN (FORMAT JSON) ${query.sql}`, [...query.parameters]);
    const [{ Plan }] = rows[0]['QUERY PLAN'] as [{ Plan: PlanNode }];
    return flatten(Plan);
  }

  async function assertUsesIndex(query: CompiledQuery, ...indexes: string[]) {
    const nodes = await plan(query);
    const shown = `${query.sql}\n  plan: ${nodes.map(describeNode).join(' > ')}`;
    for (const index of indexes) {
      assert.ok(
        nodes.some((node) => INDEX_SCANS.has(node['Node Type']) && node['Index Name'] === index),
        `expected an index scan using ${index}:\n${shown}`,
      );
    }
    const seqScans = nodes.filter((node) => node['Node Type'] === 'Seq Scan');
    assert.deepEqual(seqScans.map(describeNode), [], `expected no sequential scan:\n${shown}`);
  }

  before(async () => {
    data = await loadBenchData(t.db.pool, SIZES);
    const kysely = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: t.db.pool }),
      log: (event) => {
        if (event.level === 'query') recorded.push(event.query);
      },
    });
    // Not destroyed: it shares the test database's pool, which the fixture closes.
    movr = new MovR({ ...t.db, kysely }, { bcryptCost: 4 });
    movrKysely = kysely;
  });

  it('when the vehicles page lists a city, then it reads the listing index in order', async () => {
    const queries = await queriesOf(() => movr.getVehicles(data.heavyRiders[0]!.city, 1));
    await assertUsesIndex(find(queries, /from "vehicles"/), 'vehicles_city_newest_idx');
  });

  it("when the rides page lists a rider's rides, then it reads the rider's index and each vehicle by key", async () => {
    const rider = data.heavyRiders[1]!;
    const queries = await queriesOf(async () => assert.equal((await movr.getRides(rider)).length, RIDES_PER_HEAVY));
    await assertUsesIndex(find(queries, /from "rides" inner join "vehicles"/), 'rides_rider_idx', 'vehicles_pkey');
  });

  it('when the users page lists a city, then it reads that city through the primary key', async () => {
    const queries = await queriesOf(() => movr.getUsers(data.heavyRiders[2]!.city));
    await assertUsesIndex(find(queries, /from "users"/), 'users_pkey');
  });

  it('when a rider logs in, then the username is looked up by its unique index', async () => {
    const rider = data.heavyRiders[3]!;
    const queries = await queriesOf(async () => assert.ok(await movr.authenticate(rider.username, BENCH_PASSWORD)));
    await assertUsesIndex(find(queries, /from "users" where "username" = \$1/), 'users_username_key');
  });

  it('when a profile lists its vehicles, then they are read through the owner index', async () => {
    const queries = await queriesOf(() => movr.getOwnedVehicles(data.heavyRiders[4]!));
    await assertUsesIndex(find(queries, /from "vehicles"/), 'vehicles_owner_idx');
  });

  it("when a logged-in page reads its session, then the session, the account and the rider's ride in progress are each found by key", async () => {
    const cyclist = data.cyclists[2]!;
    await movr.startRide(cyclist, cyclist.vehicleId, cyclist.city);
    const store = new DatabaseSessionStore({ ...t.db, kysely: movrKysely });
    const sess = { cookie: { expires: new Date(Date.now() + 3_600_000) }, passport: { user: { id: cyclist.id, city: cyclist.city } } };
    await new Promise<void>((resolve, reject) => store.set('plans-sid', sess as never, (error) => (error ? reject(error) : resolve())));
    const read = queriesOf(() => new Promise((resolve, reject) => store.get('plans-sid', (error, loaded) => (error ? reject(error) : resolve(loaded)))));
    const session = find(await read, /from "sessions"/);
    assert.doesNotMatch(session.sql, /"rides"/, 'the session read reads the session only');
    await assertUsesIndex(session, 'sessions_pkey', 'users_pkey');
    // The riding bar's own step (web/middleware/locals.ts).
    await assertUsesIndex(find(await queriesOf(() => movr.getActiveRide(cyclist)), /from "rides"/), 'users_pkey', 'rides_pkey', 'vehicles_pkey');
  });

  describe('when a rider starts and ends a ride', () => {
    let started: CompiledQuery[];
    let refused: CompiledQuery[];
    let ended: CompiledQuery[];

    before(async () => {
      const cyclist = data.cyclists[0]!;
      let rideId = '';
      started = await queriesOf(async () => {
        rideId = (await movr.startRide(cyclist, cyclist.vehicleId, cyclist.city)).id;
      });
      // Starting again on the vehicle now in use: the refusal reads the rider's own row to say why.
      refused = await queriesOf(() => assert.rejects(movr.startRide(cyclist, cyclist.vehicleId, cyclist.city), /already on a ride/));
      ended = await queriesOf(() => movr.endRide(cyclist, rideId, 'Market Square', cyclist.city));
    });

    it('then the vehicle is found by its key', async () => {
      await assertUsesIndex(find(started, /^select .* from "vehicles" where "id" = \$1 and "city" = \$2/), 'vehicles_pkey');
    });

    it("then a refused start reads only the rider's own row, by key, and no ride", async () => {
      assert.ok(!refused.some((query) => /from "rides"/.test(query.sql)), 'no read of rides');
      await assertUsesIndex(find(refused, /^select .* from "users" where "city" = \$1 and "id" = \$2/), 'users_pkey');
    });

    it('then the vehicle and the rider are each claimed by a conditional update of their own row, by key', async () => {
      await assertUsesIndex(find(started, /^update "vehicles" set "status" = \$1 where "city" = \$2 and "id" = \$3 and "status" = 'available'$/), 'vehicles_pkey');
      await assertUsesIndex(find(started, /^update "users" set .* where "city" = \$\d+ and "id" = \$\d+ and "active_ride_id" is null$/), 'users_pkey');
      await assertUsesIndex(find(ended, /^update "users" set .* where "city" = \$\d+ and "id" = \$\d+ and "active_ride_id" = \$\d+$/), 'users_pkey');
    });

    it('then the new ride comes back from its insert, and the ended one is read back by primary keys', async () => {
      assert.ok(!started.some((query) => /^select .* from "rides"/.test(query.sql)), 'no read of the ride just inserted');
      await assertUsesIndex(find(ended, /^select .* from "rides" where "city" = \$1 and "id" = \$2/), 'rides_pkey');
      await assertUsesIndex(find(ended, /^select .* from "vehicles" where "city" = \$1 and "id" = \$2/), 'vehicles_pkey');
    });

    it('then the ride, its end and the freed vehicle go through primary keys', async () => {
      await assertUsesIndex(find(ended, /^select .* from "rides" where "id" = \$1 and "city" = \$2/), 'rides_pkey');
      await assertUsesIndex(find(ended, /^update "rides"/), 'rides_pkey');
      await assertUsesIndex(find(ended, /^update "vehicles"/), 'vehicles_pkey');
    });
  });

  it("when a vehicle is not in the rider's city, then the search of every city still uses the primary key", async () => {
    const cyclist = data.cyclists[1]!;
    const elsewhere = CITIES.find((city) => city !== cyclist.city)!;
    const queries = await queriesOf(async () => {
      const ride = await movr.startRide(cyclist, cyclist.vehicleId, elsewhere);
      await movr.endRide(cyclist, ride.id, 'Old Town', cyclist.city);
    });
    await assertUsesIndex(find(queries, /from "vehicles" where "id" = \$1 and "city" in/), 'vehicles_pkey');
  });
});
