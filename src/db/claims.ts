/**
 * Work claims: a scheduled job that several instances run (every agent fires
 * the nightly backup) does its work exactly once per tick. Each instance calls
 * claim() with the same (kind, tick), e.g. ('backup', '2025-06-01'); one row
 * per pair decides who runs it.
 *
 * - The first INSERT wins; every concurrent caller gets the row it conflicts
 *   with and loses.
 * - A runner holds a lease, extended with renew() while it works. If it dies,
 *   its lease runs out and one later caller takes the tick over (the UPDATE's
 *   WHERE is re-checked on the newest row version, so of several concurrent
 *   takers exactly one sees the expired lease).
 * - A finished tick (ok or failed) is never run again by claim().
 *
 * Lease times come from the database clock (now()), so instances whose clocks
 * disagree still agree on whose lease ran out. `now` may be injected (tests).
 */
import type { Queryable } from './queryable.js';

export type ClaimStatus = 'running' | 'ok' | 'failed';

export interface ClaimRequest {
  /** The job, e.g. `backup`. */
  readonly kind: string;
  /** Which run of it, e.g. `2025-06-01` or `2025-06-01T03:00Z`. */
  readonly tick: string;
  /** Who asks: host name plus process id or the like; shown as the holder to the others. */
  readonly owner: string;
  /** How long the claim holds without renew(), in milliseconds. */
  readonly leaseMs: number;
  /** Instead of the database's now(): for tests. */
  readonly now?: Date;
}

export type ClaimResult =
  | { readonly won: true; readonly takeover: boolean; readonly leaseUntil: Date }
  | { readonly won: false; readonly holder: string; readonly status: ClaimStatus };

// (xmax = 0) on the returned row tells a fresh INSERT from the ON CONFLICT
// UPDATE (a takeover): the updated row version carries the updater's xid.
const CLAIM_SQL = `
INSERT INTO cluster_cli.claims AS c (kind, tick, owner, claimed_at, lease_until, status)
VALUES ($1, $2, $3,
        coalesce($5::timestamptz, now()),
        coalesce($5::timestamptz, now()) + $4::float8 * interval '1 millisecond',
        'running')
ON CONFLICT (kind, tick) DO UPDATE
   SET owner = excluded.owner,
       claimed_at = excluded.claimed_at,
       lease_until = excluded.lease_until,
       detail = NULL
 WHERE c.status = 'running' AND c.lease_until < excluded.claimed_at
RETURNING (xmax = 0) AS inserted, lease_until`;

const HOLDER_SQL = `SELECT owner, status FROM cluster_cli.claims WHERE kind = $1 AND tick = $2`;

export async function claim(db: Queryable, req: ClaimRequest): Promise<ClaimResult> {
  checkText('kind', req.kind);
  checkText('tick', req.tick);
  checkText('owner', req.owner);
  checkLease(req.leaseMs);
  const now = req.now?.toISOString() ?? null;
  // A row that vanishes between the two statements (someone pruned old claims)
  // means the tick is free again: ask once more.
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const won = await db.query<{ inserted: boolean; lease_until: Date }>(CLAIM_SQL, [
      req.kind,
      req.tick,
      req.owner,
      req.leaseMs,
      now,
    ]);
    const row = won.rows[0];
    if (row) return { won: true, takeover: !row.inserted, leaseUntil: row.lease_until };
    const held = await db.query<{ owner: string; status: ClaimStatus }>(HOLDER_SQL, [
      req.kind,
      req.tick,
    ]);
    const holder = held.rows[0];
    if (holder) return { won: false, holder: holder.owner, status: holder.status };
  }
  throw new Error(`claim ${req.kind}/${req.tick}: the row kept disappearing`);
}

/**
 * Extend a running claim's lease to now + leaseMs. False when `owner` no longer
 * holds it (taken over after its lease ran out, or finished): stop working.
 */
export async function renew(
  db: Queryable,
  kind: string,
  tick: string,
  owner: string,
  leaseMs: number,
  now?: Date,
): Promise<boolean> {
  checkLease(leaseMs);
  const { rowCount } = await db.query(
    `UPDATE cluster_cli.claims
        SET lease_until = coalesce($5::timestamptz, now()) + $4::float8 * interval '1 millisecond'
      WHERE kind = $1 AND tick = $2 AND owner = $3 AND status = 'running'`,
    [kind, tick, owner, leaseMs, now?.toISOString() ?? null],
  );
  return rowCount === 1;
}

/**
 * Record the outcome. False when `owner` no longer holds the claim (someone
 * took it over): the row keeps the other runner's state.
 * `detail` is stored as JSON (what ran, sizes, the error message).
 */
export async function finish(
  db: Queryable,
  kind: string,
  tick: string,
  owner: string,
  status: 'ok' | 'failed',
  detail?: unknown,
): Promise<boolean> {
  if (status !== 'ok' && status !== 'failed') throw new Error(`finish: bad status ${status}`);
  const { rowCount } = await db.query(
    `UPDATE cluster_cli.claims
        SET status = $4, finished_at = now(), detail = $5::jsonb
      WHERE kind = $1 AND tick = $2 AND owner = $3 AND status = 'running'`,
    [kind, tick, owner, status, detail === undefined ? null : JSON.stringify(detail)],
  );
  return rowCount === 1;
}

function checkText(what: string, value: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new Error(`claim: ${what} must be a non-empty string`);
  }
}

function checkLease(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new Error(`claim: leaseMs must be a positive integer, got ${ms}`);
  }
}
