import { type Compilable, CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** The SQL of every prepared query, with the name of its server-side prepared statement. */
const statementNames = new Map<string, string>();

/**
 * The name under which each connection keeps `text` as a prepared statement, if it is the SQL of a query made with
 * prepare() below (db/database.ts's client sends it so): planned once per connection, not at every execution.
 */
export function statementName(text: string): string | undefined {
  return statementNames.get(text);
}

/**
 * A fixed query built and compiled by Kysely once, on its first call, then sent with each call's values, so a page's
 * small reads do not pay for building the same tree again. `build` gets a stand-in for each named value; every
 * connection speaks the same dialect, so the first compilation serves all.
 */
export function prepare<Name extends string, Row>(
  names: readonly Name[],
  build: (db: Kysely<Database>, values: Record<Name, never>) => Compilable<Row>,
): (db: Kysely<Database>, values: Record<Name, unknown>) => Promise<Row[]> {
  const standIns = Object.fromEntries(names.map((name) => [name, `\u0000prepared:${name}`])) as Record<Name, never>;
  let compiled: { sql: string; parameters: readonly unknown[]; slots: (Name | undefined)[] } | undefined;
  const compile = (db: Kysely<Database>) => {
    const { sql, parameters } = build(db, standIns).compile();
    const slots = parameters.map((parameter) => names.find((name) => standIns[name] === parameter));
    for (const name of names) if (!slots.includes(name)) throw new Error(`prepare: the query does not use ${name}`);
    if (!statementNames.has(sql)) statementNames.set(sql, `movr_${statementNames.size + 1}`);
    return { sql, parameters, slots };
  };
  return async (db, values) => {
    compiled ??= compile(db);
    const { sql, parameters, slots } = compiled;
    const bound = parameters.map((parameter, i) => (slots[i] === undefined ? parameter : values[slots[i]]));
    const { rows } = await db.executeQuery(CompiledQuery.raw(sql, bound) as CompiledQuery<Row>);
    return rows;
  };
}
