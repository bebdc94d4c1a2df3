import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import request from 'supertest';
import type TestAgent from 'supertest/lib/agent.js';
import { createApp, type Lifecycle, type RateLimits } from '../../src/app.js';
import { type Config, loadConfig, withSecretKey } from '../../src/config.js';
import type { MovrDatabase } from '../../src/db/database.js';
import type { NewVehicleRow } from '../../src/db/schema.js';
import { MovR } from '../../src/movr/movr.js';
import { createMetrics, type Metrics, metricsHandler } from '../../src/web/middleware/metrics.js';
import type { City } from '../../src/regions.js';
import { SESSION_COOKIE } from '../../src/web/middleware/session.js';

export type Agent = InstanceType<typeof TestAgent>;

export interface TestApp {
  app: ReturnType<typeof createApp>;
  config: Config;
  movr: MovR;
  metrics: Metrics;
  lifecycle: Lifecycle;
  /** A client of the metrics port (server.ts serves the same handler on METRICS_PORT). */
  metricsClient(): ReturnType<typeof request>;
  /** A cookie-keeping client, like one browser. */
  agent(): Agent;
}

export interface AppOptions {
  /** Environment variables for loadConfig, over the tests' own. */
  env?: Record<string, string>;
  rateLimits?: Partial<RateLimits>;
  /** Another handle than the test database's own, e.g. through a proxy or a fault-injecting pool. */
  db?: MovrDatabase;
  /** bcrypt's cost for new hashes; 4 (cheap) unless told otherwise. */
  bcryptCost?: number;
}

/**
 * What test apps logged at warn or above (JSON lines), not yet looked at: the fixture fails a test that leaves any
 * it did not declare it expects.
 */
export const appLogged: string[] = [];
const logDestination = { write: (line: string) => void appLogged.push(line.trimEnd()) };

/** The real app over a database, as server.ts builds it, with its warnings and errors kept for the fixture, and cheap bcrypt. */
export function buildTestApp(database: MovrDatabase, { env = {}, rateLimits, db = database, bcryptCost = 4 }: AppOptions = {}): TestApp {
  const config = withSecretKey(loadConfig({ NODE_ENV: 'test', SECRET_KEY: 'test-secret-that-is-at-least-32-characters', MOVR_DATA_DIR: '/nonexistent', ...env }));
  const movr = new MovR(db, { bcryptCost });
  const metrics = createMetrics(db.stats);
  const lifecycle: Lifecycle = { draining: false };
  const app = createApp({ config, db, movr, metrics, lifecycle, logger: pino({ level: 'warn' }, logDestination), rateLimits: { registrations: 1000, failedLoginsPerClient: 1000, hashesPerClient: 1000, hashWaiting: 1000, hashMaxWaitMs: 60_000, ...rateLimits } });
  return { app, config, movr, metrics, lifecycle, metricsClient: () => request(metricsHandler(metrics.registry)), agent: () => request.agent(app) };
}

/** The Set-Cookie line a response sent for one cookie (the session's by default), if any. */
export function cookie(response: { headers: Record<string, unknown> }, name = SESSION_COOKIE): string | undefined {
  return ([] as string[]).concat((response.headers['set-cookie'] as string[] | undefined) ?? []).find((line) => line.startsWith(`${name}=`));
}

/** The `_csrf` value of the first form on a page. */
export function csrfFrom(html: string): string {
  const token = html.match(/name="_csrf" value="([^"]+)"/)?.[1];
  if (!token) throw new Error('no CSRF token on the page');
  return token;
}

/** GETs a page and returns its CSRF token, for the form post that follows. */
export async function csrfToken(agent: Agent, path = '/login'): Promise<string> {
  const page = await agent.get(path);
  return csrfFrom(page.text);
}

export interface Rider {
  id: string;
  username: string;
  password: string;
  city: City;
}

let riders = 0;

/** Signs up a rider through the form, which logs the agent in as them. */
export async function signUpAndLogIn(agent: Agent, movr: MovR, city: City = 'new york', overrides: Partial<Record<string, string>> = {}): Promise<Rider> {
  const username = overrides.username ?? `rider${process.pid}x${++riders}`;
  const password = overrides.password ?? 'correct horse battery';
  const signUp = await formPost(agent, '/register', { city, first_name: 'Test', last_name: 'Rider', email: `${username}@example.com`, username, password });
  if (signUp.status !== 303 || signUp.headers.location !== '/vehicles') throw new Error(`sign-up failed: ${signUp.status} ${signUp.text.slice(0, 500)}`);
  const user = await movr.authenticate(username, password);
  return { id: user!.id, username, password, city };
}

export async function logIn(agent: Agent, username: string, password: string) {
  const response = await formPost(agent, '/login', { username, password }, '/login');
  if (response.status !== 303) throw new Error(`log-in failed: ${response.status}`);
  return response;
}

/**
 * Posts a form with the session's CSRF token. The token is fetched first, so that the post carries the
 * session cookie the GET set. /register renders for everyone, logged in or not.
 */
export async function formPost(agent: Agent, path: string, fields: Record<string, string> = {}, from = '/register') {
  const _csrf = await csrfToken(agent, from);
  return agent.post(path).type('form').send({ _csrf, ...fields });
}

/** Puts a vehicle straight into the database for a rider (marked an owner), returning its id. */
export async function insertVehicle(db: MovrDatabase, owner: Rider, fields: Partial<NewVehicleRow> = {}): Promise<string> {
  const row = await db.kysely
    .insertInto('vehicles')
    .values({ city: owner.city, owner_id: owner.id, type: 'scooter', color: 'red', brand: '', last_location: 'Main Street', ...fields })
    .returning('id')
    .executeTakeFirstOrThrow();
  await db.kysely.updateTable('users').set({ is_owner: true }).where('city', '=', owner.city).where('id', '=', owner.id).execute();
  return row.id;
}

export interface Listening {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves an app on a free loopback port, for tests that need real sockets rather than supertest's. */
export async function listen(app: ReturnType<typeof createApp>): Promise<Listening> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
