import { readFile, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import type { Duplex } from 'node:stream';
// ssh2 is CommonJS: Node's ESM loader only offers its default export at run time.
import ssh2, {
  type AnyAuthMethod,
  type Client,
  type ClientChannel,
  type ConnectConfig,
  type ServerHostKeyAlgorithm,
} from 'ssh2';
import { type Cmd, secretsOf, stdinOf } from '../core/cmd.js';
import { CommandError, tail, UserError } from '../core/errors.js';
import type { Executor, RunOptions, RunResult, Stream } from '../core/executor.js';
import { quoteArg, quoteArgv } from '../core/quote.js';
import { scrub } from '../core/secret.js';
import {
  appendKnownHost,
  classifyHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  type HostKey,
  keyTypeOf,
  knownHostsName,
  lookupHostKeys,
} from './known-hosts.js';
import { type SshTarget, targetLabel } from './ssh-config.js';
import { refuseSudoPassword } from './sudo.js';

export interface HostKeyInfo {
  readonly host: string;
  readonly port: number;
  readonly type: string;
  readonly fingerprint: string;
  /** Set when the key is the bastion's a target is reached through. */
  readonly role?: 'bastion';
}

export interface SshConnectOptions {
  /** Resolved target (see resolveTarget in ssh-config.ts). */
  readonly target: SshTarget;
  /** Use this private key instead of target.identityFiles; it must exist. */
  readonly identityFile?: string;
  /** Read and write only this known_hosts file instead of target.knownHostsFiles. */
  readonly knownHostsFile?: string;
  /** Record an unknown host key and go on (like StrictHostKeyChecking=accept-new). */
  readonly acceptNewHostKey: boolean;
  /** Asked when the host key is unknown and acceptNewHostKey is false; absent → refuse. */
  readonly confirmHostKey?: (info: HostKeyInfo) => Promise<boolean>;
  /** ssh-agent socket; default SSH_AUTH_SOCK; false or '' → no agent. */
  readonly agent?: string | false;
  /** Time allowed for TCP connect + handshake + login, not counting a confirmHostKey prompt. Default 20000. */
  readonly readyTimeoutMs?: number;
}

/** What the executor learnt about the server's host key while connecting. */
export interface ConnectedHostKey extends HostKeyInfo {
  /** The key was new and has been written to this known_hosts file. */
  readonly addedTo?: string;
}

const SSH2_HOST_KEY_ALGORITHMS: readonly ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
  'ssh-dss',
];

/** Commands run at once on one connection; OpenSSH's MaxSessions defaults to 10. */
const MAX_SESSIONS = 8;

/** The signature algorithms that prove possession of a key of the given known_hosts type. */
function algorithmsForKeyType(type: string): ServerHostKeyAlgorithm[] {
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return SSH2_HOST_KEY_ALGORITHMS.filter((a) => a === type);
}

/**
 * Runs commands on one host over one SSH connection, reused for every run().
 * Create it with connectSsh(); the connection is checked against known_hosts.
 */
export class SshExecutor implements Executor {
  readonly label: string;
  readonly address: string;
  readonly hostKey: ConnectedHostKey;
  readonly #client: Client;
  readonly #useSudo: boolean;
  /** Hands the shared bastion connection back (the last user closes it). */
  readonly #releaseBastion: (() => Promise<void>) | undefined;
  #closed = false;
  #lostReason: string | undefined;
  /** Commands running now, and those waiting for a free session slot. */
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(
    client: Client,
    target: SshTarget,
    hostKey: ConnectedHostKey,
    release?: () => Promise<void>,
  ) {
    this.#client = client;
    this.label = targetLabel(target);
    this.address = target.host;
    this.hostKey = hostKey;
    this.#useSudo = target.user !== 'root';
    this.#releaseBastion = release;
    client.on('error', (err) => {
      this.#lostReason = err.message;
    });
    client.on('close', () => {
      this.#closed = true;
      void this.#releaseBastion?.();
    });
  }

