import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import request from 'supertest';
import { type Agent, csrfFrom, signUpAndLogIn } from '../support/app.js';
import { DATABASE_OUTAGE_LOGS } from '../support/fault-injection.js';
import { useFixture } from '../support/fixture.js';

/** supertest gives up here, so a hung request is counted (status 0) instead of hanging the test. */
const CLIENT_TIMEOUT_MS = 8_000;
const RIDERS = 12;
const VEHICLES = 12;
const CITY = 'boston';

// It stops and restarts PostgreSQL under load: a cluster of its own.
const t = useFixture({ ownCluster: true, listen: true });

interface Sample {
  what: string;
  status: number;
  start: number;
  end: number;
  location?: string;
  text: string;
  /** Transaction attempts the server says it made for this answer (Server-Timing `tx`). */
  attempts?: number;
}

const samples: Sample[] = [];

/** Sends one request with a client-side timeout; status 0 when it hung or the connection failed. */
async function timed(what: string, send: () => request.Test): Promise<Sample> {
  const start = performance.now();
  let sample: Sample;
  try {
    const response = await send().timeout({ response: CLIENT_TIMEOUT_MS, deadline: CLIENT_TIMEOUT_MS });
    const attempts = String(response.headers['server-timing'] ?? '').match(/tx;desc="attempts";dur=(\d+)/)?.[1];
    sample = { what, status: response.status, start, end: performance.now(), location: response.headers.location, text: response.text, attempts: attempts === undefined ? undefined : Number(attempts) };
  } catch {
    sample = { what, status: 0, start, end: performance.now(), text: '' };
  }
  samples.push(sample);
  return sample;
}

type RiderState = { kind: 'none' } | { kind: 'riding'; rideId: string } | { kind: 'unknown' };

/** What one rider was told: the guarantee is about these answers only. */
interface Rider {
  agent: Agent;
  id: string;
  token: string;
  state: RiderState;
  /** A start was answered 303 to /rides and its ride id is not known yet. */
  startPending: boolean;
  confirmedStarts: string[];
  confirmedEnds: Set<string>;
  /** Starts answered with an error (or no answer): they may or may not have committed. */
  uncertainStarts: number;
  anomalies: string[];
}

function activeRideOn(html: string): string | undefined {
  return html.match(/action="\/rides\/end\/([0-9a-f-]{36})"/)?.[1];
}

/** One step of a rider cycling start → end; an answer that is not a clear yes or no makes the state unknown. */
async function step(rider: Rider, vehicleIds: string[]): Promise<void> {
  const { state } = rider;
  if (state.kind === 'unknown') {
    const page = await timed('GET /rides', () => rider.agent.get('/rides'));
    if (page.status !== 200) return;
    const active = activeRideOn(page.text);
    if (rider.startPending) {
      if (active) rider.confirmedStarts.push(active);
      else rider.anomalies.push('a start answered 303 has no active ride: lost');
      rider.startPending = false;
    }
    rider.state = active ? { kind: 'riding', rideId: active } : { kind: 'none' };
    return;
  }
  if (state.kind === 'none') {
    const vehicleId = vehicleIds[Math.floor(Math.random() * vehicleIds.length)]!;
    const start = await timed('POST /rides/start', () => rider.agent.post(`/rides/start/${vehicleId}`).type('form').send({ _csrf: rider.token }));
    if (start.status === 303 && start.location === '/rides') {
      rider.startPending = true;
    } else if (start.status === 303 && start.location === '/vehicles') {
      // Refused (vehicle taken): nothing started.
    } else if (start.status === 503 || start.status === 0) {
      rider.uncertainStarts += 1;
    } else {
      rider.anomalies.push(`start answered ${start.status} ${start.location ?? ''}`);
    }
    rider.state = { kind: 'unknown' };
    return;
  }
  const end = await timed('POST /rides/end', () =>
    rider.agent.post(`/rides/end/${state.rideId}`).type('form').send({ _csrf: rider.token, location: 'Back Bay' }),
  );
  if (end.status === 303 && end.location === '/rides') {
    // Ended now, or (after an unanswered end that committed) already ended: either way it has an end.
    rider.confirmedEnds.add(state.rideId);
    rider.state = { kind: 'none' };
  } else {
    if (end.status !== 503 && end.status !== 0) rider.anomalies.push(`end answered ${end.status} ${end.location ?? ''}`);
    rider.state = { kind: 'unknown' };
  }
}

