import {
  type Mode,
  MULTI_REGION_DDL_FILE,
  PARTITIONED_DDL_FILE,
  REGION_COLUMN,
  UPGRADE_DIR,
  upgradeFileName,
} from '../../src/db/cockroach-files.js';
import { MIGRATIONS } from '../../src/db/migrate.js';
import { INDEXES, type IndexDef, SCHEMA_VERSION, type SchemaChange, TABLES, type TableDef } from '../../src/db/schema.js';
import { citiesOf, REGION_NAMES, REGIONS } from '../../src/regions.js';

/**
 * Builds the CockroachDB schema files from src/db/schema.ts, the regions module and the migrations' data steps: dbinit.sql (geo-partitioned
 * by city, zone configs per partition), dbinit-multiregion.sql (multi-region SQL: database regions, REGIONAL BY ROW
 * and GLOBAL tables), and for each later schema version one upgrade file per layout under db/cockroach/. Pure
 * functions; generate.ts beside it writes the files and test/unit/cockroach-ddl.test.ts checks them against the
 * PostgreSQL migrations and against each other (version N-1 plus its upgrade equals version N).
 */

export const DATABASE_NAME = 'movr';

/**
 * The CockroachDB releases in support on 2026-12-01, per cockroachdb/docs src/current/_data/versions.csv and the
 * release support policy (https://www.cockroachlabs.com/docs/releases/release-support-policy): v24.1 and v26.1
 * (an Innovation release, no assistance phase) had left support; v24.3, v25.2 and v25.4 only in their LTS patches.
 */
export const COCKROACH_VERSIONS = [
  { version: 'v24.3', patches: 'LTS, 24.3.12 and later', supportEnds: '2027-05-05' },
  { version: 'v25.2', patches: 'LTS, 25.2.10 and later', supportEnds: '2027-12-17' },
  { version: 'v25.4', patches: 'LTS, 25.4.10 and later', supportEnds: '2028-05-03' },
  { version: 'v26.2', patches: '26.2.0 and later', supportEnds: '2027-10-27' },
] as const;
export const VERSIONS_CHECKED_ON = '2026-12-01';

/** The oldest version targeted: what its docs document, the later ones keep. */
const DOCS = 'https://www.cockroachlabs.com/docs/v24.3';
/** The newest, for what changed since (schema_locked defaults, licences). */
const DOCS_NOW = 'https://www.cockroachlabs.com/docs/v26.2';
const SOURCE = 'https://github.com/cockroachdb/cockroach/blob/master';
/** Custom and generic plans, which the older versions' pages do not describe. */
const PLAN_TYPES = 'https://www.cockroachlabs.com/docs/v25.4/cost-based-optimizer#query-plan-type';

/** What schema `version` changed and its data steps, from its PostgreSQL migration (named `NNN-...`). */
function changeOf(version: number): SchemaChange {
  const prefix = `${String(version).padStart(3, '0')}-`;
  const migration = Object.entries(MIGRATIONS as Record<string, { change?: SchemaChange }>).find(([name]) => name.startsWith(prefix))?.[1];
  if (migration?.change === undefined) throw new Error(`migration ${prefix}* exports no change for the upgrade file`);
  return migration.change;
}

/** Tables of no city that dbinit.sql gives a replica in every region with global reads, from this schema version. */
const GLOBAL_READS_SINCE: Record<string, number> = { sessions: 2 };

export interface RegionLayout {
  /** The cloud region, as the nodes' `--locality=region=...` names it. */
  readonly name: string;
  /** The partition name of this region's cities in dbinit.sql. */
  readonly partition: string;
  readonly cities: readonly string[];
}

/** The regions module as the generator sees it; tests pass another layout to prove nothing is typed by hand. */
export function regionLayout(): RegionLayout[] {
  return REGION_NAMES.map((name) => ({ name, partition: REGIONS[name].partition, cities: citiesOf(name) }));
}

function checkLayout(layout: readonly RegionLayout[]): void {
  if (layout.length === 0) throw new Error('the region layout is empty');
  const seen = new Set<string>();
  const once = (kind: string, value: string) => {
    if (seen.has(`${kind}:${value}`)) throw new Error(`${kind} ${JSON.stringify(value)} appears twice in the region layout`);
    seen.add(`${kind}:${value}`);
  };
  for (const region of layout) {
    // Region names go into zone constraint strings and quoted identifiers; partition names are bare identifiers.
    if (!/^[a-z0-9][a-z0-9-]*$/.test(region.name)) throw new Error(`region name ${JSON.stringify(region.name)} is not [a-z0-9-]`);
    if (!/^[a-z_][a-z0-9_]*$/.test(region.partition)) throw new Error(`partition name ${JSON.stringify(region.partition)} is not a plain identifier`);
    if (region.cities.length === 0) throw new Error(`region ${region.name} has no city`);
    once('region', region.name);
    once('partition', region.partition);
    for (const city of region.cities) {
      if (city.trim() === '') throw new Error(`region ${region.name} has an empty city name`);
      once('city', city);
    }
  }
}

