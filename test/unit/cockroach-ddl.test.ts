import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from 'kysely';
import { MULTI_REGION_DDL_FILE, PARTITIONED_DDL_FILE, upgradeFileName } from '../../src/db/cockroach-files.js';
import {
  COCKROACH_VERSIONS,
  ddlFiles,
  multiRegionDdl,
  partitionedDdl,
  type RegionLayout,
  regionLayout,
  upgradeDdl,
} from '../../tools/cockroach-ddl/ddl.js';
import { syncDdl } from '../../tools/cockroach-ddl/generate.js';
import { MIGRATIONS } from '../../src/db/migrate.js';
import { SCHEMA_VERSION } from '../../src/db/schema.js';
import { CITIES, citiesOf, REGION_NAMES, REGIONS } from '../../src/regions.js';
import { nodeScript, ROOT } from '../support/build.js';

const CITY_LIST = CITIES.map((city) => `'${city.replaceAll("'", "''")}'`).join(', ');

// A small reader for the DDL dialect both the migration and the generator write: enough to compare schemas, not SQL.

interface Column {
  type: string;
  notNull: boolean;
  default?: string;
  computed?: string;
}
interface Partitioning {
  column: string;
  partitions: Map<string, string[]>;
}
interface Table {
  columns: Map<string, Column>;
  primaryKey: string[];
  checks: Map<string, string>;
  uniques: Map<string, { columns: string[]; partitioned: boolean }>;
  foreignKeys: Map<string, string>;
  partitioning?: Partitioning;
  locality?: string;
  /** `WITH (schema_locked = false)` was given. */
  unlocked: boolean;
}
interface Index {
  table: string;
  unique: boolean;
  columns: string[];
  where?: string;
  partitioning?: Partitioning;
}
interface Schema {
  tables: Map<string, Table>;
  indexes: Map<string, Index>;
  zones: string[];
  /** `ALTER TABLE t CONFIGURE ZONE USING ...`, by table. */
  tableZones: Map<string, string>;
  primaryRegion?: string;
  addedRegions: string[];
  versions: number[];
  statements: string[];
}

const squash = (s: string) => s.replace(/\s+/g, ' ').replace(/\(\s+/g, '(').replace(/\s+\)/g, ')').trim();

function stripComments(text: string): string {
  let out = '';
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      out += ch;
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else if (ch === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else out += ch;
  }
  return out;
}

/** Splits on `sep` outside quotes and parentheses. */
function splitTopLevel(text: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === sep && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/** The text inside the parentheses that open at `open`, and the index after the closing one. */
function parenthesised(text: string, open: number): { inner: string; end: number } {
  assert.equal(text[open], '(', `expected ( at ${open} in ${text}`);
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')' && --depth === 0) return { inner: text.slice(open + 1, i), end: i + 1 };
  }
  throw new Error(`unbalanced parentheses in ${text}`);
}

const names = (list: string) => splitTopLevel(list, ',').map((n) => n.replace(/\s+/g, ' '));
const stringLiterals = (list: string) => [...list.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1]!.replaceAll("''", "'"));

/** Parses `PARTITION BY LIST (col) (...)` at the start of `text`; returns it and the rest. */
function partitionClause(text: string): { partitioning?: Partitioning; rest: string } {
  const head = /^PARTITION BY LIST \((\w+)\) /i.exec(text);
  if (!head) return { rest: text };
  const { inner, end } = parenthesised(text, head[0].length);
  const partitions = new Map<string, string[]>();
  for (const part of splitTopLevel(inner, ',')) {
    const m = /^PARTITION (\w+) VALUES IN \((.*)\)$/i.exec(part);
    assert.ok(m, `unexpected partition ${part}`);
    partitions.set(m[1]!, stringLiterals(m[2]!));
  }
  return { partitioning: { column: head[1]!, partitions }, rest: text.slice(end).trim() };
}

