import { describe, expect, it } from 'vitest';
import {
  type BackupEntry,
  type BackupStatus,
  parseRetention,
  periodKey,
  type RetentionPolicy,
  retentionPlan,
  selectKeep,
} from '../../src/backup/retention.js';
import { UserError } from '../../src/core/errors.js';

const DAY = 86_400_000;

/** A backup whose id is its UTC start time, e.g. `2026-03-01T03:00`. */
function backup(at: string, status: BackupStatus = 'ok'): BackupEntry {
  const date = new Date(at.length === 10 ? `${at}T03:00:00Z` : at);
  return { id: date.toISOString().slice(0, 16), at: date, status };
}

function policy(p: Partial<RetentionPolicy>): RetentionPolicy {
  return { daily: 0, weekly: 0, monthly: 0, yearly: 0, ...p };
}

function kept(
  backups: readonly BackupEntry[],
  p: Partial<RetentionPolicy>,
  now?: string,
): string[] {
  const at = now ? new Date(now) : new Date('2030-01-01T00:00:00Z');
  return [...selectKeep(backups, policy(p), at).keep].sort();
}

const day = (d: Date) => d.toISOString().slice(0, 10);

describe('parseRetention', () => {
  it('reads period=count pairs; periods not named keep nothing', () => {
    expect(parseRetention('daily=7,weekly=4,monthly=6')).toEqual({
      daily: 7,
      weekly: 4,
      monthly: 6,
      yearly: 0,
    });
    expect(parseRetention(' Yearly=2 , daily=0,weekly=1')).toEqual({
      daily: 0,
      weekly: 1,
      monthly: 0,
      yearly: 2,
    });
  });

  it.each([
    ['', '--retention "": empty; write counts such as daily=7,weekly=4,monthly=6'],
    ['daily7', '--retention "daily7": "daily7" is not period=count, such as daily=7'],
    [
      'hourly=3',
      '--retention "hourly=3": unknown period "hourly"; use daily, weekly, monthly, yearly',
    ],
    ['daily=7,daily=3', '--retention "daily=7,daily=3": daily is given twice'],
    ['daily=-1', '--retention "daily=-1": daily=-1 is not a whole number of backups'],
    ['daily=1.5', '--retention "daily=1.5": daily=1.5 is not a whole number of backups'],
    ['weekly=', '--retention "weekly=": weekly= is not a whole number of backups'],
    ['daily=7,', '--retention "daily=7,": "" is not period=count, such as daily=7'],
    ['daily=99999', '--retention "daily=99999": daily=99999 is more than 10000'],
    [
      'daily=0,weekly=0',
      '--retention "daily=0,weekly=0": keeps no backup; give a period a count above 0',
    ],
  ])('%j → one-line UserError', (text, message) => {
    const err = (() => {
      try {
        parseRetention(text);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(message);
    expect((err as UserError).message).not.toContain('\n');
  });
});

describe('periods (UTC)', () => {
  it.each([
    // ISO weeks start on Monday
    ['2026-03-01T23:59:59Z', '2026-W09'], // Sunday
    ['2026-03-02T00:00:00Z', '2026-W10'], // Monday
    // the ISO year differs from the calendar year around 1 January
    ['2025-12-28T12:00:00Z', '2025-W52'], // Sunday
    ['2025-12-29T00:00:00Z', '2026-W01'], // Monday, still 2025
    ['2026-12-31T12:00:00Z', '2026-W53'], // 2026 has 53 ISO weeks
    ['2027-01-03T23:59:59Z', '2026-W53'], // Sunday, already 2027
    ['2027-01-04T00:00:00Z', '2027-W01'],
    ['2024-12-30T00:00:00Z', '2025-W01'],
  ])('%s is in %s', (at, week) => {
    expect(periodKey('weekly', new Date(at))).toBe(week);
  });

  it('uses UTC days, months and years', () => {
    const at = new Date('2025-12-31T23:59:59.999Z');
    expect(periodKey('daily', at)).toBe('2025-12-31');
    expect(periodKey('monthly', at)).toBe('2025-12');
    expect(periodKey('yearly', at)).toBe('2025');
    expect(periodKey('daily', new Date(at.getTime() + 1))).toBe('2026-01-01');
  });
});

describe('selectKeep', () => {
  it('keeps the newest good backup of a day, not the first', () => {
    const b = [backup('2026-05-04T03:00:00Z'), backup('2026-05-04T15:30:00Z')];
    expect(kept(b, { daily: 1 })).toEqual(['2026-05-04T15:30']);
  });

  it('counts only days that have a good backup', () => {
    // ten days without backups, and failed ones, do not use up the dailies
    const b = [
      ...['2026-04-01', '2026-04-02', '2026-04-03'].map((d) => backup(d)),
      backup('2026-04-14', 'failed'),
      backup('2026-04-15', 'failed'),
      backup('2026-04-16'),
    ];
    expect(kept(b, { daily: 3 })).toEqual([
      '2026-04-02T03:00',
      '2026-04-03T03:00',
      '2026-04-16T03:00',
    ]);
  });

  it('weekly: Sunday and the next Monday are different ISO weeks', () => {
    const b = ['2026-02-28', '2026-03-01', '2026-03-02'].map((d) => backup(d)); // Sat, Sun, Mon
    expect(kept(b, { weekly: 2 })).toEqual(['2026-03-01T03:00', '2026-03-02T03:00']);
    expect(kept(b, { weekly: 1 })).toEqual(['2026-03-02T03:00']);
  });

  it('weekly: an ISO week spans the change of year', () => {
    // 2026-12-31 (Thu), 2027-01-01 (Fri) and 2027-01-03 (Sun) are all 2026-W53
    const b = ['2026-12-27', '2026-12-31', '2027-01-01', '2027-01-03', '2027-01-04'].map((d) =>
      backup(d),
    );
    expect(kept(b, { weekly: 3 })).toEqual([
      '2026-12-27T03:00', // Sunday of 2026-W52
      '2027-01-03T03:00',
      '2027-01-04T03:00', // 2027-W01
    ]);
    // …and 2025-12-29 (Mon) already belongs to 2026-W01
    const c = ['2025-12-28', '2025-12-29', '2026-01-02'].map((d) => backup(d));
    expect(kept(c, { weekly: 2 })).toEqual(['2025-12-28T03:00', '2026-01-02T03:00']);
  });

  it('monthly and yearly: the last instant of a month or year is in it', () => {
    const b = [
      backup('2025-12-15T03:00:00Z'),
      backup('2025-12-31T23:59:59Z'),
      backup('2026-01-01T00:00:00Z'),
      backup('2026-01-31T23:59:00Z'),
      backup('2026-02-01T00:00:00Z'),
    ];
    expect(kept(b, { monthly: 3 })).toEqual([
      '2025-12-31T23:59',
      '2026-01-31T23:59',
      '2026-02-01T00:00',
    ]);
    expect(kept(b, { yearly: 5 })).toEqual(['2025-12-31T23:59', '2026-02-01T00:00']);
  });

  it('keeps the newest good backup even with an all-zero policy', () => {
    const b = ['2026-01-01', '2026-01-02', '2026-01-03'].map((d) => backup(d));
    const s = selectKeep(b, policy({}), new Date('2026-01-03T04:00:00Z'));
    expect([...s.keep]).toEqual(['2026-01-03T03:00']);
    expect(s.delete).toEqual(['2026-01-01T03:00', '2026-01-02T03:00']);
    expect(s.why.get('2026-01-03T03:00')).toEqual(['newest']);
  });

  it('deletes failed and stale incomplete backups only when older than the newest good one', () => {
    const b = [
      backup('2026-06-01', 'failed'),
      backup('2026-06-02', 'incomplete'),
      backup('2026-06-03'),
      backup('2026-06-04', 'failed'),
      backup('2026-06-05', 'incomplete'),
    ];
    const s = selectKeep(b, policy({ daily: 7 }), new Date('2026-06-05T03:30:00Z'));
    expect(s.delete).toEqual(['2026-06-01T03:00', '2026-06-02T03:00']);
    expect([...s.keep].sort()).toEqual([
      '2026-06-03T03:00',
      '2026-06-04T03:00',
      '2026-06-05T03:00',
    ]);
  });

  it('leaves an incomplete backup that may still be uploading', () => {
    const b = [backup('2026-06-01T02:50:00Z', 'incomplete'), backup('2026-06-01T03:00:00Z')];
    const early = selectKeep(b, policy({ daily: 1 }), new Date('2026-06-01T03:20:00Z'));
    expect(early.delete).toEqual([]);
    expect(early.why.get('2026-06-01T02:50')).toEqual(['incomplete, may still be running']);
    const late = selectKeep(b, policy({ daily: 1 }), new Date('2026-06-02T03:00:00Z'));
    expect(late.delete).toEqual(['2026-06-01T02:50']);
  });

  it('deletes nothing when there is no good backup', () => {
    const b = [backup('2026-06-01', 'failed'), backup('2026-06-02', 'incomplete')];
    expect(selectKeep(b, policy({ daily: 1 }), new Date('2026-07-01T00:00:00Z')).delete).toEqual(
      [],
    );
  });

  it('rejects a list with a duplicate id (a bug in the caller)', () => {
    expect(() =>
      selectKeep([backup('2026-01-01'), backup('2026-01-01')], policy({ daily: 1 }), new Date()),
    ).toThrow(/listed twice/);
  });
});

describe('retentionPlan', () => {
  it('deletes nothing after a failed run', () => {
    const b = [
      ...Array.from({ length: 30 }, (_, i) => backup(day(new Date(Date.UTC(2026, 0, 1 + i))))),
      backup('2026-01-31', 'failed'),
    ];
    const now = new Date('2026-01-31T03:30:00Z');
    const ok = retentionPlan({ backups: b, policy: policy({ daily: 3 }), now, lastRun: 'ok' });
    expect(ok.delete.length).toBe(27);
    const failed = retentionPlan({
      backups: b,
      policy: policy({ daily: 3 }),
      now,
      lastRun: 'failed',
    });
    expect(failed.delete).toEqual([]);
    expect(failed.keep.size).toBe(31);
    expect(failed.skipped).toBe(
      'the latest backup run failed; nothing is deleted until a run succeeds',
    );
  });
});

/*
 * 400 days of nightly runs at 03:00 UTC, from Monday 2025-12-01 to Monday
 * 2027-01-04: two changes of year, the 53-week ISO year 2026, and failures on
 * the days a period's pick would otherwise fall on. After every run the runner
 * applies retentionPlan() with the clock at the run's end; at the end the
 * store must hold exactly the GFS set, computed here by walking calendar
 * days, weeks and months backwards over the list of runs (not by calling the
 * code under test).
 */
describe('retention over 400 simulated days of runs', () => {
  // More weeks than the dailies cover, so that the weekly picks show.
  const POLICY: RetentionPolicy = { daily: 7, weekly: 6, monthly: 6, yearly: 3 };
  const START = Date.UTC(2025, 11, 1, 3, 0, 0);
  const DAYS = 400;

  // Runs that fail (no usable backup) or leave an incomplete one (interrupted).
  const FAILED = new Set([
    '2025-12-31', // last day of 2025: the yearly pick for 2025 falls back a day
    '2026-01-31', // last day of a month
    '2026-03-01', // a Sunday: that week's pick is the Saturday
    '2026-05-10', // Sunday
    '2026-11-30', // last day of a month
    '2026-12-20', // Sunday of 2026-W51
    '2026-12-31', // last day of 2026
    '2027-01-03', // Sunday of 2026-W53
    '2026-12-29', // inside the last 7 days
  ]);
  const INCOMPLETE = new Set(['2026-06-30', '2026-12-06', '2027-01-02']);
  // A week of outage: seven failed runs in a row.
  for (let d = Date.UTC(2026, 7, 10); d <= Date.UTC(2026, 7, 16); d += DAY) {
    FAILED.add(day(new Date(d)));
  }
  // And some scattered ones (a fixed pseudo-random sequence); the last run
  // succeeds, so the end state is a retention result.
  let seed = 42;
  for (let i = 0; i < DAYS - 1; i += 1) {
    seed = (seed * 48_271) % 2_147_483_647; // MINSTD, exact in doubles
    if (seed % 13 === 0) FAILED.add(day(new Date(START + i * DAY)));
  }

  const runs: BackupEntry[] = [];
  for (let i = 0; i < DAYS; i += 1) {
    const at = new Date(START + i * DAY);
    const d = day(at);
    const status: BackupStatus = INCOMPLETE.has(d) ? 'incomplete' : FAILED.has(d) ? 'failed' : 'ok';
    runs.push({ id: d, at, status });
  }
  const last = runs.at(-1) as BackupEntry;

  /** The expected GFS set, by walking the calendar backwards. */
  function expectedSet(): Set<string> {
    const good = new Set(runs.filter((r) => r.status === 'ok').map((r) => r.id));
    const first = runs[0] as BackupEntry;
    const out = new Set<string>();
    // newest good day in [from, to], walking back from `to`
    const newestIn = (from: number, to: number): string | undefined => {
      for (let t = to; t >= from; t -= DAY) if (good.has(day(new Date(t)))) return day(new Date(t));
      return undefined;
    };
    const lastDay = Date.UTC(last.at.getUTCFullYear(), last.at.getUTCMonth(), last.at.getUTCDate());
    const firstDay = lastDay - (DAYS - 1) * DAY;
    expect(day(new Date(firstDay))).toBe(day(first.at));

    // daily: the last 7 days that have a good backup
    let n = 0;
    for (let t = lastDay; t >= firstDay && n < POLICY.daily; t -= DAY) {
      const d = day(new Date(t));
      if (good.has(d)) {
        out.add(d);
        n += 1;
      }
    }
    // weekly: Monday to Sunday blocks, from the last run's Monday backwards
    const weekday = new Date(lastDay).getUTCDay(); // 0 = Sunday
    n = 0;
    for (let mon = lastDay - ((weekday + 6) % 7) * DAY; mon + 6 * DAY >= firstDay; mon -= 7 * DAY) {
      if (n === POLICY.weekly) break;
      const pick = newestIn(mon, mon + 6 * DAY);
      if (pick) {
        out.add(pick);
        n += 1;
      }
    }
    // monthly: calendar months backwards
    n = 0;
    let y = last.at.getUTCFullYear();
    let m = last.at.getUTCMonth();
    while (n < POLICY.monthly && Date.UTC(y, m + 1, 0) >= firstDay) {
      const pick = newestIn(Date.UTC(y, m, 1), Date.UTC(y, m + 1, 0));
      if (pick) {
        out.add(pick);
        n += 1;
      }
      m -= 1;
      if (m < 0) {
        m = 11;
        y -= 1;
      }
    }
    // yearly
    n = 0;
    for (let yr = last.at.getUTCFullYear(); n < POLICY.yearly && yr >= 2025; yr -= 1) {
      const pick = newestIn(Date.UTC(yr, 0, 1), Date.UTC(yr, 11, 31));
      if (pick) {
        out.add(pick);
        n += 1;
      }
    }
    return out;
  }

  it('keeps exactly the GFS set, never the newest good backup deleted, nothing after a failure', () => {
    let store: BackupEntry[] = [];
    let newestGood: string | undefined;
    for (const run of runs) {
      store.push(run);
      const now = new Date(run.at.getTime() + 20 * 60_000); // the run ends at 03:20
      const plan = retentionPlan({
        backups: store,
        policy: POLICY,
        now,
        lastRun: run.status === 'ok' ? 'ok' : 'failed',
      });
      if (run.status === 'ok') newestGood = run.id;
      else expect(plan.delete, `after the failed run of ${run.id}`).toEqual([]);
      if (newestGood) expect(plan.delete).not.toContain(newestGood);
      expect(plan.delete.every((id) => !plan.keep.has(id))).toBe(true);
      const doomed = new Set(plan.delete);
      store = store.filter((b) => !doomed.has(b.id));
    }

    const expected = expectedSet();
    expect(store.map((b) => b.id).sort()).toEqual([...expected].sort());
    expect(store.every((b) => b.status === 'ok')).toBe(true);

    // The walk above, spelled out: the same set by hand.
    expect([...expected].sort()).toEqual([
      '2025-12-30', // yearly 2025 (12-31 failed)
      '2026-08-31', // monthly August
      '2026-09-30', // monthly September
      '2026-10-31', // monthly October
      '2026-11-29', // monthly November (11-30 failed)
      '2026-12-05', // weekly 2026-W49 (Sunday 12-06 incomplete)
      '2026-12-13', // weekly 2026-W50
      '2026-12-19', // weekly 2026-W51 (Sunday 12-20 failed)
      '2026-12-25', // daily
      '2026-12-26', // daily
      '2026-12-27', // daily; weekly 2026-W52
      '2026-12-28', // daily
      '2026-12-30', // daily; monthly December; yearly 2026 (12-29 and 12-31 failed)
      '2027-01-01', // daily; weekly 2026-W53 (01-02 incomplete, 01-03 failed)
      '2027-01-04', // daily; weekly 2027-W01; monthly January; yearly 2027; the newest
    ]);
  });
});
