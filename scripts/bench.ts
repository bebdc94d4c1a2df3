import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { transformSync } from 'esbuild';
import { sql } from 'kysely';
import pg from 'pg';
import { type MovrDatabase, openDatabase } from '../src/db/database.js';
import { type EmbeddedPostgres, findFreePort, startEmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { runStatement } from '../src/db/transaction.js';
import { MovR } from '../src/movr/movr.js';
import { newToken } from '../src/movr/tokens.js';
import { DatabaseSessionStore } from '../src/db/session-store.js';
import { BENCH_PASSWORD, type BenchData, type BenchRider, FULL_SIZES, loadBenchData, QUICK_SIZES, RIDES_PER_HEAVY } from './bench-data.js';

/**
 * `npm run bench [-- --quick] [-- --workers 1,2] [-- --pool N] [-- --rounds vehicles,rides] [-- --label before]`
 *
 * Starts a fresh embedded PostgreSQL under os.tmpdir(), loads a realistic data set with bulk SQL
 * (scripts/bench-data.ts), builds the app (`dist/`) and runs it as production does (NODE_ENV=production, request
 * logs at info to a file, behind a load balancer that sends X-Forwarded-Proto: https) in a child process
 * (scripts/bench-server.ts: the compiled app plus floor handlers, in N node:cluster workers) on a free loopback
 * port, and drives it with autocannon for fixed-length rounds:
 *
 *   login     anonymous GET /login (a returning visitor: the CSRF cookie of an earlier visit, no session)
 *   vehicles  logged-in GET /vehicles, each connection a different rider's session
 *   rides     logged-in GET /rides of riders with RIDES_PER_HEAVY (20) rides each
 *   cycle     POST /rides/start/:vehicleId, GET /rides (the redirect a browser follows, which shows the ride
 *             to end), POST /rides/end/:rideId; each connection a different rider with its own vehicle
 *   api-vehicles  GET /api/v1/vehicles with a bearer token, each connection a different rider's
 *   api-cycle     POST /api/v1/rides, POST /api/v1/rides/:id/end: the cycle's riders and vehicles, over the API
 *
 * Each page is followed by its floors: the same MovR call behind the same middleware, sending a fixed string;
 * and the bare floor (scripts/bench-bare.ts): node:http sending the page's SQL through pg and a pre-rendered
 * body of the page's size. The whole set runs once per worker count (--workers 1,2). Results go to stdout and to test-output/bench.json. Everything started is stopped on exit, error or Ctrl-C.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FLOOR = '/__bench/floor';
const FORM = 'application/x-www-form-urlencoded';
/** What the load balancer adds: production's cookies are Secure, so Express must see https. */
const PROXY_HEADERS = { 'x-forwarded-proto': 'https' };
const SECRET_KEY = 'bench-secret-that-is-long-enough-0123456789';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    pool: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    workers: { type: 'string' },
    kinds: { type: 'string' },
    'app-dir': { type: 'string' },
    compare: { type: 'string' },
    repeat: { type: 'string' },
    'cycle-connections': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    label: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'node-options': { type: 'string' },
    'idle-wait': { type: 'string' },
    out: { type: 'string', default: path.join(ROOT, 'test-output/bench.json') },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run bench -- [--quick] [--workers 1,2] [--pool N] [--rounds login,vehicles,rides,cycle,api-vehicles,api-cycle] [--duration S] [--warmup S]
  [--connections N] [--cycle-connections N] [--log-level info] [--label TEXT] [--out FILE]
  [--kinds page,floor,bare]  which of each round's measurements to run (all by default)
  [--app-dir DIR]  a build to measure instead of dist/ (another checkout's, to compare two versions)
  [--compare DIR] [--repeat N]  also run the build in DIR, each page round alternating between the two N times
                 (same database, same load): the fair way to measure a change on a busy machine
  [--node-options="--flag ..."]  node/V8 flags for the app's server instead of npm start's (e.g. to try heap sizes)
  [--idle-wait S] after each server's rounds, how long it is left without requests before its RSS is read
                 again (20 s by default, 0 with --quick): V8's memory reducer runs some 8 to 16 s into an idle spell
  [--cpu-prof]   the server writes a V8 CPU profile to test-output/profiles/ (open it in Chrome DevTools)`);
  process.exit(0);
}

const quick = args.quick;
const sizes = quick ? QUICK_SIZES : FULL_SIZES;
const durationS = Number(args.duration ?? (quick ? 1.5 : 10));
const warmupS = Number(args.warmup ?? (quick ? 0.3 : 2));
/** Each count runs every round against a fresh server of that many workers (WEB_CONCURRENCY). */
const workerCounts = (args.workers ?? (quick ? '1' : '1,2')).split(',').map(Number);
const kinds = (args.kinds ?? 'page,floor,bare').split(',');
const appDir = args['app-dir'] ? path.resolve(args['app-dir']) : path.join(ROOT, 'dist');
const compareDir = args.compare ? path.resolve(args.compare) : undefined;
const repeat = Number(args.repeat ?? (compareDir ? 3 : 1));
const idleWaitS = Number(args['idle-wait'] ?? (quick ? 0 : 20));
for (const n of workerCounts) if (!Number.isInteger(n) || n < 1 || n > 16) throw new Error(`--workers takes counts from 1 to 16, e.g. 1,2`);
const connections = Number(args.connections ?? 20);
const cycleConnections = Number(args['cycle-connections'] ?? 50);
const poolSize = args.pool ? Number(args.pool) : undefined;
const ROUND_KEYS = ['login', 'vehicles', 'rides', 'cycle', 'api-vehicles', 'api-cycle'] as const;
const isCycle = (key: RoundKey) => key === 'cycle' || key === 'api-cycle';
type RoundKey = (typeof ROUND_KEYS)[number];
const selected = (args.rounds?.split(',') ?? [...ROUND_KEYS]) as RoundKey[];
for (const key of selected) if (!ROUND_KEYS.includes(key)) throw new Error(`unknown round ${key}; rounds are ${ROUND_KEYS.join(', ')}`);

// ---- stopping everything we start, once, whatever happens

const cleanups: (() => Promise<void> | void)[] = [];
let cleaning: Promise<void> | undefined;
let aborted = false;
let running: autocannon.Instance | undefined;
const cleanup = () =>
  (cleaning ??= (async () => {
    running?.stop();
    for (const step of cleanups.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        console.error('cleanup step failed:', error);
      }
    }
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (aborted) return;
    aborted = true;
    console.error(`\n${signal}: stopping the server and the database…`);
    void cleanup().finally(() => process.exit(130));
  });
}
const checkAborted = () => {
  if (aborted) throw new Error('aborted');
};

// ---- the machine and the processes

/** The commit measured, and the app files that differed from it (a shared checkout may hold others' work). */
function gitState() {
  const git = (...command: string[]) => {
    try {
      return execFileSync('git', command, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    } catch {
      return '';
    }
  };
  return { commit: git('rev-parse', '--short', 'HEAD'), modified: git('status', '--porcelain', '--', 'src', 'views').split('\n').filter(Boolean) };
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: os.availableParallelism(),
    cpu: cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
    node: process.version,
  };
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds a process used (utime + stime), and its reaped children's when asked (the postmaster's backends). */
function cpuSeconds(pid: number, withChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    const ticks = Number(fields[11]) + Number(fields[12]) + (withChildren ? Number(fields[13]) + Number(fields[14]) : 0);
    return ticks / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The live children of a process: the postmaster's backends, a cluster primary's workers. */
function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** A process and its live children (the postmaster's backends, the primary's workers), with its reaped ones. */
function treeCpuSeconds(pid: number): number {
  return childPids(pid).reduce((total, child) => total + cpuSeconds(child), cpuSeconds(pid, true));
}

/** The processes that serve requests: the cluster's workers, or the one process. */
function servingPids(pid: number): number[] {
  const children = childPids(pid);
  return children.length > 0 ? children : [pid];
}


/** CPU seconds the whole machine was busy (all cores, every process), from /proc/stat. */
function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = ticks;
  return (user + nice + system + irq + softirq + steal) / CLK_TCK;
}

function memoryKiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** Resets the kernel's peak-RSS mark (VmHWM), so each round reads its own peak; false where not allowed. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

interface ServerProcess {
  child: ChildProcess;
  url: string;
  logFile: string;
  bare: boolean;
  stop: () => Promise<void>;
}

interface StatementCounts {
  statements: number;
  transactions: number;
  sessionReads: number;
  sessionWrites: number;
  retries: number;
  pids: number[];
}

const NO_COUNTS: StatementCounts = { statements: 0, transactions: 0, sessionReads: 0, sessionWrites: 0, retries: 0, pids: [] };

/** The bench server's counts of what the app sent to the database (scripts/bench-server.ts), over IPC. */
function statementCounts(server: ServerProcess): Promise<StatementCounts> {
  if (server.bare) return Promise.resolve(NO_COUNTS);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bench server did not answer for its statement counts')), 5000);
    server.child.once('message', (message) => {
      clearTimeout(timer);
      resolve(message as StatementCounts);
    });
    server.child.send('stats');
  });
}

async function walBytes(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ bytes: number }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS bytes`);
  return rows[0]!.bytes;
}

