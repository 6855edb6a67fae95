/**
 * What this code needs of a PostgreSQL connection: one method, satisfied
 * structurally by pg's `Client` (and `PoolClient`). Code under src/ never opens
 * connections; the CLI hands in one it reached through its stream.
 *
 * Functions that run a transaction (`migrate`) send BEGIN … COMMIT through
 * `query`, so they need one session: a `Client` or a checked-out `PoolClient`,
 * never a `Pool`, whose queries may each land on a different connection.
 *
 * Values always go in `values` ($1, $2 …); SQL text is a fixed string written
 * in this codebase.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<{ rows: R[]; rowCount: number | null }>;
}

/** A PostgreSQL error as pg reports it (`DatabaseError`): SQLSTATE and, for constraint errors, the constraint's name. */
export interface PgError extends Error {
  readonly code: string;
  readonly constraint?: string;
}

export function isPgError(err: unknown): err is PgError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
}

/** SQLSTATE 23505: a unique constraint or unique index refused a row. */
export function isUniqueViolation(err: unknown): err is PgError {
  return isPgError(err) && err.code === '23505';
}
