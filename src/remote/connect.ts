import type { Executor } from '../core/executor.js';
import { LocalExecutor } from './local.js';
import type { SshConnectOptions } from './ssh.js';
import { resolveTarget } from './ssh-config.js';

/** Where a host is reached: no address means the machine cluster-cli runs on. */
export interface HostAddress {
  /** IP address, host name or ~/.ssh/config alias. */
  readonly address?: string;
  /** Explicit user; beats the ssh config's User. Default root. */
  readonly user?: string;
  /** Explicit port; beats the ssh config's Port. Default 22. */
  readonly port?: number;
}

export interface CreateExecutorOptions extends Omit<SshConnectOptions, 'target'> {
  /** ssh config to resolve aliases with; default ~/.ssh/config. */
  readonly sshConfigFile?: string;
  /** --jump: bastion as `[user@]host[:port]` or an alias, or `none`; beats the config's ProxyJump. */
  readonly jump?: string;
}

/** The one executor for a host: LocalExecutor without an address, else an SSH connection. */
export async function createExecutor(
  hostSpec: HostAddress,
  opts: CreateExecutorOptions,
): Promise<Executor> {
  if (hostSpec.address === undefined || hostSpec.address === '') return new LocalExecutor();
  const { sshConfigFile, jump, ...sshOpts } = opts;
  const parts: { host: string; user?: string; port?: number } = { host: hostSpec.address };
  if (hostSpec.user !== undefined) parts.user = hostSpec.user;
  if (hostSpec.port !== undefined) parts.port = hostSpec.port;
  const target = await resolveTarget(parts, {
    ...(sshConfigFile === undefined ? {} : { configFile: sshConfigFile }),
    ...(jump === undefined ? {} : { jump }),
  });
  // ssh2 is loaded only when a remote host is actually used.
  const { connectSsh } = await import('./ssh.js');
  return connectSsh({ ...sshOpts, target });
}
