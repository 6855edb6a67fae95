import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmd } from '../../src/core/cmd.js';
import { UserError } from '../../src/core/errors.js';
import type { Executor } from '../../src/core/executor.js';
import { createExecutor } from '../../src/remote/connect.js';
import { connectSsh, type SshConnectOptions, SshExecutor } from '../../src/remote/ssh.js';
import type { SshTarget } from '../../src/remote/ssh-config.js';
import { freePort, makeKey, type Sshd, sshKeygenFingerprint, startSshd } from '../helpers/sshd.js';

/**
 * A bastion and two nodes behind it: three real sshd on loopback, each with its
 * own host keys. The nodes are reachable from here too (one machine), so the
 * route is checked from the outside: the TCP connection a node's sshd sees
 * belongs to a process of the bastion's sshd.
 */
let bastion: Sshd;
let nodeA: Sshd;
let nodeB: Sshd;
let work: string;
let key: string;
/** known_hosts with the real keys of all three. */
let knownHosts: string;
let n = 0;

beforeAll(async () => {
  [bastion, nodeA, nodeB] = await Promise.all([startSshd(), startSshd(), startSshd()]);
  work = mkdtempSync(join(tmpdir(), 'cc-ssh-jump-'));
  key = makeKey(join(work, 'id_jump'));
  for (const s of [bastion, nodeA, nodeB]) s.authorize(`${key}.pub`);
  knownHosts = knownHostsWith(bastion, nodeA, nodeB);
});

afterAll(async () => {
  await Promise.all([bastion?.stop(), nodeA?.stop(), nodeB?.stop()]);
  if (work) rmSync(work, { recursive: true, force: true });
});

function hostLine(s: Sshd, pubFile = `${s.hostKeys.ed25519}.pub`): string {
  return `[127.0.0.1]:${s.port} ${readFileSync(pubFile, 'utf8').trim()}`;
}

function knownHostsWith(...servers: Sshd[]): string {
  n += 1;
  const file = join(work, `known_hosts_${n}`);
  writeFileSync(file, `${servers.map((s) => hostLine(s)).join('\n')}\n`);
  return file;
}

function target(s: Sshd | number, over: Partial<SshTarget> = {}): SshTarget {
  return {
    host: '127.0.0.1',
    port: typeof s === 'number' ? s : s.port,
    user: 'root',
    identityFiles: [key],
    knownHostsFiles: [knownHosts],
    ...over,
  };
}

function viaBastion(node: Sshd | number, over: Partial<SshTarget> = {}): SshTarget {
  return { ...target(node), jump: target(bastion, over) };
}

function connect(t: SshTarget, over: Partial<SshConnectOptions> = {}): Promise<SshExecutor> {
  return connectSsh({ target: t, acceptNewHostKey: false, agent: false, ...over });
}

async function userError(p: Promise<unknown>): Promise<UserError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

/** How often sshd logged a line containing `text`. */
function count(s: Sshd, text: string): number {
  return s
    .log()
    .split('\n')
    .filter((l) => l.includes(text)).length;
}
const logins = (s: Sshd) => count(s, 'Accepted publickey');
const logouts = (s: Sshd) => count(s, 'Disconnected from user');
const contacts = (s: Sshd) => count(s, 'Connection from');

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** PIDs from pid up to init. */
function ancestry(pid: number): number[] {
  const out = [pid];
  for (let p = pid; p > 1; ) {
    p = parentOf(p);
    out.push(p);
  }
  return out;
}

/**
 * The process that owns the local end of an established loopback TCP
 * connection from `sport` to `dport`, as `ss -tnp` reports it.
 */
function socketOwner(sport: number, dport: number): number {
  const out = execFileSync(
    'ss',
    ['-tnpH', 'state', 'established', `( sport = :${sport} and dport = :${dport} )`],
    { encoding: 'utf8' },
  );
  const pid = /pid=(\d+)/.exec(out)?.[1];
  if (pid === undefined) throw new Error(`no process owns 127.0.0.1:${sport}->${dport}: ${out}`);
  return Number(pid);
}

/** The bastion's listening sshd (its PidFile). */
function bastionPid(): number {
  return Number(readFileSync(join(bastion.dir, 'sshd.pid'), 'utf8').trim());
}

