/** SQLSTATE codes the retry wrapper and the backend act on. */
export const SQLSTATE = {
  serializationFailure: '40001',
  statementCompletionUnknown: '40003',
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  invalidTextRepresentation: '22P02',
  undefinedTable: '42P01',
} as const;

export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The name of the constraint a PostgreSQL/CockroachDB error names, when it names one. */
export function violatedConstraint(error: unknown): string | undefined {
  const constraint = (error as { constraint?: unknown } | null)?.constraint;
  if (typeof constraint === 'string') return constraint;
  // CockroachDB reports some unique violations only in the message.
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message.match(/constraint "([^"]+)"/)?.[1] : undefined;
}

/** The transaction kept conflicting with others past the attempt limit. The web layer answers 503. */
export class TransactionRetryLimitError extends Error {
  constructor(readonly attempts: number, options?: { cause?: unknown }) {
    super(`transaction still conflicting after ${attempts} attempts`, options);
    this.name = 'TransactionRetryLimitError';
  }
}

/**
 * SQLSTATE 40003: the server cannot say whether the transaction committed. Retrying could apply it twice,
 * so it is surfaced, never retried. https://www.cockroachlabs.com/docs/stable/transaction-retry-error-reference
 */
export class TransactionOutcomeUnknownError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('the database could not confirm whether the transaction committed', options);
    this.name = 'TransactionOutcomeUnknownError';
  }
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '53300']);

/** The database is down, restarting or unreachable: answered 503, not 500. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connection (?:is )?closed|Client has encountered a connection error/i.test(
    message,
  );
}