const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;
const literals = (values: readonly string[]) => values.map(literal).join(', ');
const quotedName = (value: string) => `"${value.replaceAll('"', '""')}"`;

/** A column of src/db/schema.ts as it is written in CockroachDB DDL. */
export interface Column {
  readonly name: string;
  readonly type: string;
  readonly notNull: boolean;
  readonly default?: string;
  readonly since?: number;
}

/** A table of src/db/schema.ts at one schema version, its checks spelled out for one region layout. */
export interface Table {
  readonly name: string;
  readonly columns: readonly Column[];
  readonly primaryKey: readonly string[];
  readonly checks: readonly { readonly name: string; readonly expr: string; readonly since?: number }[];
  readonly uniques: readonly { readonly name: string; readonly columns: readonly string[] }[];
  readonly foreignKeys: NonNullable<TableDef['foreignKeys']>;
  readonly byCity: boolean;
  readonly since?: number;
}

/**
 * The tables, constraints and indexes of src/db/schema.ts at schema `version`, with the city checks of `layout`;
 * `since` marks what each later version added, from which the upgrade files are written.
 */
export function cockroachSchema(
  layout: readonly RegionLayout[] = regionLayout(),
  version: number = SCHEMA_VERSION,
): {
  tables: readonly Table[];
  indexes: readonly IndexDef[];
} {
  checkLayout(layout);
  const cities = layout.flatMap((region) => region.cities);
  const present = (since: number | undefined) => (since ?? 1) <= version;
  const tables = Object.entries(TABLES as Record<string, TableDef>)
    .filter(([, table]) => present(table.since))
    .map(([name, table]): Table => {
      const columns = Object.entries(table.columns).filter(([, column]) => present(column.since));
      const listChecks = columns.flatMap(([column, { type }]) =>
        type.oneOf === undefined ? [] : [{ name: `check_${column}`, expr: `${column} IN (${literals(type.oneOf === 'cities' ? cities : type.oneOf)})` }],
      );
      return {
        name,
        byCity: table.byCity,
        ...(table.since === undefined ? {} : { since: table.since }),
        columns: columns.map(([column, def]) => ({
          name: column,
          type: def.type.sql,
          notNull: def.notNull,
          ...(def.default === undefined ? {} : { default: def.default }),
          ...(def.since === undefined ? {} : { since: def.since }),
        })),
        primaryKey: table.primaryKey,
        checks: [...listChecks, ...(table.checks ?? []).filter((check) => present(check.since))],
        uniques: table.uniques ?? [],
        foreignKeys: (table.foreignKeys ?? []).filter((fk) => present(fk.since)),
      };
    });
  return { tables, indexes: INDEXES.filter((index) => present(index.since) && (index.until === undefined || version < index.until)) };
}

const CITY_COLUMNS = new Set(['city', 'rider_city']);

const leadingColumn = (index: IndexDef) => index.columns[0]?.split(' ')[0] ?? '';

/** The city column an index is partitioned by: its leading column, which CockroachDB requires to be the partition key. */
function partitionColumnOf(index: IndexDef): string {
  const leading = leadingColumn(index);
  if (!CITY_COLUMNS.has(leading)) throw new Error(`index ${index.name} of a city table does not start with a city column`);
  return leading;
}

function partitionClause(column: string, layout: readonly RegionLayout[], indent: string): string {
  const partitions = layout.map((region) => `${indent}    PARTITION ${region.partition} VALUES IN (${literals(region.cities)})`);
  return `PARTITION BY LIST (${column}) (\n${partitions.join(',\n')}\n${indent})`;
}

function regionCase(layout: readonly RegionLayout[]): string {
  const whens = layout.map((region) => `            WHEN city IN (${literals(region.cities)}) THEN ${literal(region.name)}`);
  return ['(', '        CASE', ...whens, '        END', '    )'].join('\n');
}

function columnSql(column: Column): string {
  const parts = [column.name, column.type];
  if (column.notNull) parts.push('NOT NULL');
  if (column.default !== undefined) parts.push(`DEFAULT ${column.default}`);
  return parts.join(' ');
}

