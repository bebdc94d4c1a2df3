import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDist, ROOT, SERVER_JS } from './build.js';
import { freePort, tempDir } from './cluster.js';

/** The drain's grace in spawned servers: short, so each stop does not wait seconds; a test that needs the real one sets it. */
export const TEST_GRACE_MS = 200;

/**
 * BCRYPT_COST in the servers the tests start: bcrypt's least in development, as hashing is not what they measure;
 * unset in production, which refuses it (and where the password-budget test measures the real cost).
 */
export const testBcryptCost = (nodeEnv = 'development') => (nodeEnv === 'production' ? undefined : '4');

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly dataDir: string;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** JSON log lines a server printed, parsed, with their message (`msg`). */
export function logLines(server: Pick<ServerProcess, 'output'>): Array<Record<string, unknown> & { msg?: string; level?: number }> {
  return server
    .output()
    .split('\n')
    .flatMap((line) => {
      if (!line.startsWith('{')) return [];
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

/** The JSON log lines a server printed at level error or above (pino: 50 error, 60 fatal). */
export function errorsLogged(server: Pick<ServerProcess, 'output'>): string[] {
  return logLines(server)
    .filter((line) => (line.level ?? 0) >= 50)
    .map((line) => JSON.stringify(line));
}

/** A fresh data directory the `postgres` user can reach when the tests run as root. */
export const freshDataDir = () => tempDir('movr-server-');

/** This process's environment without what the test runner sets for its own children. */
export function childEnvironment(): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _runner, ...env } = process.env;
  return env;
}

/**
 * Runs the real server (dist/server.js of `cwd`, built once per run; or `npm start` itself) as its own process
 * group, like `npm start` in a terminal, and waits until it prints its URL.
 */
export async function startServerProcess({
  dataDir: given,
  env = {},
  npmStart = false,
  cwd = ROOT,
}: { dataDir?: string; env?: Record<string, string | undefined>; npmStart?: boolean; cwd?: string } = {}): Promise<ServerProcess> {
  await ensureDist();
  const dataDir = given ?? freshDataDir();
  const port = env.PORT ? Number(env.PORT) : await freePort();
  const base = { NODE_ENV: 'development', MOVR_DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', DB_URI: '', METRICS_PORT: '0', SHUTDOWN_GRACE_MS: String(TEST_GRACE_MS), BCRYPT_COST: testBcryptCost(env.NODE_ENV) };
  const child = spawn(npmStart ? 'npm' : process.execPath, npmStart ? ['start'] : [path.relative(ROOT, SERVER_JS)], {
    cwd,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    // An undefined value removes the variable (e.g. so that a .env file may set it).
    env: Object.fromEntries(Object.entries({ ...childEnvironment(), ...base, ...env }).filter(([, value]) => value !== undefined)),
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      // A directory made here is this process's: gone with it (a caller that keeps data passes its own).
      if (given === undefined) rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, signal });
    }),
  );
  const deadline = Date.now() + 60_000;
  let done = false;
  void exited.then(() => (done = true));
  while (!output.includes('MovR is running at')) {
    if (done) throw new Error(`server exited before listening:\n${output}`);
    if (Date.now() > deadline) {
      killGroup(child, 'SIGKILL');
      throw new Error(`server did not start within 60 s:\n${output}`);
    }
    await sleep(50);
  }
  const host = (env.HOST ?? '127.0.0.1') === '0.0.0.0' ? '127.0.0.1' : (env.HOST ?? '127.0.0.1');
  return { child, url: `http://${host}:${port}`, dataDir, output: () => output, exited };
}

export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** The embedded cluster's postmaster pid, if a server is running on that data directory. */
export function postmasterPid(dataDir: string): number | undefined {
  const file = path.join(dataDir, 'postgres', 'postmaster.pid');
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** The embedded database's connection string, read from its data directory. */
export function embeddedConnectionString(dataDir: string): string {
  const password = readFileSync(path.join(dataDir, 'postgres-password'), 'utf8').trim();
  const port = readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[3];
  return `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/movr`;
}
