import { TABLES as SCHEMA, type TableDef } from '../../src/db/schema.js';
import { type City, parseCity, type Region, REGION_NAMES, regionOf } from '../../src/regions.js';
import { roundTripMs } from './geography.js';

/**
 * Where the database's rows live, and what each statement an instance sends would wait for them on CockroachDB,
 * under three layouts. The facts come from the schema description the DDL generator writes dbinit.sql and
 * dbinit-multiregion.sql from (src/db/schema.ts: which tables belong to a city, their unique constraints and
 * foreign keys) and from src/regions.ts; the round
 * trips are those of `cockroach demo --global` (geography.ts). One round trip per access to a remote region;
 * fan-outs (a row whose region is unknown, a uniqueness check) wait for the farthest region.
 */

export const LAYOUTS = ['single-region', 'partitioned', 'multi-region'] as const;
export type Layout = (typeof LAYOUTS)[number];

export const LAYOUT_LABELS: Record<Layout, string> = {
  'single-region': 'single-region (every row in gcp-us-east1)',
  partitioned: 'partitioned (dbinit.sql)',
  'multi-region': 'multi-region (dbinit-multiregion.sql)',
};

/** The single-region cluster's home, and the primary region (leaseholders of unconstrained and GLOBAL ranges). */
export const HOME_REGION: Region = REGION_NAMES[0];

/**
 * The tables of no city, as the DDL generator places them (tools/cockroach-ddl/ddl.ts, tableComment):
 * dbinit.sql gives sessions global reads and leaves the others in the default zone; dbinit-multiregion.sql makes
 * sessions and rate_limits REGIONAL BY ROW homed where they were first written, and schema_info GLOBAL.
 */
const CITYLESS: Record<string, { partitioned: 'global' | 'default'; multiRegion: 'gateway' | 'global' }> = {
  sessions: { partitioned: 'global', multiRegion: 'gateway' },
  rate_limits: { partitioned: 'default', multiRegion: 'gateway' },
  schema_info: { partitioned: 'default', multiRegion: 'global' },
};

const TABLES = new Map<string, TableDef>(Object.entries(SCHEMA));
for (const [name, table] of TABLES) {
  if (!table.byCity && !CITYLESS[name]) throw new Error(`latency model: no locality for table ${name}; add it to CITYLESS`);
}

/** What the model reads from one statement: its kind, the tables it touches, and values bound to columns. */
export interface Statement {
  kind: 'select' | 'insert' | 'update' | 'delete' | 'other';
  /** The table written (insert, update, delete), if any. */
  target: string | undefined;
  tables: string[];
  /** Column name → bound value, from `"col" = $n` and an insert's column list. */
  values: Map<string, unknown>;
}

