import type { Config } from '../config/schema.js';
import type { Queryable } from '../db/queryable.js';
import { interval, nextTick, parseSchedule } from './schedule.js';

export interface BackupStatus {
  readonly schedule: string;
  readonly store: string;
  readonly encrypted: boolean;
  readonly lastSuccess: { readonly id: string; readonly at: string } | null;
  /** The newest run, whatever its outcome. */
  readonly lastRun: {
    readonly id: string;
    readonly status: string;
    readonly error?: string;
  } | null;
  readonly next: string;
  /** No success yet, or the last is older than twice the schedule's interval. */
  readonly stale: boolean;
  readonly warning?: string;
}

/** What `backup status` and `status` say about backups, from cluster_cli.backup_runs. */
export async function readBackupStatus(
  db: Queryable,
  b: NonNullable<Config['backup']>,
  now: Date,
): Promise<BackupStatus> {
  const schedule = parseSchedule(b.schedule);
  const last = (
    await db.query<{ id: string; finished_at: Date }>(
      "SELECT id, finished_at FROM cluster_cli.backup_runs WHERE status = 'ok' ORDER BY finished_at DESC LIMIT 1",
    )
  ).rows[0];
  const newest = (
    await db.query<{ id: string; status: string; error: string | null }>(
      'SELECT id, status, error FROM cluster_cli.backup_runs ORDER BY started_at DESC LIMIT 1',
    )
  ).rows[0];
  const stale =
    !last || now.getTime() - new Date(last.finished_at).getTime() > 2 * interval(schedule);
  return {
    schedule: b.schedule,
    store: `${b.s3.endpoint}/${b.s3.bucket}/${b.s3.prefix}`,
    encrypted: Boolean(b.recipient),
    lastSuccess: last ? { id: last.id, at: new Date(last.finished_at).toISOString() } : null,
    lastRun: newest
      ? { id: newest.id, status: newest.status, ...(newest.error ? { error: newest.error } : {}) }
      : null,
    next: nextTick(schedule, now).toISOString(),
    stale,
    ...(stale
      ? {
          warning: last
            ? "the last successful backup is older than twice the schedule's interval"
            : 'no successful backup yet',
        }
      : {}),
  };
}
