import { SCHEMA_VERSION } from './schema.js';

/** The CockroachDB schema files the operator loads (tools/cockroach-ddl writes them); the app names them when it refuses to start. */

export const PARTITIONED_DDL_FILE = 'dbinit.sql';
export const MULTI_REGION_DDL_FILE = 'dbinit-multiregion.sql';
export const UPGRADE_DIR = 'db/cockroach';
/** The computed region column of the city tables in dbinit-multiregion.sql; the app tells the layouts apart by it. */
export const REGION_COLUMN = 'region';

/** dbinit.sql's layout, or dbinit-multiregion.sql's. */
export type Mode = 'partitioned' | 'multiRegion';

/** db/cockroach/upgrade-002.sql (for dbinit.sql) or db/cockroach/upgrade-002-multiregion.sql: from version - 1 to version. */
export function upgradeFileName(mode: Mode, version: number): string {
  return `${UPGRADE_DIR}/upgrade-${String(version).padStart(3, '0')}${mode === 'multiRegion' ? '-multiregion' : ''}.sql`;
}

/** The upgrade files that bring a database of schema version `from`, loaded from `mode`'s file, to SCHEMA_VERSION. */
export function upgradePath(mode: Mode, from: number): string[] {
  const files: string[] = [];
  for (let version = Math.max(from, 1) + 1; version <= SCHEMA_VERSION; version++) files.push(upgradeFileName(mode, version));
  return files;
}
