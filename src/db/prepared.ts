import { type Compilable, CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * A fixed query built and compiled by Kysely once, then sent with each call's values: building and compiling
 * the same tree on every request costs more CPU than PostgreSQL spends answering a page's small reads.
 * `build` gets a stand-in for each named value; everything else in the query is fixed at compile time.
 */
export function prepare<Name extends string, Row>(
  kysely: Kysely<Database>,
  names: readonly Name[],
  build: (values: Record<Name, never>) => Compilable<Row>,
): (db: Kysely<Database>, values: Record<Name, unknown>) => Promise<Row[]> {
  const standIns = Object.fromEntries(names.map((name) => [name, `\u0000prepared:${name}`])) as Record<Name, never>;
  const compiled = build(standIns).compile();
  const slots = compiled.parameters.map((parameter) => names.find((name) => standIns[name] === parameter));
  for (const name of names) if (!slots.includes(name)) throw new Error(`prepare: the query does not use ${name}`);
  return async (db, values) => {
    const parameters = compiled.parameters.map((parameter, i) => (slots[i] === undefined ? parameter : values[slots[i]]));
    const { rows } = await db.executeQuery(CompiledQuery.raw(compiled.sql, parameters) as CompiledQuery<Row>);
    return rows;
  };
}