describe('through a bastion', () => {
  it('runs a command on the target through the bastion, checking both host keys', async () => {
    const before = { bastion: logins(bastion), a: logins(nodeA) };
    const ex = await connect(viaBastion(nodeA));
    try {
      expect(ex.label).toBe(`root@127.0.0.1:${nodeA.port}`);
      expect(ex.hostKey.fingerprint).toBe(sshKeygenFingerprint(`${nodeA.hostKeys.ed25519}.pub`));
      const r = await ex.run(cmd(['sh', '-c', 'echo "$SSH_CONNECTION"; whoami']));
      const [conn, who] = r.stdout.split('\n');
      expect(who).toBe('root');
      // client ip, client port, server ip, server port
      const [, clientPort, , serverPort] = (conn as string).split(' ').map(Number);
      expect(serverPort).toBe(nodeA.port);
      // The node's sshd was reached from a process of the bastion's sshd, not from us.
      const owner = socketOwner(clientPort as number, nodeA.port);
      expect(ancestry(owner)).toContain(bastionPid());
      expect(owner).not.toBe(process.pid);
      expect(logins(bastion)).toBe(before.bastion + 1);
      expect(logins(nodeA)).toBe(before.a + 1);
    } finally {
      await ex.close();
    }
  });

  it('shares one bastion connection between hosts and closes it with the last one', async () => {
    const before = { logins: logins(bastion), logouts: logouts(bastion) };
    // Connected at once, as node join does.
    const [a, b] = await Promise.all([connect(viaBastion(nodeA)), connect(viaBastion(nodeB))]);
    let bOpen = true;
    try {
      expect((await a.run(cmd(['echo', 'a']))).stdout).toBe('a\n');
      expect((await b.run(cmd(['echo', 'b']))).stdout).toBe('b\n');
      // One TCP session and login on the bastion for both nodes.
      expect(logins(bastion)).toBe(before.logins + 1);
      expect(count(nodeA, 'Accepted publickey')).toBeGreaterThan(0);

      await a.close();
      // b still works: the bastion stayed up for it
      expect((await b.run(cmd(['echo', 'still']))).stdout).toBe('still\n');
      expect(logouts(bastion)).toBe(before.logouts);

      await b.close();
      bOpen = false;
      await until('the bastion logs the logout', () => logouts(bastion) === before.logouts + 1);

      // Closed means gone: the next host opens a new bastion connection.
      const c = await connect(viaBastion(nodeA));
      await c.close();
      expect(logins(bastion)).toBe(before.logins + 2);
    } finally {
      await a.close();
      if (bOpen) await b.close();
    }
  });

  it('refuses an unknown bastion host key like any other, and never reaches the node', async () => {
    const kh = knownHostsWith(nodeA);
    const before = { text: readFileSync(kh, 'utf8'), a: contacts(nodeA) };
    const fp = sshKeygenFingerprint(`${bastion.hostKeys.ed25519}.pub`);
    const e = await userError(connect(viaBastion(nodeA), { knownHostsFile: kh }));
    expect(e.message).toBe(
      `Unknown host key for bastion 127.0.0.1:${bastion.port} (ssh-ed25519 ${fp}).`,
    );
    expect(e.next).toBe('re-run with --accept-new-host-key after checking the fingerprint');
    expect(readFileSync(kh, 'utf8')).toBe(before.text);
    expect(contacts(nodeA)).toBe(before.a);

    // Asked on a terminal: the question says it is the bastion's key.
    const asked: unknown[] = [];
    const no = await userError(
      connect(viaBastion(nodeA), {
        knownHostsFile: kh,
        confirmHostKey: async (info) => {
          asked.push(info);
          return false;
        },
      }),
    );
    expect(no.message).toContain(`bastion 127.0.0.1:${bastion.port}`);
    expect(asked).toEqual([
      {
        host: '127.0.0.1',
        port: bastion.port,
        type: 'ssh-ed25519',
        fingerprint: fp,
        role: 'bastion',
      },
    ]);
    expect(contacts(nodeA)).toBe(before.a);

    // --accept-new-host-key records it, as it would a node's.
    const ex = await connect(viaBastion(nodeA), { knownHostsFile: kh, acceptNewHostKey: true });
    await ex.close();
    expect(readFileSync(kh, 'utf8')).toContain(`[127.0.0.1]:${bastion.port} ssh-ed25519 `);
  });

  it('refuses a changed bastion host key with ssh-keygen -R, even with --accept-new-host-key', async () => {
    const other = makeKey(join(work, 'other_host_key'));
    const kh = join(work, 'known_hosts_changed');
    writeFileSync(kh, `${hostLine(bastion, `${other}.pub`)}\n${hostLine(nodeA)}\n`);
    const before = contacts(nodeA);
    const e = await userError(
      connect(viaBastion(nodeA), { knownHostsFile: kh, acceptNewHostKey: true }),
    );
    expect(e.message).toBe(
      `Host key for bastion 127.0.0.1:${bastion.port} has CHANGED (now ${sshKeygenFingerprint(`${bastion.hostKeys.ed25519}.pub`)}, known_hosts has ${sshKeygenFingerprint(`${other}.pub`)}). Refusing to connect.`,
    );
    expect(e.next).toBe(`ssh-keygen -f ${kh} -R '[127.0.0.1]:${bastion.port}'`);
    expect(contacts(nodeA)).toBe(before);
  });

  it("checks the node's host key against the node's name, not the bastion's", async () => {
    const kh = knownHostsWith(bastion);
    const fp = sshKeygenFingerprint(`${nodeA.hostKeys.ed25519}.pub`);
    const e = await userError(connect(viaBastion(nodeA), { knownHostsFile: kh }));
    expect(e.message).toBe(
      `Unknown host key for 127.0.0.1:${nodeA.port} via bastion root@127.0.0.1:${bastion.port} (ssh-ed25519 ${fp}).`,
    );
  });

  it('names the bastion when it is down, and the node when the bastion cannot reach it', async () => {
    const down = await freePort();
    const e = await userError(connect({ ...target(nodeA), jump: target(down) }));
    expect(e.message).toBe(`Cannot connect to bastion 127.0.0.1:${down}: connection refused.`);
    expect(e.next).toContain(`port ${down}`);

    const logoutsBefore = logouts(bastion);
    const closed = await freePort();
    const f = await userError(connect(viaBastion(closed)));
    expect(f.message).toBe(
      `Cannot connect to 127.0.0.1:${closed} via bastion root@127.0.0.1:${bastion.port}: connection refused.`,
    );
    expect(f.next).toContain('the bastion can reach it');
    // the failed node was the bastion connection's only user: it is closed again
    await until('the bastion logs the logout', () => logouts(bastion) === logoutsBefore + 1);
  });

  it('names the bastion when it refuses the key', async () => {
    const onlyNodes = makeKey(join(work, 'id_nodes_only'));
    nodeA.authorize(`${onlyNodes}.pub`);
    const e = await userError(connect(viaBastion(nodeA), { identityFile: onlyNodes }));
    expect(e.message).toBe(
      `Authentication failed for bastion root@127.0.0.1:${bastion.port}: the server accepted none of ${onlyNodes}.`,
    );
  });

  it('says so when the bastion does not allow TCP forwarding', async () => {
    const strict = await startSshd(['AllowTcpForwarding no']);
    try {
      strict.authorize(`${key}.pub`);
      const kh = knownHostsWith(strict, nodeA);
      const e = await userError(
        connect({ ...target(nodeA), jump: target(strict) }, { knownHostsFile: kh }),
      );
      expect(e.message).toMatch(
        new RegExp(
          `^Cannot connect to 127\\.0\\.0\\.1:${nodeA.port} via bastion root@127\\.0\\.0\\.1:${strict.port}: the bastion refused to forward \\(.+\\)\\.$`,
        ),
      );
      expect(e.next).toContain('AllowTcpForwarding yes');
    } finally {
      await strict.stop();
    }
  });
});

