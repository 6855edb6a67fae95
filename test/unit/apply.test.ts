import { describe, expect, it } from 'vitest';
import { apiRequest, type DockerApi } from '../../src/core/api.js';
import { apply } from '../../src/core/apply.js';
import { type Cmd, cmd } from '../../src/core/cmd.js';
import { type CopyImages, copyImages } from '../../src/core/copy.js';
import { CommandError } from '../../src/core/errors.js';
import type { Executor } from '../../src/core/executor.js';
import { change, formatAction, formatPlan, type Plan, unchanged } from '../../src/core/plan.js';
import { secret } from '../../src/core/secret.js';
import type { HostSession } from '../../src/core/session.js';

/**
 * apply() with recording sessions (no host: apply's ordering, waves and
 * keep-going are what is under test; the lab tests run the real thing).
 */
function recorder(
  failOn: (host: string, c: Cmd) => boolean = () => false,
  hosts: readonly string[] = ['m', 'a', 'b'],
) {
  const log: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const session = (host: string): HostSession => {
    const exec: Executor = {
      label: host,
      async run(c) {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        log.push(`${host}: ${c.argv.join(' ')}`);
        if (failOn(host, c)) throw new CommandError(host, [...c.argv], 1, 'boom');
        return { stdout: '', stderr: '', exitCode: 0 };
      },
      stream: () => Promise.reject(new Error('no streams here')),
      close: async () => {},
    };
    const api: DockerApi = {
      async request(r) {
        log.push(`${host}: API ${r.method} ${r.path} ${JSON.stringify(r.body)}`);
        return undefined as never;
      },
      close: async () => {},
    };
    return { exec, docker: () => api, close: async () => {} };
  };
  const sessions = new Map(hosts.map((h) => [h, session(h)]));
  return { log, sessions, maxRunning: () => maxRunning };
}

