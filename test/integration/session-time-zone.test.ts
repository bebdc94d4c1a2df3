import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { openDatabase, withUtcSessions } from '../../src/db/database.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture({ reset: false });

describe('the session time zone', () => {
  test('when the app connects, then every session runs in UTC, even where the URL asks for another zone, and the URL keeps its other options', async () => {
    const url = new URL(t.connectionString);
    url.searchParams.set('options', '-c timezone=America/New_York -c statement_timeout=12345');
    const db = await openDatabase({ connectionString: url.toString(), poolSize: 2 });
    try {
      const { rows } = await db.pool.query<{ zone: string; timeout: string }>(
        "SELECT current_setting('TimeZone') AS zone, current_setting('statement_timeout') AS timeout",
      );
      assert.deepEqual(rows, [{ zone: 'UTC', timeout: '12345ms' }]);
      // A TIMESTAMP written from a timestamptz reads back as the same instant.
      const { rows: stamps } = await db.pool.query<{ same: boolean }>(
        "SELECT ('2026-12-05T14:03:07Z'::timestamptz)::timestamp = '2026-12-05 14:03:07'::timestamp AS same",
      );
      assert.deepEqual(stamps, [{ same: true }]);
    } finally {
      await db.close();
    }
  });

  test('when a connection string has no options, then only the time zone is added', () => {
    const pinned = new URL(withUtcSessions('postgresql://root@127.0.0.1:26257/movr?sslmode=disable'));
    assert.equal(pinned.searchParams.get('options'), '-c timezone=UTC');
    assert.equal(pinned.searchParams.get('sslmode'), 'disable');
    assert.equal(pinned.pathname, '/movr');
  });
});