  async run(c: Cmd, opts: RunOptions = {}): Promise<RunResult> {
    const command = this.#commandLine(c);
    const once = () =>
      this.#withSession(async () =>
        collect(
          await this.#exec(command),
          stdinOf(c),
          opts.timeoutMs,
          opts.onStderrLine && lineSplitter((l) => opts.onStderrLine?.(scrub(l, secretsOf(c)))),
        ),
      );
    let out = await once();
    // Seldom (about 1 in 150 short sudo commands run in parallel here, and
    // sometimes a few in a row), sshd closes a channel without sending its
    // exit status although the connection stays up. A read-only command is
    // safe to ask again: up to 3 more times, 0.1 / 0.2 / 0.4 s apart.
    for (let retry = 0; retry < 3; retry++) {
      const lost = out.exitCode === null && !out.timedOut && out.signal === undefined;
      if (!lost || this.#closed || !c.readOnly) break;
      await new Promise((r) => setTimeout(r, 100 * 2 ** retry));
      out = await once();
    }

    const secrets = secretsOf(c);
    const stdout = out.stdout.toString('utf8');
    const stderr = scrub(out.stderr.toString('utf8'), secrets);
    if (out.exitCode !== null) {
      if (out.exitCode !== 0) refuseSudoPassword(this.label, this.#useSudo, stderr);
      if (out.exitCode !== 0 && !opts.allowFailure) {
        throw new CommandError(this.label, [...c.argv], out.exitCode, tail(stderr));
      }
      return { stdout, stderr, exitCode: out.exitCode };
    }

    // No exit status: timed out, killed by a signal, or the connection dropped.
    if (!out.timedOut && out.signal === undefined) {
      // A dropped connection is never the fact a probe looks for: always an error.
      const why = this.#closed
        ? `connection closed before the command finished${this.#lostReason ? ` (${this.#lostReason})` : ''}`
        : 'the SSH server closed the command without an exit status';
      throw new CommandError(
        this.label,
        [...c.argv],
        null,
        [tail(stderr), why].filter(Boolean).join('\n'),
      );
    }
    let why: string;
    let exitCode: number;
    if (out.timedOut) {
      why = `timed out after ${opts.timeoutMs} ms`;
      exitCode = 124;
    } else {
      why = `killed by signal ${out.signal}`;
      const n = (osConstants.signals as Record<string, number | undefined>)[`SIG${out.signal}`];
      exitCode = 128 + (n ?? 0);
    }
    if (!opts.allowFailure) {
      const detail = [tail(stderr), why].filter((s) => s !== '').join('\n');
      throw new CommandError(this.label, [...c.argv], null, detail);
    }
    return { stdout, stderr: stderr === '' ? why : `${stderr.trimEnd()}\n${why}`, exitCode };
  }

  /**
   * A long-running command on its own channel of this connection, e.g.
   * `docker system dial-stdio` for a Docker API client. It holds a session
   * slot until it exits.
   */
  async stream(c: Cmd): Promise<Stream> {
    const command = this.#commandLine(c);
    await this.#acquire();
    let channel: ClientChannel;
    try {
      channel = await this.#exec(command);
    } catch (err) {
      this.#release();
      throw err;
    }
    const stderr: Buffer[] = [];
    channel.stderr.on('data', (d: Buffer) => stderr.push(d));
    // Settled when the channel closes (all output delivered), or at the exit
    // status when nobody reads stdout: a caller that never reads it still learns
    // how the command ended.
    const done = new Promise<RunResult>((resolve, reject) => {
      let settled = false;
      const settle = (exitCode: number | null) => {
        if (settled) return;
        settled = true;
        const text = Buffer.concat(stderr).toString('utf8');
        if (exitCode === 0) {
          resolve({ stdout: '', stderr: text, exitCode });
          return;
        }
        try {
          refuseSudoPassword(this.label, this.#useSudo, text);
        } catch (err) {
          reject(err);
          return;
        }
        const why = exitCode === null ? 'closed without an exit status' : '';
        reject(
          new CommandError(
            this.label,
            [...c.argv],
            exitCode,
            [tail(text), why].filter(Boolean).join('\n'),
          ),
        );
      };
      let exitCode: number | null = null;
      channel.on('exit', (code: number | null) => {
        exitCode = code;
        // Someone reads stdout: settle on close, after the last byte reached them.
        // Nobody does: close would never come, so the exit status is the end.
        if (channel.readableFlowing !== true) settle(code);
      });
      channel.on('close', () => {
        this.#release();
        settle(exitCode);
      });
    });
    done.catch(() => {});
    return {
      stdin: channel,
      stdout: channel,
      done,
      kill: () => {
        try {
          channel.signal('KILL');
          channel.close();
        } catch {
          // already gone
        }
      },
    };
  }

  #commandLine(c: Cmd): string {
    if (c.argv.length === 0) throw new TypeError('cannot run an empty command');
    return quoteArgv(this.#useSudo ? ['sudo', '-n', '--', ...c.argv] : c.argv);
  }

  /**
   * A byte stream to a unix socket on the host (OpenSSH streamlocal forwarding),
   * over the same connection: e.g. /var/run/docker.sock for a Docker API client.
   * It is opened as the login user, without sudo.
   */
  openUnixSocket(path: string): Promise<Duplex> {
    this.#assertOpen();
    return new Promise((resolve, reject) => {
      try {
        this.#client.openssh_forwardOutStreamLocal(path, (err, stream) => {
          if (err) {
            reject(
              new UserError(
                `${this.label}: cannot open unix socket ${path}: ${err.message}.`,
                'check that the socket exists, that the SSH user may open it and that sshd allows AllowStreamLocalForwarding',
              ),
            );
          } else resolve(stream);
        });
      } catch (err) {
        reject(this.#lostError(err));
      }
    });
  }

  /** Ends the connection; behind a bastion, also the bastion's when no other host uses it. */
  async close(): Promise<void> {
    if (!this.#closed) await endClient(this.#client);
    await this.#releaseBastion?.();
  }

  /**
   * sshd allows MaxSessions (default 10) sessions per connection and refuses
   * the rest, so at most MAX_SESSIONS commands run at once; others wait.
   */
  async #withSession<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire();
    try {
      return await fn();
    } finally {
      this.#release();
    }
  }

  async #acquire(): Promise<void> {
    if (this.#running < MAX_SESSIONS) this.#running += 1;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve)); // slot handed over
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running -= 1;
  }

  #exec(command: string): Promise<ClientChannel> {
    this.#assertOpen();
    return new Promise((resolve, reject) => {
      try {
        // LC_ALL=C like the local executor; sshd applies it only where AcceptEnv allows.
        this.#client.exec(command, { env: { LC_ALL: 'C' } }, (err, channel) => {
          if (!err) resolve(channel);
          else if (this.#closed) reject(this.#lostError(err));
          else {
            reject(
              new UserError(
                `${this.label}: the SSH server refused to start a command (${err.message}).`,
                "check MaxSessions in the host's sshd_config",
              ),
            );
          }
        });
      } catch (err) {
        reject(this.#lostError(err));
      }
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw this.#lostError();
  }

  #lostError(err?: unknown): UserError {
    const reason = err instanceof Error ? err.message : this.#lostReason;
    return new UserError(
      `SSH connection to ${this.label} is closed${reason ? ` (${reason})` : ''}.`,
      'check that the host is up and re-run the command',
    );
  }
}

interface Collected {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number | null;
  signal?: string;
  timedOut: boolean;
}

/** Feeds chunks, calls `line` for each complete line (without its newline). */
export function lineSplitter(line: (l: string) => void): (chunk: Buffer) => void {
  let rest = '';
  return (chunk) => {
    const parts = (rest + chunk.toString('utf8')).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') line(p.trimEnd());
  };
}

function collect(
  channel: ClientChannel,
  input: string | undefined,
  timeoutMs?: number,
  onStderr?: (chunk: Buffer) => void,
): Promise<Collected> {
  return new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let exitCode: number | null = null;
    let signal: string | undefined;
    let timedOut = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      const r: Collected = {
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr),
        exitCode: timedOut ? null : exitCode,
        timedOut,
      };
      if (signal !== undefined && !timedOut) r.signal = signal;
      resolve(r);
    };
    const timer =
      timeoutMs !== undefined && timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            try {
              channel.signal('KILL');
              channel.close();
            } catch {
              // the channel is already gone
            }
            finish();
          }, timeoutMs)
        : undefined;
    channel.on('data', (d: Buffer) => stdout.push(d));
    channel.stderr.on('data', (d: Buffer) => {
      stderr.push(d);
      onStderr?.(d);
    });
    channel.on('exit', (code: number | null, sig?: string) => {
      exitCode = code;
      if (code === null && sig) signal = sig;
    });
    channel.on('close', finish);
    channel.on('error', () => finish());
    channel.end(input);
  });
}

