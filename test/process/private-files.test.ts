import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { withPrivateFile } from '../../src/private-files.js';
import { ensureDist, ROOT } from '../support/build.js';
import { freshDataDir, killGroup, postmasterPid, type ServerProcess, startServerProcess } from '../support/server-process.js';

const run = promisify(execFile);
const cleanup: string[] = [];
const started: ServerProcess[] = [];
after(() => {
  for (const server of started) killGroup(server.child, 'SIGKILL');
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

const mode = (file: string) => statSync(file).mode & 0o777;

/** Only the owner may read or write: 0600 for a file; 0700 for a directory, or 0711 as root (others pass through). */
function assertPrivate(file: string) {
  const bits = mode(file);
  assert.equal(bits & 0o066, 0, `${file} is ${bits.toString(8)}: others may read or write it`);
  assert.equal(statSync(file).uid, process.getuid!(), `${file} belongs to the app's user`);
}

test('when the app has started on a new data directory, then every file holding a secret is 0600 in a directory only its owner can read', async () => {
  const parent = freshDataDir();
  cleanup.push(parent);
  const dataDir = path.join(parent, 'movr');
  const server = await startServerProcess({ dataDir });
  started.push(server);
  killGroup(server.child, 'SIGTERM');
  assert.equal((await server.exited).code, 0);

  assertPrivate(dataDir);
  for (const name of ['secret-key', 'postgres-password', 'demo-login.json']) {
    assert.equal(mode(path.join(dataDir, name)), 0o600, name);
  }
  const clusterDir = path.join(dataDir, 'postgres');
  assert.ok(existsSync(path.join(clusterDir, 'PG_VERSION')), 'the database cluster is in the data directory');
  assert.equal(mode(clusterDir), 0o700, 'the database cluster');
  assert.equal(postmasterPid(dataDir), undefined);
});

test('when four first starts make the development secret at once, then they all get the one that was written first', async () => {
  const parent = freshDataDir();
  cleanup.push(parent);
  const dataDir = path.join(parent, 'movr');
  await ensureDist();
  const script = `import { developmentSecret } from './dist/private-files.js'; console.log(developmentSecret(process.argv[1]));`;
  const outputs = await Promise.all([1, 2, 3, 4].map(() => run(process.execPath, ['--input-type=module', '-e', script, dataDir], { cwd: ROOT })));
  const secrets = outputs.map(({ stdout }) => stdout.trim());
  assert.ok(secrets[0]!.length >= 32);
  assert.equal(new Set(secrets).size, 1, 'one secret for all');
  assert.deepEqual(readdirSync(dataDir), ['secret-key'], 'no draft left behind');
  assert.equal(mode(path.join(dataDir, 'secret-key')), 0o600);
  assertPrivate(dataDir);
});

test('when initdb reads the superuser password, then it is in a 0600 file of a 0700 directory, gone afterwards', async () => {
  let seen = '';
  await withPrivateFile('s3cret\n', undefined, async (file) => {
    seen = file;
    assert.equal(mode(file), 0o600);
    assert.equal(mode(path.dirname(file)), 0o700);
  });
  assert.ok(seen && !existsSync(path.dirname(seen)), 'removed afterwards');
});
