import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { INDEXES, SCHEMA_VERSION, TABLES } from '../../src/db/schema.js';
import { useFixture } from '../support/fixture.js';

const t = useFixture({ reset: false });

/** CockroachDB's type names in src/db/schema.ts and the PostgreSQL types the migrations give the same columns. */
const PG_TYPE: Record<string, string[]> = {
  STRING: ['text', 'character varying'],
  UUID: ['uuid'],
  BOOL: ['boolean'],
  INT: ['integer'],
  TIMESTAMPTZ: ['timestamp with time zone'],
  'TIMESTAMP(6)': ['timestamp without time zone'],
  JSONB: ['json', 'jsonb'],
  INTERVAL: ['interval'],
};

describe('src/db/schema.ts against the migrated PostgreSQL database', () => {
  test('when the migrations have run, then every table has exactly the columns of the description, with its types, nullability and defaults', async () => {
    const { rows } = await t.db.pool.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string; column_default: string | null }>(
      `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely%' ORDER BY table_name, ordinal_position`,
    );
    const live = new Map<string, typeof rows>();
    for (const row of rows) live.set(row.table_name, [...(live.get(row.table_name) ?? []), row]);
    assert.deepEqual([...live.keys()].sort(), Object.keys(TABLES).sort(), 'tables');
    for (const [name, table] of Object.entries(TABLES)) {
      const columns = live.get(name)!;
      assert.deepEqual(columns.map((c) => c.column_name), Object.keys(table.columns), `columns of ${name}, in order`);
      for (const column of columns) {
        const def = (table.columns as Record<string, { type: { sql: string }; notNull: boolean; default?: string }>)[column.column_name]!;
        assert.ok(PG_TYPE[def.type.sql]?.includes(column.data_type), `${name}.${column.column_name}: ${column.data_type} for ${def.type.sql}`);
        assert.equal(column.is_nullable === 'NO', def.notNull, `${name}.${column.column_name} nullability`);
        assert.equal(column.column_default === null, def.default === undefined, `${name}.${column.column_name} default`);
      }
    }
  });

  test('when the migrations have run, then the indexes of the description exist (and the dropped ones do not), and schema_info holds SCHEMA_VERSION', async () => {
    const { rows } = await t.db.pool.query<{ indexname: string; tablename: string }>(
      "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'",
    );
    const live = new Map(rows.map((row) => [row.indexname, row.tablename]));
    for (const index of INDEXES) assert.equal(live.get(index.name), index.until === undefined ? index.table : undefined, index.name);
    const { rows: versions } = await t.db.pool.query<{ version: number }>('SELECT max(version)::int AS version FROM schema_info');
    assert.deepEqual(versions, [{ version: SCHEMA_VERSION }]);
  });
});
