import { citiesOf, REGION_NAMES, REGIONS } from '../regions.js';
import { SCHEMA_VERSION } from './schema.js';
import { VEHICLE_STATUS_LIST, VEHICLE_TYPE_LIST } from './sql-lists.js';

/**
 * Builds the two CockroachDB schema files from the regions module: dbinit.sql (geo-partitioned by city, zone configs per
 * partition) and dbinit-multiregion.sql (multi-region SQL: database regions, REGIONAL BY ROW and GLOBAL tables).
 * Pure functions; scripts/generate-ddl.ts writes the files and test/unit/cockroach-ddl.test.ts checks them against
 * the PostgreSQL migration.
 */

export const PARTITIONED_DDL_FILE = 'dbinit.sql';
export const MULTI_REGION_DDL_FILE = 'dbinit-multiregion.sql';
export const DATABASE_NAME = 'movr';
export const COCKROACH_VERSIONS = 'v23.1 and later';

const DOCS = 'https://www.cockroachlabs.com/docs/v23.1';

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

export interface ColumnDef {
  readonly name: string;
  readonly type: string;
  readonly notNull: boolean;
  readonly default?: string;
}

export interface TableDef {
  readonly name: string;
  readonly columns: readonly ColumnDef[];
  readonly primaryKey: readonly string[];
  readonly checks: readonly { readonly name: string; readonly expr: string }[];
  readonly uniques: readonly { readonly name: string; readonly columns: readonly string[] }[];
  readonly foreignKeys: readonly {
    readonly name: string;
    readonly columns: readonly string[];
    readonly table: string;
    readonly refColumns: readonly string[];
  }[];
  /** Rows belong to the city in `city`: partitioned by it, or REGIONAL BY ROW in its region. */
  readonly byCity: boolean;
}

export interface IndexDef {
  readonly name: string;
  readonly table: string;
  readonly unique: boolean;
  /** Index columns, with `DESC` where the migration has it. */
  readonly columns: readonly string[];
  readonly where?: string;
  readonly purpose: string;
}

