import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { type Agent, csrfFrom, formPost, signUpAndLogIn } from '../support/app.js';
import { useFixture } from '../support/fixture.js';

const RIDERS = 40;
const VEHICLES = 4;
const ROUNDS = 6;
const CITY = 'new york';

const t = useFixture({ listen: true });

/** What one rider was told over HTTP. */
interface RiderLog {
  agent: Agent;
  id: string;
  token: string;
  /** Rides the rider was told had started (303 to /rides), by id. */
  started: string[];
  /** Rides the rider was told had ended, by id, with the location given. */
  ended: Map<string, string>;
  refusedStarts: number;
}

const statuses: number[] = [];
const serverErrors: string[] = [];

/** Every answer goes through here, so no 5xx escapes the count. */
function record<R extends { status: number; text: string }>(what: string, response: R): R {
  statuses.push(response.status);
  if (response.status >= 500) serverErrors.push(`${what}: ${response.status} ${response.text.slice(0, 300)}`);
  return response;
}

function activeRideOn(html: string): string | undefined {
  return html.match(/action="\/rides\/end\/([0-9a-f-]{36})"/)?.[1];
}

/** Tries to start a ride on `vehicleId`; returns the ride id when the rider was told it started. */
async function tryStart(rider: RiderLog, vehicleId: string): Promise<string | undefined> {
  const response = record('start', await rider.agent.post(`/rides/start/${vehicleId}`).type('form').send({ _csrf: rider.token }));
  assert.equal(response.status, 303, `start answered ${response.status}`);
  if (response.headers.location !== '/rides') {
    assert.equal(response.headers.location, '/vehicles', 'a refused start goes back to the vehicles');
    rider.refusedStarts += 1;
    return undefined;
  }
  const page = record('rides', await rider.agent.get('/rides'));
  assert.equal(page.status, 200);
  const rideId = activeRideOn(page.text);
  assert.ok(rideId, 'the rides page shows the ride the rider was just told had started');
  assert.match(page.text, /Your ride started at /, "the session kept the start's flash message");
  rider.started.push(rideId);
  return rideId;
}

async function end(rider: RiderLog, rideId: string, location: string) {
  const response = record('end', await rider.agent.post(`/rides/end/${rideId}`).type('form').send({ _csrf: rider.token, location }));
  assert.equal(response.status, 303, `end answered ${response.status}`);
  assert.equal(response.headers.location, '/rides');
  const page = record('rides', await rider.agent.get('/rides'));
  assert.match(page.text, new RegExp(`Ride ended at ${location}\\.`), 'the flash confirms the end (not "already ended")');
  rider.ended.set(rideId, location);
}

