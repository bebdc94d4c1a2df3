import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { type DatabaseOptions, type MovrDatabase, openDatabase } from '../../src/db/database.js';
import { type EmbeddedPostgres, findFreePort, startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { TransactionStats } from '../../src/db/transaction.js';
import { MovR, type MovrOptions } from '../../src/movr/movr.js';

/**
 * One real PostgreSQL per test file, migrated, with the app's database handle open:
 *
 *   const testDb = await startTestDatabase();
 *   after(() => testDb.stop());
 *   beforeEach(() => testDb.reset());
 *   const movr = testDb.createMovr();
 */
export interface TestDatabase {
  /** The migrated `movr` database, opened as the app opens it (kind detected: 'postgres'). */
  readonly db: MovrDatabase;
  readonly connectionString: string;
  readonly server: EmbeddedPostgres;
  /** A MovR over `db`, with bcrypt cost 4 unless told otherwise. */
  createMovr(options?: MovrOptions): MovR;
  /**
   * Another handle (e.g. `kind: 'cockroachdb'`, a fault-injecting `pool`), on the `movr` database unless
   * `connectionString` names another; closed by stop() if not before.
   */
  open(options?: Partial<DatabaseOptions>): Promise<MovrDatabase>;
  /** A new empty database on the same server (no migrations); returns its connection string. */
  createDatabase(): Promise<string>;
  /** Empties users, vehicles, rides, sessions and rate limits, and zeroes `db.stats`. */
  reset(): Promise<void>;
  /** Closes every handle, stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startTestDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'movr-test-'));
  // As root the server runs as `postgres`, which must traverse this directory (mkdtemp makes it 0700).
  chmodSync(dataDir, 0o755);
  const opened: MovrDatabase[] = [];
  let server: EmbeddedPostgres | undefined;
  let databases = 0;

  // An interrupted run (Ctrl-C, the test runner's SIGTERM) skips after(): end the server, then die of the signal.
  const onSignal = (signal: NodeJS.Signals) => {
    forgetSignals();
    if (server) killPostmaster(server.clusterDir);
    process.kill(process.pid, signal);
  };
  const forgetSignals = () => SIGNALS.forEach((signal) => process.off(signal, onSignal));
  SIGNALS.forEach((signal) => process.once(signal, onSignal));

  const stop = async () => {
    forgetSignals();
    await Promise.allSettled(opened.splice(0).map((handle) => handle.close()));
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    // Only when the cluster had to be kept elsewhere (see placeForPostgresUser).
    if (server && !server.clusterDir.startsWith(dataDir)) rmSync(server.clusterDir, { recursive: true, force: true });
  };

  try {
    server = await startServer(dataDir);
    const { connectionString } = server;
    const open = async (options: Partial<DatabaseOptions> = {}) => {
      const handle = await openDatabase({ connectionString, ...options });
      let closing: Promise<void> | undefined;
      const closable: MovrDatabase = { ...handle, close: () => (closing ??= handle.close()) };
      opened.push(closable);
      return closable;
    };
    const db = await open();
    await migrateToLatest(db.kysely);
    const running = server;
    return {
      db,
      connectionString,
      server: running,
      createMovr: (options = {}) => new MovR(db, { bcryptCost: 4, ...options }),
      open,
      async createDatabase() {
        const name = `movr_extra_${++databases}`;
        await sql.raw(`CREATE DATABASE ${name}`).execute(db.kysely);
        const url = new URL(connectionString);
        url.pathname = `/${name}`;
        return url.toString();
      },
      async reset() {
        await sql`TRUNCATE users, vehicles, rides, sessions, rate_limits CASCADE`.execute(db.kysely);
        Object.assign(db.stats, new TransactionStats());
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Starts the server on a random free port in 20000–30000 (another test file may be starting one too). */
async function startServer(dataDir: string): Promise<EmbeddedPostgres> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await findFreePort(20_000 + Math.floor(Math.random() * 10_000));
    try {
      return await startEmbeddedPostgres({ dataDir, port });
    } catch (error) {
      // Lost the port to someone else between the check and the listen: try another.
      lastError = error;
    }
  }
  throw lastError;
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