describe('apply', () => {
  it('runs steps in order and skips unchanged ones', async () => {
    const r = recorder();
    const plan: Plan = {
      title: 't',
      steps: [
        change('1', 'm', 'one', [cmd(['one'])]),
        unchanged('2', 'm', 'two', 'already'),
        change('3', 'a', 'three', [cmd(['three'])]),
      ],
    };
    const report = await apply(plan, r.sessions);
    expect(r.log).toEqual(['m: one', 'a: three']);
    expect(report.timings.map((t) => t.id)).toEqual(['1', '3']);
  });

  it('runs a wave at once, one chain per host, each chain in order', async () => {
    const r = recorder();
    const plan: Plan = {
      title: 't',
      steps: [
        change('a1', 'a', 'a1', [cmd(['a1'])], { wave: 'join' }),
        change('a2', 'a', 'a2', [cmd(['a2'])], { wave: 'join' }),
        change('la', 'm', 'label a', [cmd(['label', 'a'])], { wave: 'join', about: 'a' }),
        change('b1', 'b', 'b1', [cmd(['b1'])], { wave: 'join' }),
        change('lb', 'm', 'label b', [cmd(['label', 'b'])], { wave: 'join', about: 'b' }),
        change('after', 'm', 'after', [cmd(['after'])]),
      ],
    };
    await apply(plan, r.sessions);
    expect(r.maxRunning()).toBe(2);
    const at = (s: string) => r.log.indexOf(s);
    expect(at('a: a1')).toBeLessThan(at('a: a2'));
    expect(at('a: a2')).toBeLessThan(at('m: label a'));
    expect(at('b: b1')).toBeLessThan(at('m: label b'));
    expect(r.log.at(-1)).toBe('m: after');
  });

  it('keepGoing: a failed host stops only its own chain and the steps about it', async () => {
    const r = recorder((host, c) => host === 'a' && c.argv[0] === 'a1');
    const plan: Plan = {
      title: 't',
      steps: [
        change('a1', 'a', 'a1', [cmd(['a1'])], { wave: 'join' }),
        change('la', 'm', 'label a', [cmd(['label', 'a'])], { wave: 'join', about: 'a' }),
        change('b1', 'b', 'b1', [cmd(['b1'])], { wave: 'join' }),
        change('lb', 'm', 'label b', [cmd(['label', 'b'])], { wave: 'join', about: 'b' }),
      ],
    };
    const report = await apply(plan, r.sessions, {}, { keepGoing: true });
    expect([...report.failed.keys()]).toEqual(['a']);
    expect(String(report.failed.get('a')?.error)).toContain('boom');
    expect(report.skipped.map((s) => s.id)).toEqual(['la']);
    expect(r.log).toContain('m: label b');
    expect(r.log).not.toContain('m: label a');
  });

  it('without keepGoing the first failure stops the run', async () => {
    const r = recorder((host) => host === 'a');
    const plan: Plan = {
      title: 't',
      steps: [change('a1', 'a', 'a1', [cmd(['a1'])]), change('m1', 'm', 'm1', [cmd(['m1'])])],
    };
    await expect(apply(plan, r.sessions)).rejects.toBeInstanceOf(CommandError);
    expect(r.log).toEqual(['a: a1']);
  });

  it('sends API requests to the host’s Docker API, secrets only in the body', async () => {
    const r = recorder();
    const token = secret('SWMTKN-1-abc');
    const plan: Plan = {
      title: 't',
      steps: [
        change('join', 'a', 'join', [
          apiRequest('POST', '/swarm/join', { body: { JoinToken: token } }),
        ]),
      ],
    };
    await apply(plan, r.sessions);
    // the recorder stringifies the body as a printer would: redacted
    expect(r.log).toEqual(['a: API POST /swarm/join {"JoinToken":"[REDACTED]"}']);
  });

  const five = ['h1', 'h2', 'h3', 'h4', 'h5'];
  const waveOf = (hosts: readonly string[]): Plan => ({
    title: 't',
    steps: hosts.map((h) => change(h, h, h, [cmd(['work', h])], { wave: 'w' })),
  });

  it('maxParallel: at most that many hosts of a wave at once, the next as one ends', async () => {
    const r = recorder(undefined, five);
    const report = await apply(waveOf(five), r.sessions, {}, { maxParallel: 2 });
    expect(r.maxRunning()).toBe(2);
    expect(r.log).toHaveLength(5);
    expect(report.timings.map((t) => t.id).sort()).toEqual(five);
    expect(report.waveMs.w).toBeGreaterThan(0);

    const all = recorder(undefined, five);
    await apply(waveOf(five), all.sessions);
    expect(all.maxRunning()).toBe(5);
  });

  it('maxParallel without keepGoing: after a failure no further host is started', async () => {
    const r = recorder((host) => host === 'h1', five);
    await expect(apply(waveOf(five), r.sessions, {}, { maxParallel: 2 })).rejects.toBeInstanceOf(
      CommandError,
    );
    // h1 fails while h2 runs; h2 finishes, h3..h5 never start
    expect(r.log).toEqual(['h1: work h1', 'h2: work h2']);
  });

  it('maxParallel with keepGoing: a failed host frees its slot for the next', async () => {
    const r = recorder((host) => host === 'h1', five);
    const report = await apply(waveOf(five), r.sessions, {}, { maxParallel: 2, keepGoing: true });
    expect([...report.failed.keys()]).toEqual(['h1']);
    expect(r.log).toHaveLength(5);
    expect(r.maxRunning()).toBe(2);
  });

  it('rejects a maxParallel below 1', async () => {
    const r = recorder();
    await expect(apply(waveOf(['a']), r.sessions, {}, { maxParallel: 0 })).rejects.toThrow(
      RangeError,
    );
  });

  it('CopyImages: printed as the pipe, run by the injected copy from the source’s session to the step’s', async () => {
    const r = recorder();
    const action = copyImages('m', ['app:1', 'redis:7-alpine']);
    expect(formatAction(action)).toBe('docker save app:1 redis:7-alpine | docker load  (from m)');
    const plan: Plan = {
      title: 'push',
      steps: [
        change('copy:a', 'a', 'Copy to a', [action], { wave: 'copy' }),
        change('copy:b', 'b', 'Copy to b', [copyImages('m', ['app:1'])], { wave: 'copy' }),
      ],
    };
    expect(formatPlan(plan)).toBe(
      [
        'push: 2 to change, 0 unchanged',
        '  + [a] Copy to a',
        '      $ docker save app:1 redis:7-alpine | docker load  (from m)',
        '  + [b] Copy to b',
        '      $ docker save app:1 | docker load  (from m)',
      ].join('\n'),
    );
    const calls: string[] = [];
    const copy = async (c: CopyImages, from: HostSession, to: HostSession) => {
      calls.push(`${from.exec.label} -> ${to.exec.label}: ${c.refs.join(' ')}`);
      if (to.exec.label === 'b') throw new Error('no space left on device');
    };
    const report = await apply(plan, r.sessions, {}, { copy, keepGoing: true, maxParallel: 4 });
    expect(calls.sort()).toEqual(['m -> a: app:1 redis:7-alpine', 'm -> b: app:1']);
    expect(report.timings.map((t) => t.id)).toEqual(['copy:a']);
    expect(String(report.failed.get('b')?.error)).toContain('no space left on device');
    // no command ran anywhere: a copy is not a Cmd
    expect(r.log).toEqual([]);
  });

  it('a CopyImages without a copy function, or from a host without a session, fails before any step runs', async () => {
    const r = recorder();
    const plan = (from: string): Plan => ({
      title: 't',
      steps: [
        change('first', 'a', 'first', [cmd(['first'])]),
        change('copy:b', 'b', 'Copy to b', [copyImages(from, ['app:1'])]),
      ],
    });
    await expect(apply(plan('m'), r.sessions)).rejects.toThrow(
      'step copy:b copies images, but apply() was given no copy',
    );
    await expect(apply(plan('x'), r.sessions, {}, { copy: async () => {} })).rejects.toThrow(
      'no session for host x (source of copy:b)',
    );
    expect(r.log).toEqual([]);
  });
});

describe('a step whose command reports progress', () => {
  it('its stderr lines reach onStepProgress as they come, and its timeout is honoured', async () => {
    const { LocalExecutor } = await import('../../src/remote/local.js');
    // A real process on this machine (no sudo: the test runs as whoever runs it).
    const exec = new LocalExecutor(false);
    const session = { exec, docker: () => ({}) as DockerApi, close: async () => {} } as HostSession;
    const script = cmd(
      ['sh', '-c', 'echo "waiting: 1" >&2; sleep 0.2; echo "waiting: 2" >&2; echo done'],
      {
        progress: true,
      },
    );
    const seen: { line: string; at: number }[] = [];
    const t0 = performance.now();
    await apply(
      { title: 't', steps: [change('s', 'local', 'Wait', [script])] },
      new Map([['local', session]]),
      { onStepProgress: (_s, line) => seen.push({ line, at: performance.now() - t0 }) },
    );
    expect(seen.map((s) => s.line)).toEqual(['waiting: 1', 'waiting: 2']);
    // the first line arrived while the command still ran, not at its end
    expect((seen[1]?.at ?? 0) - (seen[0]?.at ?? 0)).toBeGreaterThan(100);

    const slow = cmd(['sleep', '5'], { timeoutMs: 300 });
    const started = performance.now();
    await expect(
      apply(
        { title: 't', steps: [change('s', 'local', 'Slow', [slow])] },
        new Map([['local', session]]),
      ),
    ).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
