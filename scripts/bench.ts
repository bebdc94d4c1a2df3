import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { sql } from 'kysely';
import pg from 'pg';
import { type MovrDatabase, openDatabase } from '../src/db/database.js';
import { type EmbeddedPostgres, findFreePort, startEmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { runStatement } from '../src/db/transaction.js';
import { BENCH_PASSWORD, type BenchData, type BenchRider, FULL_SIZES, loadBenchData, QUICK_SIZES } from './bench-data.js';

/**
 * `npm run bench [-- --quick] [-- --pool N] [-- --rounds vehicles,rides] [-- --label before]`
 *
 * Starts a fresh embedded PostgreSQL under os.tmpdir(), loads a realistic data set with bulk SQL
 * (scripts/bench-data.ts), runs the app in a child process (scripts/bench-server.ts: the real app plus floor
 * handlers) on a free loopback port, and drives it with autocannon for fixed-length rounds:
 *
 *   login     anonymous GET /login (a new visitor each request: no cookie kept)
 *   vehicles  logged-in GET /vehicles, each connection a different rider's session
 *   rides     logged-in GET /rides of riders with 50 rides each
 *   cycle     POST /rides/start/:vehicleId, GET /rides (the redirect a browser follows, which shows the ride
 *             to end), POST /rides/end/:rideId; each connection a different rider with its own vehicle
 *
 * Each page is followed by its floor: the same MovR call behind the same middleware, sending a fixed string.
 * Results go to stdout and to test-output/bench.json. Everything started is stopped on exit, error or Ctrl-C.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FLOOR = '/__bench/floor';
const FORM = 'application/x-www-form-urlencoded';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    pool: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    'cycle-connections': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    label: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(ROOT, 'test-output/bench.json') },
    help: { type: 'boolean', default: false },
  },
});

if (args.help) {
  console.log(`usage: npm run bench -- [--quick] [--pool N] [--rounds login,vehicles,rides,cycle] [--duration S] [--warmup S]
  [--connections N] [--cycle-connections N] [--log-level info] [--label TEXT] [--out FILE]
  [--cpu-prof]   the server writes a V8 CPU profile to test-output/profiles/ (open it in Chrome DevTools)`);
  process.exit(0);
}

const quick = args.quick;
const sizes = quick ? QUICK_SIZES : FULL_SIZES;
const durationS = Number(args.duration ?? (quick ? 2.5 : 15));
const warmupS = Number(args.warmup ?? (quick ? 0.5 : 3));
const connections = Number(args.connections ?? 20);
const cycleConnections = Number(args['cycle-connections'] ?? 50);
const poolSize = args.pool ? Number(args.pool) : undefined;
const ROUND_KEYS = ['login', 'vehicles', 'rides', 'cycle'] as const;
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

/** The postmaster and its live children (backends, background workers). */
function postgresCpuSeconds(postmaster: number): number {
  let total = cpuSeconds(postmaster, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) total += cpuSeconds(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
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
}

interface StatementCounts {
  statements: number;
  transactions: number;
  sessionReads: number;
  sessionWrites: number;
  /** The app's retries after a 40001, from its TransactionStats. */
  retries: number;
}

/** The bench server's counts of what the app sent to the database (scripts/bench-server.ts), over IPC. */
function statementCounts(server: ServerProcess): Promise<StatementCounts> {
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

async function startServer(dataDir: string, connectionString: string): Promise<ServerProcess> {
  const port = await findFreePort(20_000 + Math.floor(Math.random() * 10_000));
  const logFile = path.join(dataDir, 'server.log');
  const log = openSync(logFile, 'a');
  const profile = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'test-output/profiles')}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(ROOT, 'scripts/bench-server.ts')], {
    cwd: ROOT,
    stdio: ['ignore', log, log, 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'development',
      DB_URI: connectionString,
      PORT: String(port),
      HOST: '127.0.0.1',
      SECRET_KEY: 'bench-secret-that-is-long-enough-0123456789',
      MOVR_DATA_DIR: dataDir,
      LOG_LEVEL: args['log-level'],
      BENCH_POOL_SIZE: poolSize ? String(poolSize) : '',
    },
  });
  closeSync(log);
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL');
  process.on('exit', killOnExit);
  cleanups.push(async () => {
    process.off('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(6000).then(() => false)]))) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    checkAborted();
    if (child.exitCode !== null) throw new Error(`the bench server exited during start:\n${tail(logFile)}`);
    if (Date.now() > deadline) throw new Error(`the bench server did not answer within 60 s:\n${tail(logFile)}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { child, url, logFile };
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
}

/** Keeps the cookies a response sets, as a browser does (the CSRF cookie, then the session's). */
function keepCookies(jar: Map<string, string>, response: Response): string {
  for (const line of response.headers.getSetCookie()) {
    const pair = line.split(';')[0]!;
    jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
}

const csrfOf = (html: string) => html.match(/name="_csrf" value="([^"]+)"/)?.[1];

/** Logs a rider in through the real form, as a browser does: GET /login, POST /login, then a page for the CSRF token. */
async function logIn(url: string, rider: BenchRider): Promise<Session> {
  const jar = new Map<string, string>();
  const page = await fetch(`${url}/login`, { redirect: 'manual' });
  const loginCsrf = csrfOf(await page.text());
  if (!loginCsrf) throw new Error('GET /login gave no CSRF token');
  const posted = await fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: keepCookies(jar, page), 'content-type': FORM },
    body: new URLSearchParams({ _csrf: loginCsrf, username: rider.username, password: BENCH_PASSWORD }),
  });
  await posted.arrayBuffer();
  if (posted.status !== 303 || !jar.size) throw new Error(`log-in of ${rider.username} answered ${posted.status}`);
  const vehicles = await fetch(`${url}/vehicles`, { headers: { cookie: keepCookies(jar, posted) }, redirect: 'manual' });
  const csrf = csrfOf(await vehicles.text());
  if (vehicles.status !== 200 || !csrf) throw new Error(`GET /vehicles after log-in answered ${vehicles.status}`);
  return { rider, cookie: keepCookies(jar, vehicles), csrf };
}

async function logInAll<T extends BenchRider>(url: string, riders: T[], extra: (rider: T) => Partial<Session> = () => ({})): Promise<Session[]> {
  const sessions: Session[] = [];
  for (let i = 0; i < riders.length; i += 8) {
    checkAborted();
    const batch = await Promise.all(riders.slice(i, i + 8).map((rider) => logIn(url, rider)));
    sessions.push(...batch.map((session, j) => ({ ...session, ...extra(riders[i + j]!) })));
  }
  return sessions;
}

// ---- rounds

interface RoundSpec {
  key: RoundKey;
  name: string;
  floor: boolean;
  connections: number;
  /** A plain GET of one path, or the start/end cycle. */
  path?: string;
  sessions?: Session[];
}

interface RoundResult {
  round: RoundKey;
  name: string;
  floor: boolean;
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

function cycleRequests(prefix: string, byCookie: Map<string, Session>, counters: CycleCounters): autocannon.Request[] {
  const ridesPath = `${prefix}/rides`;
  const location = (headers: Record<string, unknown> | undefined) => headers?.location ?? headers?.Location;
  const riderOf = (request: autocannon.Request) => byCookie.get(String(request.headers?.cookie ?? ''));
  type Context = { rideId?: string };
  const unexpected = (reason: string) => {
    counters.unexpected += 1;
    counters.reasons[reason] = (counters.reasons[reason] ?? 0) + 1;
  };
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

function fire(options: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    running = autocannon(options, (error, result) => {
      running = undefined;
      if (error) reject(error);
      else resolve(result);
    });
  });
}

async function runRound(server: ServerProcess, postmaster: number, client: pg.Client, spec: RoundSpec, seconds: number, measure: boolean): Promise<RoundResult | undefined> {
  checkAborted();
  const counters: CycleCounters = { cycles: 0, unexpected: 0, reasons: {} };
  const sessions = spec.sessions ?? [];
  let next = 0;
  const options: autocannon.Options = {
    connections: spec.connections,
    duration: seconds,
    timeout: 10,
    ...(sessions.length ? { setupClient: (client) => client.setHeaders({ cookie: sessions[next++ % sessions.length]!.cookie }) } : {}),
    ...(spec.path
      ? { url: server.url + spec.path }
      : { url: server.url, requests: cycleRequests(spec.floor ? FLOOR : '', new Map(sessions.map((s) => [s.cookie, s])), counters) }),
  };
  if (!measure) {
    await fire(options);
    return undefined;
  }
  const pid = server.child.pid!;
  const peakReset = resetPeak(pid);
  let polledPeak = memoryKiB(pid).rss;
  const poll = setInterval(() => {
    try {
      polledPeak = Math.max(polledPeak, memoryKiB(pid).rss);
    } catch {
      // exited; the round will show it
    }
  }, 100);
  const countsBefore = await statementCounts(server);
  const walBefore = await walBytes(client);
  const before = { node: cpuSeconds(pid), pg: postgresCpuSeconds(postmaster), us: process.cpuUsage(), busy: machineBusySeconds(), at: performance.now() };
  let result: autocannon.Result;
  try {
    result = await fire(options);
  } finally {
    clearInterval(poll);
  }
  const wall = (performance.now() - before.at) / 1000;
  const usage = process.cpuUsage(before.us);
  const cpu = { node: cpuSeconds(pid) - before.node, pg: postgresCpuSeconds(postmaster) - before.pg, gen: (usage.user + usage.system) / 1e6 };
  const others = Math.max(0, machineBusySeconds() - before.busy - cpu.node - cpu.pg - cpu.gen);
  const peakKiB = Math.max(polledPeak, peakReset ? memoryKiB(pid).hwm : 0);
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
  const countPerRequest = (key: Exclude<keyof StatementCounts, 'retries'>) => Math.round(((countsAfter[key] - countsBefore[key]) / Math.max(1, responses)) * 100) / 100;
  return {
    round: spec.key,
    name: spec.name,
    floor: spec.floor,
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
          WHERE end_time IS NULL AND rider_id = ANY(${ids}::uuid[]) RETURNING city, vehicle_id)
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

// ---- output

function table(results: RoundResult[]): string {
  const header = ['round', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'peak RSS MiB', 'node ms/req', 'pg ms/req', 'SQL/req', 'sess w/req', 'WAL B/req', 'other CPU %', 'retries', 'of floor'];
  const floors = new Map(results.filter((r) => r.floor).map((r) => [r.round, r]));
  const rows = results.map((r) => {
    const floor = floors.get(r.round);
    const ratio = !r.floor && floor ? `${Math.round((r.requestsPerS / floor.requestsPerS) * 100)}%` : '';
    const name = r.floor ? `  floor ${r.round}` : r.name + (r.cyclesPerS !== undefined ? ` (${r.cyclesPerS} cycles/s)` : '');
    return [name, r.requestsPerS.toFixed(0), r.latencyMs.p50.toFixed(0), r.latencyMs.p99.toFixed(0), String(r.errors), r.server.peakRssMiB.toFixed(0), r.server.cpuMsPerRequest.toFixed(2), r.postgresCpuMsPerRequest.toFixed(2), r.perRequest.statements.toFixed(2), r.perRequest.sessionWrites.toFixed(2), String(r.perRequest.walBytes), r.otherCpuPercent.toFixed(0), String(r.transactionRetries), ratio];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// ---- main

async function main() {
  const started = Date.now();
  const info = machine();
  const loadAtStart = os.loadavg();
  console.log(`MovR bench${quick ? ' (quick)' : ''}: ${info.nproc} cores, ${info.cpu}, ${info.memoryGiB} GiB, node ${info.node}`);

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

  const server = await startServer(dataDir, embedded.connectionString);
  const heavy = await logInAll(server.url, data.heavyRiders.slice(0, connections));
  const cyclists = await logInAll(server.url, data.cyclists.slice(0, cycleConnections), (c) => ({ vehicleId: c.vehicleId }));
  const idleRssMiB = Math.round(memoryKiB(server.child.pid!).rss / 102.4) / 10;
  console.log(`server up at ${server.url}, ${heavy.length + cyclists.length} riders logged in, idle RSS ${idleRssMiB} MiB; rounds of ${durationS} s after ${warmupS} s warm-up\n`);

  const specs: RoundSpec[] = [];
  const both = (spec: Omit<RoundSpec, 'floor'>, floorPath?: string) => {
    specs.push({ ...spec, floor: false }, { ...spec, floor: true, ...(floorPath ? { path: floorPath } : {}) });
  };
  if (selected.includes('login')) both({ key: 'login', name: 'GET /login (anonymous)', connections, path: '/login' }, `${FLOOR}/login`);
  if (selected.includes('vehicles')) both({ key: 'vehicles', name: 'GET /vehicles', connections, path: '/vehicles', sessions: heavy }, `${FLOOR}/vehicles`);
  if (selected.includes('rides')) both({ key: 'rides', name: 'GET /rides (50 rides)', connections, path: '/rides', sessions: heavy }, `${FLOOR}/rides`);
  if (selected.includes('cycle')) both({ key: 'cycle', name: 'start/end ride cycle', connections: cyclists.length, sessions: cyclists });

  const results: RoundResult[] = [];
  for (const spec of specs) {
    const label = spec.floor ? `floor ${spec.key}` : spec.name;
    await settle(client, database, data.cyclists);
    if (warmupS > 0) await runRound(server, postmaster, client, spec, warmupS, false);
    // autocannon stops without waiting for the answers in flight: let them land before ending their rides.
    if (spec.key === 'cycle') await sleep(1000);
    if (spec.key === 'cycle') await endOpenRides(database, data.cyclists);
    const result = (await runRound(server, postmaster, client, spec, durationS, true))!;
    results.push(result);
    console.log(`${label.padEnd(28)} ${result.requestsPerS.toFixed(0).padStart(6)} req/s  p50 ${result.latencyMs.p50} ms  p99 ${result.latencyMs.p99} ms  errors ${result.errors}`);
    if (server.child.exitCode !== null) throw new Error(`the bench server exited:\n${tail(server.logFile)}`);
    if (spec.key === 'cycle') await sleep(1000); // requests in flight when autocannon stopped
  }

  console.log(`\n${table(results)}\n`);
  console.log('of floor: the page\'s req/s as a share of its floor (same middleware and SQL, fixed string instead of the page).');
  console.log('ms/req: CPU time per response, node = the app, pg = all PostgreSQL processes (steadier than req/s on shared cores).');
  console.log('SQL/req: statements the app sent per response; sess w/req: session rows written; WAL B/req: WAL bytes written.');
  console.log('other CPU %: what everything else on the machine took (of one core; 2 cores = 200%); the JSON has the app\'s,');
  console.log('PostgreSQL\'s and autocannon\'s too. retries: transactions retried after a serialization failure.');
  const report = {
    label: args.label ?? null,
    at: new Date(started).toISOString(),
    totalSeconds: Math.round((Date.now() - started) / 100) / 10,
    git: gitState(),
    machine: { ...info, postgres: postgresVersion, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg() },
    options: { quick, durationS, warmupS, connections, cycleConnections, poolSize: poolSize ?? 'app default (10)', logLevel: args['log-level'] },
    dataset: { ...sizes, activeRides: data.activeRides, loadSeconds: Math.round(data.seconds * 10) / 10 },
    server: { idleRssMiB },
    rounds: results.map((r) => {
      const floor = results.find((f) => f.floor && f.round === r.round);
      return { ...r, ...(!r.floor && floor ? { ofFloor: Math.round((r.requestsPerS / floor.requestsPerS) * 1000) / 1000 } : {}) };
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
