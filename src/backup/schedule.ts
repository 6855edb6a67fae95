/**
 * Backup schedules: a 5-field cron expression, validated here, written to
 * /etc/cron.d on every manager, and evaluated here (previous/next tick, the
 * tick id a claim row is keyed by).
 *
 * Library: croner (v11), not cron-parser (v5). croner has no dependencies
 * (cron-parser pulls in luxon), has a strict 5-field mode (cron-parser accepts
 * "0 3 * *" as 4 fields unless `strict`, and `strict` then demands a seconds
 * field), and does the date arithmetic in a fixed time zone (UTC here) with
 * Vixie cron's day-of-month/day-of-week rule available both ways.
 *
 * The grammar is checked here, not by croner: the host's cron (Debian's and
 * Ubuntu's `cron` is Vixie cron 3.0) must read the expression exactly as we
 * compute it. So only what Vixie cron understands is accepted: numbers,
 * ranges (1-5), lists (1,15), steps after `*` or a range (*\/15, 0-30/10), and
 * month/day names; croner extensions (L, W, #, ?, seconds, years) are refused.
 * Names are turned into numbers and @daily & co. into five fields before the
 * expression reaches cron, so its man page's "no lists or ranges of names"
 * limit does not matter. Vixie's day rule: when the day-of-month or the
 * day-of-week field starts with `*`, a day must match both; otherwise either
 * (`0 3 1 * 1` fires on the 1st and on Mondays, `0 3 *\/2 * 1` only on odd-day
 * Mondays). croner is told the same through `domAndDow`.
 *
 * Time zone: every time here is UTC. Vixie cron (Debian/Ubuntu's `cron`) reads
 * a schedule in the host's local time and ignores CRON_TZ; cronie (Fedora,
 * RHEL, Arch) honours the CRON_TZ=UTC line cronLine() writes. Hosts are
 * expected to run in UTC (cloud images do); the runner that cron starts calls
 * dueTick(), which returns null when cron fired off-schedule (a host in
 * another time zone, a skewed clock), so such a host refuses to run and says
 * why instead of claiming a wrong tick.
 */
import { Cron } from 'croner';
import { UserError } from '../core/errors.js';
import { quoteArg } from '../core/quote.js';

/** A validated schedule. Serialise it as `expression`; parse it back with parseSchedule(). */
export interface Schedule {
  /** As the user wrote it, whitespace collapsed. */
  readonly expression: string;
  /** Five numeric fields: what is written to cron.d and evaluated (names and @nicknames expanded). */
  readonly fields: string;
}

/** Where cronLine()'s output goes. cron.d names must match [A-Za-z0-9_-]+ (no dots) or cron skips them. */
export const CRON_D_PATH = '/etc/cron.d/cluster-cli-backup';

