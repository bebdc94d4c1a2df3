import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type EmbeddedPostgres, findFreePort, startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';

/** Set by test/support/run.ts: the shared cluster's `postgres` database, where test files create theirs. */
export const CLUSTER_ENV = 'MOVR_TEST_CLUSTER';
/** The migrated database every test database is copied from (CREATE DATABASE … TEMPLATE). */
export const TEMPLATE = 'movr_template';

/** A free port in 20000–30000, starting at a random one so that files starting servers at once rarely collide. */
export const freePort = () => findFreePort(20_000 + Math.floor(Math.random() * 10_000));

/** Set by test/support/run.ts: a word in the name of every temporary directory of the run, so that it can find leftovers. */
export const RUN_ENV = 'MOVR_TEST_RUN';

const madeDirs = new Set<string>();
// However a test ends (a failed assertion, a skipped after() hook), its process removes the directories it made.
process.once('exit', () => madeDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/**
 * A fresh temporary directory the `postgres` user can traverse when the tests run as root (mkdtemp makes 0700).
 * The caller removes it when done; whatever is left is removed when the process exits.
 */
export function tempDir(prefix = 'movr-test-'): string {
  const run = process.env[RUN_ENV];
  const dir = mkdtempSync(path.join(tmpdir(), run ? `${prefix}${run}-` : prefix));
  chmodSync(dir, 0o755);
  madeDirs.add(dir);
  return dir;
}

export interface Cluster {
  /** The `postgres` database: for CREATE DATABASE and DROP DATABASE. */
  readonly adminUrl: string;
  readonly port: number;
  /** The connection string of another database on this cluster. */
  urlOf(database: string): string;
  /** Stops the server, keeping its data; start() brings it back on the same port. Only for a cluster of one's own. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its data. */
  destroy(): Promise<void>;
  /** Immediate shutdown, synchronously, for a process about to die. */
  kill(): void;
}

function clusterAt(adminUrl: string): Pick<Cluster, 'adminUrl' | 'port' | 'urlOf'> {
  return {
    adminUrl,
    port: Number(new URL(adminUrl).port),
    urlOf(database) {
      const url = new URL(adminUrl);
      url.pathname = `/${database}`;
      return url.toString();
    },
  };
}

/** The run's shared cluster (from run.ts), or undefined when this file runs alone. */
export function sharedCluster(): Cluster | undefined {
  const adminUrl = process.env[CLUSTER_ENV];
  if (!adminUrl) return undefined;
  const refuse = () => Promise.reject(new Error('the shared test cluster belongs to the run, not to a file'));
  return { ...clusterAt(adminUrl), stop: refuse, start: refuse, destroy: async () => {}, kill: () => {} };
}

/**
 * Starts an embedded PostgreSQL of one's own in a temporary directory, tuned for tests (no fsync: a test
 * database never has to survive a power cut), with `movr_template` migrated. Unless told otherwise, a signal
 * that ends the process (after() hooks skipped) ends the server too.
 */
export async function startCluster({ handleSignals = true } = {}): Promise<Cluster> {
  const dataDir = tempDir('movr-cluster-');
  let server: EmbeddedPostgres | undefined;
  const kill = () => {
    if (server) killPostmaster(server.clusterDir);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    forgetSignals();
    kill();
    process.kill(process.pid, signal);
  };
  const forgetSignals = () => SIGNALS.forEach((signal) => process.off(signal, onSignal));
  if (handleSignals) SIGNALS.forEach((signal) => process.once(signal, onSignal));

  const destroy = async () => {
    forgetSignals();
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    // Only when the cluster had to be kept elsewhere (embedded-postgres.ts placeForPostgresUser).
    if (server && !server.clusterDir.startsWith(dataDir)) rmSync(server.clusterDir, { recursive: true, force: true });
  };
  try {
    server = await startOnFreePort(dataDir);
    const { port } = server;
    const cluster = clusterAt(server.connectionString.replace(/\/movr$/, '/postgres'));
    await admin(cluster.adminUrl, async (client) => {
      for (const setting of ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off']) await client.query(`ALTER SYSTEM SET ${setting}`);
      await client.query('SELECT pg_reload_conf()');
      await client.query(`CREATE DATABASE ${TEMPLATE}`);
    });
    const template = await openDatabase({ connectionString: cluster.urlOf(TEMPLATE), poolSize: 1 });
    try {
      await migrateToLatest(template.kysely);
    } finally {
      await template.close();
    }
    return {
      ...cluster,
      get port() {
        return server!.port;
      },
      stop: () => server!.stop(),
      async start() {
        server = await startEmbeddedPostgres({ dataDir, port });
      },
      destroy,
      kill,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}

async function startOnFreePort(dataDir: string): Promise<EmbeddedPostgres> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startEmbeddedPostgres({ dataDir, port: await freePort() });
    } catch (error) {
      // Lost the port to another file between the check and the listen: try another.
      lastError = error;
    }
  }
  throw lastError;
}

/** Runs `work` on a client of the `postgres` database, then disconnects. */
export async function admin<T>(adminUrl: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Immediate shutdown (SIGQUIT), synchronously, for a process that is about to die. */
function killPostmaster(clusterDir: string): void {
  try {
    const pid = Number(readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0) process.kill(pid, 'SIGQUIT');
  } catch {
    // Not running.
  }
}
