import { describe, expect, it } from 'vitest';
import { apiRequest, type DockerApi } from '../../src/core/api.js';
import { apply } from '../../src/core/apply.js';
import { type Cmd, cmd } from '../../src/core/cmd.js';
import { CommandError } from '../../src/core/errors.js';
import type { Executor } from '../../src/core/executor.js';
import { change, type Plan, unchanged } from '../../src/core/plan.js';
import { secret } from '../../src/core/secret.js';
import type { HostSession } from '../../src/core/session.js';

/**
 * apply() with recording sessions (no host: apply's ordering, waves and
 * keep-going are what is under test; the lab tests run the real thing).
 */
function recorder(failOn: (host: string, c: Cmd) => boolean = () => false) {
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
  const sessions = new Map(['m', 'a', 'b'].map((h) => [h, session(h)]));
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
});