/** Polls until `check` holds (an event the test can see), failing after 20 s. */
async function until(check: () => boolean, what: string) {
  const deadline = performance.now() + 20_000;
  while (!check()) {
    assert.ok(performance.now() < deadline, `${what}: not within 20 s`);
    await sleep(20);
  }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

describe('the database goes away under load and comes back', () => {
  test(
    'when PostgreSQL stops and restarts, then pages answer 503 fast, /healthz stays up, the app recovers by itself, and no confirmed ride is lost or doubled',
    { timeout: 90_000 },
    async () => {
      const owner = t.agent();
      const { id: ownerId } = await signUpAndLogIn(owner, t.movr, CITY, { username: 'fault-owner' });
      for (let i = 0; i < VEHICLES; i++) {
        await t.movr.addVehicle({ id: ownerId, city: CITY }, { type: 'bike', color: 'red', brand: '', location: `Dock ${i}` });
      }
      const vehicleIds = (await t.db.kysely.selectFrom('vehicles').select('id').execute()).map((row) => row.id);
      const riders: Rider[] = await Promise.all(
        Array.from({ length: RIDERS }, async (_, i) => {
          const agent = t.agent();
          const { id } = await signUpAndLogIn(agent, t.movr, CITY, { username: `cycler-${i}` });
          const token = csrfFrom((await agent.get('/vehicles')).text);
          return { agent, id, token, state: { kind: 'none' }, startPending: false, confirmedStarts: [], confirmedEnds: new Set(), uncertainStarts: 0, anomalies: [] };
        }),
      );
      const probe = owner;

      let load = true;
      const cycling = riders.map(async (rider) => {
        while (load) {
          await step(rider, vehicleIds);
          // While the database is down answers come back at once; don't spin.
          if (rider.state.kind === 'unknown') await sleep(50);
        }
      });
      let probing = true;
      const probes = (async () => {
        while (probing) {
          await Promise.all([
            timed('GET /vehicles', () => probe.get('/vehicles')),
            timed('GET /readyz', () => request(t.url).get('/readyz')),
            timed('GET /healthz', () => request(t.url).get('/healthz')),
          ]);
          await sleep(100);
        }
      })();

      const confirmedStarts = () => riders.reduce((sum, rider) => sum + rider.confirmedStarts.length, 0);
      try {
        // Under load: rides are being started and ended.
        await until(() => confirmedStarts() >= RIDERS, 'rides started before the outage');
        const { port } = t.cluster;
        DATABASE_OUTAGE_LOGS.forEach((pattern) => t.expectLogged(pattern));
        const stopBegan = performance.now();
        await t.cluster.stop();
        const down = performance.now();
        // Down until the outage has been seen: pages, /readyz and /healthz answered while it lasts.
        const seenDown = (what: (s: Sample) => boolean, count: number) => samples.filter((s) => s.start >= down && what(s)).length >= count;
        await until(
          () => seenDown((s) => s.what !== 'GET /healthz' && s.what !== 'GET /readyz', 20) && seenDown((s) => s.what === 'GET /readyz', 3) && seenDown((s) => s.what === 'GET /healthz', 3),
          'requests answered during the outage',
        );
        const restartBegan = performance.now();
        await t.cluster.start();
        const restarted = performance.now();
        assert.equal(t.cluster.port, port, 'the database came back on the same port');

        // The app must find it again by itself: no restart, no reconnect call.
        let recovered: number | undefined;
        while (recovered === undefined && performance.now() - restarted < 20_000) {
          const [ready, page] = await Promise.all([
            timed('GET /readyz', () => request(t.url).get('/readyz')),
            timed('GET /vehicles', () => probe.get('/vehicles')),
          ]);
          if (ready.status === 200 && page.status === 200) recovered = performance.now();
          else await sleep(100);
        }
        assert.ok(recovered !== undefined, 'the app answered /readyz and a page with 200 within 20 s of the restart');
        const startsAtRecovery = confirmedStarts();
        await until(() => confirmedStarts() >= startsAtRecovery + RIDERS / 2, 'rides started after the outage');
        load = false;
        await Promise.all(cycling);
        probing = false;
        await probes;

        // Settle every rider whose last answer left the state unknown (bounded: the database is back).
        for (const rider of riders) {
          for (let i = 0; i < 20 && rider.state.kind === 'unknown'; i++) await step(rider, vehicleIds);
          assert.notEqual(rider.state.kind, 'unknown', 'every rider can read their rides again');
        }

        // Answers while the database was down (sent after it stopped, answered before the restart began).
        const whileDown = samples.filter((s) => s.start >= down && s.end <= restartBegan);
        const pagesDown = whileDown.filter((s) => s.what !== 'GET /healthz' && s.what !== 'GET /readyz');
        assert.ok(pagesDown.length >= 20, `enough requests hit the outage (${pagesDown.length})`);
        assert.deepEqual([...new Set(pagesDown.map((s) => s.status))], [503], 'every page and form answered 503 while the database was down');
        for (const s of pagesDown) {
          assert.match(s.text, /database is unreachable|try again/i, 'the 503 page says what happened');
          assert.doesNotMatch(s.text, /\n\s+at \S+ \(|node_modules|ECONNREFUSED/, 'and shows no internals');
        }
        assert.deepEqual([...new Set(whileDown.filter((s) => s.what === 'GET /readyz').map((s) => s.status))], [503], '/readyz said 503');
        assert.deepEqual([...new Set(whileDown.filter((s) => s.what === 'GET /healthz').map((s) => s.status))], [200], '/healthz stayed 200');
        assert.ok(whileDown.some((s) => s.what === 'GET /readyz') && whileDown.some((s) => s.what === 'GET /healthz'));

        // Fast by what the server did, not by a clock that load stretches: a 503 while down is the first failed
        // attempt, never a retry loop waiting for the database; and no request, in any phase, hung or was a 500.
        assert.deepEqual(pagesDown.filter((s) => s.attempts === undefined || s.attempts > 1).map((s) => `${s.what}: ${s.attempts} attempts`), [], 'each 503 gave up at its first attempt');
        const hung = samples.filter((s) => s.status === 0);
        assert.deepEqual(hung.map((s) => `${s.what} ${Math.round(s.end - s.start)} ms`), [], `no request unanswered within ${CLIENT_TIMEOUT_MS} ms`);
        const serverErrors = samples.filter((s) => s.status >= 500 && s.status !== 503);
        assert.deepEqual(serverErrors.map((s) => `${s.what} ${s.status}`), [], 'no 5xx but 503');

        // The ledger against the database.
        for (const rider of riders) assert.deepEqual(rider.anomalies, [], `rider ${rider.id}`);
        const kysely = t.db.kysely;
        const doubleRiders = await sql<{ rider_id: string }>`
          SELECT rider_id FROM rides WHERE end_time IS NULL GROUP BY rider_id HAVING count(*) > 1`.execute(kysely);
        assert.deepEqual(doubleRiders.rows, [], 'no rider has two active rides');
        const doubleVehicles = await sql<{ vehicle_id: string }>`
          SELECT vehicle_id FROM rides WHERE end_time IS NULL GROUP BY vehicle_id HAVING count(*) > 1`.execute(kysely);
        assert.deepEqual(doubleVehicles.rows, [], 'no vehicle has two active rides');
        const statusMismatch = await sql<{ id: string }>`
          SELECT v.id FROM vehicles v LEFT JOIN rides r ON r.city = v.city AND r.vehicle_id = v.id AND r.end_time IS NULL
          GROUP BY v.id, v.status HAVING (v.status = 'in_use') <> (count(r.id) = 1)`.execute(kysely);
        assert.deepEqual(statusMismatch.rows, [], 'a vehicle is in use if and only if it has an active ride');
        const badLengths = await sql<{ id: string }>`
          SELECT id FROM rides WHERE end_time IS NOT NULL AND length IS DISTINCT FROM end_time - start_time`.execute(kysely);
        assert.deepEqual(badLengths.rows, []);

        let confirmed = 0;
        let uncertain = 0;
        let committedUnconfirmed = 0;
        for (const rider of riders) {
          const rows = await kysely.selectFrom('rides').select(['id', 'end_time']).where('rider_id', '=', rider.id).execute();
          const byId = new Map(rows.map((row) => [row.id, row]));
          for (const id of rider.confirmedStarts) assert.ok(byId.has(id), `a start answered 303 exists (${id})`);
          assert.equal(new Set(rider.confirmedStarts).size, rider.confirmedStarts.length);
          for (const id of rider.confirmedEnds) assert.notEqual(byId.get(id)?.end_time ?? null, null, `an end answered 303 has an end time (${id})`);
          // A start that got a 503 may or may not have committed; only those can add rides beyond the confirmed ones.
          const extra = rows.length - rider.confirmedStarts.length;
          assert.ok(extra >= 0 && extra <= rider.uncertainStarts, `rides ${rows.length} = ${rider.confirmedStarts.length} confirmed + ${extra} of ${rider.uncertainStarts} unanswered starts`);
          const active = rows.filter((row) => row.end_time === null).map((row) => row.id);
          assert.deepEqual(active, rider.state.kind === 'riding' ? [rider.state.rideId] : [], "the rider's settled view is the database's");
          confirmed += rider.confirmedStarts.length;
          uncertain += rider.uncertainStarts;
          committedUnconfirmed += extra;
        }
        const before = samples.filter((s) => s.what === 'POST /rides/start' && s.status === 303 && s.end < stopBegan).length;
        const afterwards = samples.filter((s) => s.what === 'POST /rides/start' && s.status === 303 && s.start > restarted).length;
        assert.ok(before > 0 && afterwards > 0, `rides started before (${before}) and after (${afterwards}) the outage`);

        const downLatencies = pagesDown.map((s) => s.end - s.start);
        console.log(
          `# fault: stop took ${Math.round(down - stopBegan)} ms, down ${Math.round(restartBegan - down)} ms, restart took ${Math.round(restarted - restartBegan)} ms; ` +
            `${pagesDown.length} page answers while down: 503 in p50 ${percentile(downLatencies, 50).toFixed(1)} ms, max ${Math.max(...downLatencies).toFixed(1)} ms; ` +
            `recovered ${Math.round(recovered - restarted)} ms after the restart; ${samples.length} requests, slowest ${Math.round(Math.max(...samples.map((s) => s.end - s.start)))} ms; ` +
            `${confirmed} confirmed starts, ${uncertain} unanswered starts of which ${committedUnconfirmed} committed`,
        );
      } finally {
        load = false;
        probing = false;
        await Promise.allSettled([...cycling, probes]);
      }
    },
  );
});