/** Foreign keys to a table the file creates later are added by ALTER TABLE once it exists (laterForeignKeys). */
function tableElements(table: Table, mode: Mode, layout: readonly RegionLayout[], createdBefore: ReadonlySet<string>): string[] {
  const lines = table.columns.map((column) => `    ${columnSql(column)}`);
  if (mode === 'multiRegion' && table.byCity) {
    lines.push(
      '    -- The row\'s home region, computed from its city, so a rider\'s rows live in their city\'s region whichever gateway' +
        '\n    -- inserted them; REGIONAL BY ROW AS needs a crdb_internal_region NOT NULL column' +
        ` (${DOCS}/table-localities#regional-by-row-tables).` +
        `\n    ${REGION_COLUMN} crdb_internal_region NOT NULL AS ${regionCase(layout)} STORED`,
    );
  }
  lines.push(`    CONSTRAINT ${table.name}_pkey PRIMARY KEY (${table.primaryKey.join(', ')})`);
  for (const check of table.checks) lines.push(`    CONSTRAINT ${check.name} CHECK (${check.expr})`);
  for (const unique of table.uniques) {
    const why =
      mode === 'partitioned'
        ? '    -- Not partitioned: a username is unique across all cities, which per-city partitions cannot enforce; the docs\n' +
          '    -- answer global uniqueness with an unpartitioned secondary index' +
          ` (${DOCS}/partitioning#partition-using-a-secondary-index).\n` +
          '    -- It serves log-in by username too, and lives in the default zone: sign-up, log-in and account deletion may cross\n' +
          '    -- regions to reach it. (CockroachDB prints its "non-partitioned index" NOTICE only for INDEX definitions, not for\n' +
          `    -- a UNIQUE constraint: ${SOURCE}/pkg/sql/create_table.go, createTableNode.startExec.)\n`
        : '    -- Implicitly partitioned by region like every index of a REGIONAL BY ROW table; CockroachDB keeps it unique\n' +
          '    -- across regions by checking the other regions on every insert and update of a username' +
          ` (${DOCS}/alter-table#using-implicit-vs-explicit-index-partitioning-in-regional-by-row-tables).\n`;
    lines.push(`${why}    CONSTRAINT ${unique.name} UNIQUE (${unique.columns.join(', ')})`);
  }
  for (const fk of table.foreignKeys.filter((fk) => createdBefore.has(fk.table))) {
    lines.push(
      `    CONSTRAINT ${fk.name} FOREIGN KEY (${fk.columns.join(', ')}) REFERENCES ${fk.table} (${fk.refColumns.join(', ')})`,
    );
  }
  return lines;
}

/** Elements are joined with commas; a comment line must stay before its element, not after the comma. */
function joinElements(elements: readonly string[]): string {
  return elements.map((element, i) => (i < elements.length - 1 ? `${element},` : element)).join('\n');
}

function partitionZones(table: Table, indexNames: readonly string[], layout: readonly RegionLayout[]): string {
  const statements = indexNames.flatMap((indexName) =>
    layout.map(
      (region) =>
        `ALTER PARTITION ${region.partition} OF INDEX ${table.name}@${indexName} CONFIGURE ZONE USING constraints = '[+region=${region.name}]';`,
    ),
  );
  return [
    `-- Pin each partition of every ${table.name} index to its region (${DOCS}/alter-partition#create-a-replication-zone-for-a-partition);`,
    '-- a constraint no node matches is refused, so a cluster without these regions stops the load here',
    `-- (${SOURCE}/pkg/sql/set_zone_config.go: "matches no existing nodes within the cluster").`,
    ...statements,
  ].join('\n');
}

/**
 * The zone config a GLOBAL table gets from multi-region SQL, written out for dbinit.sql, which has no database
 * regions: three voters in the first region, a non-voting replica in every other one, and global reads, so that
 * every region reads locally and writes pay a cross-region round trip and commit wait.
 */
function globalReadsZone(table: Table, layout: readonly RegionLayout[]): string {
  const [primary] = layout;
  const perRegion = layout.map((region) => `"+region=${region.name}": 1`).join(', ');
  return [
    `-- ${table.name} belongs to no city and is read on every logged-in request: a replica in every region with global reads`,
    `-- (the zone config of a GLOBAL table: ${DOCS}/table-localities#global-tables, ${DOCS}/configure-replication-zones#global_reads).`,
    `ALTER TABLE ${table.name} CONFIGURE ZONE USING`,
    `    num_replicas = ${layout.length + 2},`,
    '    num_voters = 3,',
    `    constraints = '{${perRegion}}',`,
    `    voter_constraints = '[+region=${primary!.name}]',`,
    `    lease_preferences = '[[+region=${primary!.name}]]',`,
    '    global_reads = true;',
  ].join('\n');
}

