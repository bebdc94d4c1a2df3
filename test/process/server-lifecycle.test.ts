import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from '../support/cluster.js';
import {
  embeddedConnectionString,
  freshDataDir,
  killGroup,
  postmasterPid,
  type ServerProcess,
  startServerProcess,
} from '../support/server-process.js';

const started: ServerProcess[] = [];
const dataDirs: string[] = [];

after(async () => {
  for (const server of started) killGroup(server.child, 'SIGKILL');
  for (const dir of dataDirs) {
    const pid = postmasterPid(dir);
    if (pid) process.kill(pid, 'SIGQUIT');
  }
  await sleep(200);
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

async function start(dataDir: string) {
  const server = await startServerProcess({ dataDir });
  started.push(server);
  return server;
}

function newDataDir() {
  const dir = freshDataDir();
  dataDirs.push(dir);
  return dir;
}

/** A data directory a server has already made (cluster, demo data) and stopped cleanly: the first test's. */
let served: string | undefined;

/**
 * A copy of a served data directory, for the tests about restarts: their server starts as it restarts,
 * without a first start's initdb and demo data, which the first test covers.
 */
async function servedDataDirCopy() {
  if (!served) {
    const dir = newDataDir();
    const server = await start(dir);
    killGroup(server.child, 'SIGTERM');
    assert.equal((await server.exited).code, 0);
    served = dir;
  }
  const copy = newDataDir();
  // -a: as root the cluster belongs to `postgres`, and must stay so.
  execFileSync('cp', ['-a', `${served}/.`, copy]);
  return copy;
}

async function waitForPostmasterGone(dataDir: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (postmasterPid(dataDir) && Date.now() < deadline) await sleep(50);
  return postmasterPid(dataDir) === undefined;
}

/** The CSRF cookie and token from the sign-up page, for a form post later. */
async function signUpForm(url: string) {
  const page = await fetch(`${url}/register`);
  const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
  const csrf = (await page.text()).match(/name="_csrf" value="([^"]+)"/)![1]!;
  return { cookie, csrf };
}

describe('the server process', () => {
  test('when started on an empty data directory, then it loads demo data and prints the URL and the demo login', async () => {
    const dataDir = newDataDir();
    const server = await start(dataDir);
    assert.match(server.output(), /MovR is running at http:\/\/127\.0\.0\.1:\d+/);
    const login = server.output().match(/Demo login: username "(\w+)", password "([^"]+)"/);
    assert.ok(login, 'the demo login is printed');
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    const client = new pg.Client({ connectionString: embeddedConnectionString(dataDir) });
    await client.connect();
    const { rows } = await client.query<{ cities: number; vehicles: number; rides: number }>(
      'SELECT (SELECT count(DISTINCT city) FROM users)::int AS cities, (SELECT count(*) FROM vehicles)::int AS vehicles, (SELECT count(*) FROM rides)::int AS rides',
    );
    await client.end();
    assert.equal(rows[0]!.cities, 9);
    assert.ok(rows[0]!.vehicles > 0 && rows[0]!.rides > 0);

    killGroup(server.child, 'SIGTERM');
    const exit = await server.exited;
    assert.equal(exit.code, 0);
    assert.ok(await waitForPostmasterGone(dataDir, 2000), 'the embedded database stopped');

    // Restart on the same data: no second copy of the demo data, the same demo login printed.
    const again = await start(dataDir);
    assert.equal(again.output().match(/Demo login: username "(\w+)", password "([^"]+)"/)?.[2], login[2]);
    killGroup(again.child, 'SIGTERM');
    assert.equal((await again.exited).code, 0);
    served = dataDir;
  });

  test('when Ctrl-C reaches the whole process group twice mid-request, then the request finishes, the database stops and the process exits within 10 s', async () => {
    const dataDir = await servedDataDirCopy();
    const server = await start(dataDir);
    const { cookie, csrf } = await signUpForm(server.url);

    // Hold a lock so that the sign-up below is in flight when the signal arrives.
    const blocker = new pg.Client({ connectionString: embeddedConnectionString(dataDir) });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
    const body = new URLSearchParams({ _csrf: csrf, city: 'rome', first_name: 'In', last_name: 'Flight', email: 'inflight@example.com', username: 'inflight', password: 'password123' });
    const inFlight = fetch(`${server.url}/register`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body, redirect: 'manual' });
    await sleep(300);

    const signalledAt = Date.now();
    killGroup(server.child, 'SIGINT');
    await sleep(100);
    killGroup(server.child, 'SIGINT');
    await sleep(400);
    assert.ok(postmasterPid(dataDir), 'the database keeps serving while requests drain');
    await blocker.query('COMMIT');
    await blocker.end();

    const response = await inFlight;
    assert.equal(response.status, 303, 'the in-flight sign-up completed');
    const exit = await server.exited;
    assert.ok(Date.now() - signalledAt < 10_000);
    assert.equal(exit.code, 0);
    assert.ok(await waitForPostmasterGone(dataDir, 2000), 'the embedded database stopped');
    assert.match(server.output(), /already shutting down/);
  });

  test('when WEB_CONCURRENCY is 2, then two workers serve the port on one database, /metrics on METRICS_PORT adds them up, and SIGTERM stops them all and the database within 10 s', async () => {
    const dataDir = await servedDataDirCopy();
    const metricsPort = await freePort();
    const server = await startServerProcess({ dataDir, env: { WEB_CONCURRENCY: '2', METRICS_PORT: String(metricsPort) } });
    started.push(server);
    const workers = execFileSync('pgrep', ['-x', 'node', '-P', String(server.child.pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    assert.equal(workers.length, 2, `two worker processes: ${workers.join(', ')}`);
    const REQUESTS = 40;
    await Promise.all(Array.from({ length: REQUESTS }, () => fetch(`${server.url}/login`).then((r) => r.text())));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const served = [...metrics.matchAll(/^movr_http_request_duration_seconds_count\{[^}]*route="\/login"[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.equal(served, REQUESTS, 'the primary sums the workers\' counts');
    assert.equal((await fetch(`${server.url}/metrics`)).status, 404, 'never on the riders\' port');

    const signalledAt = Date.now();
    killGroup(server.child, 'SIGTERM');
    const exit = await server.exited;
    assert.ok(Date.now() - signalledAt < 10_000, `stopped in ${Date.now() - signalledAt} ms`);
    assert.equal(exit.code, 0);
    assert.ok(await waitForPostmasterGone(dataDir, 2000), 'the embedded database stopped');
    for (const pid of workers) assert.throws(() => process.kill(Number(pid), 0), `worker ${pid} is gone`);
  });

  test('when the app is SIGKILLed and its database left running, then the next start on the same data works', async () => {
    const dataDir = await servedDataDirCopy();
    const first = await start(dataDir);
    const orphan = postmasterPid(dataDir);
    assert.ok(orphan);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(postmasterPid(dataDir), orphan, 'SIGKILL leaves the detached database running');

    const second = await start(dataDir);
    assert.equal((await fetch(`${second.url}/readyz`)).status, 200);
    assert.notEqual(postmasterPid(dataDir), orphan);
    killGroup(second.child, 'SIGTERM');
    assert.equal((await second.exited).code, 0);
    assert.ok(await waitForPostmasterGone(dataDir, 2000));
  });

  test('when the app and its database were both SIGKILLed, then the next start recovers', async () => {
    const dataDir = await servedDataDirCopy();
    const first = await start(dataDir);
    const pid = postmasterPid(dataDir)!;
    first.child.kill('SIGKILL');
    process.kill(pid, 'SIGKILL');
    await first.exited;
    await sleep(200);

    const second = await start(dataDir);
    assert.equal((await fetch(`${second.url}/readyz`)).status, 200);
    killGroup(second.child, 'SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  test('when production settings are missing, then it exits at boot naming every problem', async () => {
    const { spawnSync } = await import('node:child_process');
    const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, NODE_ENV: 'production', DB_URI: '', SECRET_KEY: 'short', MOVR_DATA_DIR: newDataDir() },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /DB_URI/);
    assert.match(result.stderr, /SECRET_KEY/);
  });
});