function parseColumn(element: string, table: Table): void {
  const m = /^(\w+) (\w+(?:\(\d+\))?)(.*)$/.exec(element);
  assert.ok(m, `unexpected table element ${element}`);
  const [, name, type, tail] = m as unknown as [string, string, string, string];
  let rest = tail;
  const column: Column = { type: type.toLowerCase(), notNull: false };
  const check = /CONSTRAINT (\w+) CHECK /i.exec(rest);
  if (check) {
    const { inner, end } = parenthesised(rest, check.index + check[0].length);
    table.checks.set(check[1]!, squash(inner));
    rest = rest.slice(0, check.index) + rest.slice(end);
  }
  const computed = / AS \(/i.exec(rest);
  if (computed) {
    const { inner, end } = parenthesised(rest, computed.index + computed[0].length - 1);
    assert.match(rest.slice(end), /^ STORED/i, `${name} must be a STORED computed column`);
    column.computed = squash(inner);
    rest = rest.slice(0, computed.index) + rest.slice(end).replace(/^ STORED/i, '');
  }
  if (/\bPRIMARY KEY\b/i.test(rest)) table.primaryKey = [name];
  column.notNull = /\bNOT NULL\b/i.test(rest);
  const dflt = /\bDEFAULT ('(?:[^']|'')*'|[\w.]+\(\)|[\w.]+)/i.exec(rest);
  if (dflt) column.default = dflt[1]!;
  table.columns.set(name, column);
}

function parseTable(statement: string, schema: Schema): void {
  const head = /^CREATE TABLE (?:IF NOT EXISTS )?(\w+) /i.exec(statement)!;
  const name = head[1]!;
  const { inner, end } = parenthesised(statement, head[0].length);
  const table: Table = { columns: new Map(), primaryKey: [], checks: new Map(), uniques: new Map(), foreignKeys: new Map(), unlocked: false };
  for (const element of splitTopLevel(inner, ',')) {
    let m: RegExpExecArray | null;
    if ((m = /^(?:CONSTRAINT (\w+) )?PRIMARY KEY \((.*)\)$/i.exec(element))) table.primaryKey = names(m[2]!);
    else if ((m = /^CONSTRAINT (\w+) UNIQUE \(([^)]*)\)(.*)$/i.exec(element)))
      table.uniques.set(m[1]!, { columns: names(m[2]!), partitioned: /PARTITION/i.test(m[3]!) });
    else if ((m = /^CONSTRAINT (\w+) FOREIGN KEY \(([^)]*)\) REFERENCES (\w+) \(([^)]*)\)$/i.exec(element)))
      table.foreignKeys.set(m[1]!, `(${names(m[2]!).join(', ')}) -> ${m[3]} (${names(m[4]!).join(', ')})`);
    else if ((m = /^CONSTRAINT (\w+) CHECK /i.exec(element))) {
      const check = parenthesised(element, m[0].length);
      assert.equal(check.end, element.length, `trailing text after CHECK in ${element}`);
      table.checks.set(m[1]!, squash(check.inner));
    } else parseColumn(element, table);
  }
  const { partitioning, rest: afterPartitions } = partitionClause(statement.slice(end).trim());
  if (partitioning) table.partitioning = partitioning;
  const unlocked = /^WITH \(schema_locked = false\) ?/i.exec(afterPartitions);
  table.unlocked = unlocked !== null;
  const rest = afterPartitions.slice(unlocked?.[0].length ?? 0);
  const locality = /^LOCALITY (.+)$/i.exec(rest);
  if (locality) table.locality = locality[1]!;
  else assert.equal(rest, '', `unexpected text after CREATE TABLE ${name}: ${rest}`);
  assert.ok(!schema.tables.has(name), `table ${name} created twice`);
  schema.tables.set(name, table);
}

function parseIndex(statement: string, schema: Schema): void {
  const head = /^CREATE (UNIQUE )?INDEX (?:IF NOT EXISTS )?(\w+) ON (\w+) /i.exec(statement)!;
  const { inner, end } = parenthesised(statement, head[0].length);
  const index: Index = { table: head[3]!, unique: head[1] !== undefined, columns: names(inner) };
  const { partitioning, rest } = partitionClause(statement.slice(end).trim());
  if (partitioning) index.partitioning = partitioning;
  const where = /^WHERE (.+)$/i.exec(rest);
  if (where) index.where = squash(where[1]!);
  else assert.equal(rest, '', `unexpected text after CREATE INDEX ${head[2]}: ${rest}`);
  assert.ok(!schema.indexes.has(head[2]!), `index ${head[2]} created twice`);
  schema.indexes.set(head[2]!, index);
}

/** The statements of `sql`, comments stripped and whitespace squashed. */
const statementsOf = (sql: string) => splitTopLevel(stripComments(sql), ';').map(squash);

function parseSchema(sql: string): Schema {
  const schema: Schema = { tables: new Map(), indexes: new Map(), zones: [], tableZones: new Map(), addedRegions: [], versions: [], statements: [] };
  return applySql(schema, sql);
}