/** The PATH a cron job gets: cron's own default (/usr/bin:/bin) misses /usr/local/bin. */
export const CRON_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Field {
  readonly label: string;
  readonly min: number;
  readonly max: number;
  /** Names for min, min+1, … (months from 1, days from 0). */
  readonly names?: readonly string[];
  /** How the allowed values read in a message. */
  readonly allowed: string;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

const FIELDS: readonly Field[] = [
  { label: 'minute', min: 0, max: 59, allowed: '0-59' },
  { label: 'hour', min: 0, max: 23, allowed: '0-23' },
  { label: 'day of month', min: 1, max: 31, allowed: '1-31' },
  { label: 'month', min: 1, max: 12, names: MONTHS, allowed: '1-12 or jan-dec' },
  // 7 is Sunday too, as in Vixie cron and croner.
  {
    label: 'day of week',
    min: 0,
    max: 7,
    names: DAYS,
    allowed: '0-7 or sun-sat, 0 and 7 are Sunday',
  },
];

const NICKNAMES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const ITEM = /^(?:(\*)|([a-z0-9]+)(?:-([a-z0-9]+))?)(?:\/([0-9]+))?$/i;

/**
 * Validate a cron expression given as `--schedule`. Throws a one-line
 * UserError such as `--schedule "61 3 * * *": minute 61 is out of range (0-59)`.
 */
export function parseSchedule(expr: string): Schedule {
  const expression = expr.trim().replace(/\s+/g, ' ');
  const fail = (why: string): never => {
    throw new UserError(`--schedule ${JSON.stringify(expr)}: ${why}`);
  };
  if (expression === '') fail('empty; write 5 fields such as "0 3 * * *" (03:00 UTC daily)');
  let source = expression;
  if (expression.startsWith('@')) {
    const lower = expression.toLowerCase();
    if (lower === '@reboot')
      fail('runs at boot, not on a clock; write 5 fields such as "0 3 * * *"');
    const expanded = NICKNAMES[lower];
    if (!expanded) fail(`unknown shorthand; use one of ${Object.keys(NICKNAMES).join(', ')}`);
    source = expanded as string;
  }
  const parts = source.split(' ');
  if (parts.length !== 5) {
    fail(
      `expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}` +
        (parts.length === 6 ? '; seconds are not supported' : ''),
    );
  }
  const fields = parts.map((part, i) => normaliseField(part, FIELDS[i] as Field, fail)).join(' ');
  const schedule: Schedule = { expression, fields };
  let first: Date | null;
  try {
    first = cronFor(schedule).nextRun(new Date(Date.UTC(2000, 0, 1)));
  } catch (err) {
    // The grammar above is stricter than croner's; this is a safety net.
    return fail(err instanceof Error ? err.message : String(err));
  }
  // A valid expression can still name no date at all ("0 3 31 2 *").
  if (!first) fail('never fires: no date matches its day and month');
  return schedule;
}

/** The most recent tick at or before `now` (UTC, whole minute). */
export function previousTick(schedule: Schedule, now: Date): Date {
  // croner's previousRuns() is exclusive of its reference but includes a run
  // earlier in the same second; ticks fall on second 0 of a minute.
  const ref = new Date(floorMinute(now).getTime() + 1000);
  const prev = cronFor(schedule).previousRuns(1, ref)[0];
  // Every valid schedule repeats at least every 8 years (29 February).
  if (!prev) throw new Error(`schedule ${schedule.fields}: no tick before ${now.toISOString()}`);
  return prev;
}

/** The first tick strictly after `now` (UTC, whole minute). */
export function nextTick(schedule: Schedule, now: Date): Date {
  const next = cronFor(schedule).nextRun(now);
  if (!next) throw new Error(`schedule ${schedule.fields}: no tick after ${now.toISOString()}`);
  return next;
}

/**
 * The tick cron meant when it started a run at `now`: previousTick() when it is
 * at most `toleranceMs` old, else null (cron fired off-schedule: the host's
 * time zone is not UTC or its clock is off; do not run, say so). Time-zone
 * offsets are whole quarter hours, so a tolerance under 15 minutes tells them
 * apart from a slow start.
 */
export function dueTick(schedule: Schedule, now: Date, toleranceMs = 5 * 60_000): Date | null {
  const tick = previousTick(schedule, now);
  return now.getTime() - tick.getTime() <= toleranceMs ? tick : null;
}

/** What a claim row is keyed by: the tick in UTC to the minute, e.g. `2026-11-24T03:00Z`. */
export function tickId(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new Error('tickId: invalid date');
  return `${date.toISOString().slice(0, 16)}Z`;
}

const intervals = new Map<string, number>();

/**
 * The longest gap between two consecutive ticks, in milliseconds: 24 h for
 * "0 3 * * *", 72 h for "0 3 * * 1-5" (the weekend), 23 h 1 min for
 * "* 3 * * *". The longest rather than the commonest gap, so that a "last
 * success is older than twice the interval" warning never fires on a healthy
 * schedule. Measured over 400 days from 2024-01-01 (a leap year) plus the tick
 * after them, at most 2000 ticks: deterministic, and long enough for monthly
 * and 29-February schedules.
 */
export function interval(schedule: Schedule): number {
  const cached = intervals.get(schedule.fields);
  if (cached !== undefined) return cached;
  const cron = cronFor(schedule);
  const start = Date.UTC(2024, 0, 1);
  const end = start + 400 * 86_400_000;
  let prev = cron.nextRun(new Date(start - 1000));
  let longest = 0;
  for (let n = 0; prev && prev.getTime() < end && n < 2000; n += 1) {
    const next = cron.nextRun(prev);
    if (!next) break;
    longest = Math.max(longest, next.getTime() - prev.getTime());
    prev = next;
  }
  intervals.set(schedule.fields, longest);
  return longest;
}

/**
 * The body of the /etc/cron.d file (CRON_D_PATH) that starts `command` as root
 * on every tick: a CRON_TZ line (see the module comment), a PATH line, then
 * the entry, ending in the newline cron requires. Each argv word is
 * shell-quoted, and `%` escaped (cron turns a bare `%` into a newline). The
 * file must be owned by root and not group- or world-writable, or cron
 * ignores it.
 */
export function cronLine(schedule: Schedule, command: readonly string[]): string {
  if (command.length === 0) throw new Error('cronLine: empty command');
  const words = command.map((word) => {
    if (/[\n\r]/.test(word))
      throw new Error(`cronLine: a cron entry cannot hold a newline: ${JSON.stringify(word)}`);
    // Vixie cron turns `\%` into `%` and a bare `%` into a newline, whatever
    // the shell quoting; a literal backslash right before `%` cannot be said.
    if (word.includes('\\%'))
      throw new Error(`cronLine: cannot write "\\%" in a cron entry: ${JSON.stringify(word)}`);
    return quoteArg(word).replace(/%/g, '\\%');
  });
  return [
    '# Written by cluster-cli (backup setup); it rewrites this file, edits are lost.',
    'CRON_TZ=UTC',
    `PATH=${CRON_PATH}`,
    `${schedule.fields} root ${words.join(' ')}`,
    '',
  ].join('\n');
}

function normaliseField(part: string, field: Field, fail: (why: string) => never): string {
  return part
    .split(',')
    .map((item) => {
      const m = ITEM.exec(item);
      if (!m) {
        const names = field.names ? `, a name (${field.names[0]}, ${field.names[1]}, …)` : '';
        fail(
          `${field.label} ${JSON.stringify(item)} is not understood; use a number${names}, a range (1-5), a list (1,15) or a step (*/15)`,
        );
      }
      const [, star, from, to, step] = m as RegExpExecArray;
      if (step !== undefined && Number(step) < 1)
        fail(`${field.label} step /${step} must be at least 1`);
      if (step !== undefined && !star && to === undefined) {
        fail(
          `${field.label} ${JSON.stringify(item)}: a step needs * or a range before it, such as ${from}-${field.max}/${step}`,
        );
      }
      if (star) return step === undefined ? '*' : `*/${Number(step)}`;
      const lo = value(from as string, field, fail);
      if (to === undefined) return `${lo}`;
      const hi = value(to, field, fail);
      if (lo > hi) fail(`${field.label} range ${item} runs backwards`);
      return `${lo}-${hi}${step === undefined ? '' : `/${Number(step)}`}`;
    })
    .join(',');
}

function value(text: string, field: Field, fail: (why: string) => never): number {
  if (/^[0-9]+$/.test(text)) {
    const n = Number(text);
    if (n < field.min || n > field.max)
      fail(`${field.label} ${n} is out of range (${field.allowed})`);
    return n;
  }
  const i = field.names?.indexOf(text.toLowerCase()) ?? -1;
  if (i < 0) {
    fail(
      field.names
        ? `${field.label} ${JSON.stringify(text)} is not a ${field.label} (${field.allowed})`
        : `${field.label} ${JSON.stringify(text)} is not a number (${field.allowed})`,
    );
  }
  return field.min + i;
}

const crons = new Map<string, Cron>();

function cronFor(schedule: Schedule): Cron {
  let cron = crons.get(schedule.fields);
  if (!cron) {
    const [, , dom = '', , dow = ''] = schedule.fields.split(' ');
    // Without a callback croner starts no timer: this instance only computes dates.
    cron = new Cron(schedule.fields, {
      mode: '5-part',
      timezone: 'UTC',
      paused: true,
      domAndDow: dom.startsWith('*') || dow.startsWith('*'),
    });
    crons.set(schedule.fields, cron);
  }
  return cron;
}

function floorMinute(date: Date): Date {
  if (Number.isNaN(date.getTime())) throw new Error('schedule: invalid date');
  return new Date(Math.floor(date.getTime() / 60_000) * 60_000);
}
