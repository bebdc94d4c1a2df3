import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ROOT, SERVER_JS } from '../support/build.js';
import { freePort, tempDir } from '../support/cluster.js';
import { Browser } from '../support/http-client.js';
import {
  childEnvironment,
  embeddedConnectionString,
  errorsLogged,
  freshDataDir,
  killGroup,
  logLines,
  postmasterPid,
  type ServerProcess,
  startServerProcess,
  testBcryptCost,
} from '../support/server-process.js';

const started: ServerProcess[] = [];
const dataDirs: string[] = [];

after(async () => {
  for (const server of started) killGroup(server.child, 'SIGKILL');
  for (const dir of dataDirs) {
    const pid = postmasterPid(dir) ?? postmasterPid(path.join(dir, '.movr'));
    if (pid) process.kill(pid, 'SIGQUIT');
  }
  await Promise.all(dataDirs.map((dir) => waitUntil(() => !postmasterPid(dir) && !postmasterPid(path.join(dir, '.movr')), 5000).catch(() => {})));
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

async function start(options: Parameters<typeof startServerProcess>[0]) {
  const server = await startServerProcess(options);
  started.push(server);
  return server;
}

function newDataDir() {
  const dir = freshDataDir();
  dataDirs.push(dir);
  return dir;
}

/** Polls `check` every 20 ms until it holds; throws after `timeoutMs`. */
async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what = 'the condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Stops a server as Ctrl-C does and checks what it recorded: stopped, the database too, no error logged, within 10 s. */
async function stop(server: ServerProcess, signal: NodeJS.Signals = 'SIGTERM') {
  const signalledAt = Date.now();
  killGroup(server.child, signal);
  const exit = await server.exited;
  assert.ok(Date.now() - signalledAt < 10_000, `stopped in ${Date.now() - signalledAt} ms`);
  assert.ok(await gone(server.dataDir), 'the embedded database stopped');
  assert.deepEqual(errorsLogged(server), [], 'no error was logged');
  return exit;
}

const gone = (dataDir: string) =>
  waitUntil(() => postmasterPid(dataDir) === undefined, 2000).then(
    () => true,
    () => false,
  );

/** A data directory a server has already made (cluster, demo data) and stopped cleanly: the first test's. */
let served: string | undefined;

/**
 * A copy of a served data directory, for the tests about restarts: their server starts as it restarts,
 * without a first start's initdb and demo data, which the first test covers.
 */
async function servedDataDirCopy(copy = newDataDir()) {
  if (!served) {
    const dir = newDataDir();
    const server = await start({ dataDir: dir });
    assert.equal((await stop(server)).code, 0);
    served = dir;
  }
  mkdirSync(copy, { recursive: true });
  // -a: as root the cluster belongs to `postgres`, and must stay so.
  execFileSync('cp', ['-a', `${served}/.`, copy]);
  return copy;
}

/** The TCP ports a process listens on, as the kernel lists them. */
function listeningPorts(pid: number): number[] {
  const lines = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' }).split('\n');
  return lines.filter((line) => line.includes(`pid=${pid},`)).map((line) => Number(line.trim().split(/\s+/)[3]!.split(':').pop()));
}

/** Whether a new TCP connection to the address is accepted. */
const accepts = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

const DEMO_LOGIN = /Demo login: username "([\w.-]+)", password "([^"]+)"/;

