import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A real OpenSSH server on 127.0.0.1 for tests: its own host keys, config,
 * authorized_keys and pid file in a temp dir. Stopped by PID.
 */
export interface Sshd {
  readonly port: number;
  readonly dir: string;
  /** Private host key paths; the public key is `${path}.pub`. */
  readonly hostKeys: { readonly ed25519: string; readonly rsa: string };
  /** A client key (no passphrase) listed in authorized_keys. */
  readonly clientKey: string;
  /** What sshd has logged so far (-e: to stderr). */
  log(): string;
  /** Add a public key file to authorized_keys. */
  authorize(pubKeyFile: string): void;
  stop(): Promise<void>;
}

export function makeKey(
  file: string,
  type: 'ed25519' | 'rsa' = 'ed25519',
  passphrase = '',
): string {
  const bits = type === 'rsa' ? ['-b', '2048'] : [];
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...bits,
    '-N',
    passphrase,
    '-C',
    'test',
    '-f',
    file,
  ]);
  return file;
}

/** `ssh-keygen -lf` of a key: the `SHA256:…` field. */
export function sshKeygenFingerprint(pubKeyFile: string): string {
  const out = execFileSync('ssh-keygen', ['-lf', pubKeyFile], { encoding: 'utf8' });
  const fp = out.split(' ')[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -lf output: ${out}`);
  return fp;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** PIDs whose parent is pid (from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // comm may contain spaces; fields after the closing ')' are state, ppid, …
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** `extraConfig`: more sshd_config lines, e.g. `AllowTcpForwarding no`. */
export async function startSshd(extraConfig: readonly string[] = []): Promise<Sshd> {
  // sshd's privilege separation directory.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), 'cc-sshd-'));
  // Readable by a non-root login user too (authorized_keys is read as that user).
  chmodSync(dir, 0o755);
  const hostKeys = {
    ed25519: makeKey(join(dir, 'ssh_host_ed25519_key')),
    rsa: makeKey(join(dir, 'ssh_host_rsa_key'), 'rsa'),
  };
  const clientKey = makeKey(join(dir, 'id_client'));
  const authorizedKeys = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeys, readFileSync(`${clientKey}.pub`), { mode: 0o644 });

  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeys.ed25519}`,
      `HostKey ${hostKeys.rsa}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      'StrictModes no',
      'UsePAM no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'AllowStreamLocalForwarding yes',
      'LogLevel VERBOSE',
      ...extraConfig,
      '',
    ].join('\n'),
  );

  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    log += d;
  });
  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      // Let per-connection sshd processes finish first, so none outlives its parent.
      const until = Date.now() + 3000;
      while (childrenOf(child.pid).length > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      process.kill(child.pid, 'SIGTERM');
      await waitExit(child, 5000);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}:\n${log}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`sshd did not accept connections on port ${port}:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    port,
    dir,
    hostKeys,
    clientKey,
    log: () => log,
    authorize(pubKeyFile) {
      writeFileSync(authorizedKeys, readFileSync(pubKeyFile), { flag: 'a' });
    },
    stop,
  };
}

/** A real ssh-agent on its own socket, in the foreground so it is stopped by PID. */
export interface Agent {
  readonly sock: string;
  add(privateKeyFile: string): void;
  stop(): Promise<void>;
}

export async function startAgent(dir: string): Promise<Agent> {
  const sock = join(dir, 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      execFileSync('ssh-add', ['-l'], { env: { SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      break;
    } catch (err) {
      // ssh-add -l exits 1 for "no identities" (agent up) and 2 when it cannot connect.
      if ((err as { status?: number }).status === 1) break;
      if (Date.now() > deadline) throw new Error('ssh-agent did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    sock,
    add(file) {
      execFileSync('ssh-add', ['-q', file], { env: { SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
    },
    async stop() {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGTERM');
        await waitExit(child, 5000);
      }
    },
  };
}