/** The bench's servers as plain JavaScript (production runs no TypeScript loader), beside the app's dist/. */
function buildServers(): { app: string; bare: string } {
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  const outDir = path.join(ROOT, 'test-output/bench');
  mkdirSync(outDir, { recursive: true });
  const transpile = (name: string) => {
    const source = readFileSync(path.join(ROOT, 'scripts', `${name}.ts`), 'utf8');
    const { code } = transformSync(source, { loader: 'ts', format: 'esm', target: 'node20' });
    const file = path.join(outDir, `${name}.mjs`);
    writeFileSync(file, code);
    return file;
  };
  return { app: transpile('bench-server'), bare: transpile('bench-bare') };
}

/** The node flags of the build's `npm start` (as the Dockerfile's CMD): each build runs as its production would. */
function startNodeOptions(dir: string): string {
  const { scripts } = JSON.parse(readFileSync(path.join(dir, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  return /^node\s+(.*?)\s*dist\/server\.js$/.exec(scripts.start ?? '')?.[1] ?? '';
}

async function startServer(script: string, dataDir: string, connectionString: string, workers: number, extraEnv: Record<string, string> = {}, dir = appDir): Promise<ServerProcess> {
  const bare = 'BENCH_BARE_SPEC' in extraEnv;
  const port = await findFreePort(20_000 + Math.floor(Math.random() * 10_000));
  const logFile = path.join(dataDir, bare ? `bare-${workers}.log` : `server-${workers}-${path.basename(path.dirname(dir))}.log`);
  const log = openSync(logFile, 'a');
  const profile = args['cpu-prof'] && !bare ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'test-output/profiles')}`] : [];
  const nodeOptions = bare ? [] : (args['node-options'] ?? startNodeOptions(dir)).split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...nodeOptions, ...profile, script], {
    cwd: ROOT,
    stdio: ['ignore', log, log, 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'production',
      DB_URI: connectionString,
      PORT: String(port),
      HOST: '127.0.0.1',
      SECRET_KEY,
      MOVR_DATA_DIR: dataDir,
      LOG_LEVEL: args['log-level'],
      METRICS_PORT: '0',
      BENCH_APP_DIR: dir,
      BENCH_WORKERS: String(workers),
      BENCH_POOL_SIZE: poolSize ? String(poolSize) : '',
      ...extraEnv,
    },
  });
  closeSync(log);
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      if (!(await Promise.race([exited.then(() => true), sleep(8000).then(() => false)]))) {
        for (const pid of childPids(child.pid!)) process.kill(pid, 'SIGKILL');
        child.kill('SIGKILL');
        await exited;
      }
    })());
  cleanups.push(stop);
  const url = `http://127.0.0.1:${port}`;
  const server: ServerProcess = { child, url, logFile, bare, stop };
  const deadline = Date.now() + 60_000;
  for (;;) {
    checkAborted();
    if (child.exitCode !== null) throw new Error(`the bench server exited during start:\n${tail(logFile)}`);
    if (Date.now() > deadline) throw new Error(`the bench server did not answer within 60 s:\n${tail(logFile)}`);
    try {
      // Every worker listening, so the idle memory is every worker's.
      if ((await fetch(`${url}/healthz`)).ok && (workers === 1 || servingPids(child.pid!).length === workers)) {
        if (bare || (await statementCounts(server)).pids.length === workers) return server;
      }
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---- riders' sessions

interface Session {
  rider: BenchRider;
  cookie: string;
  csrf: string;
  vehicleId?: string;
  /** The API's bearer token of the rider. */
  token?: string;
}

/** A bearer token per session, put straight in the database as the API stores them (a hash), to skip a bcrypt each. */
async function withTokens(database: MovrDatabase, sessions: Session[]): Promise<Session[]> {
  const issued = sessions.map((session) => ({ session, token: newToken(session.rider.city) }));
  await database.kysely
    .insertInto('api_tokens')
    .values(issued.map(({ session, token }) => ({ city: session.rider.city, token_hash: token.hash, user_id: session.rider.id, expires_at: token.expiresAt })))
    .execute();
  return issued.map(({ session, token }) => ({ ...session, token: token.token }));
}

/** Cookies as a browser keeps them: the latest of each name, sent back as one header. */
function keepCookies(jar: Map<string, string>, response: Response): Map<string, string> {
  for (const cookie of response.headers.getSetCookie()) {
    const pair = cookie.split(';')[0]!;
    const name = pair.slice(0, pair.indexOf('='));
    if (/expires=Thu, 01 Jan 1970/i.test(cookie)) jar.delete(name);
    else jar.set(name, pair);
  }
  return jar;
}
const cookieHeader = (jar: Map<string, string>) => [...jar.values()].join('; ');

const csrfOf = (html: string) => html.match(/name="_csrf" value="([^"]+)"/)?.[1];

/** A returning visitor's cookies: the CSRF cookie of an earlier GET /login, no session. */
async function visitorCookie(url: string): Promise<string> {
  const page = await fetch(`${url}/login`, { headers: PROXY_HEADERS });
  await page.arrayBuffer();
  const jar = keepCookies(new Map(), page);
  if (jar.size === 0) throw new Error('GET /login set no cookie');
  return cookieHeader(jar);
}

/** Logs a rider in through the real form, as a browser does: GET /login, POST /login, then a page for the CSRF token. */
async function logIn(url: string, rider: BenchRider): Promise<Session> {
  const jar = new Map<string, string>();
  const page = await fetch(`${url}/login`, { redirect: 'manual', headers: PROXY_HEADERS });
  keepCookies(jar, page);
  const loginCsrf = csrfOf(await page.text());
  if (!loginCsrf) throw new Error('GET /login gave no CSRF token');
  const posted = await fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { ...PROXY_HEADERS, cookie: cookieHeader(jar), 'content-type': FORM },
    body: new URLSearchParams({ _csrf: loginCsrf, username: rider.username, password: BENCH_PASSWORD }),
  });
  await posted.arrayBuffer();
  if (posted.status !== 303) throw new Error(`log-in of ${rider.username} answered ${posted.status}`);
  keepCookies(jar, posted);
  const vehicles = await fetch(`${url}/vehicles`, { headers: { ...PROXY_HEADERS, cookie: cookieHeader(jar) }, redirect: 'manual' });
  keepCookies(jar, vehicles);
  const csrf = csrfOf(await vehicles.text());
  if (vehicles.status !== 200 || !csrf) throw new Error(`GET /vehicles after log-in answered ${vehicles.status}`);
  return { rider, cookie: cookieHeader(jar), csrf };
}

async function logInAll<T extends BenchRider>(url: string, riders: T[], extra: (rider: T) => Partial<Session> = () => ({})): Promise<Session[]> {
  // One at a time: the app hashes one password at a time per client (src/web/password-work.ts), and the bench is one client.
  const sessions: Session[] = [];
  for (const rider of riders) {
    checkAborted();
    sessions.push({ ...(await logIn(url, rider)), ...extra(rider) });
  }
  return sessions;
}

// ---- rounds

/** The page itself; its floor (same middleware and SQL, a fixed string); its bare floor (node:http, pg, same body). */
type RoundKind = 'page' | 'floor' | 'bare';

interface RoundSpec {
  key: RoundKey;
  name: string;
  kind: RoundKind;
  connections: number;
  /** A plain GET of one path, or the start/end cycle. */
  path?: string;
  sessions?: Session[];
  /** One cookie header for every request (the returning visitor of GET /login). */
  cookie?: string;
  /** Sessions send their bearer token instead of their cookie. */
  api?: boolean;
}

interface RoundResult {
  round: RoundKey;
  name: string;
  kind: RoundKind;
  workers: number;
  connections: number;
  durationS: number;
  requests: number;
  requestsPerS: number;
  /** Completed start/end cycles per second (cycle round only). */
  cyclesPerS?: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  errors: number;
  /** The cycle's answers that were not the next step's (a refused start, a rides page with no ride to end). */
  unexpected?: Record<string, number>;
  statusCounts: Record<string, number>;
  connectionErrors: number;
  timeouts: number;
  transactionRetries: number;
  /** peakRssMiB: the largest worker's peak RSS in the round. */
  server: { peakRssMiB: number; cpuPercent: number; cpuMsPerRequest: number };
  postgresCpuPercent: number;
  /** CPU per response: steadier than req/s when other work shares the cores. */
  postgresCpuMsPerRequest: number;
  loadGeneratorCpuPercent: number;
  /** Everything else on the machine (other people's test runs share these cores). */
  otherCpuPercent: number;
  /** Exact counts per response, whatever else runs: what the app sent to PostgreSQL, and the WAL it wrote. */
  perRequest: { statements: number; transactions: number; sessionReads: number; sessionWrites: number; walBytes: number };
}

interface CycleCounters {
  cycles: number;
  unexpected: number;
  /** What the unexpected answers were, e.g. 'start: 303 /vehicles'. */
  reasons: Record<string, number>;
}

/** Counts an answer the cycle did not expect, by what it was. */
const countUnexpected = (counters: CycleCounters) => (reason: string) => {
  counters.unexpected += 1;
  counters.reasons[reason] = (counters.reasons[reason] ?? 0) + 1;
};

function cycleRequests(prefix: string, byCookie: Map<string, Session>, counters: CycleCounters): autocannon.Request[] {
  const ridesPath = `${prefix}/rides`;
  const location = (headers: Record<string, unknown> | undefined) => headers?.location ?? headers?.Location;
  const riderOf = (request: autocannon.Request) => byCookie.get(String(request.headers?.cookie ?? ''));
  type Context = { rideId?: string };
  const unexpected = countUnexpected(counters);
  return [
    {
      method: 'POST',
      // Before setupClient gives the connection its cookie, autocannon builds this once: any request will do.
      setupRequest: (request) => {
        const session = riderOf(request);
        if (!session) return { ...request, path: ridesPath, method: 'GET' };
        return {
          ...request,
          path: `${prefix}/rides/start/${session.vehicleId}`,
          headers: { ...request.headers, 'content-type': FORM },
          body: `_csrf=${encodeURIComponent(session.csrf)}`,
        };
      },
      onResponse: (status, _body, _context, headers) => {
        if (status !== 303 || location(headers) !== ridesPath) unexpected(`start: ${status} ${String(location(headers) ?? '')}`);
      },
    },
    {
      method: 'GET',
      setupRequest: (request) => ({ ...request, path: ridesPath }),
      onResponse: (status, body, context: Context) => {
        const id = status === 200 ? (prefix ? body.trim() : body.match(/action="\/rides\/end\/([0-9a-f-]{36})"/)?.[1]) : undefined;
        if (id && id !== '-') context.rideId = id;
        else unexpected(`rides page: ${status}${status === 200 ? ' with no ride to end' : ''}`);
      },
    },
    {
      method: 'POST',
      setupRequest: (request, context: Context) => {
        const session = riderOf(request);
        if (!session || !context.rideId) return undefined as unknown as autocannon.Request; // start the cycle again
        return {
          ...request,
          path: `${prefix}/rides/end/${context.rideId}`,
          headers: { ...request.headers, 'content-type': FORM },
          body: `_csrf=${encodeURIComponent(session.csrf)}&location=${encodeURIComponent('12 Bench Street')}`,
        };
      },
      onResponse: (status, _body, _context, headers) => {
        if (status === 303 && location(headers) === ridesPath) counters.cycles += 1;
        else unexpected(`end: ${status} ${String(location(headers) ?? '')}`);
      },
    },
  ];
}

/** The cycle over the API: POST /api/v1/rides, then POST /api/v1/rides/:id/end with the id it answered. */
function apiCycleRequests(byToken: Map<string, Session>, counters: CycleCounters): autocannon.Request[] {
  const riderOf = (request: autocannon.Request) => byToken.get(String(request.headers?.authorization ?? ''));
  type Context = { rideId?: string };
  const unexpected = countUnexpected(counters);
  return [
    {
      method: 'POST',
      setupRequest: (request) => {
        const session = riderOf(request);
        if (!session) return { ...request, path: '/api/v1/cities', method: 'GET' };
        return { ...request, path: '/api/v1/rides', headers: { ...request.headers, 'content-type': 'application/json' }, body: JSON.stringify({ vehicle_id: session.vehicleId }) };
      },
      onResponse: (status, body, context: Context) => {
        context.rideId = status === 201 ? (JSON.parse(body) as { id: string }).id : undefined;
        if (!context.rideId) unexpected(`start: ${status}`);
      },
    },
    {
      method: 'POST',
      setupRequest: (request, context: Context) => {
        if (!riderOf(request) || !context.rideId) return undefined as unknown as autocannon.Request; // start the cycle again
        return { ...request, path: `/api/v1/rides/${context.rideId}/end`, headers: { ...request.headers, 'content-type': 'application/json' }, body: JSON.stringify({ location: '12 Bench Street' }) };
      },
      onResponse: (status) => {
        if (status === 200) counters.cycles += 1;
        else unexpected(`end: ${status}`);
      },
    },
  ];
}

function fire(options: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    running = autocannon(options, (error, result) => {
      running = undefined;
      if (error) reject(error);
      else resolve(result);
    });
  });
}

