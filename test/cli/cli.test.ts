import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Ctx, Prompts } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';

/**
 * The commander program in-process, with captured output. These cases never
 * reach a host: `connect` fails the test if anything tries to. Everything that
 * does reach a host is in test/lab/ against real sshd and dockerd.
 */
function harness(
  opts: {
    interactive?: boolean;
    answers?: Partial<Record<'input' | 'select' | 'confirm', unknown[]>>;
  } = {},
) {
  let stdout = '';
  let stderr = '';
  const asked: string[] = [];
  const queue = {
    input: [...(opts.answers?.input ?? [])],
    select: [...(opts.answers?.select ?? [])],
    confirm: [...(opts.answers?.confirm ?? [])],
  };
  const prompts: Prompts = {
    input: async (q) => {
      asked.push(q.message);
      const v = String(queue.input.shift());
      const ok = q.validate?.(v);
      if (ok !== undefined && ok !== true) throw new Error(`prompt answer rejected: ${ok}`);
      return v;
    },
    select: async (q) => {
      asked.push(q.message);
      return queue.select.shift() as never;
    },
    password: async (q) => {
      asked.push(q.message);
      return String(queue.input.shift());
    },
    confirm: async (q) => {
      asked.push(q.message);
      return Boolean(queue.confirm.shift());
    },
  };
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-cli-'));
  const ctx: Ctx = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    cwd,
    interactive: opts.interactive ?? false,
    tty: false,
    prompts,
    connect: async (t) => {
      throw new Error(`test must not connect anywhere (tried ${t.address ?? 'local'})`);
    },
  };
  return {
    ctx,
    cwd,
    asked,
    run: (...argv: string[]) => main(argv, ctx),
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}