/** The tables, constraints and indexes of migrations/001-initial.ts in CockroachDB types. */
export function cockroachSchema(layout: readonly RegionLayout[] = regionLayout()): {
  tables: readonly TableDef[];
  indexes: readonly IndexDef[];
} {
  checkLayout(layout);
  const cityList = literals(layout.flatMap((region) => region.cities));
  const col = (name: string, type: string, notNull: boolean, defaultValue?: string): ColumnDef =>
    defaultValue === undefined ? { name, type, notNull } : { name, type, notNull, default: defaultValue };
  const cityCheck = (column: string, name: string) => ({ name, expr: `${column} IN (${cityList})` });

  const tables: TableDef[] = [
    {
      name: 'users',
      byCity: true,
      columns: [
        col('city', 'STRING', true),
        col('id', 'UUID', true, 'gen_random_uuid()'),
        col('first_name', 'STRING', true),
        col('last_name', 'STRING', true),
        col('email', 'STRING', true),
        col('username', 'STRING', false),
        col('password_hash', 'STRING', false),
        col('is_owner', 'BOOL', true, 'false'),
        col('created_at', 'TIMESTAMPTZ', true, 'now()'),
      ],
      primaryKey: ['city', 'id'],
      checks: [cityCheck('city', 'check_city')],
      uniques: [{ name: 'users_username_key', columns: ['username'] }],
      foreignKeys: [],
    },
    {
      name: 'vehicles',
      byCity: true,
      columns: [
        col('city', 'STRING', true),
        col('id', 'UUID', true, 'gen_random_uuid()'),
        col('type', 'STRING', true),
        col('owner_id', 'UUID', true),
        col('date_added', 'TIMESTAMPTZ', true, 'now()'),
        col('status', 'STRING', true, "'available'"),
        col('last_location', 'STRING', true),
        col('color', 'STRING', true),
        col('brand', 'STRING', true, "''"),
      ],
      primaryKey: ['city', 'id'],
      checks: [
        cityCheck('city', 'check_city'),
        { name: 'check_type', expr: `type IN (${VEHICLE_TYPE_LIST})` },
        { name: 'check_status', expr: `status IN (${VEHICLE_STATUS_LIST})` },
      ],
      uniques: [],
      foreignKeys: [{ name: 'fk_city_ref_users', columns: ['city', 'owner_id'], table: 'users', refColumns: ['city', 'id'] }],
    },
    {
      name: 'rides',
      byCity: true,
      columns: [
        col('city', 'STRING', true),
        col('id', 'UUID', true, 'gen_random_uuid()'),
        col('vehicle_id', 'UUID', true),
        col('rider_id', 'UUID', true),
        col('rider_city', 'STRING', true),
        col('start_location', 'STRING', true),
        col('end_location', 'STRING', false),
        col('start_time', 'TIMESTAMPTZ', true, 'now()'),
        col('end_time', 'TIMESTAMPTZ', false),
        col('length', 'INTERVAL', false),
      ],
      primaryKey: ['city', 'id'],
      checks: [
        cityCheck('city', 'check_city'),
        cityCheck('rider_city', 'check_rider_city'),
        {
          name: 'check_ride_end',
          expr: '(end_time IS NULL) = (length IS NULL) AND (end_time IS NULL) = (end_location IS NULL)',
        },
      ],
      uniques: [],
      foreignKeys: [
        { name: 'fk_vehicle_city_ref_vehicles', columns: ['city', 'vehicle_id'], table: 'vehicles', refColumns: ['city', 'id'] },
        { name: 'fk_rider_city_ref_users', columns: ['rider_city', 'rider_id'], table: 'users', refColumns: ['city', 'id'] },
      ],
    },
    {
      name: 'sessions',
      byCity: false,
      columns: [
        col('sid', 'STRING', true),
        col('sess', 'JSONB', true),
        col('expire', 'TIMESTAMP(6)', true),
        col('user_city', 'STRING', false),
        col('user_id', 'UUID', false),
        col('revoked', 'BOOL', true, 'false'),
      ],
      primaryKey: ['sid'],
      checks: [],
      uniques: [],
      foreignKeys: [],
    },
    {
      name: 'rate_limits',
      byCity: false,
      columns: [col('key', 'STRING', true), col('hits', 'INT', true), col('reset_at', 'TIMESTAMPTZ', true)],
      primaryKey: ['key'],
      checks: [],
      uniques: [],
      foreignKeys: [],
    },
    {
      name: 'schema_info',
      byCity: false,
      columns: [col('version', 'INT', true)],
      primaryKey: ['version'],
      checks: [],
      uniques: [],
      foreignKeys: [],
    },
  ];

  const indexes: IndexDef[] = [
    {
      name: 'vehicles_city_listing_idx',
      table: 'vehicles',
      unique: false,
      columns: ['city', 'date_added DESC', 'id DESC'],
      where: "status <> 'removed'",
      purpose: 'The vehicles page: one city, not removed, newest first.',
    },
    {
      name: 'vehicles_owner_idx',
      table: 'vehicles',
      unique: false,
      columns: ['city', 'owner_id'],
      purpose: "A profile's vehicles, and the foreign key's lookups.",
    },
    {
      name: 'rides_rider_idx',
      table: 'rides',
      unique: false,
      columns: ['rider_city', 'rider_id', 'start_time DESC'],
      purpose: "A rider's history, newest first.",
    },
    {
      name: 'rides_one_active_per_vehicle_idx',
      table: 'rides',
      unique: true,
      columns: ['city', 'vehicle_id'],
      where: 'end_time IS NULL',
      purpose: 'The last line of defence against double rides: at most one active ride per vehicle...',
    },
    {
      name: 'rides_one_active_per_rider_idx',
      table: 'rides',
      unique: true,
      columns: ['rider_city', 'rider_id'],
      where: 'end_time IS NULL',
      purpose: '...and at most one per rider.',
    },
    {
      name: 'sessions_expire_idx',
      table: 'sessions',
      unique: false,
      columns: ['expire'],
      purpose: 'Expired sessions are pruned by expire.',
    },
    {
      name: 'sessions_user_idx',
      table: 'sessions',
      unique: false,
      columns: ['user_city', 'user_id'],
      purpose: "Account deletion revokes all of a user's sessions through this index.",
    },
    {
      name: 'rate_limits_reset_at_idx',
      table: 'rate_limits',
      unique: false,
      columns: ['reset_at'],
      purpose: 'Expired counters are pruned by reset_at.',
    },
  ];
  return { tables, indexes };
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

type Mode = 'partitioned' | 'multiRegion';

function tableElements(table: TableDef, mode: Mode, layout: readonly RegionLayout[]): string[] {
  const lines: string[] = [];
  for (const column of table.columns) {
    const parts = [column.name, column.type];
    if (column.notNull) parts.push('NOT NULL');
    if (column.default !== undefined) parts.push(`DEFAULT ${column.default}`);
    lines.push(`    ${parts.join(' ')}`);
  }
  if (mode === 'multiRegion' && table.byCity) {
    lines.push(
      '    -- The row\'s home region, computed from its city, so a rider\'s rows live in their city\'s region whichever gateway' +
        '\n    -- inserted them; the column must be crdb_internal_region NOT NULL' +
        ` (${DOCS}/alter-table#rename-crdb_region).` +
        `\n    region crdb_internal_region NOT NULL AS ${regionCase(layout)} STORED`,
    );
  }
  lines.push(`    CONSTRAINT ${table.name}_pkey PRIMARY KEY (${table.primaryKey.join(', ')})`);
  for (const check of table.checks) lines.push(`    CONSTRAINT ${check.name} CHECK (${check.expr})`);
  for (const unique of table.uniques) {
    const why =
      mode === 'partitioned'
        ? '    -- Not partitioned: a username is unique across all cities, which per-city partitions cannot enforce. The docs\n' +
          '    -- answer global uniqueness with an unpartitioned secondary index; it also serves login by username. It lives in\n' +
          '    -- the default zone, so sign-up and login may take one cross-region hop; CockroachDB prints a NOTICE about it' +
          ` (${DOCS}/partitioning#partition-using-a-secondary-index).\n`
        : '    -- Implicitly partitioned by region like every index of a REGIONAL BY ROW table; CockroachDB keeps it unique\n' +
          '    -- across regions with a uniqueness check on insert and update' +
          ` (${DOCS}/alter-table#add-a-unique-index-to-a-regional-by-row-table).\n`;
    lines.push(`${why}    CONSTRAINT ${unique.name} UNIQUE (${unique.columns.join(', ')})`);
  }
  for (const fk of table.foreignKeys) {
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

function zoneConfigs(table: TableDef, indexes: readonly IndexDef[], layout: readonly RegionLayout[]): string {
  const indexNames = [`${table.name}_pkey`, ...indexes.filter((index) => index.table === table.name).map((index) => index.name)];
  const statements = indexNames.flatMap((indexName) =>
    layout.map(
      (region) =>
        `ALTER PARTITION ${region.partition} OF INDEX ${table.name}@${indexName} CONFIGURE ZONE USING constraints = '[+region=${region.name}]';`,
    ),
  );
  return [
    `-- Pin each partition of every ${table.name} index to its region (${DOCS}/alter-partition#create-a-replication-zone-for-a-partition).`,
    ...statements,
  ].join('\n');
}

function createIndex(index: IndexDef, table: TableDef, mode: Mode, layout: readonly RegionLayout[]): string {
  const head = `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX ${index.name} ON ${index.table} (${index.columns.join(', ')})`;
  const lines = [`-- ${index.purpose}`];
  const partitioned = mode === 'partitioned' && table.byCity;
  if (partitioned && partitionColumnOf(index) !== 'city') {
    lines.push(
      `-- Partitioned by ${partitionColumnOf(index)}: the partition key must lead the index (${DOCS}/topology-geo-partitioned-replicas#steps),` +
        "\n-- so these entries live in the rider's home region.",
    );
  }
  if (mode === 'multiRegion' && table.byCity && index.unique && leadingColumn(index) !== 'city') {
    lines.push(
      "-- The region follows the ride's city, not rider_city, so this uniqueness is checked across regions" +
        ` (${DOCS}/alter-table#using-implicit-vs-explicit-index-partitioning-in-regional-by-row-tables).`,
    );
  }
  // CockroachDB's grammar puts PARTITION BY before the WHERE of a partial index (create-index.md parameters).
  const clauses = [head];
  if (partitioned) clauses.push(partitionClause(partitionColumnOf(index), layout, ''));
  if (index.where !== undefined) clauses.push(`WHERE ${index.where}`);
  lines.push(`${clauses.join('\n')};`);
  return lines.join('\n');
}

function header(mode: Mode, layout: readonly RegionLayout[]): string {
  const file = mode === 'partitioned' ? PARTITIONED_DDL_FILE : MULTI_REGION_DDL_FILE;
  const other = mode === 'partitioned' ? MULTI_REGION_DDL_FILE : PARTITIONED_DDL_FILE;
  const regionList = layout.map((region, i) => `${region.name}${mode === 'multiRegion' && i === 0 ? ' (primary)' : ''}`).join(', ');
  const lines =
    mode === 'partitioned'
      ? [
          '-- MovR schema for CockroachDB: the classic geo-partitioned layout. The city-keyed tables and their indexes are',
          '-- partitioned by city, one partition per region, each partition pinned to its region by a zone config.',
          `-- For CockroachDB's multi-region SQL (REGIONAL BY ROW tables) load ${other} instead, not both.`,
        ]
      : [
          "-- MovR schema for CockroachDB's multi-region SQL: database regions, REGIONAL BY ROW tables homed in their",
          `-- city's region, a GLOBAL schema_info. For the classic geo-partitioned layout load ${other} instead, not both.`,
        ];
  lines.push(
    '--',
    `-- Generated by scripts/generate-ddl.ts from src/regions.ts and src/db/cockroach-ddl.ts: change those and run`,
    '-- `npm run ddl`; never edit this file by hand.',
    '--',
    `-- Written for CockroachDB ${COCKROACH_VERSIONS}; every statement was checked against the v23.1 docs (${DOCS}/).`,
    mode === 'partitioned'
      ? `-- Partitioning and partition zone configs need an Enterprise license key (${DOCS}/partitioning#enterprise-license);`
      : `-- Regions (PRIMARY REGION, ADD REGION) need an Enterprise license key (${DOCS}/alter-database#subcommands);`,
    '-- from v24.3 a multi-node cluster needs a license key after a 7-day grace period, and the Enterprise Free and Trial',
    '-- keys include these features (https://www.cockroachlabs.com/docs/stable/licensing-faqs).',
    `-- Start the nodes with --locality=region=<region>, for the regions ${regionList};`,
    mode === 'partitioned'
      ? '-- at least 3 nodes per region, since each partition keeps all its replicas in its region.'
      : `-- SHOW REGIONS FROM CLUSTER must list them (${DOCS}/multiregion-overview).`,
    '--',
    '-- Load it once, into a cluster without a movr database:',
    `--   cockroach sql --url 'postgresql://root@<host>:26257/defaultdb?sslmode=verify-full&sslrootcert=<ca.crt>' -f ${file}`,
    '-- It never drops anything. CREATE DATABASE fails when movr exists, and cockroach sql -f stops at the first error',
    `-- (errexit is on outside interactive sessions: ${DOCS}/cockroach-sql#client-side-options), so a second run`,
    '-- changes nothing. To start over on purpose, and lose the data: DROP DATABASE movr CASCADE; then load again.',
  );
  return lines.join('\n');
}

function render(mode: Mode, layout: readonly RegionLayout[]): string {
  const { tables, indexes } = cockroachSchema(layout);
  const out: string[] = [header(mode, layout), `CREATE DATABASE ${DATABASE_NAME};`];

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

  for (const table of tables) {
    const elements = tableElements(table, mode, layout);
    const before: string[] = [];
    let suffix = '';
    if (table.byCity) {
      if (mode === 'partitioned') {
        before.push(`-- The primary key starts with city, the partition key (${DOCS}/partitioning#partition-using-primary-key).`);
        suffix = ` ${partitionClause('city', layout, '')}`;
      } else {
        before.push(`-- ${DOCS}/create-table#create-a-table-with-a-regional-by-row-locality-using-a-custom-region-column`);
        suffix = ' LOCALITY REGIONAL BY ROW AS region';
      }
    } else if (table.name === 'rate_limits') {
      before.push(
        mode === 'partitioned'
          ? '-- Log-in and sign-up counters shared by every instance; keyed by client, not city: the default zone.'
          : '-- Log-in and sign-up counters shared by every instance: homed in the region of the gateway that first counted\n' +
              `-- the key, where that client's next attempts arrive (${DOCS}/alter-table#crdb_region).`,
      );
      if (mode === 'multiRegion') suffix = ' LOCALITY REGIONAL BY ROW';
    } else if (table.name === 'sessions') {
      before.push(
        mode === 'partitioned'
          ? "-- Logged-in sessions (src/web/session-store.ts). A session belongs to no city, so it is not partitioned: it lives in the default\n" +
              `-- replication zone, replicas wherever the allocator puts them (${DOCS}/configure-replication-zones).`
          : "-- Logged-in sessions (src/web/session-store.ts). A session belongs to no city: REGIONAL BY ROW with the default crdb_region column\n" +
              "-- homes it in the region of the gateway that created it, the rider's nearest one (" +
              `${DOCS}/alter-table#crdb_region).\n` +
              '-- Lookups by sid search that region first; a new sid is checked for uniqueness across regions' +
              ` (${DOCS}/cost-based-optimizer#locality-optimized-search-in-multi-region-clusters).`,
      );
      if (mode === 'multiRegion') suffix = ' LOCALITY REGIONAL BY ROW';
    } else {
      before.push(
        mode === 'partitioned'
          ? `-- The app reads it at start and refuses to run when it is missing or older than version ${SCHEMA_VERSION}.` +
              '\n-- Not partitioned: it lives in the default replication zone.'
          : '-- The app reads it at start in every region and it changes once per schema version: GLOBAL, for local reads' +
              `\n-- everywhere (${DOCS}/table-localities#global-tables).`,
      );
      if (mode === 'multiRegion') suffix = ' LOCALITY GLOBAL';
    }
    out.push([...before, `CREATE TABLE ${table.name} (`, joinElements(elements), `)${suffix};`].join('\n'));

    for (const index of indexes.filter((i) => i.table === table.name)) out.push(createIndex(index, table, mode, layout));
    if (mode === 'partitioned' && table.byCity) out.push(zoneConfigs(table, indexes, layout));
  }

  out.push(`INSERT INTO schema_info (version) VALUES (${SCHEMA_VERSION});`);
  return `${out.join('\n\n')}\n`;
}

/** dbinit.sql: tables partitioned by city, one partition per region, zone configs pinning partitions to regions. */
export function partitionedDdl(layout: readonly RegionLayout[] = regionLayout()): string {
  return render('partitioned', layout);
}

/** dbinit-multiregion.sql: multi-region SQL with REGIONAL BY ROW tables homed by a region column computed from city. */
export function multiRegionDdl(layout: readonly RegionLayout[] = regionLayout()): string {
  return render('multiRegion', layout);
}

/** Both files as the generator writes them, keyed by file name at the repository top level. */
export function ddlFiles(layout: readonly RegionLayout[] = regionLayout()): Record<string, string> {
  return { [PARTITIONED_DDL_FILE]: partitionedDdl(layout), [MULTI_REGION_DDL_FILE]: multiRegionDdl(layout) };
}
