import pg from 'pg';

/**
 * A real pg Pool whose clients record every statement and can be told to fail the Nth statement matching a
 * pattern with a given SQLSTATE, without sending it: the server never sees the statement, so the transaction
 * stays open exactly as if that statement had been refused.
 *
 *   const pool = new FaultInjectingPool({ connectionString });
 *   pool.inject({ match: /^release savepoint/i, code: '40001' });       // the 1st RELEASE SAVEPOINT
 *   pool.inject({ match: 'commit', code: '40001', nth: 2 });            // the 2nd COMMIT
 *   pool.inject({ match: /^update "vehicles"/, code: '40001', nth: 'every' });
 */

/**
 * What an app logs while its database is unreachable: each failed request (its error, then its 503 answer) and the
 * pool's lost connections. A 500 still fails the test: its answer line says 500.
 */
export const DATABASE_OUTAGE_LOGS = [/"msg":"request failed"/, /"statusCode":503\b/, /"msg":"(idle database connection lost|database connection lost mid-transaction|active ride unavailable for the riding bar)"/];

export interface Fault {
  /** A RegExp tested against the SQL text, or a string the trimmed SQL must start with (case-insensitive). */
  match: RegExp | string;
  /** The SQLSTATE of the fake error, e.g. '40001', '40003'. */
  code: string;
  /** Which matching statement fails, counted from 1 since `inject`; 'every' fails them all. Default 1. */
  nth?: number | 'every';
  message?: string;
}

export interface StatementRecord {
  readonly sql: string;
  readonly params: readonly unknown[];
  /** Milliseconds since the pool was created (performance.now() based). */
  readonly at: number;
  /** The pg backend process id of the connection, to tell connections apart. */
  readonly backendPid: number | undefined;
  /** The SQLSTATE injected instead of sending, when a fault fired. */
  readonly injected?: string;
  /** The SQLSTATE of a real error the server answered, once known. */
  error?: string;
}

interface ArmedFault extends Required<Omit<Fault, 'message'>> {
  message: string | undefined;
  seen: number;
}

export class FaultInjectingPool extends pg.Pool {
  /** Every statement the pool's clients were asked to run, injected failures included, in order. */
  readonly statements: StatementRecord[] = [];
  private faults: ArmedFault[] = [];
  private readonly instrumented = new WeakSet<pg.PoolClient>();

  constructor(config: pg.PoolConfig) {
    super(config);
    this.on('connect', (client) => this.instrument(client));
  }

  inject(fault: Fault): this {
    this.faults.push({ match: fault.match, code: fault.code, nth: fault.nth ?? 1, message: fault.message, seen: 0 });
    return this;
  }

  /** Forgets the faults and the recorded statements. */
  clear(): void {
    this.faults = [];
    this.statements.length = 0;
  }

  /** The recorded SQL, one string per statement; an injected failure is suffixed with ` !<SQLSTATE>`. */
  trace(): string[] {
    return this.statements.map((s) => (s.injected ? `${s.sql} !${s.injected}` : s.sql));
  }

  private instrument(client: pg.PoolClient): void {
    if (this.instrumented.has(client)) return;
    this.instrumented.add(client);
    const original = client.query.bind(client) as (...args: unknown[]) => unknown;
    const started = performance.now();
    const replacement = (...args: unknown[]): unknown => {
      const first = args[0];
      const text = typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '');
      const callback = typeof args.at(-1) === 'function' ? (args.pop() as (error: unknown, result?: unknown) => void) : undefined;
      const params = Array.isArray(args[1]) ? (args[1] as unknown[]) : [];
      const fault = this.fire(text);
      const record: StatementRecord = {
        sql: text.trim(),
        params,
        at: performance.now() - started,
        backendPid: (client as unknown as { processID?: number }).processID,
        ...(fault ? { injected: fault.code } : {}),
      };
      this.statements.push(record);
      const result: Promise<unknown> = fault
        ? Promise.reject(fakeDatabaseError(fault, text))
        : (original(...args) as Promise<unknown>);
      if (!fault) {
        result.catch((error: unknown) => {
          record.error = (error as { code?: string }).code ?? 'unknown';
        });
      }
      if (callback) {
        result.then(
          (value) => callback(null, value),
          (error: unknown) => callback(error),
        );
        return undefined;
      }
      return result;
    };
    client.query = replacement as typeof client.query;
  }

  private fire(text: string): ArmedFault | undefined {
    const trimmed = text.trim();
    let fired: ArmedFault | undefined;
    for (const fault of this.faults) {
      const matches =
        typeof fault.match === 'string' ? trimmed.toLowerCase().startsWith(fault.match.toLowerCase()) : fault.match.test(trimmed);
      if (!matches) continue;
      fault.seen += 1;
      if (!fired && (fault.nth === 'every' || fault.nth === fault.seen)) fired = fault;
    }
    return fired;
  }
}

/** An error shaped like the one pg raises for a server ErrorResponse, so sqlState() and callers treat it alike. */
function fakeDatabaseError(fault: ArmedFault, text: string): pg.DatabaseError {
  const error = new pg.DatabaseError(fault.message ?? `injected fault ${fault.code} at: ${text.trim().slice(0, 80)}`, 0, 'error');
  error.severity = 'ERROR';
  error.code = fault.code;
  return error;
}
