import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.js';
import { freePort } from '../support/cluster.js';

const cleanup: string[] = [];
after(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

test('when the data directory sits under a 0700 directory, then the embedded database still starts and serves', async () => {
  // Like a checkout in /root: as root the server runs as `postgres`, which cannot traverse the parent.
  const privateDir = mkdtempSync(path.join(tmpdir(), 'movr-private-'));
  chmodSync(privateDir, 0o700);
  cleanup.push(privateDir);
  const dataDir = path.join(privateDir, 'project', '.movr');
  mkdirSync(dataDir, { recursive: true });

  const server = await startEmbeddedPostgres({ dataDir, port: await freePort() });
  if (!server.clusterDir.startsWith(privateDir)) cleanup.push(server.clusterDir);
  try {
    if (process.getuid?.() === 0) assert.ok(!server.clusterDir.startsWith(privateDir), 'as root the cluster is kept where postgres can reach it');
    const client = new pg.Client({ connectionString: server.connectionString });
    await client.connect();
    const { rows } = await client.query<{ default_transaction_isolation: string }>('SHOW default_transaction_isolation');
    await client.end();
    assert.equal(rows[0]!.default_transaction_isolation, 'serializable');
  } finally {
    await server.stop();
  }
});
