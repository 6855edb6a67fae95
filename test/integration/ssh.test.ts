import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmd } from '../../src/core/cmd.js';
import { CommandError, UserError } from '../../src/core/errors.js';
import { secret } from '../../src/core/secret.js';
import { createExecutor } from '../../src/remote/connect.js';
import { LocalExecutor } from '../../src/remote/local.js';
import { connectSsh, type SshConnectOptions, SshExecutor } from '../../src/remote/ssh.js';
import { resolveTarget, type SshTarget } from '../../src/remote/ssh-config.js';
import {
  type Agent,
  freePort,
  makeKey,
  type Sshd,
  sshKeygenFingerprint,
  startAgent,
  startSshd,
} from '../helpers/sshd.js';

let sshd: Sshd;
let work: string;
let n = 0;
const open: SshExecutor[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  work = mkdtempSync(join(tmpdir(), 'cc-ssh-test-'));
});

afterAll(async () => {
  await Promise.all(open.map((e) => e.close()));
  await sshd?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh known_hosts path per test. */
function knownHostsPath(): string {
  n += 1;
  return join(work, `known_hosts_${n}`);
}

/** known_hosts holding the server's real public key(s), written from the .pub files. */
function knownHostsWith(...pubFiles: string[]): string {
  const file = knownHostsPath();
  const lines = pubFiles.map((f) => `[127.0.0.1]:${sshd.port} ${readFileSync(f, 'utf8').trim()}`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function target(over: Partial<SshTarget> = {}): SshTarget {
  return {
    host: '127.0.0.1',
    port: sshd.port,
    user: 'root',
    identityFiles: [sshd.clientKey],
    knownHostsFiles: [knownHostsWith(`${sshd.hostKeys.ed25519}.pub`)],
    ...over,
  };
}

async function connect(
  over: Partial<SshConnectOptions> & { target?: SshTarget } = {},
): Promise<SshExecutor> {
  const ex = await connectSsh({ target: target(), acceptNewHostKey: false, agent: false, ...over });
  open.push(ex);
  return ex;
}

async function userError(p: Promise<unknown>): Promise<UserError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

function acceptedLogins(): number {
  return sshd
    .log()
    .split('\n')
    .filter((l) => l.includes('Accepted publickey')).length;
}

describe('SshExecutor against a real sshd', () => {
  it('runs a command: stdout, stderr, exit code', async () => {
    const ex = await connect();
    expect(ex.label).toBe(`root@127.0.0.1:${sshd.port}`);
    const r = await ex.run(cmd(['sh', '-c', 'echo hello; echo warn >&2']));
    expect(r).toEqual({ stdout: 'hello\n', stderr: 'warn\n', exitCode: 0 });
    const f = await ex.run(cmd(['sh', '-c', 'exit 3']), { allowFailure: true });
    expect(f.exitCode).toBe(3);
  });

  it('passes argv with spaces, quotes, $, ; and globs through unchanged', async () => {
    const ex = await connect();
    const words = ['a b', '$HOME', ';rm', "it's", '"q"', '`id`', '', '*', 'x\ny', '\\', '$(id)'];
    const r = await ex.run(cmd(['printf', '%s|', ...words]));
    expect(r.stdout).toBe(`${words.join('|')}|`);
  });

  it('feeds stdin (a Secret) to the command and keeps it out of errors', async () => {
    const ex = await connect();
    const value = `topsecret-${randomBytes(8).toString('hex')}`;
    const r = await ex.run(cmd(['sha256sum'], { stdin: secret(value) }));
    expect(r.stdout.split(' ')[0]).toBe(createHash('sha256').update(value).digest('hex'));

    const err = await ex
      .run(cmd(['sh', '-c', 'cat >&2; exit 7'], { stdin: secret(value) }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    const ce = err as CommandError;
    expect(ce.exitCode).toBe(7);
    expect(ce.message).not.toContain(value);
    expect(ce.stderrTail).toBe('[REDACTED]');

    expect(() => cmd(['sh', '-c', 'echo "$1"', 'sh', secret(value) as unknown as string])).toThrow(
      TypeError,
    );
  });

  it('streams a long-running command both ways on a channel of the same connection', async () => {
    const ex = await connect();
    const s = await ex.stream(cmd(['sh', '-c', 'tr a-z A-Z; echo done >&2']));
    const chunks: Buffer[] = [];
    s.stdout.on('data', (d: Buffer) => chunks.push(d));
    s.stdin.write('hello ');
    s.stdin.end('stream');
    const r = await s.done;
    expect(Buffer.concat(chunks).toString()).toBe('HELLO STREAM');
    expect(r.stderr).toBe('done\n');
    // a failing stream rejects with the command's exit code and stderr
    const bad = await ex.stream(cmd(['sh', '-c', 'echo nope >&2; exit 3']));
    bad.stdin.end();
    const err = (await bad.done.catch((e: unknown) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBe(3);
    expect(err.stderrTail).toBe('nope');
  });

  it('throws CommandError with host, exit code and the tail of stderr', async () => {
    const ex = await connect();
    const c = cmd(['sh', '-c', 'for i in $(seq 1 30); do echo line$i >&2; done; exit 4']);
    const err = (await ex.run(c).catch((e: unknown) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.host).toBe(ex.label);
    expect(err.exitCode).toBe(4);
    expect(err.stderrTail.split('\n')).toEqual(
      Array.from({ length: 12 }, (_, i) => `line${i + 19}`),
    );
    expect(err.message).toContain(`${ex.label}: command failed (exit 4)`);
  });

  it('reuses one TCP connection for every run', async () => {
    const before = acceptedLogins();
    const ex = await connect();
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      seen.add((await ex.run(cmd(['sh', '-c', 'echo "$SSH_CONNECTION"']))).stdout);
    }
    // SSH_CONNECTION = client ip, client port, server ip, server port: one value, one connection.
    expect(seen.size).toBe(1);
    expect([...seen][0]).toMatch(
      new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${sshd.port}\\n$`),
    );
    await Promise.all([1, 2, 3].map(() => ex.run(cmd(['true']))));
    expect(acceptedLogins()).toBe(before + 1);
  });

  it('queues commands beyond sshd MaxSessions instead of failing them', async () => {
    const ex = await connect();
    const outs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ex.run(cmd(['sh', '-c', `sleep 0.2; echo ${i}`]))),
    );
    expect(outs.map((o) => o.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
  });

  it('abandons a command after timeoutMs and keeps the connection usable', async () => {
    const ex = await connect();
    const t0 = Date.now();
    const err = (await ex
      .run(cmd(['sleep', '10']), { timeoutMs: 300 })
      .catch((e) => e)) as CommandError;
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBeNull();
    expect(err.message).toContain('timed out after 300 ms');
    const r = await ex.run(cmd(['sleep', '10']), { timeoutMs: 200, allowFailure: true });
    expect(r.exitCode).toBe(124);
    expect((await ex.run(cmd(['echo', 'still here']))).stdout).toBe('still here\n');
  });

  it('opens a unix socket on the host over the same connection', async () => {
    const ex = await connect();
    const sock = join(work, 'echo.sock');
    const server: Server = createServer((c) => c.pipe(c));
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const stream = await ex.openUnixSocket(sock);
      const payload = Buffer.concat([Buffer.from('ping through ssh\n'), randomBytes(4096)]);
      const got: Buffer[] = [];
      const echoed = new Promise<Buffer>((resolve) => {
        stream.on('data', (d: Buffer) => {
          got.push(d);
          if (Buffer.concat(got).length >= payload.length) resolve(Buffer.concat(got));
        });
      });
      stream.write(payload);
      expect((await echoed).equals(payload)).toBe(true);
      stream.end();
      const e = await userError(ex.openUnixSocket(join(work, 'missing.sock')));
      expect(e.message).toContain('missing.sock');
    } finally {
      server.close();
    }
  });
});

describe('host key checking', () => {
  const edFingerprint = () => sshKeygenFingerprint(`${sshd.hostKeys.ed25519}.pub`);

  it('refuses an unknown host key without acceptNewHostKey, naming the fingerprint', async () => {
    const kh = knownHostsPath();
    const e = await userError(connect({ target: target({ knownHostsFiles: [kh] }) }));
    expect(e.message).toBe(
      `Unknown host key for 127.0.0.1:${sshd.port} (ssh-ed25519 ${edFingerprint()}).`,
    );
    expect(e.next).toBe('re-run with --accept-new-host-key after checking the fingerprint');
    expect(existsSync(kh)).toBe(false);
  });

  it('records a new key with acceptNewHostKey, then trusts it', async () => {
    const kh = join(work, 'new-dir', 'known_hosts');
    const ex = await connect({ target: target({ knownHostsFiles: [kh] }), acceptNewHostKey: true });
    expect(ex.hostKey).toEqual({
      host: '127.0.0.1',
      port: sshd.port,
      type: 'ssh-ed25519',
      fingerprint: edFingerprint(),
      addedTo: kh,
    });
    expect(statSync(kh).mode & 0o777).toBe(0o600);
    expect(statSync(join(work, 'new-dir')).mode & 0o777).toBe(0o700);
    // OpenSSH itself finds the entry we wrote.
    const found = execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', kh], {
      encoding: 'utf8',
    });
    expect(found).toContain(readFileSync(`${sshd.hostKeys.ed25519}.pub`, 'utf8').split(' ')[1]);

    const again = await connect({ target: target({ knownHostsFiles: [kh] }) });
    expect(again.hostKey.addedTo).toBeUndefined();
    expect((await again.run(cmd(['echo', 'ok']))).stdout).toBe('ok\n');
  });

  it('trusts a hashed known_hosts entry (ssh-keygen -H)', async () => {
    const kh = knownHostsWith(`${sshd.hostKeys.ed25519}.pub`);
    execFileSync('ssh-keygen', ['-H', '-f', kh], { stdio: 'ignore' });
    expect(readFileSync(kh, 'utf8')).toMatch(/^\|1\|/);
    const ex = await connect({ target: target({ knownHostsFiles: [kh] }) });
    expect(ex.hostKey.addedTo).toBeUndefined();
  });

  it('refuses a changed key even with acceptNewHostKey', async () => {
    const other = makeKey(join(work, `other_host_key_${++n}`));
    const kh = knownHostsWith(`${other}.pub`);
    const e = await userError(
      connect({ target: target({ knownHostsFiles: [kh] }), acceptNewHostKey: true }),
    );
    expect(e.message).toBe(
      `Host key for 127.0.0.1:${sshd.port} has CHANGED (now ${edFingerprint()}, known_hosts has ${sshKeygenFingerprint(`${other}.pub`)}). Refusing to connect.`,
    );
    expect(e.next).toBe(`ssh-keygen -f ${kh} -R '[127.0.0.1]:${sshd.port}'`);
  });

  it('refuses a key marked @revoked', async () => {
    const kh = knownHostsPath();
    writeFileSync(kh, `@revoked * ${readFileSync(`${sshd.hostKeys.ed25519}.pub`, 'utf8')}`);
    const e = await userError(
      connect({ target: target({ knownHostsFiles: [kh] }), acceptNewHostKey: true }),
    );
    expect(e.message).toContain('@revoked');
    expect(e.message).toContain(edFingerprint());
  });

  it('asks only for the key types known for the host (rsa known, ed25519 preferred)', async () => {
    const kh = knownHostsWith(`${sshd.hostKeys.rsa}.pub`);
    const ex = await connect({ target: target({ knownHostsFiles: [kh] }) });
    expect(ex.hostKey.type).toBe('ssh-rsa');
    expect(ex.hostKey.fingerprint).toBe(sshKeygenFingerprint(`${sshd.hostKeys.rsa}.pub`));
  });

  it('asks confirmHostKey for an unknown key: yes connects and records it', async () => {
    const kh = knownHostsPath();
    const asked: unknown[] = [];
    const ex = await connect({
      target: target({ knownHostsFiles: [kh] }),
      confirmHostKey: async (info) => {
        asked.push(info);
        return true;
      },
    });
    expect(asked).toEqual([
      { host: '127.0.0.1', port: sshd.port, type: 'ssh-ed25519', fingerprint: edFingerprint() },
    ]);
    expect(ex.hostKey.addedTo).toBe(kh);
    expect(readFileSync(kh, 'utf8')).toContain(`[127.0.0.1]:${sshd.port} ssh-ed25519 `);
  });

  it('asks confirmHostKey for an unknown key: no refuses', async () => {
    const kh = knownHostsPath();
    const e = await userError(
      connect({ target: target({ knownHostsFiles: [kh] }), confirmHostKey: async () => false }),
    );
    expect(e.message).toContain('was not accepted');
    expect(existsSync(kh)).toBe(false);
  });

  it('does not count a slow confirmHostKey answer against readyTimeoutMs', async () => {
    const ex = await connect({
      target: target({ knownHostsFiles: [knownHostsPath()] }),
      readyTimeoutMs: 1000,
      confirmHostKey: () => new Promise((r) => setTimeout(() => r(true), 1500)),
    });
    expect((await ex.run(cmd(['true']))).exitCode).toBe(0);
  });
});

describe('authentication and connection errors', () => {
  let agent: Agent | undefined;
  afterAll(async () => {
    await agent?.stop();
  });

  it('logs in with a key held by a real ssh-agent', async () => {
    const agentKey = makeKey(join(work, 'id_agent'));
    sshd.authorize(`${agentKey}.pub`);
    agent = await startAgent(work);
    agent.add(agentKey);
    const ex = await connect({ target: target({ identityFiles: [] }), agent: agent.sock });
    expect((await ex.run(cmd(['whoami']))).stdout).toBe('root\n');
  });

  it('refuses an encrypted key without an agent, saying to use ssh-agent', async () => {
    const enc = makeKey(join(work, 'id_encrypted'), 'ed25519', 'correct horse');
    const e = await userError(connect({ identityFile: enc }));
    expect(e.message).toContain('is encrypted');
    expect(e.message).toContain('ssh-agent');
    expect(e.next).toContain(`ssh-add ${enc}`);
  });

  it('reports a key the server does not accept', async () => {
    const stranger = makeKey(join(work, 'id_stranger'));
    const e = await userError(connect({ identityFile: stranger }));
    expect(e.message).toBe(
      `Authentication failed for root@127.0.0.1:${sshd.port}: the server accepted none of ${stranger}.`,
    );
  });

  it('refuses an explicit identity file that holds no private key', async () => {
    const e = await userError(connect({ identityFile: `${sshd.clientKey}.pub` }));
    expect(e.message).toBe(`SSH identity file ${sshd.clientKey}.pub holds no private key.`);
  });

  it('reports no key at all', async () => {
    const e = await userError(
      connect({ target: target({ identityFiles: [join(work, 'nope')] }), agent: false }),
    );
    expect(e.message).toContain('No SSH key to log in to');
  });

  it('reports a refused connection', async () => {
    const port = await freePort();
    const e = await userError(connect({ target: target({ port }) }));
    expect(e.message).toBe(`Cannot connect to 127.0.0.1:${port}: connection refused.`);
    expect(e.next).toContain(`port ${port}`);
  });
  it('times out when the server never speaks SSH', async () => {
    const silent = createServer(() => {
      // accept and say nothing
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const t0 = Date.now();
      const e = await userError(connect({ target: target({ port }), readyTimeoutMs: 300 }));
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(e.message).toBe(`Timed out after 300 ms connecting to 127.0.0.1:${port}.`);
    } finally {
      silent.close();
    }
  });
});

describe('targets from an ssh config file', () => {
  it('resolves an alias (HostName, Port, User, IdentityFile, UserKnownHostsFile)', async () => {
    const kh = join(work, 'alias_known_hosts');
    const config = join(work, 'ssh_config');
    writeFileSync(
      config,
      [
        'Host lab-alias',
        '  HostName 127.0.0.1',
        `  Port ${sshd.port}`,
        '  User root',
        `  IdentityFile ${sshd.clientKey}`,
        `  UserKnownHostsFile ${kh}`,
        '',
      ].join('\n'),
    );
    const t = await resolveTarget('lab-alias', { configFile: config });
    expect(t.host).toBe('127.0.0.1');
    expect(t.port).toBe(sshd.port);
    const ex = await connect({ target: t, acceptNewHostKey: true });
    expect((await ex.run(cmd(['echo', 'via alias']))).stdout).toBe('via alias\n');
    expect(readFileSync(kh, 'utf8')).toContain(`[127.0.0.1]:${sshd.port} ssh-ed25519 `);

    const viaFactory = await createExecutor(
      { address: 'lab-alias' },
      { sshConfigFile: config, acceptNewHostKey: false, agent: false },
    );
    expect(viaFactory).toBeInstanceOf(SshExecutor);
    open.push(viaFactory as SshExecutor);
    expect((await viaFactory.run(cmd(['echo', 'factory']))).stdout).toBe('factory\n');
  });

  it('createExecutor gives the local executor for a host without an address', async () => {
    const ex = await createExecutor({}, { acceptNewHostKey: false });
    expect(ex).toBeInstanceOf(LocalExecutor);
  });
});

/** userdel, retrying while the user's last sshd session is still ending. */
async function removeUser(user: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      execFileSync('userdel', [user], { stdio: 'pipe' });
      return;
    } catch (err) {
      if (i >= 60) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

// Needs root here to create a throwaway user and a sudoers entry.
const canSudo = process.getuid?.() === 0 && existsSync('/usr/bin/sudo');

describe.skipIf(!canSudo)('a non-root login user goes through sudo -n', () => {
  const user = 'cctestuser';
  const sudoers = `/etc/sudoers.d/${user}`;
  let home: string;

  beforeAll(() => {
    home = join(work, 'cchome');
  });

  it('runs commands as root via sudo -n --', async () => {
    try {
      execFileSync('userdel', [user], { stdio: 'ignore' });
    } catch {
      // not there: fine
    }
    execFileSync('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', user]);
    let ex: SshExecutor | undefined;
    try {
      // '*' instead of the locked '!': sshd without PAM refuses locked accounts.
      execFileSync('usermod', ['-p', '*', user]);
      writeFileSync(sudoers, `${user} ALL=(ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
      execFileSync('visudo', ['-cf', sudoers], { stdio: 'ignore' });

      ex = await connect({ target: target({ user }) });
      expect(ex.label).toBe(`${user}@127.0.0.1:${sshd.port}`);
      expect((await ex.run(cmd(['whoami']))).stdout).toBe('root\n');
      const parent = await ex.run(
        cmd(['sh', '-c', 'tr "\\0" " " < /proc/$PPID/cmdline; echo; echo "$SUDO_USER"']),
      );
      expect(parent.stdout).toMatch(/^sudo -n -- sh -c /);
      expect(parent.stdout.split('\n')[1]).toBe(user);
      const value = 'stdin-through-sudo';
      const r = await ex.run(cmd(['cat'], { stdin: secret(value) }));
      expect(r.stdout).toBe(value);

      // Without NOPASSWD, sudo -n fails at once: one clear line, even for a
      // command that allows failure (a probe must not read it as a fact).
      writeFileSync(sudoers, `${user} ALL=(ALL) ALL\n`, { mode: 0o440 });
      for (const run of [
        () => ex?.run(cmd(['nproc'])),
        () => ex?.run(cmd(['nproc']), { allowFailure: true }),
      ]) {
        const e = await userError(run() as Promise<unknown>);
        expect(e.message).toBe(
          `${user}@127.0.0.1:${sshd.port}: sudo asks for a password; cluster-cli needs passwordless sudo for a non-root user.`,
        );
      }
    } finally {
      await ex?.close();
      rmSync(sudoers, { force: true });
      await removeUser(user);
    }
  });
});
