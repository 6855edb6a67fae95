import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import {
  parseTarget,
  resolveTarget,
  resolveTargetWithConfig,
  targetLabel,
} from '../../src/remote/ssh-config.js';

const HOME = '/home/me';
const opts = { homeDir: HOME, localUser: 'me', configFile: '/home/me/.ssh/config' };
const DEFAULT_KNOWN = [
  '/home/me/.ssh/known_hosts',
  '/home/me/.ssh/known_hosts2',
  '/etc/ssh/ssh_known_hosts',
  '/etc/ssh/ssh_known_hosts2',
];

describe('parseTarget', () => {
  it.each([
    ['10.0.0.5', { host: '10.0.0.5' }],
    ['node1', { host: 'node1' }],
    ['node1.example.com', { host: 'node1.example.com' }],
    ['deploy@10.0.0.5', { user: 'deploy', host: '10.0.0.5' }],
    ['10.0.0.5:2222', { host: '10.0.0.5', port: 2222 }],
    ['deploy@node1:22', { user: 'deploy', host: 'node1', port: 22 }],
    ['root@[fd00::5]:2200', { user: 'root', host: 'fd00::5', port: 2200 }],
    ['[fd00::5]', { host: 'fd00::5' }],
    ['fd00::5', { host: 'fd00::5' }],
    ['admin@::1', { user: 'admin', host: '::1' }],
    ['u@[fe80::1%eth0]:22', { user: 'u', host: 'fe80::1%eth0', port: 22 }],
    ['ci.user-1@host_a:65535', { user: 'ci.user-1', host: 'host_a', port: 65535 }],
  ])('%s', (input, expected) => {
    expect(parseTarget(input)).toEqual(expected);
  });

  it.each([
    ['', 'it is empty'],
    ['   ', 'it is empty'],
    ['root@', 'the host is empty'],
    ['root@:22', 'the host is empty'],
    ['@host', 'the user before @ is empty'],
    ['a@b@c', 'it contains more than one @'],
    ['host:', '"" is not a port number'],
    ['host:ssh', '"ssh" is not a port number'],
    ['host:0', 'port 0 is outside 1-65535'],
    ['host:65536', 'port 65536 is outside 1-65535'],
    ['host:123456', '"123456" is not a port number'],
    ['host:-1', '"-1" is not a port number'],
    ['root@[fd00::5', 'the [ has no matching ]'],
    ['[fd00::5]2222', 'only :port may follow ]'],
    ['[]:22', 'the host is empty'],
    ['[not v6!]:22', 'it contains whitespace or control characters'],
    ['fd00::5:zz', '"fd00::5:zz" is not an IPv6 address (put IPv6 addresses with a port in [ ])'],
    ['root@my host', 'it contains whitespace or control characters'],
    ['root@host\n', 'it contains whitespace or control characters'],
    ['-oProxyCommand=x', '"-oProxyCommand=x" is not a host name or address'],
    ['ro ot@host', 'it contains whitespace or control characters'],
    ['ro:ot@host', '"ro:ot" is not a user name'],
    ['host/x', '"host/x" is not a host name or address'],
  ])('rejects %j: %s', (input, why) => {
    let err: unknown;
    try {
      parseTarget(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(`Invalid SSH target ${JSON.stringify(input)}: ${why}.`);
    expect((err as UserError).next).toBe(
      'write it as host, user@host, user@host:port or user@[ipv6]:port',
    );
  });
});

describe('resolveTargetWithConfig', () => {
  const config = `
# personal defaults
Host web1
  HostName 203.0.113.10
  User deploy
  Port 2222
  IdentityFile ~/.ssh/web1_key
  IdentityFile %d/.ssh/%u-%r@%h:%p

Host db*
  HostName %h.internal.example
  UserKnownHostsFile ~/.ssh/kh_db /tmp/kh_%n

Host jump-me
  ProxyJump a,b

Host badport
  Port nope

Host badtoken
  IdentityFile ~/.ssh/%C

Host *
  IdentityFile ~/.ssh/fallback
`;

  it('uses HostName, User, Port and IdentityFile of an alias, expanding ~ and % tokens', () => {
    expect(resolveTargetWithConfig('web1', config, opts)).toEqual({
      host: '203.0.113.10',
      port: 2222,
      user: 'deploy',
      identityFiles: [
        '/home/me/.ssh/web1_key',
        '/home/me/.ssh/me-deploy@203.0.113.10:2222',
        '/home/me/.ssh/fallback',
      ],
      knownHostsFiles: DEFAULT_KNOWN,
    });
  });

  it('lets explicit parts of the target beat the config file', () => {
    const t = resolveTargetWithConfig('admin@web1:22', config, opts);
    expect(t).toMatchObject({ host: '203.0.113.10', port: 22, user: 'admin' });
    expect(t.identityFiles[1]).toBe('/home/me/.ssh/me-admin@203.0.113.10:22');
    expect(resolveTargetWithConfig({ host: 'web1', user: 'ops' }, config, opts)).toMatchObject({
      user: 'ops',
      port: 2222,
    });
  });

  it('defaults to root, port 22 and the usual key files when nothing matches', () => {
    expect(resolveTargetWithConfig('10.0.0.5', '', opts)).toEqual({
      host: '10.0.0.5',
      port: 22,
      user: 'root',
      identityFiles: ['/home/me/.ssh/id_ed25519', '/home/me/.ssh/id_ecdsa', '/home/me/.ssh/id_rsa'],
      knownHostsFiles: DEFAULT_KNOWN,
    });
  });

  it('reads UserKnownHostsFile lists and %h in HostName', () => {
    const t = resolveTargetWithConfig('db1', config, opts);
    expect(t.host).toBe('db1.internal.example');
    expect(t.knownHostsFiles).toEqual([
      '/home/me/.ssh/kh_db',
      '/tmp/kh_db1',
      '/etc/ssh/ssh_known_hosts',
      '/etc/ssh/ssh_known_hosts2',
    ]);
  });

  it('keeps IPv6 addresses without brackets', () => {
    expect(resolveTargetWithConfig('root@[fd00::5]:2200', '', opts)).toMatchObject({
      host: 'fd00::5',
      port: 2200,
    });
  });

  it('refuses a multi-hop ProxyJump, a bad Port and unknown % tokens with one-line UserErrors', () => {
    const cases: [string, string][] = [
      [
        'jump-me',
        'ProxyJump "a,b" for jump-me in /home/me/.ssh/config names 2 jump hosts; cluster-cli goes through one bastion only.',
      ],
      ['badport', 'Port for badport in /home/me/.ssh/config: "nope" is not a port number.'],
      [
        'badtoken',
        'IdentityFile "~/.ssh/%C" in /home/me/.ssh/config uses %C, which cluster-cli does not expand.',
      ],
    ];
    for (const [host, message] of cases) {
      expect(() => resolveTargetWithConfig(host, config, opts)).toThrow(
        expect.objectContaining({ name: 'UserError', message }),
      );
    }
  });

  it('never runs Match exec commands', () => {
    const marker = join(tmpdir(), `cc-match-exec-${process.pid}`);
    const t = resolveTargetWithConfig(
      'node1',
      `Match exec "touch ${marker}"\n  User fromexec\n`,
      opts,
    );
    expect(existsSync(marker)).toBe(false);
    expect(t.user).toBe('root');
  });
});

describe('resolveTarget (reads the file)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cc-sshcfg-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the given config file', async () => {
    const file = join(dir, 'config');
    writeFileSync(file, 'Host lab\n  HostName 127.0.0.1\n  Port 2201\n');
    expect(await resolveTarget('lab', { configFile: file, homeDir: dir })).toMatchObject({
      host: '127.0.0.1',
      port: 2201,
      user: 'root',
    });
  });

  it('treats a missing ~/.ssh/config as empty but a missing given file as an error', async () => {
    expect(await resolveTarget('10.0.0.5', { homeDir: dir })).toMatchObject({
      host: '10.0.0.5',
      port: 22,
    });
    await expect(resolveTarget('lab', { configFile: join(dir, 'absent') })).rejects.toThrow(
      UserError,
    );
  });
});

describe('targetLabel', () => {
  it('shows the port only when it is not 22', () => {
    expect(targetLabel({ user: 'root', host: '10.0.0.5', port: 22 })).toBe('root@10.0.0.5');
    expect(targetLabel({ user: 'root', host: '10.0.0.5', port: 2222 })).toBe('root@10.0.0.5:2222');
    expect(targetLabel({ user: 'root', host: 'fd00::5', port: 2222 })).toBe('root@[fd00::5]:2222');
    expect(targetLabel({ user: 'root', host: 'fd00::5', port: 22 })).toBe('root@fd00::5');
  });
});