async function runRound(server: ServerProcess, workers: number, postmaster: number, client: pg.Client, spec: RoundSpec, seconds: number, measure: boolean): Promise<RoundResult | undefined> {
  checkAborted();
  const counters: CycleCounters = { cycles: 0, unexpected: 0, reasons: {} };
  const sessions = spec.sessions ?? [];
  let next = 0;
  const options: autocannon.Options = {
    connections: spec.connections,
    duration: seconds,
    timeout: 10,
    headers: { ...PROXY_HEADERS, ...(spec.cookie ? { cookie: spec.cookie } : {}) },
    ...(sessions.length
      ? {
          setupClient: (client) => {
            const session = sessions[next++ % sessions.length]!;
            client.setHeaders({ ...PROXY_HEADERS, ...(spec.api ? { authorization: `Bearer ${session.token}` } : { cookie: session.cookie }) });
          },
        }
      : {}),
    ...(spec.path
      ? { url: server.url + spec.path }
      : spec.api
        ? { url: server.url, requests: apiCycleRequests(new Map(sessions.map((s) => [`Bearer ${s.token}`, s])), counters) }
        : { url: server.url, requests: cycleRequests(spec.kind === 'floor' ? FLOOR : '', new Map(sessions.map((s) => [s.cookie, s])), counters) }),
  };
  if (!measure) {
    await fire(options);
    return undefined;
  }
  const pid = server.child.pid!;
  const workerPids = servingPids(pid);
  const peakReset = workerPids.map(resetPeak).every(Boolean);
  const polledPeak = new Map(workerPids.map((worker) => [worker, memoryKiB(worker).rss]));
  const poll = setInterval(() => {
    for (const worker of workerPids) {
      try {
        polledPeak.set(worker, Math.max(polledPeak.get(worker) ?? 0, memoryKiB(worker).rss));
      } catch {
        // exited; the round will show it
      }
    }
  }, 100);
  const countsBefore = await statementCounts(server);
  const walBefore = await walBytes(client);
  const before = { node: treeCpuSeconds(pid), pg: treeCpuSeconds(postmaster), us: process.cpuUsage(), busy: machineBusySeconds(), at: performance.now() };
  let result: autocannon.Result;
  try {
    result = await fire(options);
  } finally {
    clearInterval(poll);
  }
  const wall = (performance.now() - before.at) / 1000;
  const usage = process.cpuUsage(before.us);
  const cpu = { node: treeCpuSeconds(pid) - before.node, pg: treeCpuSeconds(postmaster) - before.pg, gen: (usage.user + usage.system) / 1e6 };
  const others = Math.max(0, machineBusySeconds() - before.busy - cpu.node - cpu.pg - cpu.gen);
  const peakKiB = Math.max(...workerPids.map((worker) => Math.max(polledPeak.get(worker) ?? 0, peakReset ? memoryKiB(worker).hwm : 0)));
  const countsAfter = await statementCounts(server);
  const walAfter = await walBytes(client);
  const retries = countsAfter.retries - countsBefore.retries;

  const statusCounts: Record<string, number> = {};
  for (const [code, { count = 0 } = {}] of Object.entries(result.statusCodeStats ?? {})) statusCounts[code] = count;
  const responses = Object.values(statusCounts).reduce((a, b) => a + b, 0);
  const unexpectedStatus = spec.path ? responses - (statusCounts['200'] ?? 0) : counters.unexpected;
  const percent = (s: number) => Math.round((s / wall) * 1000) / 10;
  const perRequest = (s: number) => Math.round(((s * 1000) / Math.max(1, responses)) * 100) / 100;
  // Requests still in flight when autocannon stopped add a little to these counts.
  const countPerRequest = (key: Exclude<keyof StatementCounts, 'pids'>) => Math.round(((countsAfter[key] - countsBefore[key]) / Math.max(1, responses)) * 100) / 100;
  return {
    round: spec.key,
    name: spec.name,
    kind: spec.kind,
    workers,
    connections: spec.connections,
    durationS: result.duration,
    requests: responses,
    requestsPerS: Math.round((responses / result.duration) * 10) / 10,
    ...(spec.path ? {} : { cyclesPerS: Math.round((counters.cycles / result.duration) * 10) / 10, unexpected: counters.reasons }),
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
    errors: unexpectedStatus + result.errors,
    statusCounts,
    connectionErrors: result.errors,
    timeouts: result.timeouts,
    transactionRetries: retries,
    server: { peakRssMiB: Math.round(peakKiB / 102.4) / 10, cpuPercent: percent(cpu.node), cpuMsPerRequest: perRequest(cpu.node) },
    postgresCpuPercent: percent(cpu.pg),
    postgresCpuMsPerRequest: perRequest(cpu.pg),
    loadGeneratorCpuPercent: percent(cpu.gen),
    otherCpuPercent: percent(others),
    perRequest: {
      statements: countPerRequest('statements'),
      transactions: countPerRequest('transactions'),
      sessionReads: countPerRequest('sessionReads'),
      sessionWrites: countPerRequest('sessionWrites'),
      walBytes: Math.round((walAfter - walBefore) / Math.max(1, responses)),
    },
  };
}