/** Reads `sql`'s statements into `schema`, as loading them would change it. */
function applySql(schema: Schema, sql: string): Schema {
  for (const raw of splitTopLevel(stripComments(sql), ';')) {
    const statement = squash(raw);
    schema.statements.push(statement);
    let m: RegExpExecArray | null;
    if (/^CREATE TABLE /i.test(statement)) parseTable(statement, schema);
    else if ((m = /^ALTER TABLE (\w+) (ADD COLUMN .*)$/i.exec(statement))) {
      const table = schema.tables.get(m[1]!);
      assert.ok(table, `ALTER TABLE of unknown table ${m[1]}`);
      for (const added of splitTopLevel(m[2]!, ',')) parseColumn(added.replace(/^ADD COLUMN (IF NOT EXISTS )?/i, ''), table);
    } else if ((m = /^ALTER TABLE (\w+) ADD CONSTRAINT (?:IF NOT EXISTS )?(\w+) (.*)$/i.exec(statement))) {
      const table = schema.tables.get(m[1]!);
      assert.ok(table, `ALTER TABLE of unknown table ${m[1]}`);
      const fk = /^FOREIGN KEY \(([^)]*)\) REFERENCES (\w+) \(([^)]*)\)$/i.exec(m[3]!);
      const check = /^CHECK \((.*)\)$/i.exec(m[3]!);
      if (fk) table.foreignKeys.set(m[2]!, `(${names(fk[1]!).join(', ')}) -> ${fk[2]} (${names(fk[3]!).join(', ')})`);
      else if (check) table.checks.set(m[2]!, squash(check[1]!));
      else assert.fail(`constraint the test does not understand: ${statement}`);
    } else if ((m = /^ALTER TABLE (\w+) SET \(schema_locked = false\)$/i.exec(statement))) {
      assert.ok(schema.tables.has(m[1]!), `unlock of unknown table ${m[1]}`);
    } else if ((m = /^ALTER TABLE (\w+) CONFIGURE ZONE USING (.*)$/i.exec(statement))) {
      assert.ok(schema.tables.has(m[1]!), `zone config of unknown table ${m[1]}`);
      schema.tableZones.set(m[1]!, m[2]!);
    } else if ((m = /^DROP INDEX (?:IF EXISTS )?(?:(\w+)@)?(\w+)$/i.exec(statement))) {
      assert.ok(schema.indexes.delete(m[2]!), `drop of unknown index ${m[2]}`);
      // Its partitions' zone configs go with it.
      schema.zones = schema.zones.filter((zone) => !zone.startsWith(`${m![1]}@${m![2]} `));
    } else if (/^ALTER TABLE rides SET \(fillfactor = \d+\)$/i.test(statement)) continue; // PostgreSQL's heap only
    else if (/^(UPDATE|DELETE FROM) (sessions|vehicles|users) /i.test(statement)) continue; // data only: filling new columns
    else if (/^CREATE (UNIQUE )?INDEX /i.test(statement)) parseIndex(statement, schema);
    else if ((m = /^ALTER PARTITION (\w+) OF INDEX (\w+)@(\w+) CONFIGURE ZONE USING constraints = '([^']*)'$/i.exec(statement)))
      schema.zones.push(`${m[2]}@${m[3]} ${m[1]} ${m[4]}`);
    else if ((m = /^ALTER DATABASE movr PRIMARY REGION "([^"]+)"$/i.exec(statement))) schema.primaryRegion = m[1]!;
    else if ((m = /^ALTER DATABASE movr ADD REGION "([^"]+)"$/i.exec(statement))) schema.addedRegions.push(m[1]!);
    else if ((m = /^(?:INSERT|UPSERT) INTO schema_info \(version\) VALUES \((\d+)\)$/i.exec(statement))) schema.versions.push(Number(m[1]));
    else assert.ok(/^(CREATE DATABASE movr|USE movr)$/i.test(statement), `statement the test does not understand: ${statement}`);
  }
  return schema;
}