function createIndex(index: IndexDef, table: Table, mode: Mode, layout: readonly RegionLayout[], ifNotExists: boolean): string {
  const head = `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX ${ifNotExists ? 'IF NOT EXISTS ' : ''}${index.name} ON ${index.table} (${index.columns.join(', ')})`;
  const lines = [`-- ${index.purpose}`];
  const partitioned = mode === 'partitioned' && table.byCity;
  if (partitioned && partitionColumnOf(index) !== 'city') {
    lines.push(
      `-- Partitioned by ${partitionColumnOf(index)}: the partition columns must lead the index (${DOCS}/partitioning#primary-key-considerations),` +
        "\n-- so these entries live in the rider's home region.",
    );
  }
  if (mode === 'multiRegion' && table.byCity && leadingColumn(index) !== 'city') {
    lines.push(
      "-- Implicitly partitioned by the row's region, which follows the ride's city, not rider_city: a lookup by rider reads" +
        `\n-- every region${index.unique ? ', and this uniqueness is checked in every region' : ''}` +
        ` (${DOCS}/alter-table#using-implicit-vs-explicit-index-partitioning-in-regional-by-row-tables).`,
    );
  }
  if (index.where !== undefined) {
    lines.push(
      `-- Partial: used only by a query whose filter implies the predicate (${DOCS}/partial-indexes). The app writes it as a` +
        '\n-- literal, so that a generic plan, made before any placeholder has a value, can use the index too' +
        `\n-- (${PLAN_TYPES}).`,
    );
  }
  // CockroachDB's grammar puts PARTITION BY before the WHERE of a partial index (create-index.md parameters).
  const clauses = [head];
  if (partitioned) clauses.push(partitionClause(partitionColumnOf(index), layout, ''));
  if (index.where !== undefined) clauses.push(`WHERE ${index.where}`);
  lines.push(`${clauses.join('\n')};`);
  return lines.join('\n');
}

function tableComment(table: Table, mode: Mode, version: number): string {
  if (table.byCity) {
    return mode === 'partitioned'
      ? `-- The primary key starts with city, the partition key (${DOCS}/partitioning#partition-using-primary-key).`
      : `-- ${DOCS}/create-table#create-a-table-with-a-regional-by-row-locality-using-a-custom-region-column`;
  }
  const paragraph = (text: string) => commentParagraph(text).join('\n');
  switch (table.name) {
    case 'sessions':
      return mode === 'partitioned'
        ? paragraph(
            'Logged-in sessions (src/db/session-store.ts), read by sid on every logged-in request. A session belongs to no ' +
              'city and its key is a random sid, so it is not partitioned; its zone config below gives it a replica in every region.',
          )
        : paragraph(
            'Logged-in sessions (src/db/session-store.ts), read by sid on every logged-in request. REGIONAL BY ROW with the ' +
              'default crdb_region homes a session in the region of the gateway that logged the rider in, the region that serves ' +
              `them (${DOCS}/alter-table#crdb_region). A read by sid searches that region first, the others only on a miss ` +
              `(${DOCS}/cost-based-optimizer#locality-optimized-search-in-multi-region-clusters); a new sid is checked for ` +
              "uniqueness in every region, and revoking a user's sessions reads sessions_user_idx in every region.",
          );
    case 'rate_limits':
      return mode === 'partitioned'
        ? paragraph(
            'Log-in and sign-up counters shared by every instance; keyed by client, not city, and written on every attempt, so ' +
              'neither partitioned nor given global reads: it lives in the default replication zone, and may cross regions.',
          )
        : paragraph(
            'Log-in and sign-up counters shared by every instance: homed in the region of the gateway that first counted the ' +
              `key, where that client's next attempts arrive (${DOCS}/alter-table#crdb_region); an upsert of a key not found ` +
              'there reads the other regions.',
          );
    case 'schema_info':
      return mode === 'partitioned'
        ? paragraph(
            `The app reads it at start and refuses to run when it is missing or older than version ${version}. Not partitioned: ` +
              'it lives in the default replication zone.',
          )
        : paragraph(
            'The app reads it at start in every region and it changes once per schema version: GLOBAL, for local reads ' +
              `everywhere (${DOCS}/table-localities#global-tables).`,
          );
    default:
      // A table of no city added later: where its rows live, until a note of its own says why they should live elsewhere.
      return mode === 'partitioned'
        ? paragraph('Belongs to no city, so not partitioned: it lives in the default replication zone.')
        : paragraph(
            'Belongs to no city: REGIONAL BY ROW with the default crdb_region homes each row in the region of the gateway ' +
              `that wrote it (${DOCS}/alter-table#crdb_region).`,
          );
  }
}