/** Ends the cyclists' rides a round left going (it stops mid-cycle), so the next round starts clean. */
async function endOpenRides(database: MovrDatabase, riders: BenchRider[]): Promise<void> {
  const ids = riders.map((rider) => rider.id);
  // A request still in flight when the round stopped may conflict (SERIALIZABLE): the app's retry wrapper retries it.
  await runStatement(database, (db) =>
    sql`WITH ended AS (
          UPDATE rides SET end_time = now(), length = now() - start_time, end_location = 'bench reset'
          WHERE end_time IS NULL AND rider_id = ANY(${ids}::uuid[]) RETURNING city, vehicle_id, id),
        freed AS (
          UPDATE users SET active_ride_city = NULL, active_ride_id = NULL FROM ended
          WHERE users.active_ride_city = ended.city AND users.active_ride_id = ended.id RETURNING users.id)
        UPDATE vehicles SET status = 'available' FROM ended
        WHERE vehicles.city = ended.city AND vehicles.id = ended.vehicle_id AND vehicles.status = 'in_use'`.execute(db),
  );
}

/**
 * The same starting point for every round: no ride left going, no anonymous session left by the /login rounds
 * (each of their requests stores one), and a checkpoint, so no round pays for the previous one's writes.
 */
async function settle(client: pg.Client, database: MovrDatabase, cyclists: BenchRider[]): Promise<void> {
  await endOpenRides(database, cyclists);
  await client.query(`DELETE FROM sessions WHERE sess::jsonb -> 'passport' IS NULL`);
  await client.query('VACUUM (ANALYZE) sessions');
  await client.query('CHECKPOINT');
}