/** The SQL the PostgreSQL migration runs, captured by a driver that executes nothing. */
async function migrationSql(): Promise<string> {
  const statements: string[] = [];
  const connection: DatabaseConnection = {
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      assert.deepEqual(query.parameters, [], 'the migration inlines its values');
      statements.push(query.sql);
      return { rows: [] };
    },
    async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
      throw new Error('not used');
    },
  };
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => connection,
    beginTransaction: async () => {},
    commitTransaction: async () => {},
    rollbackTransaction: async () => {},
    releaseConnection: async () => {},
    destroy: async () => {},
  };
  const db = new Kysely<any>({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => driver,
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  });
  for (const migration of Object.values(MIGRATIONS)) await migration.up(db);
  await db.destroy();
  return statements.join(';\n');
}

/** PostgreSQL types of the migration and the CockroachDB types that hold the same values. */
const COCKROACH_TYPE: Record<string, string> = {
  text: 'string',
  varchar: 'string',
  uuid: 'uuid',
  boolean: 'bool',
  timestamptz: 'timestamptz',
  'timestamp(6)': 'timestamp(6)',
  interval: 'interval',
  json: 'jsonb',
  int: 'int',
};

const CITY_TABLES = ['users', 'vehicles', 'rides', 'api_tokens', 'idempotency_keys'];

/** Every table, column, check, unique, foreign key and index of the migration is in `ddl`, and nothing else. */
function assertSameSchema(pg: Schema, ddl: Schema, file: string, extraColumn?: string): void {
  assert.deepEqual([...ddl.tables.keys()].sort(), [...pg.tables.keys()].sort(), `${file}: tables`);
  for (const [name, expected] of pg.tables) {
    const actual = ddl.tables.get(name)!;
    const columns = [...actual.columns.keys()].filter((c) => !(extraColumn && CITY_TABLES.includes(name) && c === extraColumn));
    assert.deepEqual(columns, [...expected.columns.keys()], `${file}: columns of ${name}`);
    for (const [column, pgColumn] of expected.columns) {
      const crdb = actual.columns.get(column)!;
      const want = { ...pgColumn, type: COCKROACH_TYPE[pgColumn.type] ?? `unmapped ${pgColumn.type}` };
      assert.deepEqual(crdb, want, `${file}: column ${name}.${column}`);
    }
    assert.deepEqual(actual.primaryKey, expected.primaryKey, `${file}: primary key of ${name}`);
    assert.deepEqual(actual.checks, expected.checks, `${file}: CHECK constraints of ${name}`);
    assert.deepEqual(
      new Map([...actual.uniques].map(([k, v]) => [k, v.columns])),
      new Map([...expected.uniques].map(([k, v]) => [k, v.columns])),
      `${file}: unique constraints of ${name}`,
    );
    assert.deepEqual(actual.foreignKeys, expected.foreignKeys, `${file}: foreign keys of ${name}`);
  }
  assert.deepEqual([...ddl.indexes.keys()].sort(), [...pg.indexes.keys()].sort(), `${file}: indexes`);
  for (const [name, expected] of pg.indexes) {
    const { partitioning: _, ...actual } = ddl.indexes.get(name)!;
    assert.deepEqual(actual, expected, `${file}: index ${name}`);
  }
}

const layoutPartitions = (layout: readonly RegionLayout[]) => new Map(layout.map((r) => [r.partition, [...r.cities]]));

/** The region -> cities mapping of a computed `CASE WHEN city IN (...) THEN 'region' ... END`. */
function caseRegions(expr: string): Map<string, string[]> {
  assert.match(expr, /^CASE (WHEN city IN \([^)]*\) THEN '[^']*' )+END$/i, `region expression: ${expr}`);
  return new Map([...expr.matchAll(/WHEN city IN \(([^)]*)\) THEN '([^']*)'/gi)].map((m) => [m[2]!, stringLiterals(m[1]!)]));
}