interface KnownHostKey extends HostKey {
  readonly file: string;
}

interface KnownHosts {
  readonly keys: KnownHostKey[];
  readonly revoked: Buffer[];
}

async function readKnownHosts(
  files: readonly string[],
  host: string,
  port: number,
): Promise<KnownHosts> {
  const keys: KnownHostKey[] = [];
  const revoked: Buffer[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new UserError(`Cannot read known_hosts file ${file}: ${(err as Error).message}`);
    }
    const found = lookupHostKeys(text, host, port);
    keys.push(...found.keys.map((k) => ({ ...k, file })));
    revoked.push(...found.revoked);
  }
  return { keys, revoked };
}

interface Auth {
  readonly methods: AnyAuthMethod[];
  /** Human names of what will be tried, for error messages. */
  readonly tried: string[];
  /** Encrypted keys skipped for lack of a passphrase. */
  readonly encrypted: string[];
}

async function loadAuth(t: SshTarget, opts: SshConnectOptions, label: string): Promise<Auth> {
  const username = t.user;
  const explicit = opts.identityFile !== undefined;
  const files = explicit ? [opts.identityFile as string] : t.identityFiles;
  const methods: AnyAuthMethod[] = [];
  const tried: string[] = [];
  const encrypted: string[] = [];
  for (const file of files) {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && !explicit) continue;
      throw new UserError(
        `Cannot read SSH identity file ${file}: ${(err as Error).message}`,
        'pass the path of an existing private key',
      );
    }
    const parsed = ssh2.utils.parseKey(data);
    if (parsed instanceof Error) {
      if (/encrypted/i.test(parsed.message) && /passphrase/i.test(parsed.message)) {
        encrypted.push(file);
        continue;
      }
      if (!explicit) continue; // like ssh: a default or configured key it cannot use is skipped
      throw new UserError(`Cannot use SSH identity file ${file}: ${parsed.message}.`);
    }
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key?.isPrivateKey()) {
      if (!explicit) continue;
      throw new UserError(
        `SSH identity file ${file} holds no private key.`,
        'pass the private key file, not the .pub',
      );
    }
    methods.push({ type: 'publickey', username, key: data });
    tried.push(file);
  }

  const agent = opts.agent === undefined ? process.env.SSH_AUTH_SOCK : opts.agent;
  if (agent && (await isSocket(agent))) {
    methods.push({ type: 'agent', username, agent });
    tried.push(`ssh-agent (${agent})`);
  }

  if (methods.length === 0) {
    if (encrypted[0] !== undefined) {
      throw new UserError(
        `SSH key ${encrypted[0]} is encrypted and cluster-cli does not ask for passphrases; load it into ssh-agent to log in to ${label}.`,
        `eval "$(ssh-agent -s)" && ssh-add ${quoteArg(encrypted[0])}`,
      );
    }
    throw new UserError(
      `No SSH key to log in to ${label}: no usable private key among ${files.join(', ') || '(no identity files)'} and no ssh-agent (SSH_AUTH_SOCK).`,
      'create a key with ssh-keygen -t ed25519 and install it on the host with ssh-copy-id',
    );
  }
  return { methods, tried, encrypted };
}

