import { type Compilable, CompiledQuery, type Kysely } from 'kysely';
import type { Database } from './schema.js';

/** The SQL of every prepared query, with the name of its server-side prepared statement. */
const statementNames = new Map<string, string>();

/**
 * The name under which the database keeps `text` as a prepared statement on each connection, if it is the SQL of
 * a query made with prepare() below (db/database.ts's client sends it so). Sent unnamed, PostgreSQL parses and
 * plans the statement at every execution, and planning the session read's four-table join took it 0.7 ms, seven
 * times the execution; named, each connection plans it once (or a few times, until its generic plan is chosen).
 */
export function statementName(text: string): string | undefined {
  return statementNames.get(text);
}

/**
 * A fixed query built and compiled by Kysely once, on its first call, then sent with each call's values:
 * building and compiling the same tree on every request costs more CPU than PostgreSQL spends answering a
 * page's small reads. `build` gets a stand-in for each named value; everything else in the query is fixed then.
 * Every connection (pool or transaction) speaks the same dialect, so the first one's compilation serves all,
 * and the database keeps it prepared (statementName above).
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