function assertPartitioned(schema: Schema, layout: readonly RegionLayout[], file: string): void {
  const expectedZones: string[] = [];
  for (const name of CITY_TABLES) {
    const table = schema.tables.get(name)!;
    assert.equal(table.partitioning?.column, 'city', `${file}: ${name} is PARTITION BY LIST (city)`);
    assert.deepEqual(table.partitioning.partitions, layoutPartitions(layout), `${file}: partitions of ${name}`);
    assert.equal(table.primaryKey[0], 'city', `${file}: the primary key of ${name} starts with the partition column`);
    const indexNames = [`${name}_pkey`];
    for (const [indexName, index] of schema.indexes) {
      if (index.table !== name) continue;
      indexNames.push(indexName);
      // A partition key must lead the index: rider_city for the rider's indexes, city everywhere else.
      const leading = index.columns[0]!.split(' ')[0]!;
      assert.ok(['city', 'rider_city'].includes(leading), `${file}: ${indexName} starts with a city column`);
      assert.equal(index.partitioning?.column, leading, `${file}: ${indexName} is PARTITION BY LIST (${leading})`);
      assert.deepEqual(index.partitioning.partitions, layoutPartitions(layout), `${file}: partitions of ${indexName}`);
    }
    for (const indexName of indexNames) {
      for (const region of layout) expectedZones.push(`${name}@${indexName} ${region.partition} [+region=${region.name}]`);
    }
    for (const [uniqueName, unique] of table.uniques) {
      // The one exception, explained in the file: a globally unique username cannot be partitioned by city.
      assert.equal(uniqueName, 'users_username_key', `${file}: unexpected unique constraint ${uniqueName}`);
      assert.equal(unique.partitioned, false, `${file}: ${uniqueName} stays unpartitioned to stay globally unique`);
    }
  }
  for (const name of ['sessions', 'rate_limits', 'schema_info']) {
    assert.equal(schema.tables.get(name)!.partitioning, undefined, `${file}: ${name} is not partitioned`);
    for (const index of schema.indexes.values()) {
      if (index.table === name) assert.equal(index.partitioning, undefined, `${file}: ${name}'s indexes are not partitioned`);
    }
  }
  assert.deepEqual([...schema.zones].sort(), expectedZones.sort(), `${file}: one zone constraint per partition of every index`);
  // sessions: the zone config of a GLOBAL table (3 voters in the first region, a replica in every region, global reads).
  const perRegion = layout.map((r) => `"+region=${r.name}": 1`).join(', ');
  assert.deepEqual(
    schema.tableZones,
    new Map([
      [
        'sessions',
        `num_replicas = ${layout.length + 2}, num_voters = 3, constraints = '{${perRegion}}', ` +
          `voter_constraints = '[+region=${layout[0]!.name}]', lease_preferences = '[[+region=${layout[0]!.name}]]', global_reads = true`,
      ],
    ]),
    `${file}: table zone configs`,
  );
}

/** The table each statement changes, when it changes one that exists already: what a schema_locked table would refuse. */
function tableTouched(statement: string): string | undefined {
  const m =
    /^ALTER TABLE (\w+) (?:ADD|CONFIGURE|DROP|ALTER|RENAME)/i.exec(statement) ??
    /^CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?\w+ ON (\w+)/i.exec(statement) ??
    /^ALTER PARTITION \w+ OF INDEX (\w+)@/i.exec(statement) ??
    /^DROP INDEX (?:IF EXISTS )?(\w+)@/i.exec(statement);
  return m?.[1];
}

/**
 * Loads by construction with schema_locked defaults: every table the file creates says WITH (schema_locked = false),
 * and every DDL on a table it did not create comes after that table's own unlock statement, alone on its line.
 */
function assertNeverTouchesALockedTable(ddl: string, file: string): void {
  const created = new Set<string>();
  const unlocked = new Set<string>();
  for (const statement of statementsOf(ddl)) {
    const create = /^CREATE TABLE (?:IF NOT EXISTS )?(\w+) /i.exec(statement);
    if (create) {
      assert.match(statement, /\) (PARTITION BY .*\) )?WITH \(schema_locked = false\)( LOCALITY .*)?$/, `${file}: ${create[1]} is created unlocked`);
      created.add(create[1]!);
    }
    const unlock = /^ALTER TABLE (\w+) SET \(schema_locked = false\)$/i.exec(statement);
    if (unlock) unlocked.add(unlock[1]!);
    const touched = tableTouched(statement);
    if (touched) assert.ok(created.has(touched) || unlocked.has(touched), `${file}: ${statement.slice(0, 80)}… runs on ${touched} before it is unlocked`);
  }
  for (const table of unlocked) {
    // A single-statement implicit transaction: nothing else on its line (cockroach sql sends a line's statements together).
    assert.match(ddl, new RegExp(`^ALTER TABLE ${table} SET \\(schema_locked = false\\);$`, 'm'), `${file}: the unlock of ${table} is alone on its line`);
  }
}