async function isSocket(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isSocket();
  } catch {
    return false;
  }
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** How messages name one hop: a host reached directly, a bastion, or a host behind one. */
interface Hop {
  /** `10.0.0.1:22`, `bastion 10.0.0.1:22` or `10.0.0.12:22 via bastion root@10.0.0.1`. */
  readonly where: string;
  /** The same with the user: `root@10.0.0.12 via bastion root@10.0.0.1`. */
  readonly label: string;
  readonly role?: 'bastion';
}

function directHop(t: SshTarget): Hop {
  return { where: hostPort(t.host, t.port), label: targetLabel(t) };
}

/**
 * Open an SSH connection: check the host key against known_hosts, log in with
 * the identity files and/or ssh-agent, and return an executor that reuses the
 * connection for every command. A target with a bastion (target.jump) is
 * reached through a direct-tcpip channel of the bastion's connection, which
 * every target behind the same bastion shares.
 */
export async function connectSsh(opts: SshConnectOptions): Promise<SshExecutor> {
  const t = opts.target;
  if (t.jump === undefined) {
    const hop = directHop(t);
    const { client, hostKey } = await handshake(await prepare(t, opts, hop), opts, hop);
    return new SshExecutor(client, t, hostKey);
  }

  const jump = t.jump;
  const bastionLabel = targetLabel(jump);
  const hop: Hop = {
    where: `${hostPort(t.host, t.port)} via bastion ${bastionLabel}`,
    label: `${targetLabel(t)} via bastion ${bastionLabel}`,
  };
  // The target's keys and known_hosts first: a mistake there needs no bastion.
  const prepared = await prepare(t, opts, hop);
  const lease = await leaseBastion(jump, opts);
  try {
    const { client, hostKey } = await handshake(prepared, opts, hop, () =>
      forwardThrough(lease.client, t, hop),
    );
    return new SshExecutor(client, t, hostKey, lease.release);
  } catch (err) {
    await lease.release();
    throw err;
  }
}

