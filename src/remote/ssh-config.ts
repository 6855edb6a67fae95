import { readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { homedir, userInfo } from 'node:os';
import { resolve } from 'node:path';
import SSHConfig from 'ssh-config';
import { UserError } from '../core/errors.js';

/** What the user typed: `host`, `user@host`, `user@host:port`, `user@[v6addr]:port`, or an alias. */
export interface TargetParts {
  readonly user?: string;
  readonly host: string;
  readonly port?: number;
}

/** Everything needed to open an SSH connection to one host. */
export interface SshTarget {
  /** The real address (HostName from ~/.ssh/config when host was an alias); IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Candidate private keys, in order; files that do not exist are skipped when connecting. */
  readonly identityFiles: readonly string[];
  /** known_hosts files to read; new keys are written to the first. */
  readonly knownHostsFiles: readonly string[];
  /** The bastion this host is reached through (ProxyJump or --jump); absent → directly. */
  readonly jump?: SshTarget;
}

export interface ResolveOptions {
  /** Default: ~/.ssh/config (a missing file is an empty config). */
  readonly configFile?: string;
  /** Default: os.homedir(). */
  readonly homeDir?: string;
  /** Default: the local user name (for %u). */
  readonly localUser?: string;
  /**
   * --jump: one bastion as `[user@]host[:port]` or an alias, or `none` for a
   * direct connection. Beats the config's ProxyJump (and ProxyCommand).
   */
  readonly jump?: string;
}

const DEFAULT_USER = 'root';
const DEFAULT_PORT = 22;
const DEFAULT_IDENTITY_FILES = ['~/.ssh/id_ed25519', '~/.ssh/id_ecdsa', '~/.ssh/id_rsa'];
const DEFAULT_USER_KNOWN_HOSTS = ['~/.ssh/known_hosts', '~/.ssh/known_hosts2'];
const DEFAULT_GLOBAL_KNOWN_HOSTS = ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];

const HOST_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.$-]*$/;

/**
 * Split a target string into its parts; throws UserError (one line) when it is
 * malformed. `what` and `context` name the string in that error
 * (`Invalid ProxyJump "…" for lab2 in ~/.ssh/config: …`).
 */
export function parseTarget(str: string, what = 'SSH target', context = ''): TargetParts {
  const bad = (why: string) =>
    new UserError(
      `Invalid ${what} ${JSON.stringify(str)}${context}: ${why}.`,
      'write it as host, user@host, user@host:port or user@[ipv6]:port',
    );
  if (str.trim() === '') throw bad('it is empty');
  if (/[\s\p{Cc}]/u.test(str)) throw bad('it contains whitespace or control characters');

  let rest = str;
  let user: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    if (rest.indexOf('@', at + 1) !== -1) throw bad('it contains more than one @');
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === '') throw bad('the user before @ is empty');
    if (!USER_NAME.test(user)) throw bad(`${JSON.stringify(user)} is not a user name`);
  }

  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close === -1) throw bad('the [ has no matching ]');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw bad('only :port may follow ]');
      portText = after.slice(1);
    }
    if (host === '') throw bad('the host is empty');
    if (!isIPv6(host.replace(/%[A-Za-z0-9_.-]+$/, '')) && !HOST_NAME.test(host)) {
      throw bad(`${JSON.stringify(host)} is not an IPv6 address or host name`);
    }
  } else if ((rest.match(/:/g) ?? []).length >= 2) {
    // A bare IPv6 address: the colons belong to it, so there is no port.
    host = rest;
    if (!isIPv6(host.replace(/%[A-Za-z0-9_.-]+$/, ''))) {
      throw bad(
        `${JSON.stringify(host)} is not an IPv6 address (put IPv6 addresses with a port in [ ])`,
      );
    }
  } else {
    const colon = rest.indexOf(':');
    host = colon === -1 ? rest : rest.slice(0, colon);
    if (colon !== -1) portText = rest.slice(colon + 1);
    if (host === '') throw bad('the host is empty');
    if (!HOST_NAME.test(host)) throw bad(`${JSON.stringify(host)} is not a host name or address`);
  }

  const parts: { user?: string; host: string; port?: number } = { host };
  if (user !== undefined) parts.user = user;
  if (portText !== undefined) parts.port = parsePort(portText, (why) => bad(why));
  return parts;
}

