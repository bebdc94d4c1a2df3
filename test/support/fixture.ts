/**
 * The one test fixture. `const t = useFixture(options)` at the top of a file (or of a describe) registers its
 * own hooks and gives every test, from its hooks on:
 *
 *   database  t.db (migrated, its own per file), t.connectionString, t.open(opts) another handle,
 *             t.createDatabase() an empty one, t.reset() (run before each test unless `reset: false`)
 *   app       t.app, t.config, t.movr, t.metrics, t.lifecycle (built on first use, bcrypt cost 4),
 *             t.buildApp({ env, rateLimits, db }) another over the same database, t.url with `listen: true`
 *             (a real loopback server), t.metricsClient() what server.ts serves on METRICS_PORT
 *   clients   t.agent() a cookie-jar client (to t.url with `listen: true`); formPost(agent, path, fields, from)
 *             GETs the form page and posts back its _csrf with the cookies it got; csrfToken, logIn, cookie
 *             in ./app.ts; for servers started as processes (./server-process.ts), Browser in ./http-client.ts
 *   factories t.rider({ city, username, password, agent }), t.vehicle(owner, fields), t.ride(rider, vehicleId)
 *   cluster   t.cluster; `ownCluster: true` gives the file a PostgreSQL of its own that it may stop and start
 *   setup     useFixture({ setup: async (t) => …, teardown }) prepares the file's own tables, data or servers once
 *             (a top-level before() would run alongside the fixture's on Node 20, not after it)
 *
 * After each test the fixture waits until the app's background work (the limiter's writes after an answer) is
 * over, and fails the test if anything was printed to console.error or console.warn meanwhile (libraries report
 * their failures there, e.g. express-rate-limit's store errors) or if the app logged a warning or error the test did
 * not declare with t.expectLogged(pattern); the database closes only once the app is quiet.
 *
 * Under `npm test` (test/support/run.ts) every file's database is created on the run's one cluster from the
 * migrated template; a file run alone (`node --import tsx --test test/http/auth.test.ts`) starts its own.
 */
import { after, afterEach, before, beforeEach } from 'node:test';
import { format } from 'node:util';
import request from 'supertest';
import type { NewVehicleRow } from '../../src/db/schema.js';
import { MovR, type MovrOptions } from '../../src/movr/movr.js';
import type { City } from '../../src/regions.js';
import { type Agent, type AppOptions, appLogged, buildTestApp, insertVehicle, type Listening, listen, type Rider, signUpAndLogIn, type TestApp } from './app.js';
import { type Cluster, sharedCluster, startCluster } from './cluster.js';
import { createTestDatabase, type OwnTestDatabase, type TestDatabase } from './database.js';
import { poolIdle } from './quiescence.js';

export interface FixtureOptions {
  /** Empty the app's tables and zero the statistics before each test. Default true. */
  reset?: boolean;
  /** How t.app is built. */
  app?: AppOptions;
  /** Serve t.app on a free loopback port (t.url); t.agent() then talks to it over real sockets. */
  listen?: boolean;
  /** A cluster of the file's own (t.cluster.stop() / start()), instead of the run's shared one. */
  ownCluster?: boolean;
  /**
   * The file's own preparation (tables, data), once the fixture is ready. Not a top-level before(): Node 20
   * starts a file's top-level before() hooks all at once, so one would not wait for the fixture's.
   */
  setup?: (t: Fixture) => Promise<unknown>;
  /** Undoes what setup started (servers, processes), before the database goes. */
  teardown?: (t: Fixture) => Promise<unknown>;
}

export interface Fixture extends TestDatabase, TestApp {
  readonly cluster: Cluster;
  readonly url: string;
  /** Another app over this database (or `db`), e.g. with other environment variables or rate limits. */
  buildApp(options?: AppOptions): TestApp;
  /** A MovR over t.db, bcrypt cost 4 unless told otherwise. */
  createMovr(options?: MovrOptions): MovR;
  /** Signs a new rider up and logs them in through the forms, on `agent` or a new one. */
  rider(options?: { city?: City; username?: string; password?: string; agent?: Agent }): Promise<Rider & { agent: Agent }>;
  /** Puts a vehicle straight into the database for `owner` (marked an owner), in their home city unless `fields` say otherwise; returns its id. */
  vehicle(owner: Rider, fields?: Partial<NewVehicleRow>): Promise<string>;
  /** Starts a ride for `rider` on `vehicleId` through MovR; returns the ride's id. */
  ride(rider: Rider, vehicleId: string): Promise<string>;
  /**
   * Lets the current test's apps log lines (warn and above) matching `pattern`, e.g. a fault test's injected
   * database errors; any other such line fails the test.
   */
  expectLogged(pattern: RegExp): void;
  /** The lines the apps logged at warn and above in the current test so far (JSON). */
  logged(): string[];
}

/** Clusters this process started itself, shared by its fixtures, stopped when the last one is done. */
let ownCluster: { cluster: Promise<Cluster>; users: number } | undefined;

