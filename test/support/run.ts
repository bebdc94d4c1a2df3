/**
 * `npm test`: one PostgreSQL cluster for the whole run (with the migrated template), one build of dist/ for the
 * process tests and the tests compiled to JavaScript (the in-process files of a folder in one bundle, see SHARED),
 * then node:test's runner (runner.ts) on those with the arguments given and the cluster's address in
 * MOVR_TEST_CLUSTER; the cluster stops however the run ends. Node 20 has no --test-global-setup, hence this launcher.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, readdirSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildDist, COMPILED_ENV, compiledPath, compileForTests, DIST_ENV, ROOT, sharedPath, typecheck } from './build.js';
import { CLUSTER_ENV, RUN_ENV, startCluster, tempDir } from './cluster.js';

// Names this run's temporary directories (tempDir) apart from those of runs going on at the same time.
const runId = randomBytes(4).toString('hex');
process.env[RUN_ENV] = runId;
/**
 * Temporary directories (every PostgreSQL data directory among them) in memory when the machine has room and the
 * caller named no TMPDIR: on this VM's ext4 a CREATE DATABASE took 0.12-0.21 s of system time, 0.01-0.02 s on tmpfs,
 * and a run 196-200 s of CPU (104-106 s) instead of 221-228 s (116-119 s), alternating two each. Peak use: 0.45 GB.
 */
const MEMORY_TMP = '/dev/shm';
if (!process.env.TMPDIR && hasRoom(MEMORY_TMP, 2 * 1024 ** 3)) {
  process.env.TMPDIR = MEMORY_TMP;
  console.log(`# temporary directories in ${MEMORY_TMP}`);
}
function hasRoom(dir: string, bytes: number): boolean {
  try {
    accessSync(dir, constants.W_OK);
    const { bavail, bsize } = statfsSync(dir);
    return bavail * bsize >= bytes;
  } catch {
    return false;
  }
}
// The tests as JavaScript (build.ts says why), in a folder of this run's own, removed when it ends.
const compiled = path.join(ROOT, 'test-output', `js-${runId}`);
/**
 * Node 22's compile cache (Node 20 ignores it): the 80 or so test and server processes of a run load the same bundles
 * and dist/, and each after the first reuses V8's code. Among the temporary directories, as a process that compiled
 * something writes it all at exit (782 files for a server): 0.48 s on this VM's ext4, 0.03 s on tmpfs, and up to
 * 3 s under the run's load, which made the demo's instances exit 1-3 s after they logged "stopped".
 */
const compileCache = tempDir('movr-compile-cache-');
const removeRunFolders = () => [compiled, compileCache].forEach((dir) => rmSync(dir, { recursive: true, force: true }));

// --typecheck (npm test): the typecheck runs beside the tests, and the run fails if it does.
const checkTypes = process.argv.includes('--typecheck');
const args = process.argv.slice(2).filter((arg) => arg !== '--typecheck');
const files = args.filter((arg) => !arg.startsWith('-'));
/**
 * The files of these folders test the app inside their own process, and share one process per folder, one file after
 * another (build.ts puts each in a describe of its own): a process of its own costs a file some 0.6 s of CPU to load
 * the app and its libraries, and these 29 files took 33-39 s of CPU shared against 57 s alone. The CPU-heaviest keep
 * a process each, so that they run beside the others.
 */
const SHARED = ['unit', 'integration', 'http'];
const OWN_PROCESS = ['http/bad-input', 'http/contention', 'http/fault'];
const sharedName = (file: string) => {
  const folder = path.basename(path.dirname(path.resolve(file)));
  return SHARED.includes(folder) && !OWN_PROCESS.some((name) => file.endsWith(`${name}.test.ts`)) ? folder : undefined;
};
const shared = new Map<string, string[]>();
const ownProcess: string[] = [];
for (const file of files) {
  const name = sharedName(file);
  if (name) shared.set(name, [...(shared.get(name) ?? []), file]);
  else ownProcess.push(file);
}
/**
 * The longest processes first (a shared folder's takes as long as its files together), from the wall times of a
 * full run, so that the run ends on short ones rather than waiting on one: started last, the integration and http
 * folders (20-33 s each) left a core idle for the run's last 15 s. The files not named keep their order, after these.
 */
const LONGEST = ['process/demo-global', 'browser/rider-journey', 'process/server-lifecycle', 'fleet/fleet', 'deploy/production-boot', 'integration/shared-process', 'fleet/password-budget', 'http/bad-input', 'http/shared-process', 'fleet/riders', 'http/contention', 'http/fault', 'api/instances', 'api/docs-page'];
/** A compiled file's folder and name, without `.test.js`. */
const stem = (file: string) => path.relative(path.join(compiled, 'test'), file).replace(/(\.test)?\.js$/, '');
const rank = (file: string) => {
  const longest = LONGEST.indexOf(stem(file));
  return longest >= 0 ? longest : LONGEST.length;
};
const ordered = [...ownProcess.map((file) => compiledPath(compiled, file)), ...[...shared.keys()].map((name) => sharedPath(compiled, name))]
  .map((file, i) => ({ file, i }))
  .sort((a, b) => rank(a.file) - rank(b.file) || a.i - b.i)
  .map(({ file }) => file);
const options = args.filter((arg) => arg.startsWith('-'));

const typechecked = checkTypes ? typecheck().then(() => undefined, (error: Error) => error) : Promise.resolve(undefined);
const [cluster, ...prepared] = await Promise.allSettled([startCluster({ handleSignals: false }), buildDist(), compileForTests(compiled, shared)]);
const reasons = [cluster, ...prepared].flatMap((result): unknown[] => (result.status === 'rejected' ? [result.reason] : []));
if (cluster.status === 'rejected' || reasons.length > 0) {
  if (cluster.status === 'fulfilled') await cluster.value.destroy();
  for (const reason of reasons) console.error(reason instanceof Error ? reason.message : reason);
  await typechecked;
  removeRunFolders();
  process.exit(1);
}
const runner = spawn(process.execPath, ['--enable-source-maps', compiledPath(compiled, path.join(ROOT, 'test/support/runner.ts')), ...options, ...ordered], {
  stdio: 'inherit',
  env: {
    ...process.env,
    [CLUSTER_ENV]: cluster.value.adminUrl,
    [DIST_ENV]: '1',
    [COMPILED_ENV]: compiled,
    NODE_COMPILE_CACHE: compileCache,
  },
});

let signalled = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // The first signal lets the runner stop its files (whose hooks clean up); a second one stops everything now.
    if (++signalled > 1) cluster.value.kill();
    runner.kill(signal);
  });
}

const [code] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
  runner.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
  runner.once('error', () => resolve([1, null]));
});
await cluster.value.destroy();
removeRunFolders();
process.exitCode = code ?? 1;

const typeErrors = await typechecked;
if (typeErrors) {
  console.error(typeErrors.message);
  process.exitCode = 1;
} else if (checkTypes) console.log('# the typecheck passed');

// A temporary directory of this run still there is one a test or its helper failed to remove: the run fails.
const leftovers = readdirSync(tmpdir()).filter((name) => name.startsWith('movr-') && name.includes(`-${runId}-`));
if (leftovers.length > 0) {
  console.error(`the run left ${leftovers.length} temporary directories behind (removed now):\n  ${leftovers.join('\n  ')}`);
  for (const name of leftovers) rmSync(path.join(tmpdir(), name), { recursive: true, force: true });
  process.exitCode = 1;
}