function assertMultiRegion(schema: Schema, layout: readonly RegionLayout[], file: string): void {
  assert.equal(schema.primaryRegion, layout[0]!.name, `${file}: PRIMARY REGION`);
  assert.deepEqual(schema.addedRegions, layout.slice(1).map((r) => r.name), `${file}: ADD REGION`);
  const expected = new Map(layout.map((r) => [r.name, [...r.cities]]));
  for (const name of CITY_TABLES) {
    const table = schema.tables.get(name)!;
    assert.equal(table.locality, 'REGIONAL BY ROW AS region', `${file}: ${name} locality`);
    const region = table.columns.get('region');
    assert.ok(region?.computed, `${file}: ${name}.region is a computed column`);
    assert.equal(region.type, 'crdb_internal_region', `${file}: ${name}.region type`);
    assert.equal(region.notNull, true, `${file}: ${name}.region is NOT NULL, as REGIONAL BY ROW AS requires`);
    assert.deepEqual(caseRegions(region.computed), expected, `${file}: ${name}.region maps each city to its region`);
  }
  assert.equal(schema.tables.get('sessions')!.locality, 'REGIONAL BY ROW', `${file}: sessions locality`);
  assert.equal(schema.tables.get('rate_limits')!.locality, 'REGIONAL BY ROW', `${file}: rate_limits locality`);
  assert.deepEqual(schema.tableZones, new Map(), `${file}: localities, not zone configs`);
  assert.equal(schema.tables.get('schema_info')!.locality, 'GLOBAL', `${file}: schema_info locality`);
  assert.deepEqual(schema.zones, [], `${file}: no manual zone configs`);
  for (const [name, table] of schema.tables) assert.equal(table.partitioning, undefined, `${file}: ${name} has no explicit partitions`);
  for (const [name, index] of schema.indexes) assert.equal(index.partitioning, undefined, `${file}: ${name} has no explicit partitions`);
}