export function parseStatement(text: string, params: readonly unknown[]): Statement {
  const kindMatch = text.trimStart().match(/^(select|insert|update|delete|with)\b/i);
  const kind = (kindMatch?.[1]?.toLowerCase() ?? 'other') as Statement['kind'] | 'with';
  const tables = [...new Set([...text.matchAll(/\b(?:from|join|into|update)\s+"?(\w+)"?/gi)].map((m) => m[1]!).filter((name) => TABLES.has(name)))];
  const target = text.match(/^\s*(?:insert\s+into|update|delete\s+from)\s+"?(\w+)"?/i)?.[1];
  const values = new Map<string, unknown>();
  const param = (ref: string | undefined) => (ref && /^\$\d+/.test(ref) ? params[Number(ref.slice(1).match(/^\d+/)![0]) - 1] : undefined);
  const insert = text.match(/insert\s+into\s+"?\w+"?\s*\(([^)]*)\)\s*values\s*\(([^)]*)\)/i);
  if (insert) {
    const columns = insert[1]!.split(',').map((c) => c.trim().replace(/"/g, ''));
    const refs = insert[2]!.split(',').map((v) => v.trim());
    columns.forEach((column, i) => values.set(column, param(refs[i])));
  }
  for (const m of text.matchAll(/"(\w+)"\s*=\s*(\$\d+)/g)) if (!values.has(m[1]!)) values.set(m[1]!, param(m[2]));
  return { kind: kind === 'with' ? 'select' : kind, target: target && TABLES.has(target) ? target : undefined, tables, values };
}

/** What the model remembers between statements: where sessions and rate-limit keys were first written. */
export class RowMemory {
  readonly sessions = new Map<string, { home: Region; userCity: City | undefined }>();
  readonly rateKeys = new Map<string, Region>();
  /** Username (lower case) → home city, learnt from sign-ups, so that a log-in knows where the row is. */
  readonly usernames = new Map<string, City>();
}

export interface Cost {
  ms: number;
  /** One line per access, for the lab's explanation. */
  why: string[];
}

const farthest = (from: Region) => Math.max(...REGION_NAMES.map((r) => roundTripMs(from, r)));
const str = (value: unknown) => (typeof value === 'string' ? value : undefined);

/** What `statement`, sent by the instance in `gateway`, waits for the rows it touches under `layout`. */
export function statementCost(layout: Layout, gateway: Region, statement: Statement, memory: RowMemory): Cost {
  const cost = costOf(layout, gateway, statement, memory);
  remember(gateway, statement, memory);
  return cost;
}

function costOf(layout: Layout, gateway: Region, statement: Statement, memory: RowMemory): Cost {
  if (statement.tables.length === 0) return { ms: 0, why: [] };
  if (layout === 'single-region') {
    // The app's connection itself crosses to the one region: one round trip per statement, whatever it touches.
    const ms = roundTripMs(gateway, HOME_REGION);
    return { ms, why: [`${statement.tables.join(', ')} in ${HOME_REGION}: ${ms} ms`] };
  }
  // One round trip per region a statement reaches (lookups in the same region ride along), fan-outs as one.
  const reached = new Map<string, { ms: number; what: string[] }>();
  const add = (where: string, what: string, cost: number) => {
    const entry = reached.get(where) ?? { ms: 0, what: [] };
    entry.ms = Math.max(entry.ms, cost);
    entry.what.push(what);
    reached.set(where, entry);
  };
  const every = (what: string) => add('every region', what, farthest(gateway));
  const sid = str(statement.values.get('sid'));
  const session = sid ? memory.sessions.get(sid) : undefined;
  const username = str(statement.values.get('username'))?.toLowerCase();
  const inserts = (name: string) => statement.kind === 'insert' && statement.target === name;
  for (const name of statement.tables) {
    const table = TABLES.get(name)!;
    const writes = statement.target === name;
    if (table.byCity) {
      // The session read joins the rider's rows by the session's user_city, which the model learnt at log-in.
      const city = cityOf(statement) ?? (statement.tables.includes('sessions') ? session?.userCity : undefined) ?? (username ? memory.usernames.get(username) : undefined);
      const home = city ? regionOf(city) : undefined;
      const uniques = table.uniques ?? [];
      const uniqueUsed = uniques.some((u) => u.columns.every((c) => statement.values.has(c)));
      if (layout === 'partitioned' && (uniqueUsed || (inserts(name) && uniques.length))) {
        // dbinit.sql leaves a UNIQUE index of a city table (usernames) unpartitioned, in the default zone.
        add(HOME_REGION, `${name} unique index in the default zone (${HOME_REGION})`, roundTripMs(gateway, HOME_REGION));
      }
      if (layout === 'multi-region' && inserts(name) && uniques.length) {
        every(`${name} unique ${uniques.map((u) => u.columns.join('+')).join(', ')} checked in every region`);
      }
      if (!home) every(`${name} of an unknown city`);
      else if (layout === 'multi-region' && uniqueUsed && !cityOf(statement) && home !== gateway) every(`${name} by unique key: not here, so every region`);
      else add(home, `${name} of ${city}`, roundTripMs(gateway, home));
      if (inserts(name)) {
        for (const fk of table.foreignKeys ?? []) {
          const fkCity = parseCity(str(statement.values.get(fk.columns[0]!)));
          if (fkCity) add(regionOf(fkCity), `foreign key check on ${fk.table} of ${fkCity}`, roundTripMs(gateway, regionOf(fkCity)));
        }
      }
      continue;
    }
    const place = CITYLESS[name]!;
    const locality = layout === 'partitioned' ? place.partitioned : place.multiRegion;
    if (locality === 'global') {
      // GLOBAL (or global_reads): read where you are; a write goes to the leaseholder and waits for every region.
      if (writes) add('global write', `${name} write to a GLOBAL table`, roundTripMs(gateway, HOME_REGION) + farthest(HOME_REGION));
      else add(gateway, `${name} read here (GLOBAL)`, 0);
    } else if (locality === 'default') {
      add(HOME_REGION, `${name} in the default zone (${HOME_REGION})`, roundTripMs(gateway, HOME_REGION));
    } else {
      const key = name === 'sessions' ? sid : str(statement.values.get('key'));
      const home = name === 'sessions' ? session?.home : key ? memory.rateKeys.get(key) : undefined;
      // REGIONAL BY ROW by gateway: locality-optimized search finds a row homed here locally, else asks every region.
      if (key && home === gateway) add(gateway, `${name} homed here`, 0);
      else every(`${name} ${statement.kind === 'insert' ? 'uniqueness check' : 'search'}`);
    }
  }
  return {
    ms: [...reached].reduce((sum, [, entry]) => sum + entry.ms, 0),
    why: [...reached.values()].map((entry) => `${entry.what.join(' + ')}: ${entry.ms} ms`),
  };
}

function cityOf(statement: Statement): City | undefined {
  for (const column of ['city', 'rider_city', 'user_city']) {
    const city = parseCity(str(statement.values.get(column)));
    if (city) return city;
  }
  return undefined;
}

function remember(gateway: Region, statement: Statement, memory: RowMemory) {
  if (statement.kind !== 'insert') return;
  if (statement.target === 'sessions') {
    const sid = str(statement.values.get('sid'));
    // Only the first write homes it (REGIONAL BY ROW's default crdb_region is the gateway's).
    if (sid && !memory.sessions.has(sid)) memory.sessions.set(sid, { home: gateway, userCity: parseCity(str(statement.values.get('user_city'))) });
  }
  if (statement.target === 'users') {
    const username = str(statement.values.get('username'))?.toLowerCase();
    const city = parseCity(str(statement.values.get('city')));
    if (username && city) memory.usernames.set(username, city);
  }
  if (statement.target === 'rate_limits') {
    const key = str(statement.values.get('key'));
    if (key && !memory.rateKeys.has(key)) memory.rateKeys.set(key, gateway);
  }
}
