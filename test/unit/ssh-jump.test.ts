import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectTarget } from '../../src/cli/connect.js';
import type { ConnectTarget } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { UserError } from '../../src/core/errors.js';
import { parseJump, resolveTargetWithConfig } from '../../src/remote/ssh-config.js';
import { testCtx } from '../helpers/ctx.js';

const HOME = '/home/me';
const opts = { homeDir: HOME, localUser: 'me', configFile: '/home/me/.ssh/config' };
const DEFAULT_KEYS = ['/home/me/.ssh/id_ed25519', '/home/me/.ssh/id_ecdsa', '/home/me/.ssh/id_rsa'];
const DEFAULT_KNOWN = [
  '/home/me/.ssh/known_hosts',
  '/home/me/.ssh/known_hosts2',
  '/etc/ssh/ssh_known_hosts',
  '/etc/ssh/ssh_known_hosts2',
];

function thrown(fn: () => unknown): UserError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

describe('parseJump', () => {
  it.each([
    ['bastion', { host: 'bastion' }],
    ['ops@10.0.0.1', { user: 'ops', host: '10.0.0.1' }],
    ['ops@10.0.0.1:2222', { user: 'ops', host: '10.0.0.1', port: 2222 }],
    ['[::1]:22', { host: '::1', port: 22 }],
    ['root@[fd00::1]:2200', { user: 'root', host: 'fd00::1', port: 2200 }],
    ['fd00::1', { host: 'fd00::1' }],
    [
      'ssh://ops@bastion.example.com:2022',
      { user: 'ops', host: 'bastion.example.com', port: 2022 },
    ],
    ['SSH://[::1]', { host: '::1' }],
  ])('%s', (input, expected) => {
    expect(parseJump(input)).toEqual(expected);
  });

  it('reads none (any case) as a direct connection', () => {
    expect(parseJump('none')).toBeUndefined();
    expect(parseJump('None')).toBeUndefined();
  });

  it('refuses more than one hop in one line', () => {
    const e = thrown(() => parseJump('a@b,c:2222'));
    expect(e.message).toBe(
      '--jump "a@b,c:2222" names 2 jump hosts; cluster-cli goes through one bastion only.',
    );
    expect(e.message).not.toContain('\n');
    expect(e.next).toContain('--jump user@bastion[:port]');
  });

  it('names --jump in a malformed value', () => {
    const e = thrown(() => parseJump('ops@[::1'));
    expect(e.message).toBe('Invalid --jump "ops@[::1": the [ has no matching ].');
    expect(thrown(() => parseJump('ops@host:ssh')).message).toBe(
      'Invalid --jump "ops@host:ssh": "ssh" is not a port number.',
    );
  });
});

