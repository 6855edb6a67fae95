/**
 * Backup retention, grandfather-father-son (GFS). Pure: the caller lists the
 * backups, this decides, the caller deletes.
 *
 * Semantics (the same as restic's `forget --keep-daily …` and borg's `prune`),
 * every period in UTC:
 * - Only good backups (`ok`: a complete, valid manifest) count.
 * - daily=N keeps the newest good backup of each of the N most recent calendar
 *   days that have a good backup; days without one are skipped, not counted,
 *   so a cluster whose backups stopped for a month still has N dailies.
 * - weekly=N: the same per ISO week (Monday to Sunday; the week of 1 January
 *   may belong to the previous or next ISO year, e.g. 2027-01-01 is 2026-W53).
 * - monthly=N: per calendar month. yearly=N: per calendar year.
 * - A backup kept by any rule is kept; every other good backup is deleted.
 * - The newest good backup is always kept (every rule with N > 0 keeps it
 *   anyway; this also holds for an all-zero policy).
 * - A backup that is not good is deleted only when it is older than the
 *   newest good backup: a `failed` one always then, an `incomplete` one (no
 *   manifest) only when it also started more than `incompleteGraceMs` ago
 *   (default 24 h), as it may be a run still uploading. With no good backup
 *   at all nothing is deleted.
 *
 * Applying this after every run gives the same set as applying it once at the
 * end: a period's newest backup only ever changes to a newer one, so a backup
 * dropped once would never have been picked later.
 *
 * retentionPlan() adds the rule for the runner: after a failed run nothing is
 * deleted at all.
 */
import { UserError } from '../core/errors.js';

export interface RetentionPolicy {
  readonly daily: number;
  readonly weekly: number;
  readonly monthly: number;
  readonly yearly: number;
}

export type Period = keyof RetentionPolicy;

const PERIODS: readonly Period[] = ['daily', 'weekly', 'monthly', 'yearly'];

/** What `backup setup` uses without --retention. */
export const DEFAULT_RETENTION: RetentionPolicy = { daily: 7, weekly: 4, monthly: 6, yearly: 0 };

/** More than this is surely a typo (daily=10000 is 27 years). */
const MAX_COUNT = 10_000;

export type BackupStatus = 'ok' | 'failed' | 'incomplete';

export interface BackupEntry {
  readonly id: string;
  /** When the backup started (its id's time). */
  readonly at: Date;
  readonly status: BackupStatus;
}

export interface Selection {
  readonly keep: ReadonlySet<string>;
  /** Oldest first. */
  readonly delete: readonly string[];
  /** Why each kept backup stays: `daily 2026-11-24`, `weekly 2026-W48`, `newest`, … */
  readonly why: ReadonlyMap<string, readonly string[]>;
}

export interface SelectOptions {
  /** An incomplete backup younger than this may still be uploading. Default 24 h. */
  readonly incompleteGraceMs?: number;
}

export const DEFAULT_INCOMPLETE_GRACE_MS = 24 * 3_600_000;

/**
 * `daily=7,weekly=4,monthly=6` → {daily: 7, weekly: 4, monthly: 6, yearly: 0}.
 * Periods not named keep nothing; at least one must keep something.
 */
export function parseRetention(text: string): RetentionPolicy {
  const fail = (why: string): never => {
    throw new UserError(`--retention ${JSON.stringify(text)}: ${why}`);
  };
  const out: Record<Period, number> = { daily: 0, weekly: 0, monthly: 0, yearly: 0 };
  const seen = new Set<string>();
  if (text.trim() === '') fail('empty; write counts such as daily=7,weekly=4,monthly=6');
  for (const raw of text.split(',')) {
    const item = raw.trim();
    const m = /^([A-Za-z]+)\s*=\s*(\S*)$/.exec(item);
    if (!m) fail(`${JSON.stringify(item)} is not period=count, such as daily=7`);
    const [, rawName = '', count = ''] = m as RegExpExecArray;
    const name = rawName.toLowerCase();
    if (!(PERIODS as readonly string[]).includes(name)) {
      fail(`unknown period ${JSON.stringify(rawName)}; use ${PERIODS.join(', ')}`);
    }
    if (seen.has(name)) fail(`${name} is given twice`);
    seen.add(name);
    if (!/^[0-9]+$/.test(count)) fail(`${name}=${count} is not a whole number of backups`);
    const n = Number(count);
    if (n > MAX_COUNT) fail(`${name}=${count} is more than ${MAX_COUNT}`);
    out[name as Period] = n;
  }
  if (PERIODS.every((p) => out[p] === 0)) fail('keeps no backup; give a period a count above 0');
  return out;
}