/** A channel of the bastion's connection to the target's sshd (what `ssh -W` asks for). */
function forwardThrough(bastion: Client, t: SshTarget, hop: Hop): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const failed = (reason: string, next: string) =>
      new UserError(`Cannot connect to ${hop.where}: ${reason}.`, next);
    try {
      bastion.forwardOut('127.0.0.1', 0, t.host, t.port, (err, stream) => {
        if (!err) {
          resolve(stream);
          return;
        }
        // RFC 4254 5.1: 1 administratively prohibited, 2 connect failed, 3 unknown type, 4 resource shortage.
        const code = (err as Error & { reason?: number }).reason;
        const reason = err.message.replace(/^\(SSH\) Channel open failure: /, '') || 'open failed';
        if (code === 1) {
          reject(
            failed(
              `the bastion refused to forward (${reason})`,
              "allow it in the bastion's sshd_config: AllowTcpForwarding yes (and PermitOpen, if set)",
            ),
          );
        } else if (/name or service|not known|resolv/i.test(reason)) {
          reject(
            failed(
              `the bastion cannot resolve ${t.host} (${reason.toLowerCase()})`,
              'check the address in cluster.yaml or the HostName in ~/.ssh/config: the bastion resolves it',
            ),
          );
        } else {
          reject(
            failed(
              reason.toLowerCase(),
              `check that sshd runs on ${t.host} port ${t.port} and that the bastion can reach it`,
            ),
          );
        }
      });
    } catch (err) {
      // ssh2 throws when the bastion's connection is gone.
      reject(
        failed(
          `the bastion's connection is closed (${(err as Error).message})`,
          're-run the command',
        ),
      );
    }
  });
}

