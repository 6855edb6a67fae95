import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { type ConnectFn, type Ctx, inquirerPrompts } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { UserError } from '../../src/core/errors.js';
import { testCtx } from '../helpers/ctx.js';

/**
 * `user create` / `user passwd` on a terminal: the password is asked twice,
 * masked. The terminal is the one thing that cannot run here: the prompts
 * are scripted through ctx.prompts (and @inquirer/prompts is replaced to see
 * how the real prompt is configured). The hosts are never reached: a prompt
 * that passes lets the command go on to connect to the manager, where the
 * fake connection refuses.
 */

const inquirer = vi.hoisted(() => ({ calls: [] as unknown[] }));
vi.mock('@inquirer/prompts', () => ({
  password: async (q: unknown) => {
    inquirer.calls.push(q);
    return 'typed';
  },
}));

const YAML =
  'domain: apps.example.com\nemail: ops@example.com\nhosts:\n  - name: node1\n    address: 203.0.113.11\n';

interface Asked {
  readonly kind: string;
  readonly message: string;
}

/** The CLI on a terminal whose user types `answers` into the password prompts, in order. */
function terminal(answers: string[]) {
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-user-prompt-'));
  writeFileSync(join(cwd, 'cluster.yaml'), YAML);
  const asked: Asked[] = [];
  const connected: string[] = [];
  const connect: ConnectFn = async (t) => {
    connected.push(t.address ?? 'local');
    throw new UserError(`Cannot connect to ${t.address}:22: connection refused.`);
  };
  const t = testCtx({ cwd, connect });
  const refuse = (kind: string) => async (q: { message: string }) => {
    asked.push({ kind, message: q.message });
    throw new Error(`unexpected ${kind} prompt: ${q.message}`);
  };
  const ctx: Ctx = {
    ...t.ctx,
    interactive: true,
    prompts: {
      async password(q) {
        asked.push({ kind: 'password', message: q.message });
        const a = answers.shift();
        if (a === undefined) throw new Error(`no answer scripted for: ${q.message}`);
        return a;
      },
      input: refuse('input'),
      select: refuse('select'),
      confirm: refuse('confirm'),
    },
  };
  return {
    asked,
    connected,
    stderr: t.stderr,
    run: (...argv: string[]) => main(argv, ctx),
  };
}

const COMMANDS = [
  ['user create', ['user', 'create', 'alice', '--email', 'alice@example.com']],
  ['user passwd', ['user', 'passwd', 'alice']],
] as const;

const TWICE: Asked[] = [
  { kind: 'password', message: 'Password (12 characters at least):' },
  { kind: 'password', message: 'Same password again:' },
];

describe.each(COMMANDS)('%s on a terminal', (_name, argv) => {
  it('asks twice with the masked password prompt; two different entries are refused', async () => {
    const t = terminal(['correct horse battery', 'correct horse batterz']);
    expect(await t.run(...argv)).toBe(2);
    expect(t.asked).toEqual(TWICE);
    expect(t.stderr()).toBe('error: The two passwords differ.\nnext: run the command again\n');
    // Refused before any host is contacted.
    expect(t.connected).toEqual([]);
  });

  it('two equal entries are accepted: the command goes on to the cluster', async () => {
    const t = terminal(['correct horse battery', 'correct horse battery']);
    expect(await t.run(...argv)).toBe(2);
    expect(t.asked).toEqual(TWICE);
    expect(t.connected).toEqual(['203.0.113.11']);
    expect(t.stderr()).not.toMatch(/password/i);
    expect(t.stderr()).toMatch(
      /^error: No manager of cluster\.yaml could be reached:\n {2}node1: /,
    );
  });

  it('equal but too short: refused by the password policy, no host contacted', async () => {
    const t = terminal(['short', 'short']);
    expect(await t.run(...argv)).toBe(2);
    expect(t.asked).toEqual(TWICE);
    expect(t.stderr()).toBe('error: Password too short: 12 characters at least\n');
    expect(t.connected).toEqual([]);
  });

  it('without a terminal: no prompt, the error names --password-stdin and --generate', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-user-prompt-'));
    writeFileSync(join(cwd, 'cluster.yaml'), YAML);
    const t = testCtx({
      cwd,
      connect: () => Promise.reject(new Error('no host may be contacted')),
    });
    expect(await main([...argv], t.ctx)).toBe(2);
    expect(t.stderr()).toBe(
      'error: A password is needed and there is no terminal to ask on.\n' +
        'next: pass it on stdin with --password-stdin, or let cluster-cli make one with --generate\n',
    );
  });
});

describe('the real password prompt', () => {
  it('is @inquirer/prompts password with a mask, so the answer never echoes', async () => {
    inquirer.calls.length = 0;
    expect(await inquirerPrompts.password({ message: 'Same password again:' })).toBe('typed');
    expect(inquirer.calls).toEqual([{ message: 'Same password again:', mask: '*' }]);
  });
});
