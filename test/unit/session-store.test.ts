import assert from 'node:assert/strict';
import { test } from 'node:test';
import { castTimestampParams } from '../../src/web/session.js';

test('when connect-pg-simple sends to_timestamp($n), then the parameter is typed for CockroachDB', () => {
  assert.equal(
    castTimestampParams('INSERT INTO "sessions" (sess, expire, sid) SELECT $1, to_timestamp($2), $3 ON CONFLICT (sid) DO UPDATE SET sess=$1, expire=to_timestamp($2) RETURNING sid'),
    'INSERT INTO "sessions" (sess, expire, sid) SELECT $1, to_timestamp($2::FLOAT8), $3 ON CONFLICT (sid) DO UPDATE SET sess=$1, expire=to_timestamp($2::FLOAT8) RETURNING sid',
  );
  assert.equal(castTimestampParams('SELECT sess FROM "sessions" WHERE sid = $1'), 'SELECT sess FROM "sessions" WHERE sid = $1');
});
