import { afterEach, describe, expect, it } from 'vitest';
import {
  CRON_PATH,
  cronLine,
  dueTick,
  interval,
  nextTick,
  parseSchedule,
  previousTick,
  type Schedule,
  tickId,
} from '../../src/backup/schedule.js';
import { UserError } from '../../src/core/errors.js';

const HOUR = 3_600_000;
const at = (iso: string) => new Date(iso);
const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The error parseSchedule throws for `expr` (fails the test when it does not throw). */
function refusal(expr: string): UserError {
  try {
    parseSchedule(expr);
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error(`parseSchedule accepted ${JSON.stringify(expr)}`);
}

/** The next `n` ticks after `from`. */
function ticks(s: Schedule, from: string, n: number): string[] {
  const out: string[] = [];
  let t = at(from);
  for (let i = 0; i < n; i += 1) {
    t = nextTick(s, t);
    out.push(t.toISOString());
  }
  return out;
}

describe('parseSchedule', () => {
  it.each([
    ['0 3 * * *', '0 3 * * *'],
    ['*/15 * * * *', '*/15 * * * *'],
    ['0-30/10 1,13 1-15 * *', '0-30/10 1,13 1-15 * *'],
    ['0 3 * * 7', '0 3 * * 7'],
    ['  0   3 *\t* *  ', '0 3 * * *'],
  ])('accepts %j as the fields %j', (expr, fields) => {
    expect(parseSchedule(expr).fields).toBe(fields);
  });

  it('turns month and day names into numbers, keeping what the user wrote as the expression', () => {
    expect(parseSchedule('0 3 * * MON')).toEqual({
      expression: '0 3 * * MON',
      fields: '0 3 * * 1',
    });
    expect(parseSchedule('*/15 * * * mon-Fri').fields).toBe('*/15 * * * 1-5');
    expect(parseSchedule('0 0 1 JAN,jul *').fields).toBe('0 0 1 1,7 *');
    expect(parseSchedule('0 3 * * sun,sat').fields).toBe('0 3 * * 0,6');
  });

  it.each([
    ['@yearly', '0 0 1 1 *'],
    ['@annually', '0 0 1 1 *'],
    ['@monthly', '0 0 1 * *'],
    ['@weekly', '0 0 * * 0'],
    ['@daily', '0 0 * * *'],
    ['@DAILY', '0 0 * * *'],
    ['@midnight', '0 0 * * *'],
    ['@hourly', '0 * * * *'],
  ])('expands %s into %j', (expr, fields) => {
    expect(parseSchedule(expr)).toEqual({ expression: expr, fields });
  });

  it.each([
    ['61 3 * * *', 'minute 61 is out of range (0-59)'],
    ['0 24 * * *', 'hour 24 is out of range (0-23)'],
    ['0 3 0 * *', 'day of month 0 is out of range (1-31)'],
    ['0 3 32 * *', 'day of month 32 is out of range (1-31)'],
    ['0 3 * 0 *', 'month 0 is out of range (1-12 or jan-dec)'],
    ['0 3 * 13 *', 'month 13 is out of range (1-12 or jan-dec)'],
    ['0 3 * * 8', 'day of week 8 is out of range (0-7 or sun-sat, 0 and 7 are Sunday)'],
    ['0 3 * * 1-9', 'day of week 9 is out of range (0-7 or sun-sat, 0 and 7 are Sunday)'],
    ['0 3 * *', 'expected 5 fields (minute hour day-of-month month day-of-week), got 4'],
    [
      '0 0 3 * * *',
      'expected 5 fields (minute hour day-of-month month day-of-week), got 6; seconds are not supported',
    ],
    ['0 3 L * *', 'day of month "L" is not a number (1-31)'],
    ['0 3 15W * *', 'day of month "15W" is not a number (1-31)'],
    [
      '0 3 * * 1#2',
      'day of week "1#2" is not understood; use a number, a name (sun, mon, …), a range (1-5), a list (1,15) or a step (*/15)',
    ],
    [
      '0 3 ? * *',
      'day of month "?" is not understood; use a number, a range (1-5), a list (1,15) or a step (*/15)',
    ],
    ['@reboot', 'runs at boot, not on a clock; write 5 fields such as "0 3 * * *"'],
    [
      '@every',
      'unknown shorthand; use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly',
    ],
    ['', 'empty; write 5 fields such as "0 3 * * *" (03:00 UTC daily)'],
    ['hello world', 'expected 5 fields (minute hour day-of-month month day-of-week), got 2'],
    ['x 3 * * *', 'minute "x" is not a number (0-59)'],
    ['0 3 * foo *', 'month "foo" is not a month (1-12 or jan-dec)'],
    ['*/0 * * * *', 'minute step /0 must be at least 1'],
    ['5/10 * * * *', 'minute "5/10": a step needs * or a range before it, such as 5-59/10'],
    ['30-10 * * * *', 'minute range 30-10 runs backwards'],
    ['0 3 31 2 *', 'never fires: no date matches its day and month'],
  ])('refuses %j: %s', (expr, why) => {
    const err = refusal(expr);
    expect(err.message).toBe(`--schedule ${JSON.stringify(expr)}: ${why}`);
    expect(err.message).not.toContain('\n');
  });
});

describe('previousTick / nextTick', () => {
  const daily = parseSchedule('0 3 * * *');

  it('exactly on a tick: previous is that tick, next is the one after', () => {
    expect(iso(previousTick(daily, at('2026-11-24T03:00:00Z')))).toBe('2026-11-24T03:00:00.000Z');
    expect(iso(nextTick(daily, at('2026-11-24T03:00:00Z')))).toBe('2026-11-25T03:00:00.000Z');
  });

  it('one second (and one millisecond) before a tick: the tick is still ahead', () => {
    for (const now of ['2026-11-24T02:59:59Z', '2026-11-24T02:59:59.999Z']) {
      expect(iso(previousTick(daily, at(now)))).toBe('2026-11-23T03:00:00.000Z');
      expect(iso(nextTick(daily, at(now)))).toBe('2026-11-24T03:00:00.000Z');
    }
  });

  it('one second (or half a second) after a tick: the tick is behind', () => {
    for (const now of ['2026-11-24T03:00:01Z', '2026-11-24T03:00:00.500Z']) {
      expect(iso(previousTick(daily, at(now)))).toBe('2026-11-24T03:00:00.000Z');
      expect(iso(nextTick(daily, at(now)))).toBe('2026-11-25T03:00:00.000Z');
    }
  });

  it('crosses month and year ends, in leap and common years', () => {
    const monthly = parseSchedule('@monthly');
    expect(iso(nextTick(monthly, at('2026-02-28T23:59:59Z')))).toBe('2026-03-01T00:00:00.000Z');
    expect(iso(previousTick(monthly, at('2026-02-28T23:59:59Z')))).toBe('2026-02-01T00:00:00.000Z');
    expect(iso(nextTick(monthly, at('2024-02-29T12:00:00Z')))).toBe('2024-03-01T00:00:00.000Z');
    expect(iso(nextTick(monthly, at('2026-12-31T23:59:59Z')))).toBe('2027-01-01T00:00:00.000Z');
    expect(iso(previousTick(monthly, at('2027-01-01T00:00:00Z')))).toBe('2027-01-01T00:00:00.000Z');
  });

  it('a day-31 schedule skips the months without one', () => {
    const last = parseSchedule('0 0 31 * *');
    expect(iso(nextTick(last, at('2026-04-01T00:00:00Z')))).toBe('2026-05-31T00:00:00.000Z');
    expect(iso(previousTick(last, at('2026-04-30T23:59:00Z')))).toBe('2026-03-31T00:00:00.000Z');
  });

  it('29 February fires only in leap years', () => {
    const leap = parseSchedule('0 0 29 2 *');
    expect(iso(nextTick(leap, at('2025-01-01T00:00:00Z')))).toBe('2028-02-29T00:00:00.000Z');
    expect(iso(previousTick(leap, at('2027-06-01T00:00:00Z')))).toBe('2024-02-29T00:00:00.000Z');
  });

  it("follows Vixie cron's day rule: either day field when neither starts with *, both otherwise", () => {
    // 2026-06-01 is a Monday.
    expect(ticks(parseSchedule('0 3 1 * 1'), '2026-06-22T04:00:00Z', 3)).toEqual([
      '2026-06-29T03:00:00.000Z', // Monday
      '2026-07-01T03:00:00.000Z', // the 1st, a Wednesday
      '2026-07-06T03:00:00.000Z', // Monday
    ]);
    // */2 starts with *: odd days that are also Mondays.
    expect(ticks(parseSchedule('0 3 */2 * 1'), '2026-06-01T04:00:00Z', 3)).toEqual([
      '2026-06-15T03:00:00.000Z',
      '2026-06-29T03:00:00.000Z',
      '2026-07-13T03:00:00.000Z',
    ]);
  });

  it('7 and sun are Sunday', () => {
    for (const expr of ['0 3 * * 7', '0 3 * * 0', '0 3 * * SUN']) {
      expect(iso(nextTick(parseSchedule(expr), at('2026-06-01T00:00:00Z')))).toBe(
        '2026-06-07T03:00:00.000Z',
      );
    }
  });

  describe('whatever the local time zone', () => {
    const saved = process.env.TZ;
    afterEach(() => {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    });

    it.each(['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe'])(
      'ticks stay in UTC across DST changes (TZ=%s)',
      (tz) => {
        process.env.TZ = tz;
        // The zone took effect (else this test would prove nothing).
        expect(new Date(Date.UTC(2026, 6, 1)).getTimezoneOffset()).not.toBe(0);
        const s = parseSchedule('30 1 * * *');
        // Berlin springs forward 2026-03-29 01:00 UTC, New York 2026-03-08 07:00 UTC.
        expect(iso(nextTick(s, at('2026-03-28T02:00:00Z')))).toBe('2026-03-29T01:30:00.000Z');
        expect(iso(nextTick(s, at('2026-03-29T01:30:00Z')))).toBe('2026-03-30T01:30:00.000Z');
        expect(iso(nextTick(s, at('2026-03-07T02:00:00Z')))).toBe('2026-03-08T01:30:00.000Z');
        expect(iso(previousTick(s, at('2026-10-25T01:29:59Z')))).toBe('2026-10-24T01:30:00.000Z');
        expect(interval(s)).toBe(24 * HOUR);
      },
    );
  });
});

describe('dueTick', () => {
  const daily = parseSchedule('0 3 * * *');

  it('returns the tick when cron starts the run up to 5 minutes late (inclusive)', () => {
    for (const now of ['2026-11-24T03:00:00Z', '2026-11-24T03:04:59Z', '2026-11-24T03:05:00Z']) {
      expect(iso(dueTick(daily, at(now)))).toBe('2026-11-24T03:00:00.000Z');
    }
  });

  it('returns null past the tolerance or off-schedule (a host in another time zone)', () => {
    expect(dueTick(daily, at('2026-11-24T03:05:01Z'))).toBeNull();
    expect(dueTick(daily, at('2026-11-24T04:00:00Z'))).toBeNull(); // UTC+1 host
    expect(dueTick(daily, at('2026-11-24T02:59:00Z'))).toBeNull(); // a minute early
  });

  it('takes another tolerance', () => {
    expect(dueTick(daily, at('2026-11-24T03:00:30Z'), 10_000)).toBeNull();
    expect(iso(dueTick(daily, at('2026-11-24T03:00:10Z'), 10_000))).toBe(
      '2026-11-24T03:00:00.000Z',
    );
    expect(iso(dueTick(daily, at('2026-11-24T03:59:00Z'), HOUR))).toBe('2026-11-24T03:00:00.000Z');
  });
});

describe('tickId', () => {
  it('is the UTC time to the minute with a Z', () => {
    expect(tickId(at('2026-11-24T03:00:00Z'))).toBe('2026-11-24T03:00Z');
    expect(tickId(at('2026-01-02T04:05:59.999Z'))).toBe('2026-01-02T04:05Z');
    expect(tickId(at('2026-11-24T04:00:00+01:00'))).toBe('2026-11-24T03:00Z');
  });

  it('names the tick previousTick finds for any moment of that minute', () => {
    const s = parseSchedule('*/15 * * * *');
    expect(tickId(previousTick(s, at('2026-11-24T03:44:59.999Z')))).toBe('2026-11-24T03:30Z');
    expect(tickId(previousTick(s, at('2026-11-24T03:45:00.001Z')))).toBe('2026-11-24T03:45Z');
  });

  it('refuses an invalid date', () => {
    expect(() => tickId(new Date('not a date'))).toThrow('tickId: invalid date');
  });
});

describe('interval', () => {
  it.each([
    ['@hourly', 1 * HOUR],
    ['*/15 * * * *', 0.25 * HOUR],
    ['0 3 * * *', 24 * HOUR],
    ['* 3 * * *', 23 * HOUR + 60_000], // 03:59 to 03:00 next day
    ['0 3 * * 0', 7 * 24 * HOUR],
    ['0 3 * * mon-fri', 72 * HOUR], // Friday to Monday
    ['0 3 1 * 1', 7 * 24 * HOUR], // Mondays or the 1st: never more than a week
    ['@monthly', 31 * 24 * HOUR],
    ['0 0 29 2 *', 1461 * 24 * HOUR],
  ])('%s: the longest gap between ticks', (expr, ms) => {
    expect(interval(parseSchedule(expr))).toBe(ms);
  });
});

describe('cronLine', () => {
  const daily = parseSchedule('0 3 * * MON-FRI');

  it('writes CRON_TZ, PATH and a root entry with the numeric fields, ending in a newline', () => {
    expect(cronLine(daily, ['/usr/local/bin/cluster-cli', 'backup', 'run'])).toBe(
      [
        '# Written by cluster-cli (backup setup); it rewrites this file, edits are lost.',
        'CRON_TZ=UTC',
        `PATH=${CRON_PATH}`,
        '0 3 * * 1-5 root /usr/local/bin/cluster-cli backup run',
        '',
      ].join('\n'),
    );
  });

  it('quotes a word with a space and escapes % (cron turns a bare % into a newline)', () => {
    const entry = cronLine(daily, ['run', 'a b', '50%', "it's", 'x%y z']).split('\n')[3];
    expect(entry).toBe(String.raw`0 3 * * 1-5 root run 'a b' 50\% 'it'\''s' 'x\%y z'`);
  });

  it('refuses a newline or carriage return in a word', () => {
    expect(() => cronLine(daily, ['echo', 'a\nb'])).toThrow(
      'cronLine: a cron entry cannot hold a newline: "a\\nb"',
    );
    expect(() => cronLine(daily, ['echo', 'a\rb'])).toThrow(/cannot hold a newline/);
  });

  it('refuses a backslash before % (cron cannot say it) and an empty command', () => {
    expect(() => cronLine(daily, ['printf', 'a\\%b'])).toThrow(
      'cronLine: cannot write "\\%" in a cron entry',
    );
    expect(() => cronLine(daily, [])).toThrow('cronLine: empty command');
  });
});