describe('resolveTargetWithConfig with a bastion', () => {
  const config = `
Host bastion
  HostName 203.0.113.1
  Port 2022
  User jump
  IdentityFile ~/.ssh/bastion_key

Host lab1
  HostName 10.0.0.11

Host lab*
  ProxyJump bastion

Host via-literal
  HostName 10.0.0.20
  ProxyJump ops@[fd00::1]:2200

Host direct
  HostName 10.0.0.30
  ProxyJump none

Host chain
  ProxyJump bastion,other

Host through-chained
  ProxyJump hop1

Host hop1
  ProxyJump hop2

Host cmd
  ProxyCommand nc %h %p

Host through-cmd
  ProxyJump cmd-bastion

Host cmd-bastion
  ProxyCommand ssh -W %h:%p elsewhere

Host self-*
  ProxyJump self-bastion
`;

  it('resolves ProxyJump to an alias with that alias’s own settings', () => {
    const t = resolveTargetWithConfig('lab1', config, opts);
    expect(t).toEqual({
      host: '10.0.0.11',
      port: 22,
      user: 'root',
      identityFiles: DEFAULT_KEYS,
      knownHostsFiles: DEFAULT_KNOWN,
      jump: {
        host: '203.0.113.1',
        port: 2022,
        user: 'jump',
        identityFiles: ['/home/me/.ssh/bastion_key'],
        knownHostsFiles: DEFAULT_KNOWN,
      },
    });
  });

  it('resolves a literal user@[v6]:port ProxyJump', () => {
    expect(resolveTargetWithConfig('via-literal', config, opts).jump).toMatchObject({
      host: 'fd00::1',
      port: 2200,
      user: 'ops',
    });
  });

  it('gives the bastion the target’s user when neither it nor the config names one', () => {
    const t = resolveTargetWithConfig('deploy@10.0.0.5', '', { ...opts, jump: '10.0.0.1' });
    expect(t.user).toBe('deploy');
    expect(t.jump).toMatchObject({ host: '10.0.0.1', port: 22, user: 'deploy' });
    expect(resolveTargetWithConfig('10.0.0.5', '', { ...opts, jump: '10.0.0.1' }).jump?.user).toBe(
      'root',
    );
    expect(
      resolveTargetWithConfig('deploy@10.0.0.5', '', { ...opts, jump: 'ops@10.0.0.1:2222' }).jump,
    ).toMatchObject({ user: 'ops', port: 2222 });
  });

  it('lets --jump beat the config’s ProxyJump, and --jump none mean direct', () => {
    expect(resolveTargetWithConfig('lab1', config, { ...opts, jump: 'ops@[::1]:22' }).jump).toEqual(
      expect.objectContaining({ host: '::1', port: 22, user: 'ops' }),
    );
    expect(resolveTargetWithConfig('lab1', config, { ...opts, jump: 'none' }).jump).toBeUndefined();
    // --jump also beats a ProxyCommand, as ssh -J does
    expect(resolveTargetWithConfig('cmd', config, { ...opts, jump: 'bastion' }).jump?.host).toBe(
      '203.0.113.1',
    );
  });

  it('connects directly with ProxyJump none or no ProxyJump', () => {
    expect(resolveTargetWithConfig('direct', config, opts).jump).toBeUndefined();
    expect(resolveTargetWithConfig('bastion', config, opts).jump).toBeUndefined();
    expect(resolveTargetWithConfig('10.0.0.5', config, opts)).not.toHaveProperty('jump');
  });

  it('takes a bastion whose ProxyJump names itself (Host * patterns) as direct', () => {
    const t = resolveTargetWithConfig('self-node', config, opts);
    expect(t.jump).toMatchObject({ host: 'self-bastion' });
    expect(t.jump?.jump).toBeUndefined();
  });

  it('refuses ProxyCommand and more than one hop with one-line UserErrors', () => {
    const cases: [string, string][] = [
      [
        'chain',
        'ProxyJump "bastion,other" for chain in /home/me/.ssh/config names 2 jump hosts; cluster-cli goes through one bastion only.',
      ],
      [
        'through-chained',
        'Bastion hop1 uses ProxyJump hop2 in /home/me/.ssh/config: a second hop, and cluster-cli goes through one bastion only.',
      ],
      ['cmd', 'cmd uses ProxyCommand in /home/me/.ssh/config, which cluster-cli does not support.'],
      [
        'through-cmd',
        'Bastion cmd-bastion uses ProxyCommand in /home/me/.ssh/config, which cluster-cli does not support.',
      ],
    ];
    for (const [host, message] of cases) {
      const e = thrown(() => resolveTargetWithConfig(host, config, opts));
      expect(e.message).toBe(message);
      expect(e.next).toBeTruthy();
    }
    const e = thrown(() => resolveTargetWithConfig('lab1', config, { ...opts, jump: 'a,b,c' }));
    expect(e.message).toBe(
      '--jump "a,b,c" names 3 jump hosts; cluster-cli goes through one bastion only.',
    );
  });

  it('names the config line of a malformed ProxyJump', () => {
    const e = thrown(() => resolveTargetWithConfig('x', 'Host x\n  ProxyJump a@b@c\n', opts));
    expect(e.message).toBe(
      'Invalid ProxyJump "a@b@c" for x in /home/me/.ssh/config: it contains more than one @.',
    );
  });
});

describe('--jump on the command line', () => {
  it('is passed on with every host, beside --identity and --known-hosts', () => {
    expect(
      connectTarget({ address: '10.0.0.5', user: 'deploy' }, { jump: 'ops@[::1]:22' }),
    ).toEqual({
      address: '10.0.0.5',
      user: 'deploy',
      jump: 'ops@[::1]:22',
      acceptNewHostKey: false,
    });
    expect(connectTarget({ address: '10.0.0.5' }, {})).not.toHaveProperty('jump');
  });

  it('reaches the connection of a command that uses sshOptions (node ls)', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-jump-'));
    writeFileSync(
      join(cwd, 'cluster.yaml'),
      'domain: apps.example.com\nemail: ops@example.com\nhosts:\n  - name: node1\n    address: 10.0.0.11\n',
    );
    const seen: ConnectTarget[] = [];
    const { ctx, stderr } = testCtx({
      cwd,
      connect: async (t) => {
        seen.push(t);
        throw new UserError('stop here');
      },
    });
    expect(await main(['node', 'ls', '--jump', 'ops@bastion.example.com:2222'], ctx)).not.toBe(0);
    expect(stderr()).toContain('stop here');
    expect(seen).toEqual([
      expect.objectContaining({ address: '10.0.0.11', jump: 'ops@bastion.example.com:2222' }),
    ]);
  });
});