describe('many riders, few vehicles, all at once over HTTP', () => {
  test('when 40 riders race for 4 vehicles for several rounds, then no double rides, exact lengths, consistent statuses, no 5xx, and real retries', { timeout: 55_000 }, async () => {
    const owner = t.agent();
    await signUpAndLogIn(owner, t.movr, CITY, { username: 'fleet-owner' });
    for (let i = 0; i < VEHICLES; i++) {
      const added = await formPost(owner, '/vehicles/add', { type: 'scooter', color: `colour ${i}`, brand: 'Acme', location: `Dock ${i}` }, '/vehicles/add');
      assert.equal(added.status, 303);
    }
    const vehicleIds = (await t.db.kysely.selectFrom('vehicles').select('id').orderBy('id').execute()).map((row) => row.id);
    assert.equal(vehicleIds.length, VEHICLES);

    const riders: RiderLog[] = await Promise.all(
      Array.from({ length: RIDERS }, async (_, i) => {
        const agent = t.agent();
        const { id } = await signUpAndLogIn(agent, t.movr, CITY, { username: `racer-${i}` });
        // The token lives in the session, which log-in regenerated: read it from a page of the new session.
        const token = csrfFrom((await agent.get('/vehicles')).text);
        return { agent, id, token, started: [], ended: new Map(), refusedStarts: 0 };
      }),
    );
    Object.assign(t.db.stats, { attempts: 0, retries: 0, committed: 0, failed: 0, retryLimitReached: 0, outcomeUnknown: 0 });
    const started = Date.now();

    // Each round every rider goes for a vehicle at the same moment; winners ride briefly and end while the
    // others are still racing, so starts and ends on one vehicle overlap.
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(
        riders.map(async (rider, i) => {
          const vehicleId = vehicleIds[(i + round) % VEHICLES]!;
          const rideId = await tryStart(rider, vehicleId);
          if (!rideId) {
            // Losers try once more on another vehicle, racing the winners' ends.
            const second = await tryStart(rider, vehicleIds[(i + round + 1) % VEHICLES]!);
            if (second) await end(rider, second, `Round ${round} second ${i}`);
            return;
          }
          await sleep(Math.random() * 20);
          await end(rider, rideId, `Round ${round} rider ${i}`);
        }),
      );
    }
    // A last race whose winners keep riding, so statuses are checked with rides still active.
    await Promise.all(riders.map((rider, i) => tryStart(rider, vehicleIds[i % VEHICLES]!)));
    const elapsed = Date.now() - started;

    assert.deepEqual(serverErrors, [], 'no answer was a 5xx');
    const kysely = t.db.kysely;

    const doubleVehicles = await sql<{ vehicle_id: string; n: number }>`
      SELECT vehicle_id, count(*)::int AS n FROM rides WHERE end_time IS NULL GROUP BY vehicle_id HAVING count(*) > 1`.execute(kysely);
    assert.deepEqual(doubleVehicles.rows, [], 'no vehicle has two active rides');
    const doubleRiders = await sql<{ rider_id: string; n: number }>`
      SELECT rider_id, count(*)::int AS n FROM rides WHERE end_time IS NULL GROUP BY rider_id HAVING count(*) > 1`.execute(kysely);
    assert.deepEqual(doubleRiders.rows, [], 'no rider has two active rides');

    const badLengths = await sql<{ id: string }>`
      SELECT id FROM rides WHERE end_time IS NOT NULL AND length IS DISTINCT FROM end_time - start_time`.execute(kysely);
    assert.deepEqual(badLengths.rows, [], "every ended ride's length is exactly end_time - start_time");
    const halfEnded = await sql<{ id: string }>`
      SELECT id FROM rides WHERE (end_time IS NULL) <> (length IS NULL) OR (end_time IS NULL) <> (end_location IS NULL)`.execute(kysely);
    assert.deepEqual(halfEnded.rows, []);

    const statusMismatch = await sql<{ id: string; status: string; active: number }>`
      SELECT v.id, v.status, count(r.id)::int AS active
      FROM vehicles v LEFT JOIN rides r ON r.city = v.city AND r.vehicle_id = v.id AND r.end_time IS NULL
      GROUP BY v.id, v.status
      HAVING (v.status = 'in_use') <> (count(r.id) = 1)`.execute(kysely);
    assert.deepEqual(statusMismatch.rows, [], 'a vehicle is in_use if and only if it has an active ride');
    const riderMismatch = await sql<{ id: string }>`
      SELECT u.id FROM users u
      FULL JOIN (SELECT id, rider_city, rider_id FROM rides WHERE end_time IS NULL) r ON r.rider_city = u.city AND r.rider_id = u.id
      WHERE r.id IS DISTINCT FROM u.active_ride_id`.execute(kysely);
    assert.deepEqual(riderMismatch.rows, [], "a rider's users row names their active ride, and only it");

    const active = await kysely.selectFrom('rides').select(['id', 'vehicle_id']).where('end_time', 'is', null).execute();
    assert.equal(active.length, VEHICLES, 'the last race filled every vehicle');

    // The database holds exactly what the riders were told, rider by rider; the pages agree.
    let totalStarted = 0;
    for (const rider of riders) {
      const rows = await kysely
        .selectFrom('rides')
        .select(['id', 'end_time', 'end_location'])
        .where('rider_id', '=', rider.id)
        .orderBy('start_time', 'desc')
        .execute();
      totalStarted += rider.started.length;
      assert.deepEqual(rows.map((row) => row.id).sort(), [...rider.started].sort(), 'every confirmed start, and nothing else');
      for (const row of rows) {
        if (rider.ended.has(row.id)) assert.equal(row.end_location, rider.ended.get(row.id));
        else assert.equal(row.end_time, null, 'a ride the rider was not told had ended is still active');
      }
      const page = record('rides', await rider.agent.get('/rides'));
      assert.equal(page.status, 200);
      const activeRow = rows.find((row) => row.end_time === null);
      assert.equal(activeRideOn(page.text), activeRow?.id, 'the rides page shows the active ride, if any');
      const history = page.text.match(/<tbody>([\s\S]*?)<\/tbody>/)?.[1] ?? '';
      assert.equal(history.match(/<tr[\s>]/g)?.length ?? 0, rider.ended.size, 'the history lists every ended ride');
      for (const location of rider.ended.values()) assert.ok(history.includes(`>${location}<`), `history shows ${location}`);
    }
    assert.equal((await kysely.selectFrom('rides').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n, totalStarted);

    const { stats } = t.db;
    assert.ok(stats.retries > 0, `transactions were retried (${stats.retries} retries in ${stats.attempts} attempts)`);
    assert.equal(stats.retryLimitReached, 0);
    const metrics = record('metrics', await t.metricsClient().get('/metrics'));
    const retriesMetric = Number(metrics.text.match(/^movr_transaction_retries_total (\d+)$/m)?.[1]);
    assert.ok(retriesMetric > 0, '/metrics reports the retries');
    assert.equal(retriesMetric, stats.retries);
    assert.deepEqual(serverErrors, []);

    const refused = riders.reduce((sum, rider) => sum + rider.refusedStarts, 0);
    console.log(
      `# contention: ${RIDERS} riders, ${VEHICLES} vehicles, ${ROUNDS} rounds in ${elapsed} ms: ${statuses.length} answers, ` +
        `${totalStarted} rides, ${refused} refused starts, ${stats.attempts} transaction attempts, ${stats.retries} retries`,
    );
  });
});