/** One open bastion connection, shared by every target behind it in this process. */
interface BastionEntry {
  readonly ready: Promise<Client>;
  /** Targets using it, and those still logging in through it. */
  refs: number;
  /** The connection ended (closed by the last user, or dropped). */
  closed: boolean;
}

interface BastionLease {
  readonly client: Client;
  /** Give the connection back; the last one closes it. Idempotent. */
  readonly release: () => Promise<void>;
}

const bastions = new Map<string, BastionEntry>();

/**
 * The connection to a bastion, opened on first use and shared by every target
 * that names the same bastion with the same credentials and known_hosts; it
 * closes when the last target using it closes.
 */
async function leaseBastion(b: SshTarget, opts: SshConnectOptions): Promise<BastionLease> {
  const agent = opts.agent === undefined ? process.env.SSH_AUTH_SOCK : opts.agent;
  const key = JSON.stringify([
    b.user,
    b.host.toLowerCase(),
    b.port,
    opts.identityFile ?? b.identityFiles,
    agent || '',
    // a connection verified against other known_hosts files is not reused
    opts.knownHostsFile ?? b.knownHostsFiles,
  ]);
  let entry = bastions.get(key);
  if (entry === undefined) {
    const opened = openBastion(b, opts);
    const created: BastionEntry = { ready: opened, refs: 0, closed: false };
    const forget = () => {
      created.closed = true;
      if (bastions.get(key) === created) bastions.delete(key);
    };
    opened.then((client) => client.once('close', forget), forget);
    bastions.set(key, created);
    entry = created;
  }
  const e = entry;
  e.refs += 1;
  let client: Client;
  try {
    client = await e.ready;
  } catch (err) {
    e.refs -= 1;
    throw err;
  }
  let released: Promise<void> | undefined;
  const release = (): Promise<void> => {
    if (released === undefined) {
      e.refs -= 1;
      if (e.refs > 0 || e.closed) released = Promise.resolve();
      else {
        if (bastions.get(key) === e) bastions.delete(key);
        released = endClient(client);
      }
    }
    return released;
  };
  return { client, release };
}

async function openBastion(b: SshTarget, opts: SshConnectOptions): Promise<Client> {
  const hop: Hop = {
    where: `bastion ${hostPort(b.host, b.port)}`,
    label: `bastion ${targetLabel(b)}`,
    role: 'bastion',
  };
  const { client } = await handshake(await prepare(b, opts, hop), opts, hop);
  return client;
}

/** end() the connection and wait until it closed, or destroy it after 2 s. */
function endClient(client: Client): Promise<void> {
  return new Promise<void>((resolve) => {
    const fallback = setTimeout(() => {
      client.destroy();
      resolve();
    }, 2000);
    fallback.unref();
    client.once('close', () => {
      clearTimeout(fallback);
      resolve();
    });
    client.end();
  });
}

/** What connecting to one hop needs before the first packet: keys, known_hosts. */
interface Prepared {
  readonly t: SshTarget;
  readonly knownFiles: string[];
  readonly known: KnownHosts;
  readonly knownTypes: string[];
  readonly restrictTo: ServerHostKeyAlgorithm[];
  readonly auth: Auth;
}

async function prepare(t: SshTarget, opts: SshConnectOptions, hop: Hop): Promise<Prepared> {
  const knownFiles =
    opts.knownHostsFile !== undefined ? [opts.knownHostsFile] : [...t.knownHostsFiles];
  const known = await readKnownHosts(knownFiles, t.host, t.port);
  const auth = await loadAuth(t, opts, hop.label);
  // Ask only for key types recorded for this host, so a host known by its rsa
  // key is not reported as changed because ed25519 was negotiated.
  const knownTypes = [...new Set(known.keys.map((k) => k.type))];
  const restrictTo = SSH2_HOST_KEY_ALGORITHMS.filter((a) =>
    knownTypes.some((type) => algorithmsForKeyType(type).includes(a)),
  );
  if (knownTypes.length > 0 && restrictTo.length === 0) {
    throw new UserError(
      `known_hosts records only key types cluster-cli cannot verify for ${hop.where} (${knownTypes.join(', ')}).`,
      `add the host's ed25519, ecdsa or rsa key: ssh-keyscan -p ${t.port} ${quoteArg(t.host)}`,
    );
  }
  return { t, knownFiles, known, knownTypes, restrictTo, auth };
}