async function acquireCluster(own: boolean): Promise<{ cluster: Cluster; release(): Promise<void> }> {
  const shared = own ? undefined : sharedCluster();
  if (shared) return { cluster: shared, release: async () => {} };
  if (own) {
    const cluster = await startCluster();
    return { cluster, release: () => cluster.destroy() };
  }
  ownCluster ??= { cluster: startCluster(), users: 0 };
  const entry = ownCluster;
  entry.users += 1;
  return {
    cluster: await entry.cluster,
    async release() {
      if (--entry.users > 0) return;
      if (ownCluster === entry) ownCluster = undefined;
      await (await entry.cluster).destroy();
    },
  };
}

/** What was printed to console.error and console.warn since the last look; still printed as before. */
const printed: string[] = [];
for (const level of ['error', 'warn'] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    printed.push(`console.${level}: ${format(...args)}`);
    original(...args);
  };
}

/** Log lines the current test said it expects (t.expectLogged), forgotten after it. */
const expectedLogs: RegExp[] = [];
/** The app's log lines the current test expected and got, for t.logged(). */
const seenLogs: string[] = [];

function assertNothingPrinted(when: string) {
  seenLogs.push(...appLogged.splice(0));
  const unexpected = seenLogs.filter((line) => !expectedLogs.some((pattern) => pattern.test(line))).map((line) => `app log: ${line}`);
  const lines = [...printed.splice(0), ...unexpected];
  seenLogs.length = 0;
  expectedLogs.length = 0;
  if (lines.length > 0) throw new Error(`printed ${when}:\n${lines.join('\n')}`);
}

export function useFixture(options: FixtureOptions = {}): Fixture {
  let state: { cluster: Cluster; database: OwnTestDatabase; release(): Promise<void> } | undefined;
  let app: TestApp | undefined;
  let server: Listening | undefined;
  const ready = () => {
    if (!state) throw new Error('the fixture is not ready: use it in tests, in describe() hooks, or in useFixture({ setup })');
    return state;
  };
  const mainApp = () => (app ??= buildTestApp(ready().database.db, options.app));

  let starting: Promise<void> | undefined;
  before(() =>
    (starting = (async () => {
      const { cluster, release } = await acquireCluster(options.ownCluster ?? false);
      try {
        state = { cluster, database: await createTestDatabase(cluster), release };
      } catch (error) {
        await release();
        throw error;
      }
      if (options.listen) server = await listen(mainApp().app);
      await options.setup?.(fixture);
    })()),
  );
  /** The app's work after its answers, on the fixture's database handle, is over. */
  const quiet = async () => {
    if (state) await poolIdle(state.database.db.pool);
  };
  afterEach(async () => {
    await quiet();
    assertNothingPrinted('during the test');
  });
  after(async () => {
    // A failing hook elsewhere can bring the end on while the start is still under way.
    await starting?.catch(() => {});
    await quiet();
    if (state) await options.teardown?.(fixture);
    await server?.close();
    if (!state) return;
    const { database, release } = state;
    state = undefined;
    try {
      await database.drop();
    } finally {
      await release();
    }
    assertNothingPrinted('after the last test');
  });
  if (options.reset ?? true) beforeEach(() => ready().database.reset());

  const fixture: Fixture = {
    get cluster() {
      return ready().cluster;
    },
    get db() {
      return ready().database.db;
    },
    get connectionString() {
      return ready().database.connectionString;
    },
    open: (handleOptions) => ready().database.open(handleOptions),
    createDatabase: () => ready().database.createDatabase(),
    reset: () => ready().database.reset(),
    get app() {
      return mainApp().app;
    },
    get config() {
      return mainApp().config;
    },
    get movr() {
      return mainApp().movr;
    },
    get metrics() {
      return mainApp().metrics;
    },
    get lifecycle() {
      return mainApp().lifecycle;
    },
    metricsClient: () => mainApp().metricsClient(),
    get url() {
      if (!server) throw new Error('t.url needs useFixture({ listen: true })');
      return server.url;
    },
    agent: () => (server ? request.agent(server.url) : mainApp().agent()),
    buildApp: (appOptions) => buildTestApp(ready().database.db, appOptions),
    createMovr: (movrOptions) => new MovR(ready().database.db, { bcryptCost: 4, ...movrOptions }),
    async rider({ city = 'new york', username, password, agent = fixture.agent() } = {}) {
      const rider = await signUpAndLogIn(agent, fixture.movr, city, { ...(username ? { username } : {}), ...(password ? { password } : {}) });
      return { ...rider, agent };
    },
    vehicle: (owner, fields) => insertVehicle(ready().database.db, owner, fields),
    async ride(rider, vehicleId) {
      return (await fixture.movr.startRide(rider, vehicleId, rider.city)).id;
    },
    expectLogged: (pattern) => void expectedLogs.push(pattern),
    logged() {
      seenLogs.push(...appLogged.splice(0));
      return [...seenLogs];
    },
  };
  return fixture;
}