/**
 * CREATE TABLE with the table's indexes and zone configs. `WITH (schema_locked = false)`: from v26.1 new tables are
 * schema_locked by default, and every later statement here (indexes, zone configs, foreign keys to it, upgrades)
 * then relies on the schema changer unlocking the table by itself; this makes them need nothing of the kind.
 */
function createTable(
  createdBefore: ReadonlySet<string>,
  table: Table,
  indexes: readonly IndexDef[],
  mode: Mode,
  layout: readonly RegionLayout[],
  version: number,
  ifNotExists: boolean,
): string[] {
  let suffix = ' WITH (schema_locked = false)';
  if (mode === 'partitioned' && table.byCity) suffix = ` ${partitionClause('city', layout, '')}${suffix}`;
  if (mode === 'multiRegion') {
    suffix += table.byCity ? ` LOCALITY REGIONAL BY ROW AS ${REGION_COLUMN}` : table.name === 'schema_info' ? ' LOCALITY GLOBAL' : ' LOCALITY REGIONAL BY ROW';
  }
  const head = `CREATE TABLE ${ifNotExists ? 'IF NOT EXISTS ' : ''}${table.name} (`;
  const out = [[tableComment(table, mode, version), head, joinElements(tableElements(table, mode, layout, new Set([...createdBefore, table.name]))), `)${suffix};`].join('\n')];
  const own = indexes.filter((index) => index.table === table.name);
  for (const index of own) out.push(createIndex(index, table, mode, layout, ifNotExists));
  if (mode === 'partitioned' && table.byCity) out.push(partitionZones(table, [`${table.name}_pkey`, ...own.map((i) => i.name)], layout));
  const globalSince = GLOBAL_READS_SINCE[table.name];
  if (mode === 'partitioned' && globalSince !== undefined && globalSince <= version) out.push(globalReadsZone(table, layout));
  return out;
}

const fileOf = (mode: Mode) => (mode === 'partitioned' ? PARTITIONED_DDL_FILE : MULTI_REGION_DDL_FILE);