describe('a bastion from an ssh config file or --jump', () => {
  let config: string;
  beforeAll(async () => {
    const dead = await freePort();
    const common = [
      '  HostName 127.0.0.1',
      '  User root',
      `  IdentityFile ${key}`,
      `  UserKnownHostsFile ${knownHosts}`,
    ];
    config = join(work, 'ssh_config');
    writeFileSync(
      config,
      [
        // a literal ProxyJump host gets its own settings, as with ssh
        'Host 127.0.0.1',
        `  IdentityFile ${key}`,
        `  UserKnownHostsFile ${knownHosts}`,
        'Host jumpbox',
        `  Port ${bastion.port}`,
        ...common,
        'Host dead-jumpbox',
        `  Port ${dead}`,
        ...common,
        'Host node-a',
        `  Port ${nodeA.port}`,
        '  ProxyJump jumpbox',
        ...common,
        'Host node-b',
        `  Port ${nodeB.port}`,
        `  ProxyJump root@127.0.0.1:${bastion.port}`,
        ...common,
        'Host node-a-dead-jump',
        `  Port ${nodeA.port}`,
        '  ProxyJump dead-jumpbox',
        ...common,
        'Host node-a-direct',
        `  Port ${nodeA.port}`,
        '  ProxyJump none',
        ...common,
        'Host node-a-command',
        `  Port ${nodeA.port}`,
        `  ProxyCommand ssh -W %h:%p jumpbox`,
        ...common,
        'Host node-a-two-hops',
        `  Port ${nodeA.port}`,
        '  ProxyJump jumpbox,dead-jumpbox',
        ...common,
        '',
      ].join('\n'),
    );
  });

  async function open(
    address: string,
    jump?: string,
  ): Promise<{ ex: Executor; out: string; close: () => Promise<void> }> {
    const ex = await createExecutor(
      { address },
      { sshConfigFile: config, acceptNewHostKey: false, agent: false, ...(jump ? { jump } : {}) },
    );
    const out = (await ex.run(cmd(['sh', '-c', 'echo "$SSH_CONNECTION"']))).stdout;
    return { ex, out, close: () => (ex as SshExecutor).close() };
  }

  it('follows ProxyJump to an alias and to user@host:port, one bastion login for both', async () => {
    const before = logins(bastion);
    const [a, b] = await Promise.all([open('node-a'), open('node-b')]);
    try {
      expect(a.ex).toBeInstanceOf(SshExecutor);
      expect(a.out.split(' ')[3]).toBe(`${nodeA.port}\n`);
      expect(b.out.split(' ')[3]).toBe(`${nodeB.port}\n`);
      expect(ancestry(socketOwner(Number(a.out.split(' ')[1]), nodeA.port))).toContain(
        bastionPid(),
      );
      expect(logins(bastion)).toBe(before + 1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('lets --jump (an alias too) beat ProxyJump, and ProxyJump none go direct', async () => {
    // the config's bastion is down: only --jump's can have worked
    const viaFlag = await open('node-a-dead-jump', 'jumpbox');
    try {
      const clientPort = Number(viaFlag.out.split(' ')[1]);
      expect(ancestry(socketOwner(clientPort, nodeA.port))).toContain(bastionPid());
    } finally {
      await viaFlag.close();
    }

    const before = contacts(bastion);
    const direct = await open('node-a-direct');
    try {
      const clientPort = Number(direct.out.split(' ')[1]);
      expect(socketOwner(clientPort, nodeA.port)).toBe(process.pid);
      expect(contacts(bastion)).toBe(before);
    } finally {
      await direct.close();
    }

    // --jump none: direct although the config says ProxyJump
    const none = await open('node-a-dead-jump', 'none');
    await none.close();
    expect(contacts(bastion)).toBe(before);
  });

  it('names the bastion from ProxyJump when it is down', async () => {
    const e = await userError(open('node-a-dead-jump'));
    expect(e.message).toMatch(/^Cannot connect to bastion 127\.0\.0\.1:\d+: connection refused\.$/);
  });

  it('refuses ProxyCommand and two hops with one line, contacting nobody', async () => {
    const before = { bastion: contacts(bastion), a: contacts(nodeA) };
    const pc = await userError(open('node-a-command'));
    expect(pc.message).toBe(
      `node-a-command uses ProxyCommand in ${config}, which cluster-cli does not support.`,
    );
    const two = await userError(open('node-a-two-hops'));
    expect(two.message).toBe(
      `ProxyJump "jumpbox,dead-jumpbox" for node-a-two-hops in ${config} names 2 jump hosts; cluster-cli goes through one bastion only.`,
    );
    const flag = await userError(open('node-a', 'jumpbox,jumpbox'));
    expect(flag.message).toBe(
      '--jump "jumpbox,jumpbox" names 2 jump hosts; cluster-cli goes through one bastion only.',
    );
    for (const e of [pc, two, flag]) expect(e.message).not.toContain('\n');
    expect(contacts(bastion)).toBe(before.bastion);
    expect(contacts(nodeA)).toBe(before.a);
  });
});