/**
 * The SSH handshake with one hop: host key checked against known_hosts (or
 * confirmed, or refused), then login. Over TCP to t.host:t.port, or over the
 * stream openSock gives (a channel of a bastion's connection).
 */
async function handshake(
  p: Prepared,
  opts: SshConnectOptions,
  hop: Hop,
  openSock?: () => Promise<Duplex>,
): Promise<{ client: Client; hostKey: ConnectedHostKey }> {
  const { t, knownFiles, known, knownTypes, restrictTo, auth } = p;
  const { where, label } = hop;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const removeHint = (file: string) =>
    `ssh-keygen -f ${quoteArg(file)} -R ${quoteArg(knownHostsName(t.host, t.port))}`;

  const client = new ssh2.Client();
  let hostKey: ConnectedHostKey | undefined;
  let hostKeyError: Error | undefined;
  let accepted: Buffer | undefined;
  let agentError: string | undefined;
  let timer: NodeJS.Timeout | undefined;

  await new Promise<void>((resolve, reject) => {
    let settled = false;
    let sock: Duplex | undefined;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      sock?.destroy();
      reject(err);
    };
    const armTimer = () => {
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          fail(
            new UserError(
              `Timed out after ${readyTimeoutMs} ms connecting to ${where}.`,
              `check that ${t.host} is reachable and sshd answers on port ${t.port}`,
            ),
          ),
        readyTimeoutMs,
      );
    };

    const decideHostKey = async (blob: Buffer): Promise<UserError | undefined> => {
      if (accepted?.equals(blob)) return undefined; // re-key on this connection
      let type: string;
      try {
        type = keyTypeOf(blob);
      } catch {
        return new UserError(`${where} presented a malformed host key. Refusing to connect.`);
      }
      const fingerprint = fingerprintSha256(blob);
      const info: HostKeyInfo = {
        host: t.host,
        port: t.port,
        type,
        fingerprint,
        ...(hop.role ? { role: hop.role } : {}),
      };
      switch (classifyHostKey(known, blob)) {
        case 'known':
          hostKey = info;
          return undefined;
        case 'revoked':
          return new UserError(
            `Host key for ${where} (${type} ${fingerprint}) is marked @revoked in known_hosts. Refusing to connect.`,
          );
        case 'changed': {
          const old = known.keys.find((k) => k.type === type) ?? (known.keys[0] as KnownHostKey);
          return new UserError(
            `Host key for ${where} has CHANGED (now ${fingerprint}, known_hosts has ${fingerprintSha256(old.blob)}). Refusing to connect.`,
            removeHint(old.file),
          );
        }
        case 'unknown': {
          let ok = opts.acceptNewHostKey;
          if (!ok && opts.confirmHostKey) {
            clearTimeout(timer); // a person is reading the fingerprint
            ok = await opts.confirmHostKey(info);
            armTimer();
            if (!ok) {
              return new UserError(
                `Host key for ${where} (${type} ${fingerprint}) was not accepted.`,
              );
            }
          }
          if (!ok) {
            return new UserError(
              `Unknown host key for ${where} (${type} ${fingerprint}).`,
              're-run with --accept-new-host-key after checking the fingerprint',
            );
          }
          const file = knownFiles[0];
          if (file === undefined) {
            return new UserError(`No known_hosts file to record the host key of ${where} in.`);
          }
          try {
            await appendKnownHost(file, formatKnownHostsLine(t.host, t.port, type, blob));
          } catch (err) {
            return new UserError(
              `Cannot record the host key of ${where} in ${file}: ${(err as Error).message}`,
            );
          }
          hostKey = { ...info, addedTo: file };
          return undefined;
        }
      }
    };

    const config: ConnectConfig = {
      host: t.host,
      port: t.port,
      username: t.user,
      readyTimeout: 0, // our own timer, paused while confirmHostKey waits for an answer
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      authHandler: auth.methods,
      // Must return undefined: ssh2 takes any other return value as the verdict.
      hostVerifier: (blob: Buffer, verify: (ok: boolean) => void): void => {
        decideHostKey(blob).then(
          (err) => {
            if (err) hostKeyError = err;
            else accepted = blob;
            verify(err === undefined);
          },
          (err: unknown) => {
            // e.g. the confirmHostKey prompt was cancelled: pass its error on as it is.
            hostKeyError =
              err instanceof Error
                ? err
                : new UserError(`Cannot check the host key of ${where}: ${String(err)}`);
            verify(false);
          },
        );
      },
    };
    if (restrictTo.length > 0) config.algorithms = { serverHostKey: restrictTo };

    client.on('ready', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.setNoDelay(true);
      resolve();
    });
    client.on('error', (err: Error & { level?: string; code?: string; description?: string }) => {
      if (settled) return;
      // ssh2 reports these and goes on with the next key or method.
      if (err.level === 'agent') {
        agentError = err.message;
        return;
      }
      if (err.level === 'client-authentication' && !/all configured/i.test(err.message)) return;
      fail(hostKeyError ?? connectError(err));
    });
    client.on('close', () =>
      fail(
        hostKeyError ?? new UserError(`${where} closed the SSH connection before login completed.`),
      ),
    );

    const connectError = (err: Error & { level?: string; code?: string }): UserError => {
      switch (err.level) {
        case 'client-socket':
          if (err.code === 'ECONNREFUSED') {
            return new UserError(
              `Cannot connect to ${where}: connection refused.`,
              `check that sshd runs on ${t.host} and listens on port ${t.port}`,
            );
          }
          return new UserError(
            `Cannot connect to ${where}: ${err.code ?? err.message}.`,
            `check the address, the port and any firewall between here and ${t.host}`,
          );
        case 'client-dns':
          return new UserError(
            `Cannot resolve host name ${t.host}${hop.role === 'bastion' ? ' of the bastion' : ''}.`,
            'check the address in cluster.yaml or the HostName in ~/.ssh/config',
          );
        case 'client-authentication': {
          const skipped = auth.encrypted.length
            ? ` Encrypted keys were skipped: ${auth.encrypted.join(', ')}.`
            : '';
          const agentNote = agentError ? ` ssh-agent failed: ${agentError}.` : '';
          const first = auth.encrypted[0];
          return new UserError(
            `Authentication failed for ${label}: the server accepted none of ${auth.tried.join(', ')}.${skipped}${agentNote}`,
            first !== undefined
              ? `load the encrypted key into ssh-agent: ssh-add ${quoteArg(first)}`
              : `install one of these public keys in ~${t.user}/.ssh/authorized_keys on ${t.host} (ssh-copy-id -p ${t.port} ${quoteArg(`${t.user}@${t.host}`)})`,
          );
        }
        default:
          if (restrictTo.length > 0 && /host key/i.test(err.message)) {
            const file = (known.keys[0] as KnownHostKey).file;
            return new UserError(
              `Host key for ${where} does not match known_hosts: the server offers none of the key types recorded for it (${knownTypes.join(', ')}). Refusing to connect.`,
              removeHint(file),
            );
          }
          return new UserError(`SSH connection to ${where} failed: ${err.message}.`);
      }
    };

    armTimer();
    if (openSock === undefined) {
      client.connect(config);
    } else {
      openSock().then((s) => {
        sock = s;
        if (settled) s.destroy();
        else client.connect({ ...config, sock: s });
      }, fail);
    }
  });

  if (hostKey === undefined) throw new Error('ssh2 logged in without verifying the host key');
  return { client, hostKey };
}