describe('CockroachDB DDL', () => {
  test('when the checked-in files are read, then they equal the generator output, upgrade files included', async () => {
    const files = ddlFiles();
    assert.deepEqual(Object.keys(files), [
      PARTITIONED_DDL_FILE,
      MULTI_REGION_DDL_FILE,
      ...Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => [upgradeFileName('partitioned', i + 2), upgradeFileName('multiRegion', i + 2)]).flat(),
    ]);
    // One PostgreSQL migration per schema version, so a new migration bumps SCHEMA_VERSION and gets its upgrade files.
    assert.equal(Object.keys(MIGRATIONS).length, SCHEMA_VERSION);
    assert.equal(upgradeFileName('partitioned', 2), 'db/cockroach/upgrade-002.sql');
    assert.equal(upgradeFileName('multiRegion', 2), 'db/cockroach/upgrade-002-multiregion.sql');
    for (const [file, content] of Object.entries(files)) {
      const checkedIn = await readFile(join(ROOT, file), 'utf8');
      assert.ok(checkedIn === content, `${file} differs from the generator's output: run \`npm run ddl\` and commit it`);
    }
  });

  test('when the migration and the DDL files are compared, then both files hold every table, column, check, foreign key and index', async () => {
    const pg = parseSchema(await migrationSql());
    // Sanity: the reader found what the migration creates.
    assert.deepEqual([...pg.tables.keys()], ['users', 'vehicles', 'rides', 'sessions', 'schema_info', 'rate_limits', 'api_tokens', 'idempotency_keys']);
    assert.equal(pg.indexes.size, 9);
    assert.equal(pg.tables.get('rides')!.checks.size, 3);
    assertSameSchema(pg, parseSchema(partitionedDdl()), PARTITIONED_DDL_FILE);
    assertSameSchema(pg, parseSchema(multiRegionDdl()), MULTI_REGION_DDL_FILE, 'region');
  });

  test('when a file is loaded on a version that locks new tables, then no statement needs a table unlocked for it', () => {
    for (const [file, ddl] of Object.entries(ddlFiles())) assertNeverTouchesALockedTable(ddl, file);
    // The check itself: a CREATE INDEX on a table the file did not create, without an unlock first, is caught.
    assert.throws(() => assertNeverTouchesALockedTable('USE movr; CREATE INDEX i ON sessions (expire);', 'bad'), /before it is unlocked/);
  });

  test('when each version of each file is loaded and then its upgrade file, then the schema is the next version\'s file', () => {
    for (const [mode, render] of [
      ['partitioned', partitionedDdl],
      ['multiRegion', multiRegionDdl],
    ] as const) {
      for (let version = 2; version <= SCHEMA_VERSION; version++) {
        const upgraded = applySql(parseSchema(render(regionLayout(), version - 1)), upgradeDdl(mode, version));
        const fresh = parseSchema(render(regionLayout(), version));
        const { statements: _a, versions: upgradedVersions, ...upgradedShape } = upgraded;
        const { statements: _b, versions: freshVersions, ...freshShape } = fresh;
        // An upgrade pins a new index's partitions after the older ones: the same zones in another order.
        upgradedShape.zones.sort();
        freshShape.zones.sort();
        assert.deepEqual(upgradedShape, freshShape, `${mode}: version ${version - 1} plus ${upgradeFileName(mode, version)}`);
        assert.equal(Math.max(...upgradedVersions), version);
        assert.deepEqual(freshVersions, [version]);
        // Loading it a second time must change nothing more: every creation says IF NOT EXISTS, schema_info is upserted.
        for (const statement of statementsOf(upgradeDdl(mode, version))) {
          if (/^(CREATE (UNIQUE )?INDEX|CREATE TABLE)/i.test(statement)) assert.match(statement, /IF NOT EXISTS/, statement.slice(0, 60));
          if (/^ALTER TABLE \w+ ADD /i.test(statement)) assert.doesNotMatch(statement, /ADD COLUMN (?!IF NOT EXISTS)/i, statement);
          assert.doesNotMatch(statement, /^INSERT INTO schema_info/i, 'schema_info is upserted');
        }
      }
    }
  });

  test('when an upgrade moves session rows, then it only moves the ones not moved yet', () => {
    const statements = statementsOf(upgradeDdl('partitioned', 2));
    assert.ok(statements.some((s) => /^UPDATE sessions SET .* WHERE user_id IS NULL$/.test(s)));
    assert.ok(statements.some((s) => s === 'DELETE FROM sessions WHERE user_id IS NULL'));
  });

  test('when the headers are read, then they name the supported versions, the licence rule and the regions to check', () => {
    for (const [file, ddl] of Object.entries(ddlFiles())) {
      // Comment lines joined, as a reader reads them across the wrap.
      const header = ddl.slice(0, ddl.indexOf('\n\n')).replaceAll('\n-- ', ' ');
      for (const { version, patches } of COCKROACH_VERSIONS) assert.ok(header.includes(`${version} (${patches})`), `${file} names ${version}`);
      assert.match(header, /throttled to 5 concurrent open transactions/, file);
      assert.match(header, /schema_locked/, file);
      assert.doesNotMatch(ddl, /v23\.1|v23\.2|v24\.1|topology-geo-partitioned-replicas|prints a NOTICE/, `${file}: no unsupported version, dead link or wrong NOTICE claim`);
      if (!file.includes('upgrade')) assert.match(header, /SHOW REGIONS FROM CLUSTER/, file);
    }
  });

  test('when a file names a module of this repository, then the module exists', async () => {
    for (const [file, ddl] of Object.entries(ddlFiles())) {
      const named = [...ddl.matchAll(/\b((?:src|tools|scripts|test)\/[\w/.-]+\.ts)\b/g)].map((m) => m[1]!);
      assert.ok(named.length > 0, `${file} names its sources`);
      for (const module of named) await assert.doesNotReject(readFile(join(ROOT, module)), `${file} names ${module}`);
    }
  });

  test('when the files are loaded, then both record SCHEMA_VERSION in schema_info', () => {
    for (const ddl of [partitionedDdl(), multiRegionDdl()]) assert.deepEqual(parseSchema(ddl).versions, [SCHEMA_VERSION]);
  });

  test('dbinit.sql: every city table and its indexes are partitioned by a city column, one partition per region, each pinned to it', () => {
    const schema = parseSchema(partitionedDdl());
    assertPartitioned(schema, regionLayout(), PARTITIONED_DDL_FILE);
    assert.equal(schema.tables.get('users')!.checks.get('check_city'), `city IN (${CITY_LIST})`);
  });

  test('dbinit-multiregion.sql: primary and added regions, REGIONAL BY ROW AS a region computed from city', () => {
    const schema = parseSchema(multiRegionDdl());
    assertMultiRegion(schema, regionLayout(), MULTI_REGION_DDL_FILE);
    assert.deepEqual([schema.primaryRegion, ...schema.addedRegions], REGION_NAMES);
  });

  test('the default layout is the regions module', () => {
    assert.deepEqual(
      regionLayout(),
      REGION_NAMES.map((name) => ({ name, partition: REGIONS[name].partition, cities: citiesOf(name) })),
    );
  });

  test('when the regions change, then both files follow: no city or region is typed by hand', async () => {
    const layout: RegionLayout[] = [
      { name: 'aws-ap-south-1', partition: 'ap_south', cities: ['mumbai', 'delhi'] },
      { name: 'aws-sa-east-1', partition: 'sa_east', cities: ['são paulo', "o'higgins"] },
      { name: 'azure-northeurope', partition: 'north_europe', cities: ['dublin'] },
      { name: 'azure-westeurope', partition: 'west_europe', cities: ['utrecht', 'lyon'] },
    ];
    const partitioned = partitionedDdl(layout);
    const multiRegion = multiRegionDdl(layout);
    assertPartitioned(parseSchema(partitioned), layout, 'custom dbinit.sql');
    assertMultiRegion(parseSchema(multiRegion), layout, 'custom dbinit-multiregion.sql');
    const allCities = layout.flatMap((r) => r.cities.map((c) => `'${c.replaceAll("'", "''")}'`)).join(', ');
    for (const ddl of [partitioned, multiRegion]) {
      const schema = parseSchema(ddl);
      assert.equal(schema.tables.get('rides')!.checks.get('check_rider_city'), `rider_city IN (${allCities})`);
    }
    const upgrades = [upgradeDdl('partitioned', 2, layout), upgradeDdl('multiRegion', 2, layout)];
    assert.match(upgrades[0]!, /constraints = '\{"\+region=aws-ap-south-1": 1, "\+region=aws-sa-east-1": 1, /);
    for (const ddl of [partitioned, multiRegion, ...upgrades]) {
      for (const name of [...CITIES, ...REGION_NAMES, ...REGION_NAMES.map((r) => REGIONS[r].partition)]) {
        assert.ok(!ddl.includes(name), `${name} comes from somewhere other than the layout`);
      }
    }
    for (const file of ['tools/cockroach-ddl/ddl.ts', 'src/db/schema.ts']) {
      const source = await readFile(join(ROOT, file), 'utf8');
      for (const name of [...CITIES, ...REGION_NAMES, ...REGION_NAMES.map((r) => REGIONS[r].partition)]) {
        assert.ok(!new RegExp(`\\b${name}\\b`, 'i').test(source), `${file} must not name ${name}`);
      }
    }
  });

  test('when the layout cannot become valid SQL, then the generator refuses it', () => {
    const ok = { name: 'gcp-x', partition: 'x', cities: ['a'] };
    assert.throws(() => partitionedDdl([]), /empty/);
    assert.throws(() => partitionedDdl([{ ...ok, partition: 'x-y' }]), /partition name/);
    assert.throws(() => partitionedDdl([{ ...ok, name: "x']" }]), /region name/);
    assert.throws(() => partitionedDdl([ok, { name: 'gcp-y', partition: 'y', cities: ['a'] }]), /city "a" appears twice/);
    assert.throws(() => multiRegionDdl([{ ...ok, cities: [] }]), /no city/);
  });

  test('when generate-ddl runs, then it writes the files, and with --check it only reports the ones that differ', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'movr-ddl-'));
    try {
      const all = Object.keys(ddlFiles());
      assert.deepEqual((await syncDdl(dir, { check: true })).differing, all);
      await assert.rejects(readFile(join(dir, PARTITIONED_DDL_FILE)), /ENOENT/);
      assert.deepEqual((await syncDdl(dir, { check: false })).differing, all);
      assert.equal(await readFile(join(dir, MULTI_REGION_DDL_FILE), 'utf8'), multiRegionDdl());
      assert.equal(await readFile(join(dir, upgradeFileName('partitioned', 2)), 'utf8'), upgradeDdl('partitioned', 2));
      assert.deepEqual((await syncDdl(dir, { check: true })).differing, []);
      await writeFile(join(dir, MULTI_REGION_DDL_FILE), `${multiRegionDdl()}-- edited\n`);
      assert.deepEqual((await syncDdl(dir, { check: true })).differing, [MULTI_REGION_DDL_FILE]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const run = (...args: string[]) =>
      spawnSync(process.execPath, [...nodeScript('tools/cockroach-ddl/generate'), ...args], { cwd: ROOT, encoding: 'utf8' });
    const check = run('--check');
    assert.equal(check.status, 0, check.stderr);
    const bad = run('--frobnicate');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /usage/);
  });
});