describe('cluster-cli (in-process)', () => {
  it('prints help with examples and exits 0', async () => {
    const h = harness();
    expect(await h.run('init', '--help')).toBe(0);
    expect(h.stdout).toContain('Examples:');
    expect(h.stdout).toContain('--accept-new-host-key');
    expect(h.stdout).toContain('--dry-run');
  });

  it('an unknown option is one line on stderr and exit 2', async () => {
    const h = harness();
    expect(await h.run('init', '--bogus')).toBe(2);
    expect(h.stderr.split('\n')[0]).toBe("error: unknown option '--bogus'");
  });

  it.each([
    [
      ['--domain', 'bad_domain'],
      'error: --domain "bad_domain": must be a domain name such as apps.example.com',
    ],
    [
      ['--domain', 'a.example.com', '--email', 'nobody'],
      'error: --email "nobody": must be an email address such as ops@example.com',
    ],
    [
      ['--advertise-addr', '1.2.3'],
      'error: --advertise-addr "1.2.3": must be an IPv4 or IPv6 address of the host',
    ],
    [['--timeout', '5'], 'error: --timeout "5": must be a whole number of seconds from 10 to 3600'],
    [['--host', 'root@h:0'], 'error: Invalid SSH target "root@h:0": '],
    [
      ['--topology', 'mesh'],
      "error: option '--topology <name>' argument 'mesh' is invalid. Allowed choices are single, three-node, ha.",
    ],
  ])('rejects %j before contacting any host', async (args, line) => {
    const h = harness();
    expect(await h.run('init', ...args)).not.toBe(0);
    expect(h.stderr.split('\n')[0]?.startsWith(line)).toBe(true);
  });

  it('without a terminal a missing answer names its flag', async () => {
    const h = harness();
    expect(await h.run('init', '--email', 'ops@example.com')).toBe(2);
    expect(h.stderr).toBe(
      'error: Missing --domain: Domain the platform app answers on (no terminal to ask on).\nnext: pass --domain <value>\n',
    );
  });

  it('on a terminal it asks for domain, email and topology, then validates the whole config before connecting', async () => {
    const h = harness({
      interactive: true,
      answers: { input: ['apps.example.com', 'ops@example.com'], select: ['single'] },
    });
    // the connect guard throws: we get that far only after every answer was taken and checked
    expect(await h.run('init', '--host', 'root@203.0.113.10')).toBe(70);
    expect(h.asked).toEqual([
      'Domain the platform app answers on?',
      "Email for Let's Encrypt notices?",
      'Topology?',
    ]);
    expect(h.stderr).toContain('test must not connect anywhere (tried 203.0.113.10)');
  });

  it('reports an invalid cluster.yaml as path: message lines', async () => {
    const h = harness();
    writeFileSync(
      join(h.cwd, 'cluster.yaml'),
      'domain: apps.example.com\nemail: ops@example.com\nproxy:\n  provider: nginx\nnetworks:\n  data:\n    subnet: 10.0.10.0/24\n',
    );
    expect(await h.run('init', '--host', 'root@203.0.113.10')).toBe(2);
    expect(h.stderr).toBe(
      [
        'error: cluster.yaml is not valid:',
        'proxy.provider: must be traefik or caddy',
        'next: fix cluster.yaml and run the command again',
        '',
      ].join('\n'),
    );
  });

  it('reports broken YAML in cluster.yaml with its line, and a non-mapping top level', async () => {
    const h = harness();
    writeFileSync(join(h.cwd, 'cluster.yaml'), 'domain: apps.example.com\nhosts: [unclosed\n');
    expect(await h.run('init', '--host', 'root@203.0.113.10')).toBe(2);
    expect(h.stderr.split('\n').slice(0, 2)).toEqual([
      'error: cluster.yaml is not valid:',
      'line 3: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    const l = harness();
    writeFileSync(join(l.cwd, 'cluster.yaml'), '- just\n- a list\n');
    expect(await l.run('stack', 'render')).toBe(2);
    expect(l.stderr.split('\n')[1]).toBe('(top level): must be a mapping of keys to values');
  });

  it('stack render prints the stack for cluster.yaml without touching a host', async () => {
    const h = harness();
    writeFileSync(
      join(h.cwd, 'cluster.yaml'),
      'domain: apps.example.com\nemail: ops@example.com\nhosts:\n  - name: node1\n    address: 203.0.113.10\n',
    );
    expect(await h.run('stack', 'render')).toBe(0);
    const stack = parse(h.stdout);
    expect(Object.keys(stack.services).sort()).toEqual(['app', 'postgres', 'proxy', 'redis']);
    expect(stack.services.postgres.deploy.placement.constraints).toEqual([
      'node.hostname == node1',
    ]);

    expect(await h.run('stack', 'render', '--out', 'out/stack.yml')).toBe(0);
    expect(readFileSync(join(h.cwd, 'out/stack.yml'), 'utf8')).toBe(
      h.stdout.split('wrote out/stack.yml')[0],
    );
  });

  it('with --json, errors are one JSON object on stderr', async () => {
    const h = harness();
    expect(await h.run('init', '--json', '--domain', 'bad_domain')).toBe(2);
    expect(JSON.parse(h.stderr)).toEqual({
      error: '--domain "bad_domain": must be a domain name such as apps.example.com',
      exitCode: 2,
    });
    const u = harness();
    expect(await u.run('init', '--json', '--tls', 'maybe')).toBe(2);
    expect(JSON.parse(u.stderr)).toEqual({
      error:
        "option '--tls <mode>' argument 'maybe' is invalid. Allowed choices are acme, internal, off.",
      exitCode: 2,
    });
    const m = harness();
    expect(await m.run('stack', 'render', '--json')).toBe(2);
    expect(JSON.parse(m.stderr)).toEqual({
      error: 'cluster.yaml not found.',
      next: 'create it with: cluster-cli init',
      exitCode: 2,
    });
  });

  it('stack render without cluster.yaml says what to run', async () => {
    const h = harness();
    expect(await h.run('stack', 'render')).toBe(2);
    expect(h.stderr).toBe(
      'error: cluster.yaml not found.\nnext: create it with: cluster-cli init\n',
    );
  });
});
