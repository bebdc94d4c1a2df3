/**
 * `npm test`: one PostgreSQL cluster for the whole run (with the migrated template) and one build of dist/ for the
 * process tests, then `node --test` with the arguments given and the cluster's address in MOVR_TEST_CLUSTER; the
 * cluster stops however the run ends. Node 20 has no --test-global-setup, hence this launcher.
 */
import { spawn } from 'node:child_process';
import { buildDist, DIST_ENV } from './build.js';
import { CLUSTER_ENV, startCluster } from './cluster.js';

const args = process.argv.slice(2);
// Files that start real servers take longest: first, so that the run does not end waiting on one of them.
const slow = (file: string) => /\/(browser|deploy|fleet|process)\//.test(file);
const files = args.filter((arg) => !arg.startsWith('-'));
const ordered = [...args.filter((arg) => arg.startsWith('-')), ...files.filter(slow), ...files.filter((file) => !slow(file))];

const [cluster, built] = await Promise.allSettled([startCluster({ handleSignals: false }), buildDist()]);
if (cluster.status === 'rejected' || built.status === 'rejected') {
  if (cluster.status === 'fulfilled') await cluster.value.destroy();
  throw cluster.status === 'rejected' ? cluster.reason : (built as PromiseRejectedResult).reason;
}
const runner = spawn(process.execPath, ['--import', 'tsx', '--test', ...ordered], {
  stdio: 'inherit',
  env: { ...process.env, [CLUSTER_ENV]: cluster.value.adminUrl, [DIST_ENV]: '1' },
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
process.exitCode = code ?? 1;