// ---- the bare floor's pages

interface BarePage {
  statements: { text: string; values: unknown[] }[];
  body: string;
}

/** The statements the app's own code sends for `work`, as pg receives them. */
async function recordStatements(work: () => Promise<unknown>): Promise<BarePage['statements']> {
  const statements: BarePage['statements'] = [];
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [first, values] = args as [string | { text: string; values?: unknown[] }, unknown[] | undefined];
    statements.push(typeof first === 'string' ? { text: first, values: values ?? [] } : { text: first.text, values: first.values ?? [] });
    return original.apply(this, args);
  } as typeof pg.Client.prototype.query;
  try {
    await work();
  } finally {
    pg.Client.prototype.query = original as typeof pg.Client.prototype.query;
  }
  return statements;
}

/**
 * Each page's SQL for one rider, from the app's code (the session read, then the page's reads), and its body as
 * the app renders it: what the bare floor replays and writes.
 */
async function barePages(database: MovrDatabase, url: string, session: Session, visitor: string): Promise<Record<string, BarePage>> {
  const signed = decodeURIComponent(session.cookie.match(/(?:^|; )movr\.sid=([^;]+)/)?.[1] ?? '');
  const sid = signed.slice(2, signed.lastIndexOf('.'));
  const store = new DatabaseSessionStore(database);
  const movr = new MovR(database);
  // A logged-in page's session read, then the riding bar's ride (web/middleware/locals.ts).
  const sessionRead = [
    ...(await recordStatements(
      () => new Promise((resolve, reject) => store.get(sid, (error, value) => (error || !value ? reject(error ?? new Error('no session')) : resolve(value)))),
    )),
    ...(await recordStatements(() => movr.getActiveRide(session.rider))),
  ];
  const body = async (page: string, cookie: string) => {
    const response = await fetch(`${url}${page}`, { headers: { ...PROXY_HEADERS, cookie }, redirect: 'manual' });
    if (response.status !== 200) throw new Error(`GET ${page} answered ${response.status}`);
    return response.text();
  };
  return {
    '/login': { statements: [], body: await body('/login', visitor) },
    '/vehicles': { statements: [...sessionRead, ...(await recordStatements(() => movr.getVehicles(session.rider.city, 1)))], body: await body('/vehicles', session.cookie) },
    '/rides': { statements: [...sessionRead, ...(await recordStatements(() => movr.getRides(session.rider)))], body: await body('/rides', session.cookie) },
  };
}