/**
 * Resolve a target against ~/.ssh/config (or opts.configFile): explicit parts of
 * the target win, then the config file, then the defaults (user root, port 22).
 */
export async function resolveTarget(
  target: string | TargetParts,
  opts: ResolveOptions = {},
): Promise<SshTarget> {
  const home = opts.homeDir ?? homedir();
  const file = opts.configFile ?? `${home}/.ssh/config`;
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || opts.configFile !== undefined) {
      throw new UserError(`Cannot read SSH config ${file}: ${(err as Error).message}`);
    }
  }
  return resolveTargetWithConfig(target, text, { ...opts, configFile: file });
}

/** Pure part of resolveTarget: the config file's text is given. */
export function resolveTargetWithConfig(
  target: string | TargetParts,
  configText: string,
  opts: ResolveOptions = {},
): SshTarget {
  const parts = typeof target === 'string' ? parseTarget(target) : target;
  if (parts.host === '') throw new UserError('SSH target has an empty host.');
  const ctx: Resolving = {
    config: SSHConfig.parse(configText),
    home: opts.homeDir ?? homedir(),
    localUser: opts.localUser ?? localUserName(),
    where: opts.configFile ?? 'the SSH config',
  };
  const look = lookUp(ctx, parts);

  // How the host is reached: --jump as given (like ssh -J, it beats the config's
  // ProxyJump and ProxyCommand), else the config's ProxyJump; ProxyCommand never.
  let hop: TargetParts | undefined;
  if (opts.jump !== undefined) {
    hop = parseJump(opts.jump, '--jump');
  } else {
    refuseProxyCommand(look, parts.host, ctx.where);
    const proxyJump = look.one('proxyjump');
    if (proxyJump !== undefined) {
      hop = parseJump(proxyJump, 'ProxyJump', ` for ${parts.host} in ${ctx.where}`);
    }
  }

  const resolved = resolveHost(ctx, parts, look, DEFAULT_USER);
  if (hop === undefined) return resolved;
  // The bastion's user: its own (explicit, then its config's User), else the target's.
  return { ...resolved, jump: resolveBastion(ctx, hop, resolved.user) };
}

/**
 * One ProxyJump hop or --jump value: `[user@]host[:port]`, `ssh://[user@]host[:port]`
 * or an alias; `none` → undefined (connect directly). Several hops (`a,b`) are
 * refused with one line: cluster-cli goes through one bastion.
 */
