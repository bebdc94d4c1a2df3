import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { parseTimestamptz } from '../../src/db/timestamps.js';

/** The parser pg ships (postgres-date): db/database.ts, which installs ours, is not loaded yet. */
const parseWithPg = pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ) as (text: string) => Date | number | null;

const value = (parsed: Date | number | null) => (parsed instanceof Date ? parsed.getTime() : parsed);

describe('timestamptz text', () => {
  it('reads what PostgreSQL and CockroachDB write exactly as pg would, and hands anything else to it', () => {
    const texts = [
      '2026-12-02 01:50:04.434567+00',
      '2026-12-02 01:50:04+01',
      '1999-01-08 04:05:06.1-08',
      '2026-12-02 01:50:04.4+05:30',
      '2026-12-02 01:50:04.434567+05:45',
      '2026-06-30 23:59:59.999999+00',
      '2026-12-02 01:50:04.0005+00',
      '2026-12-02 01:50:04.434567+00:00',
      '2024-02-29 12:00:00-12',
      'infinity',
      '-infinity',
      '0001-01-01 00:00:00+00 BC',
      '0099-01-01 00:00:00+00',
      '2026-12-02 01:50:04.434567+00:00:12',
      '10000-01-01 00:00:00+00',
    ];
    for (const text of texts) assert.equal(value(parseTimestamptz(text)), value(parseWithPg(text)), text);
  });

  it('agrees with pg on a thousand random instants in every offset the cities use', () => {
    for (let n = 0; n < 1000; n++) {
      const instant = new Date(Date.UTC(1970, 0, 1) + Math.floor(Math.random() * 4e12));
      const offset = [0, 60, -300, 330, 545, -480, 600][n % 7]!;
      const local = new Date(instant.getTime() + offset * 60_000).toISOString().replace('T', ' ').replace('Z', '');
      const sign = offset < 0 ? '-' : '+';
      const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0');
      const mm = Math.abs(offset) % 60 ? `:${String(Math.abs(offset) % 60).padStart(2, '0')}` : '';
      const text = `${local}${n % 3 ? '123' : ''}${sign}${hh}${mm}`;
      assert.equal(value(parseTimestamptz(text)), value(parseWithPg(text)), text);
      assert.equal(value(parseTimestamptz(text)), instant.getTime(), text);
    }
  });

  it('is the parser pg uses once the database module is loaded', async () => {
    assert.notEqual(parseWithPg, parseTimestamptz);
    await import('../../src/db/database.js');
    assert.equal(pg.types.getTypeParser(pg.types.builtins.TIMESTAMPTZ), parseTimestamptz);
  });
});