// ---- output

const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : '');

function table(results: RoundResult[]): string {
  const header = ['round', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'peak RSS MiB/worker', 'node ms/req', 'pg ms/req', 'SQL/req', 'sess w/req', 'WAL B/req', 'other CPU %', 'retries', 'req/s ÷ floor', 'req/s ÷ bare', 'node ms × floor', 'node ms × bare'];
  const find = (round: RoundKey, kind: RoundKind) => results.find((r) => r.round === round && r.kind === kind);
  const rows = results.map((r) => {
    const floor = r.kind === 'page' ? find(r.round, 'floor') : undefined;
    const bare = r.kind === 'page' ? find(r.round, 'bare') : undefined;
    const name = r.kind === 'page' ? r.name + (r.cyclesPerS !== undefined ? ` (${r.cyclesPerS} cycles/s)` : '') : `  ${r.kind} ${r.round}`;
    return [
      name, r.requestsPerS.toFixed(0), r.latencyMs.p50.toFixed(0), r.latencyMs.p99.toFixed(0), String(r.errors), r.server.peakRssMiB.toFixed(0),
      r.server.cpuMsPerRequest.toFixed(2), r.postgresCpuMsPerRequest.toFixed(2), r.perRequest.statements.toFixed(2), r.perRequest.sessionWrites.toFixed(2),
      String(r.perRequest.walBytes), r.otherCpuPercent.toFixed(0), String(r.transactionRetries),
      ratio(r.requestsPerS, floor?.requestsPerS), ratio(r.requestsPerS, bare?.requestsPerS),
      ratio(r.server.cpuMsPerRequest, floor?.server.cpuMsPerRequest), ratio(r.server.cpuMsPerRequest, bare?.server.cpuMsPerRequest),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const mib = (kib: number) => Math.round(kib / 102.4) / 10;

// ---- main

async function main() {
  const started = Date.now();
  const info = machine();
  const loadAtStart = os.loadavg();
  console.log(`MovR bench${quick ? ' (quick)' : ''}: ${info.nproc} cores, ${info.cpu}, ${info.memoryGiB} GiB, node ${info.node}, load ${loadAtStart.map((l) => l.toFixed(1)).join(' ')}`);
  const scripts = buildServers();

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'movr-bench-'));
  // As root the embedded server runs as `postgres`, which must traverse this directory (mkdtemp makes it 0700).
  chmodSync(dataDir, 0o755);
  let embedded: EmbeddedPostgres | undefined;
  cleanups.push(() => {
    rmSync(dataDir, { recursive: true, force: true });
    if (embedded && !embedded.clusterDir.startsWith(dataDir)) rmSync(embedded.clusterDir, { recursive: true, force: true });
  });
  embedded = await startEmbeddedPostgres({ dataDir, port: await findFreePort(20_000 + Math.floor(Math.random() * 10_000)) });
  const pgServer = embedded;
  cleanups.push(() => pgServer.stop());
  checkAborted();
  const postmaster = Number(readFileSync(path.join(embedded.clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

  const database = await openDatabase({ connectionString: embedded.connectionString });
  cleanups.push(() => database.close());
  await migrateToLatest(database.kysely);
  const client = new pg.Client({ connectionString: embedded.connectionString });
  await client.connect();
  cleanups.push(() => client.end());
  const postgresVersion = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  console.log(`PostgreSQL ${postgresVersion}; loading ${sizes.users} users, ${sizes.vehicles} vehicles, ${sizes.rides} rides…`);
  const data: BenchData = await loadBenchData(client, sizes);
  console.log(`loaded in ${data.seconds.toFixed(1)} s (${data.activeRides} rides going on)`);
  checkAborted();

  const results: RoundResult[] = [];
  /** idleRssMiB on listening; settledRssMiB after the rounds and idleWaitS without requests (what a quiet pod keeps). */
  const memory: { workers: number; idleRssMiB: number[]; bareIdleRssMiB: number[]; settledRssMiB?: number[]; settledAfterS?: number }[] = [];
  // Sessions live in the database and are signed with the same key, so one log-in serves every server.
  let riders: { heavy: Session[]; cyclists: Session[]; visitor: string; bare: Record<string, BarePage>; specFile: string } | undefined;
  for (const workers of workerCounts) {
    const server = await startServer(scripts.app, dataDir, embedded.connectionString, workers);
    const idleRssMiB = servingPids(server.child.pid!).map((pid) => mib(memoryKiB(pid).rss));
    if (!riders) {
      const heavy = await withTokens(database, await logInAll(server.url, data.heavyRiders.slice(0, connections)));
      const cyclists = await withTokens(database, await logInAll(server.url, data.cyclists.slice(0, cycleConnections), (c) => ({ vehicleId: c.vehicleId })));
      const visitor = await visitorCookie(server.url);
      const bare = await barePages(database, server.url, heavy[0]!, visitor);
      const specFile = path.join(dataDir, 'bare-pages.json');
      writeFileSync(specFile, JSON.stringify(bare));
      riders = { heavy, cyclists, visitor, bare, specFile };
      console.log(`${heavy.length + cyclists.length} riders logged in; bare floor: ${Object.entries(bare).map(([page, { statements, body }]) => `${page} ${statements.length} statements, ${body.length} B`).join('; ')}`);
    }
    const bareServer = await startServer(scripts.bare, dataDir, embedded.connectionString, workers, { BENCH_BARE_SPEC: riders.specFile });
    const other = compareDir ? await startServer(scripts.app, dataDir, embedded.connectionString, workers, {}, compareDir) : undefined;
    const bareIdleRssMiB = servingPids(bareServer.child.pid!).map((pid) => mib(memoryKiB(pid).rss));
    const memoryOfThese: (typeof memory)[number] = { workers, idleRssMiB, bareIdleRssMiB };
    memory.push(memoryOfThese);
    console.log(`\n${workers} worker${workers > 1 ? 's' : ''} at ${server.url}: idle RSS per worker ${idleRssMiB.join(', ')} MiB (bare ${bareIdleRssMiB.join(', ')} MiB); rounds of ${durationS} s after ${warmupS} s warm-up`);

    const { heavy, cyclists, visitor } = riders;
    const specs: RoundSpec[] = [];
    const all = (spec: Omit<RoundSpec, 'kind'>, floorPath?: string) => {
      if (kinds.includes('page')) specs.push({ ...spec, kind: 'page' });
      // --quick keeps the cycle's floor out, to stay under a minute.
      if (kinds.includes('floor') && (spec.path || !quick)) specs.push({ ...spec, kind: 'floor', ...(floorPath ? { path: floorPath } : {}) });
      if (spec.path && kinds.includes('bare')) specs.push({ ...spec, kind: 'bare' });
    };
    if (selected.includes('login')) all({ key: 'login', name: 'GET /login (anonymous)', connections, path: '/login', cookie: visitor }, `${FLOOR}/login`);
    if (selected.includes('vehicles')) all({ key: 'vehicles', name: 'GET /vehicles (50 cards)', connections, path: '/vehicles', sessions: heavy }, `${FLOOR}/vehicles`);
    if (selected.includes('rides')) all({ key: 'rides', name: `GET /rides (${RIDES_PER_HEAVY} rides)`, connections, path: '/rides', sessions: heavy }, `${FLOOR}/rides`);
    if (selected.includes('cycle')) all({ key: 'cycle', name: 'start/end ride cycle', connections: cyclists.length, sessions: cyclists });
    // The API's rounds have no floors: the pages' floors already measure the middleware and SQL they share.
    if (selected.includes('api-vehicles') && kinds.includes('page')) {
      specs.push({ key: 'api-vehicles', name: 'GET /api/v1/vehicles (50 items)', kind: 'page', connections, path: '/api/v1/vehicles', sessions: heavy, api: true });
    }
    if (selected.includes('api-cycle') && kinds.includes('page')) {
      specs.push({ key: 'api-cycle', name: 'API start/end ride cycle', kind: 'page', connections: cyclists.length, sessions: cyclists, api: true });
    }

    const these: RoundResult[] = [];
    // A build from before the API would answer its rounds with 404s: those rounds run on this build alone.
    const otherServesApi = other ? (await fetch(`${other.url}/api/v1/cities`)).status === 200 : false;
    // With --compare, each page round runs on both builds in turn, `repeat` times: the name says which build.
    const variants = (spec: RoundSpec) =>
      spec.kind === 'page' && other && (!spec.api || otherServesApi)
        ? Array.from({ length: repeat }, () => [
            { spec: { ...spec, name: `${spec.name} [${path.basename(path.dirname(appDir))}]` }, target: server },
            { spec: { ...spec, name: `${spec.name} [${path.basename(path.dirname(compareDir!))}]` }, target: other },
          ]).flat()
        : Array.from({ length: repeat }, () => ({ spec, target: spec.kind === 'bare' ? bareServer : server }));
    for (const { spec, target } of specs.flatMap(variants)) {
      const label = spec.kind === 'page' ? spec.name : `${spec.kind} ${spec.key}`;
      await settle(client, database, data.cyclists);
      if (warmupS > 0) await runRound(target, workers, postmaster, client, spec, warmupS, false);
      // autocannon stops without waiting for the answers in flight: let them land before ending their rides.
      if (isCycle(spec.key)) await sleep(1000);
      if (isCycle(spec.key)) await endOpenRides(database, data.cyclists);
      const result = (await runRound(target, workers, postmaster, client, spec, durationS, true))!;
      these.push(result);
      console.log(`${label.padEnd(36)} ${result.requestsPerS.toFixed(0).padStart(6)} req/s  node ${result.server.cpuMsPerRequest.toFixed(2)} + pg ${result.postgresCpuMsPerRequest.toFixed(2)} ms/req  p99 ${result.latencyMs.p99} ms  errors ${result.errors}`);
      if (target.child.exitCode !== null) throw new Error(`the bench server exited:\n${tail(target.logFile)}`);
      if (isCycle(spec.key)) await sleep(1000); // requests in flight when autocannon stopped
    }
    results.push(...these);
    console.log(`\n${workers} worker${workers > 1 ? 's' : ''}:\n${table(these)}\n`);
    if (idleWaitS > 0) {
      await sleep(idleWaitS * 1000);
      checkAborted();
      memoryOfThese.settledRssMiB = servingPids(server.child.pid!).map((pid) => mib(memoryKiB(pid).rss));
      memoryOfThese.settledAfterS = idleWaitS;
      console.log(`idle RSS per worker after the rounds and ${idleWaitS} s without requests: ${memoryOfThese.settledRssMiB.join(', ')} MiB\n`);
    }
    await Promise.all([server.stop(), bareServer.stop(), other?.stop()]);
  }

  console.log('floor: the same middleware and SQL sending a fixed string; bare: node:http sending the same SQL through pg and');
  console.log('the page as rendered once. req/s ÷ floor: the page\'s share of its floor\'s rate; node ms × floor: its CPU as a multiple.');
  console.log('ms/req: CPU time per response, node = the app (every worker), pg = all PostgreSQL processes (steadier than req/s on');
  console.log('shared cores). SQL/req: statements the app sent per response; sess w/req: session rows written; WAL B/req: WAL bytes.');
  console.log('other CPU %: what everything else on the machine took (of one core); retries: transactions retried after a 40001.');
  const pages = results.filter((r) => r.kind === 'page' && !isCycle(r.round));
  if (repeat > 1) {
    const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor((values.length - 1) / 2)]!;
    console.log('\nmedian of the repeats (node + pg CPU ms per request, req/s):');
    for (const name of new Set(pages.map((r) => `${r.workers}w ${r.name}`))) {
      const runs = pages.filter((r) => `${r.workers}w ${r.name}` === name);
      console.log(`  ${name.padEnd(44)} ${median(runs.map((r) => r.server.cpuMsPerRequest)).toFixed(2)} + ${median(runs.map((r) => r.postgresCpuMsPerRequest)).toFixed(2)} ms  ${median(runs.map((r) => r.requestsPerS)).toFixed(0)} req/s  (node ${runs.map((r) => r.server.cpuMsPerRequest.toFixed(2)).join(' ')})`);
    }
  }
  if (workerCounts.length > 1) {
    console.log(`\nreq/s by workers: ${[...new Set(pages.map((r) => r.name))].map((name) => `${name} ${pages.filter((r) => r.name === name).map((r) => `${r.workers}w ${r.requestsPerS.toFixed(0)}`).join(' / ')}`).join('; ')}`);
  }
  const report = {
    label: args.label ?? null,
    at: new Date(started).toISOString(),
    totalSeconds: Math.round((Date.now() - started) / 100) / 10,
    git: gitState(),
    machine: { ...info, postgres: postgresVersion, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg() },
    options: { appDir: path.relative(ROOT, appDir), kinds, quick, durationS, warmupS, connections, cycleConnections, workers: workerCounts, poolSize: poolSize ?? 'app default (10)', logLevel: args['log-level'], nodeEnv: 'production' },
    dataset: { ...sizes, activeRides: data.activeRides, loadSeconds: Math.round(data.seconds * 10) / 10 },
    memory,
    rounds: results.map((r) => {
      const floor = results.find((f) => f.kind === 'floor' && f.round === r.round && f.workers === r.workers);
      const bare = results.find((f) => f.kind === 'bare' && f.round === r.round && f.workers === r.workers);
      if (r.kind !== 'page') return r;
      return {
        ...r,
        ...(floor ? { ofFloor: { requestsPerS: Number(ratio(r.requestsPerS, floor.requestsPerS)), cpuMsPerRequest: Number(ratio(r.server.cpuMsPerRequest, floor.server.cpuMsPerRequest)) } } : {}),
        ...(bare ? { ofBare: { requestsPerS: Number(ratio(r.requestsPerS, bare.requestsPerS)), cpuMsPerRequest: Number(ratio(r.server.cpuMsPerRequest, bare.server.cpuMsPerRequest)) } } : {}),
      };
    }),
  };
  mkdirSync(path.dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nwritten to ${path.relative(process.cwd(), args.out)}; ${report.totalSeconds} s in all`);
}

main()
  .catch((error: unknown) => {
    if (!aborted) {
      console.error(error);
      process.exitCode = 1;
    }
  })
  .finally(() => cleanup());