export function parseJump(spec: string, what = '--jump', context = ''): TargetParts | undefined {
  const value = spec.trim();
  if (value.toLowerCase() === 'none') return undefined;
  if (value.includes(',')) {
    throw new UserError(
      `${what} ${JSON.stringify(value)}${context} names ${value.split(',').length} jump hosts; cluster-cli goes through one bastion only.`,
      'reach the nodes through a single bastion: ProxyJump user@bastion in ~/.ssh/config, or --jump user@bastion[:port]',
    );
  }
  return parseTarget(value.replace(/^ssh:\/\//i, ''), what, context);
}

type ParsedSshConfig = ReturnType<typeof SSHConfig.parse>;

interface Resolving {
  readonly config: ParsedSshConfig;
  readonly home: string;
  readonly localUser: string;
  /** The config file, for messages. */
  readonly where: string;
}

interface Lookup {
  one(key: string): string | undefined;
  many(key: string): string[] | undefined;
}

function lookUp(ctx: Resolving, parts: TargetParts): Lookup {
  // Match exec is not evaluated: resolving a target never runs a shell command.
  const computed = ctx.config.compute(
    parts.user === undefined ? { Host: parts.host } : { Host: parts.host, User: parts.user },
    { ignoreCase: true, matchExec: false },
  );
  return {
    one(key) {
      const v = computed[key];
      return Array.isArray(v) ? v[0] : v;
    },
    many(key) {
      const v = computed[key];
      return v === undefined ? undefined : Array.isArray(v) ? v : [v];
    },
  };
}

function refuseProxyCommand(look: Lookup, name: string, where: string): void {
  const v = look.one('proxycommand');
  if (v !== undefined && v.toLowerCase() !== 'none') {
    throw new UserError(
      `${name} uses ProxyCommand in ${where}, which cluster-cli does not support.`,
      'reach the host through a bastion with ProxyJump user@bastion (one hop) or --jump user@bastion instead',
    );
  }
}

/** The bastion of a target: one hop, so its own ProxyJump must be none (or itself). */
function resolveBastion(ctx: Resolving, hop: TargetParts, defaultUser: string): SshTarget {
  const look = lookUp(ctx, hop);
  refuseProxyCommand(look, `Bastion ${hop.host}`, ctx.where);
  const proxyJump = look.one('proxyjump');
  if (proxyJump !== undefined && proxyJump.toLowerCase() !== 'none') {
    // `Host *` + `ProxyJump bastion` also matches the bastion: that means direct.
    let self = false;
    try {
      self = parseJump(proxyJump)?.host.toLowerCase() === hop.host.toLowerCase();
    } catch {
      // not a single hop: refused below
    }
    if (!self) {
      throw new UserError(
        `Bastion ${hop.host} uses ProxyJump ${proxyJump} in ${ctx.where}: a second hop, and cluster-cli goes through one bastion only.`,
        `reach ${hop.host} directly (ProxyJump none in its Host block), or use the last bastion of the chain`,
      );
    }
  }
  return resolveHost(ctx, hop, look, defaultUser);
}

function resolveHost(
  ctx: Resolving,
  parts: TargetParts,
  look: Lookup,
  defaultUser: string,
): SshTarget {
  const { home, localUser, where } = ctx;
  const user = parts.user ?? look.one('user') ?? defaultUser;
  let port = parts.port;
  if (port === undefined) {
    const fromConfig = look.one('port');
    port =
      fromConfig === undefined
        ? DEFAULT_PORT
        : parsePort(
            fromConfig,
            (why) => new UserError(`Port for ${parts.host} in ${where}: ${why}.`),
          );
  }
  const hostNameRaw = look.one('hostname');
  const tokens = { home, localUser, host: parts.host, user, port, alias: parts.host };
  const host =
    hostNameRaw === undefined ? parts.host : expandTokens(hostNameRaw, tokens, 'HostName', where);

  const full = { ...tokens, host };
  const paths = (values: string[], directive: string) =>
    values
      .filter((v) => v.toLowerCase() !== 'none')
      .map((v) => resolve(expandTokens(v, full, directive, where)));

  const identityFiles = paths(look.many('identityfile') ?? DEFAULT_IDENTITY_FILES, 'IdentityFile');
  const knownHostsFiles = [
    ...paths(look.many('userknownhostsfile') ?? DEFAULT_USER_KNOWN_HOSTS, 'UserKnownHostsFile'),
    ...paths(
      look.many('globalknownhostsfile') ?? DEFAULT_GLOBAL_KNOWN_HOSTS,
      'GlobalKnownHostsFile',
    ),
  ];
  return { host, port, user, identityFiles, knownHostsFiles };
}

interface Tokens {
  home: string;
  localUser: string;
  host: string;
  user: string;
  port: number;
  alias: string;
}

/** `~` and the %-tokens of ssh_config(5) that make sense here. */
export function expandTokens(value: string, t: Tokens, directive: string, where: string): string {
  let v = value;
  if (v === '~' || v.startsWith('~/')) v = t.home + v.slice(1);
  return v.replace(/%(.?)/g, (_m, c: string) => {
    switch (c) {
      case '%':
        return '%';
      case 'd':
        return t.home;
      case 'u':
        return t.localUser;
      case 'h':
        return t.host;
      case 'r':
        return t.user;
      case 'p':
        return String(t.port);
      case 'n':
        return t.alias;
      default:
        throw new UserError(
          `${directive} ${JSON.stringify(value)} in ${where} uses %${c}, which cluster-cli does not expand.`,
          'use a plain path, ~ or %d %u %h %r %p %n',
        );
    }
  });
}

function parsePort(text: string, bad: (why: string) => Error): number {
  if (!/^\d{1,5}$/.test(text)) throw bad(`${JSON.stringify(text)} is not a port number`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw bad(`port ${port} is outside 1-65535`);
  return port;
}

function localUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? '';
  }
}

/** `user@host`, with `:port` only when not 22 (IPv6 hosts then in [ ]). */
export function targetLabel(t: Pick<SshTarget, 'user' | 'host' | 'port'>): string {
  if (t.port === DEFAULT_PORT) return `${t.user}@${t.host}`;
  return `${t.user}@${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}