/** A paragraph as `-- ` comment lines of at most 118 characters (a long URL gets a line of its own if need be). */
function commentParagraph(text: string): string[] {
  const lines: string[] = [];
  let line = '--';
  for (const word of text.split(/\s+/)) {
    if (line.length > 2 && line.length + 1 + word.length > 118) {
      lines.push(line);
      line = '--';
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

function versionsBlock(): string[] {
  const names = COCKROACH_VERSIONS.map((v) => `${v.version} (${v.patches})`);
  return [
    ...commentParagraph(
      `CockroachDB versions: ${names.slice(0, -1).join(', ')} and ${names.at(-1)}, the releases in support on ` +
        `${VERSIONS_CHECKED_ON} (https://www.cockroachlabs.com/docs/releases/release-support-policy). Checked by reading ` +
        "each statement against those versions' docs and grammar (pkg/sql/parser/sql.y) and, where the docs are silent, " +
        "CockroachDB's logic tests and source, each named beside its statement; not loaded into a live cluster here.",
    ),
    '--',
    ...commentParagraph(
      `Schema-locked tables: from v26.1 CREATE TABLE makes tables schema_locked by default (${DOCS_NOW}/online-schema-changes), ` +
        'and a DDL statement that falls back to the legacy schema changer fails on a locked table with SQLSTATE 57000 ' +
        '(pkg/sql/logictest/testdata/logic_test/schema_locked). Every CREATE TABLE here says WITH (schema_locked = false), ' +
        `a table storage parameter of every version above (${DOCS}/with-storage-parameter); that it may be given false at ` +
        "creation rests on CockroachDB's tests (CREATE TABLE ... WITH (schema_locked = t) in that logic test, WITH " +
        '(schema_locked=false) in pkg/ccl/changefeedccl/changefeed_schema_test.go). So no later statement, here or in an ' +
        'upgrade file, depends on a table being unlocked for it. MovR runs no changefeed, which is all it would speed up.',
    ),
    '--',
    ...commentParagraph(
      `Licence (${DOCS_NOW}/licensing-faqs): from v24.3 on, partitioning, zone configs and database regions need no ` +
        'separate Enterprise feature key, but a self-hosted cluster of more than one node needs a licence key (Enterprise, ' +
        'Enterprise Free or Enterprise Trial) within a 7-day grace period, and Free and Trial keys need telemetry at least ' +
        'every 7 days; otherwise the cluster is throttled to 5 concurrent open transactions (pkg/server/license/enforcer.go), ' +
        "fewer than one app instance's pool of 10 connections. CockroachDB Cloud clusters carry a licence already.",
    ),
  ];
}

function loadLines(file: string, database: string): string[] {
  return [`--   cockroach sql --url 'postgresql://root@<host>:26257/${database}?sslmode=verify-full&sslrootcert=<ca.crt>' -f ${file}`];
}

function header(mode: Mode, layout: readonly RegionLayout[], version: number): string {
  const file = fileOf(mode);
  const other = mode === 'partitioned' ? MULTI_REGION_DDL_FILE : PARTITIONED_DDL_FILE;
  const regionList = layout.map((region) => region.name).join(', ');
  const lines =
    mode === 'partitioned'
      ? [
          `-- MovR schema version ${version} for CockroachDB: the classic geo-partitioned layout. The city-keyed tables and their`,
          '-- indexes are partitioned by city, one partition per region, each partition pinned to its region by a zone config.',
          `-- For CockroachDB's multi-region SQL (REGIONAL BY ROW tables) load ${other} instead, not both.`,
        ]
      : [
          `-- MovR schema version ${version} for CockroachDB's multi-region SQL: database regions, REGIONAL BY ROW tables homed in`,
          `-- their city's region, a GLOBAL schema_info. For the classic geo-partitioned layout load ${other} instead, not both.`,
        ];
  lines.push(
    '--',
    '-- Generated by tools/cockroach-ddl from src/regions.ts and src/db/schema.ts: change those and run',
    '-- `npm run ddl`; never edit this file by hand.',
    '--',
    ...versionsBlock(),
    '--',
    ...commentParagraph(
      `Before loading: start every node with --locality=region=<region>,zone=<zone>, at least 3 nodes in each of ${regionList}` +
        (mode === 'partitioned'
          ? ' (every partition keeps all its replicas in its region, and sessions keep 3 voters in the first). SHOW REGIONS ' +
            `FROM CLUSTER (${DOCS}/show-regions) must list each of them, or the first zone config naming a missing one stops the load.`
          : ` (the first is the primary region). SHOW REGIONS FROM CLUSTER (${DOCS}/show-regions) must list each of them, or ` +
            'ALTER DATABASE ... REGION stops the load.'),
    ),
    '--',
    '-- Load it once, into a cluster without a movr database:',
    ...loadLines(file, 'defaultdb'),
    ...commentParagraph(
      'It never drops anything. CREATE DATABASE fails when movr exists, and cockroach sql -f stops at the first error ' +
        `(errexit is on outside interactive sessions: ${DOCS}/cockroach-sql#client-side-options), so a second run changes ` +
        'nothing. To start over on purpose, and lose the data: DROP DATABASE movr CASCADE; then load again. A database ' +
        `loaded from an older version of this file is brought here by ${UPGRADE_DIR}/upgrade-NNN${mode === 'multiRegion' ? '-multiregion' : ''}.sql, ` +
        'each in order (the app names the ones it needs when it refuses to start).',
    ),
  );
  return lines.join('\n');
}

/** The whole schema at `version` (SCHEMA_VERSION for the files; older ones let tests replay the upgrades). */
function render(mode: Mode, layout: readonly RegionLayout[], version: number): string {
  const { tables, indexes } = cockroachSchema(layout, version);
  const out: string[] = [header(mode, layout, version), `CREATE DATABASE ${DATABASE_NAME};`];

  if (mode === 'multiRegion') {
    const [primary, ...others] = layout;
    out.push(
      [
        `-- The first region of the regions module is the primary region; survival goal ZONE, the default (${DOCS}/multiregion-survival-goals).`,
        `-- ${DOCS}/alter-database#set-primary-region`,
        `ALTER DATABASE ${DATABASE_NAME} PRIMARY REGION ${quotedName(primary!.name)};`,
        `-- ${DOCS}/alter-database#add-region`,
        ...others.map((region) => `ALTER DATABASE ${DATABASE_NAME} ADD REGION ${quotedName(region.name)};`),
      ].join('\n'),
    );
  }
  out.push(`USE ${DATABASE_NAME};`);
  const created = new Set<string>();
  for (const table of tables) {
    out.push(...createTable(created, table, indexes, mode, layout, version, false));
    created.add(table.name);
  }
  out.push(...laterForeignKeys(tables));
  out.push(`INSERT INTO schema_info (version) VALUES (${version});`);
  return `${out.join('\n\n')}\n`;
}

/** The statements that bring `mode`'s schema from version - 1 to version, each safe to run again. */
function renderUpgrade(mode: Mode, layout: readonly RegionLayout[], version: number): string {
  if (version < 2 || version > SCHEMA_VERSION) throw new Error(`no upgrade to schema version ${version}`);
  const before = cockroachSchema(layout, version - 1);
  const after = cockroachSchema(layout, version);
  const existed = new Set(before.tables.map((table) => table.name));
  const indexExisted = new Set(before.indexes.map((index) => index.name));
  const newColumns = new Map(
    after.tables
      .filter((table) => existed.has(table.name))
      .map((table) => [table, table.columns.filter((column) => (column.since ?? 1) === version)] as const)
      .filter(([, columns]) => columns.length > 0),
  );
  const newIndexes = after.indexes.filter((index) => !indexExisted.has(index.name) && existed.has(index.table));
  const indexStays = new Set(after.indexes.map((index) => index.name));
  const droppedIndexes = before.indexes.filter((index) => !indexStays.has(index.name));
  const newZones = after.tables.filter((table) => existed.has(table.name) && mode === 'partitioned' && GLOBAL_READS_SINCE[table.name] === version);
  const touched = [
    ...new Set([...newColumns.keys(), ...newZones, ...[...newIndexes, ...droppedIndexes].map((index) => after.tables.find((t) => t.name === index.table)!)]),
  ];

  const file = upgradeFileName(mode, version);
  const out: string[] = [
    [
      `-- MovR schema upgrade for CockroachDB, version ${version - 1} to ${version}, for a database loaded from ${fileOf(mode)}`,
      `-- (for ${fileOf(mode === 'partitioned' ? 'multiRegion' : 'partitioned')} load ${upgradeFileName(mode === 'partitioned' ? 'multiRegion' : 'partitioned', version)} instead).`,
      ...commentParagraph(`Version ${version}: ${changeOf(version).summary}.`),
      '--',
      '-- Generated by tools/cockroach-ddl from src/regions.ts, src/db/schema.ts and the migrations, from the same table',
      `-- definitions as ${fileOf(mode)}: change those and run \`npm run ddl\`; never edit this file by hand.`,
      '--',
      ...versionsBlock(),
      '--',
      `-- Load it once, before starting app instances that need version ${version} (they refuse to start until then, naming`,
      ...(changeOf(version).stopPreviousVersion
        ? ['-- this file).', ...commentParagraph(`Stop every instance of the previous version first: ${changeOf(version).stopPreviousVersion}:`)]
        : ['-- this file); the columns it adds are nullable or have a default, so instances of the previous version keep working:']),
      ...loadLines(file, DATABASE_NAME),
      '-- Every statement can run again, so an upgrade that stopped halfway (cockroach sql -f stops at the first error) is',
      '-- finished by loading this file again.',
    ].join('\n'),
    `USE ${DATABASE_NAME};`,
  ];
  for (const table of touched) {
    out.push(
      [
        `-- A table created before WITH (schema_locked = false) was written here may be locked (v26.1 and later lock new tables`,
        `-- by default: ${DOCS_NOW}/online-schema-changes): unlock it first. The parameter must be set alone, in a`,
        '-- single-statement implicit transaction (pkg/sql/logictest/testdata/logic_test/schema_locked); it stays unlocked, as',
        `-- in ${fileOf(mode)}.`,
        `ALTER TABLE ${table.name} SET (schema_locked = false);`,
      ].join('\n'),
    );
  }
  for (const [table, columns] of newColumns) {
    out.push(
      [
        `-- ${DOCS}/alter-table#add-column`,
        `ALTER TABLE ${table.name} ${columns.map((column) => `ADD COLUMN IF NOT EXISTS ${columnSql(column)}`).join(', ')};`,
      ].join('\n'),
    );
  }
  for (const step of changeOf(version).data) out.push(`${commentParagraph(step.why).join('\n')}\n${step.sql};`);
  for (const table of after.tables.filter((t) => existed.has(t.name))) {
    for (const check of table.checks.filter((c) => c.since === version)) out.push(addConstraint(table.name, check.name, `CHECK (${check.expr})`));
    for (const fk of table.foreignKeys.filter((f) => f.since === version)) out.push(addConstraint(table.name, fk.name, foreignKeySql(fk)));
  }
  for (const index of newIndexes) {
    const table = after.tables.find((t) => t.name === index.table)!;
    out.push(createIndex(index, table, mode, layout, true));
    if (mode === 'partitioned' && table.byCity) out.push(partitionZones(table, [index.name], layout));
  }
  for (const index of droppedIndexes) {
    out.push(
      [
        ...commentParagraph(
          `Version ${version} no longer has ${index.name}, dropped after any index that replaces it exists (${DOCS}/drop-index); ` +
            'one made by CREATE UNIQUE INDEX needs no CASCADE (https://github.com/cockroachdb/cockroach/pull/42001), and IF ' +
            'EXISTS lets this file run again.',
        ),
        `DROP INDEX IF EXISTS ${index.table}@${index.name};`,
      ].join('\n'),
    );
  }
  for (const table of newZones) out.push(globalReadsZone(table, layout));
  const created = new Set(existed);
  for (const table of after.tables.filter((t) => !existed.has(t.name))) {
    out.push(...createTable(created, table, after.indexes, mode, layout, version, true));
    created.add(table.name);
  }
  out.push(
    `-- The app starts once schema_info holds ${version}; UPSERT, so that loading this file again changes nothing.\nUPSERT INTO schema_info (version) VALUES (${version});`,
  );
  return `${out.join('\n\n')}\n`;
}

const foreignKeySql = (fk: Table['foreignKeys'][number]) =>
  `FOREIGN KEY (${fk.columns.join(', ')}) REFERENCES ${fk.table} (${fk.refColumns.join(', ')})`;

/** ADD CONSTRAINT IF NOT EXISTS, so that an upgrade file runs again: CockroachDB's own extension (PostgreSQL has none). */
function addConstraint(table: string, name: string, definition: string): string {
  return [
    `-- ${DOCS}/alter-table#add-constraint; IF NOT EXISTS since v21.2 (https://github.com/cockroachdb/cockroach/pull/71257,`,
    '-- undocumented: https://github.com/cockroachdb/docs/issues/16059). An existing row that breaks it stops the load here.',
    `ALTER TABLE ${table} ADD CONSTRAINT IF NOT EXISTS ${name} ${definition};`,
  ].join('\n');
}

/** The foreign keys of `tables` to a table created after them, added once every table exists. */
function laterForeignKeys(tables: readonly Table[]): string[] {
  const order = new Map(tables.map((table, i) => [table.name, i]));
  return tables.flatMap((table) =>
    table.foreignKeys
      .filter((fk) => (order.get(fk.table) ?? -1) >= order.get(table.name)!)
      .map(
        (fk) =>
          `-- ${table.name} is created before ${fk.table}: the key is added once both exist (${DOCS}/alter-table#add-constraint).\n` +
          `ALTER TABLE ${table.name} ADD CONSTRAINT ${fk.name} ${foreignKeySql(fk)};`,
      ),
  );
}

/** dbinit.sql: tables partitioned by city, one partition per region, zone configs pinning partitions to regions. */
export function partitionedDdl(layout: readonly RegionLayout[] = regionLayout(), version: number = SCHEMA_VERSION): string {
  return render('partitioned', layout, version);
}

/** dbinit-multiregion.sql: multi-region SQL with REGIONAL BY ROW tables homed by a region column computed from city. */
export function multiRegionDdl(layout: readonly RegionLayout[] = regionLayout(), version: number = SCHEMA_VERSION): string {
  return render('multiRegion', layout, version);
}

/** The upgrade file from version - 1 to version for one layout. */
export function upgradeDdl(mode: Mode, version: number, layout: readonly RegionLayout[] = regionLayout()): string {
  return renderUpgrade(mode, layout, version);
}

/** Every file the generator writes, keyed by its path from the repository root. */
export function ddlFiles(layout: readonly RegionLayout[] = regionLayout()): Record<string, string> {
  const files: Record<string, string> = {
    [PARTITIONED_DDL_FILE]: partitionedDdl(layout),
    [MULTI_REGION_DDL_FILE]: multiRegionDdl(layout),
  };
  for (let version = 2; version <= SCHEMA_VERSION; version++) {
    for (const mode of ['partitioned', 'multiRegion'] as const) files[upgradeFileName(mode, version)] = upgradeDdl(mode, version, layout);
  }
  return files;
}