describe('the server process', () => {
  test('when `npm start` runs on an empty data directory, then it loads demo data, prints the URL and the demo login, and a development restart keeps the rider logged in', async () => {
    const dataDir = newDataDir();
    const server = await start({ dataDir, npmStart: true });
    assert.match(server.output(), /MovR is running at http:\/\/127\.0\.0\.1:\d+/);
    const login = server.output().match(DEMO_LOGIN);
    assert.ok(login, 'the demo login is printed');
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    const client = new pg.Client({ connectionString: embeddedConnectionString(dataDir) });
    await client.connect();
    const { rows } = await client.query<{ cities: number; vehicles: number; rides: number }>(
      'SELECT (SELECT count(DISTINCT city) FROM users)::int AS cities, (SELECT count(*) FROM vehicles)::int AS vehicles, (SELECT count(*) FROM rides)::int AS rides',
    );
    // The demo login is hashed at the BCRYPT_COST the server was started with.
    const demoHash = await client.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE username = $1', [login[1]]);
    await client.end();
    assert.match(demoHash.rows[0]!.password_hash, new RegExp(`^v2\\$\\$2b\\$${testBcryptCost()!.padStart(2, '0')}\\$`));
    assert.equal(rows[0]!.cities, 9);
    assert.ok(rows[0]!.vehicles > 0 && rows[0]!.rides > 0);

    const rider = new Browser();
    const loggedIn = await rider.post(`${server.url}/login`, { username: login[1]!, password: login[2]! });
    assert.equal(loggedIn.status, 303);
    assert.equal(loggedIn.location, '/vehicles');

    // Ctrl-C in the terminal: the whole group, npm included.
    await stop(server, 'SIGINT');
    assert.ok(logLines(server).some((line) => line.msg === 'stopped'), 'the server itself logged its clean stop');

    // Restart on the same data: no second copy of the demo data, the same demo login, the same rider still logged in.
    const again = await start({ dataDir });
    assert.equal(again.output().match(DEMO_LOGIN)?.[2], login[2]);
    const page = await rider.get(`${again.url}/vehicles`);
    assert.equal(page.status, 200, 'the session signed before the restart is still valid');
    assert.match(page.text, new RegExp(`${login[1]}`));
    assert.equal((await stop(again)).code, 0);
    served = dataDir;
  });

  test('when Ctrl-C reaches the whole process group twice while a request is held past the real grace, then the request finishes, the database stops and the process exits within 10 s', async () => {
    const dataDir = await servedDataDirCopy();
    // SHUTDOWN_GRACE_MS empty: unset, the real grace operators get.
    const server = await start({ dataDir, env: { SHUTDOWN_GRACE_MS: '' } });
    const port = Number(new URL(server.url).port);
    const rider = new Browser();
    const form = await rider.get(`${server.url}/register`);
    const csrf = form.text.match(/name="_csrf" value="([^"]+)"/)![1]!;

    // A lock this test owns holds the sign-up inside its transaction, for as long as the test wants.
    const blocker = new pg.Client({ connectionString: embeddedConnectionString(dataDir) });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
    const fields = { _csrf: csrf, city: 'rome', first_name: 'In', last_name: 'Flight', email: 'inflight@example.com', username: 'inflight', password: 'password123' };
    let answered = false;
    const inFlight = rider.request(`${server.url}/register`, { method: 'POST', form: fields }).finally(() => (answered = true));
    const waiting = async () =>
      (await blocker.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'movr' AND wait_event_type = 'Lock'`)).rows[0]!.n;
    await waitUntil(async () => (await waiting()) > 0, 10_000, 'the sign-up waiting on the lock');

    const signalledAt = Date.now();
    killGroup(server.child, 'SIGINT');
    await waitUntil(() => logLines(server).some((line) => line.msg === 'shutting down'), 5000, 'the first signal logged');
    killGroup(server.child, 'SIGINT');
    await waitUntil(() => /already shutting down/.test(server.output()), 5000, 'the second signal logged');
    // The grace is over once the listener refuses new connections; the request is still held.
    await waitUntil(async () => !(await accepts('127.0.0.1', port)), 8000, 'the listener closing');
    const graceEndedAfter = Date.now() - signalledAt;
    assert.ok(graceEndedAfter >= 3000, `the real grace (3 s) passed: ${graceEndedAfter} ms`);
    assert.equal(answered, false, 'the sign-up is still in flight after the grace');
    assert.equal(await waiting(), 1, 'still held by the lock');
    assert.ok(postmasterPid(dataDir), 'the database keeps serving while requests drain');
    await blocker.query('COMMIT');
    await blocker.end();

    const response = await inFlight;
    assert.equal(response.status, 303, 'the held sign-up completed');
    assert.equal(response.location, '/vehicles');
    const exit = await server.exited;
    assert.ok(Date.now() - signalledAt < 10_000, `exited ${Date.now() - signalledAt} ms after the signal`);
    assert.equal(exit.code, 0);
    assert.ok(await gone(dataDir), 'the embedded database stopped');
    assert.deepEqual(errorsLogged(server), [], 'no error was logged');
  });

  test('when WEB_CONCURRENCY is 2, then two workers serve the port on one database, /metrics on METRICS_PORT of HOST adds them up, and SIGTERM stops them all and the database within 10 s', async () => {
    const dataDir = await servedDataDirCopy();
    const metricsPort = await freePort();
    // Another loopback address than 127.0.0.1: the metrics must be served on HOST and nowhere else.
    const server = await start({ dataDir, env: { WEB_CONCURRENCY: '2', METRICS_PORT: String(metricsPort), HOST: '127.0.0.2' } });
    assert.match(server.url, /^http:\/\/127\.0\.0\.2:/);
    const workers = execFileSync('pgrep', ['-x', 'node', '-P', String(server.child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    assert.equal(workers.length, 2, `two worker processes: ${workers.join(', ')}`);
    const REQUESTS = 40;
    await Promise.all(Array.from({ length: REQUESTS }, () => fetch(`${server.url}/login`).then((r) => r.text())));
    const metrics = await (await fetch(`http://127.0.0.2:${metricsPort}/metrics`)).text();
    const counted = [...metrics.matchAll(/^movr_http_request_duration_seconds_count\{[^}]*route="\/login"[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(counted, REQUESTS, "the primary sums the workers' counts");
    assert.equal((await fetch(`${server.url}/metrics`)).status, 404, "never on the riders' port");
    assert.equal(await accepts('127.0.0.1', metricsPort), false, 'not on another address than HOST');

    assert.equal((await stop(server)).code, 0);
    for (const pid of workers) assert.throws(() => process.kill(Number(pid), 0), `worker ${pid} is gone`);
  });

  test('when started from a project whose .env sets REGION and MOVR_DATA_DIR is empty, then it reads .env and keeps its data in the project\'s .movr/', async () => {
    // A copy of the project (the built app, its views and files): the default data directory is its own .movr/.
    const project = tempDir('movr-project-');
    dataDirs.push(project);
    for (const entry of ['dist', 'views', 'public', 'package.json']) cpSync(path.join(ROOT, entry), path.join(project, entry), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(project, 'node_modules'));
    await servedDataDirCopy(path.join(project, '.movr'));
    writeFileSync(path.join(project, '.env'), 'REGION=gcp-europe-west1\n');
    const server = await start({ dataDir: '', cwd: project, env: { MOVR_DATA_DIR: '', REGION: undefined } });
    const page = await fetch(`${server.url}/login`);
    assert.match(page.headers.get('server-timing') ?? '', /region;desc="gcp-europe-west1"/, 'REGION from .env');
    const clusterDirs = logLines(server).flatMap((line) => (typeof line.clusterDir === 'string' ? [line.clusterDir] : []));
    assert.deepEqual(clusterDirs, [path.join(project, '.movr', 'postgres')], "the embedded database runs in the project's .movr/");
    assert.ok(postmasterPid(path.join(project, '.movr')));
    assert.equal((await stop({ ...server, dataDir: path.join(project, '.movr') })).code, 0);
  });

  test('when METRICS_PORT is 0 and the app is SIGKILLed, its database left running, then it listened on PORT only, and the next start on the same data works', async () => {
    const dataDir = await servedDataDirCopy();
    const first = await start({ dataDir, env: { METRICS_PORT: '0' } });
    assert.deepEqual(listeningPorts(first.child.pid!), [Number(new URL(first.url).port)], 'no metrics port');
    const orphan = postmasterPid(dataDir);
    assert.ok(orphan);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(postmasterPid(dataDir), orphan, 'SIGKILL leaves the detached database running');

    const second = await start({ dataDir });
    assert.equal((await fetch(`${second.url}/readyz`)).status, 200);
    assert.notEqual(postmasterPid(dataDir), orphan);
    assert.equal((await stop(second)).code, 0);
  });

  test('when the app and its database were both SIGKILLed, then the next start recovers; with METRICS_PORT unset, /metrics is on 9464 of HOST', async () => {
    const dataDir = await servedDataDirCopy();
    const first = await start({ dataDir });
    const pid = postmasterPid(dataDir)!;
    first.child.kill('SIGKILL');
    process.kill(pid, 'SIGKILL');
    await first.exited;
    await waitUntil(() => postmasterPid(dataDir) === undefined, 5000, 'the database gone');

    // Another loopback address than the other tests' 127.0.0.1, where the default port is this server's alone.
    const second = await start({ dataDir, env: { METRICS_PORT: '', HOST: '127.0.0.3' } });
    assert.equal((await fetch(`${second.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${second.url}/login`)).status, 200);
    const metrics = await fetch('http://127.0.0.3:9464/metrics');
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^movr_http_request_duration_seconds_count\{[^}]*route="\/login"[^}]*\} 1$/m);
    assert.deepEqual(listeningPorts(second.child.pid!).sort(), [9464, Number(new URL(second.url).port)].sort());
    assert.equal((await stop(second)).code, 0);
  });

  test('when production settings are missing, then it exits at boot naming every problem', () => {
    const result = spawnSync(process.execPath, [SERVER_JS], {
      env: { ...childEnvironment(), NODE_ENV: 'production', DB_URI: '', SECRET_KEY: 'short', MOVR_DATA_DIR: newDataDir() },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(result.status, 78, 'EX_CONFIG');
    assert.match(result.stderr, /DB_URI/);
    assert.match(result.stderr, /SECRET_KEY/);
  });
});
