import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { VEHICLE_STATUSES, VEHICLE_TYPES } from '../../src/vehicles.js';
import { CITIES } from '../../src/regions.js';
import { useFixture } from '../support/fixture.js';

/**
 * Migrations are frozen in time (literal lists), so nothing but this test notices when src/regions.ts or the
 * vehicle constants move on without a new migration: the CHECK constraints of a freshly migrated database must
 * allow exactly what the modules allow.
 */

/** The string literals a CHECK allows, as PostgreSQL prints it: `CHECK ((city = ANY (ARRAY['a'::text, ...])))`. */
function allowedValues(definition: string): string[] {
  assert.match(definition, /^CHECK \(\(\w+ = ANY \(ARRAY\[.*\]\)\)\)$/, `not a list check: ${definition}`);
  return [...definition.matchAll(/'((?:[^']|'')*)'::text/g)].map((m) => m[1]!.replaceAll("''", "'"));
}

describe('live CHECK constraints against the modules', () => {
  const t = useFixture({ reset: false });
  let checks: Map<string, string>;

  before(async () => {
    const { rows } = await t.db.pool.query<{ name: string; definition: string }>(
      `SELECT c.conrelid::regclass::text || '.' || c.conname AS name, pg_get_constraintdef(c.oid) AS definition
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'c' AND n.nspname = 'public'`,
    );
    checks = new Map(rows.map((row) => [row.name, row.definition]));
  });

  it('when a table has a city column, then its check allows exactly the cities of src/regions.ts, in order', () => {
    for (const name of ['users.check_city', 'vehicles.check_city', 'rides.check_city', 'rides.check_rider_city']) {
      const definition = checks.get(name);
      assert.ok(definition, `${name} is missing`);
      assert.deepEqual(allowedValues(definition), [...CITIES], `${name}: add a migration that replaces it`);
    }
  });

  it('when a vehicle is checked, then its type and status lists are the ones in src/db/schema.ts', () => {
    assert.deepEqual(allowedValues(checks.get('vehicles.check_type')!), [...VEHICLE_TYPES]);
    assert.deepEqual(allowedValues(checks.get('vehicles.check_status')!), [...VEHICLE_STATUSES]);
  });

  it('when every list check is counted, then none is left unchecked by this test', () => {
    const listChecks = [...checks].filter(([, definition]) => /= ANY \(ARRAY\[/.test(definition)).map(([name]) => name);
    assert.deepEqual(listChecks.sort(), [
      'rides.check_city',
      'rides.check_rider_city',
      'users.check_city',
      'vehicles.check_city',
      'vehicles.check_status',
      'vehicles.check_type',
    ]);
  });

  it('when the helper reads a list, then it keeps quotes and refuses anything else', () => {
    assert.deepEqual(allowedValues("CHECK ((city = ANY (ARRAY['o''higgins'::text, 'rome'::text])))"), ["o'higgins", 'rome']);
    assert.throws(() => allowedValues('CHECK ((length IS NULL))'), /not a list check/);
  });
});