/** The GFS decision; see the module comment. `now` only ages incomplete backups. */
export function selectKeep(
  backups: readonly BackupEntry[],
  policy: RetentionPolicy,
  now: Date,
  opts: SelectOptions = {},
): Selection {
  checkInput(backups, policy, now);
  const grace = opts.incompleteGraceMs ?? DEFAULT_INCOMPLETE_GRACE_MS;
  const newestFirst = [...backups].sort(
    (a, b) => b.at.getTime() - a.at.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
  );
  const good = newestFirst.filter((b) => b.status === 'ok');
  const why = new Map<string, string[]>();
  const mark = (id: string, reason: string) => {
    const list = why.get(id);
    if (list) list.push(reason);
    else why.set(id, [reason]);
  };

  const newest = good[0];
  if (newest) mark(newest.id, 'newest');
  for (const period of PERIODS) {
    let left = policy[period];
    let last: string | undefined;
    for (const b of good) {
      if (left === 0) break;
      const key = periodKey(period, b.at);
      if (key === last) continue;
      last = key;
      mark(b.id, `${period} ${key}`);
      left -= 1;
    }
  }

  const doomed: BackupEntry[] = [];
  for (const b of newestFirst) {
    if (why.has(b.id)) continue;
    if (b.status === 'ok') {
      doomed.push(b);
    } else if (!newest || b.at.getTime() >= newest.at.getTime()) {
      mark(b.id, `${b.status}, not older than the newest good backup`);
    } else if (b.status === 'incomplete' && now.getTime() - b.at.getTime() < grace) {
      mark(b.id, 'incomplete, may still be running');
    } else {
      doomed.push(b);
    }
  }
  return {
    keep: new Set(why.keys()),
    delete: doomed.reverse().map((b) => b.id),
    why,
  };
}

export interface RetentionInput {
  readonly backups: readonly BackupEntry[];
  readonly policy: RetentionPolicy;
  readonly now: Date;
  /** The outcome of the run this retention follows. After a failed run nothing is deleted. */
  readonly lastRun: 'ok' | 'failed';
  readonly incompleteGraceMs?: number;
}

export interface RetentionPlan extends Selection {
  /** Set when retention was skipped, with the reason to print. */
  readonly skipped?: string;
}

/** What to delete after a backup run: selectKeep(), or nothing at all after a failed run. */
export function retentionPlan(input: RetentionInput): RetentionPlan {
  const opts =
    input.incompleteGraceMs === undefined ? {} : { incompleteGraceMs: input.incompleteGraceMs };
  const selection = selectKeep(input.backups, input.policy, input.now, opts);
  if (input.lastRun !== 'ok') {
    const why = new Map<string, readonly string[]>(selection.why);
    for (const id of selection.delete) why.set(id, ['the latest run failed']);
    return {
      keep: new Set(input.backups.map((b) => b.id)),
      delete: [],
      why,
      skipped: 'the latest backup run failed; nothing is deleted until a run succeeds',
    };
  }
  return selection;
}

/** The UTC period a time falls in: `2026-11-24`, `2026-W48`, `2026-11`, `2026`. */
export function periodKey(period: Period, at: Date): string {
  const iso = at.toISOString();
  switch (period) {
    case 'daily':
      return iso.slice(0, 10);
    case 'weekly':
      return isoWeek(at);
    case 'monthly':
      return iso.slice(0, 7);
    case 'yearly':
      return iso.slice(0, 4);
  }
}

/** ISO 8601 week, `2026-W48`: weeks start on Monday; week 1 holds the year's first Thursday. */
function isoWeek(at: Date): string {
  const day = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate());
  const mondayBased = (at.getUTCDay() + 6) % 7;
  const thursday = new Date(day + (3 - mondayBased) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000));
  return `${year}-W${String(week).padStart(2, '0')}`;
}

function checkInput(backups: readonly BackupEntry[], policy: RetentionPolicy, now: Date): void {
  if (Number.isNaN(now.getTime())) throw new Error('retention: invalid now');
  for (const p of PERIODS) {
    if (!Number.isSafeInteger(policy[p]) || policy[p] < 0) {
      throw new Error(`retention: ${p} must be a whole number ≥ 0, got ${policy[p]}`);
    }
  }
  const ids = new Set<string>();
  for (const b of backups) {
    if (ids.has(b.id)) throw new Error(`retention: backup ${b.id} is listed twice`);
    ids.add(b.id);
    if (Number.isNaN(b.at.getTime()))
      throw new Error(`retention: backup ${b.id} has no valid time`);
    if (b.status !== 'ok' && b.status !== 'failed' && b.status !== 'incomplete') {
      throw new Error(`retention: backup ${b.id} has unknown status ${String(b.status)}`);
    }
  }
}
