import type { Executor } from '../core/executor.js';
import { type HostSession, hostSession } from '../core/session.js';
import { createExecutor } from '../remote/connect.js';
import type { HostKeyInfo } from '../remote/ssh.js';
import type { ConnectTarget, Ctx } from './context.js';

/**
 * Opens the one executor for a host: local when it has no address, else SSH
 * with host keys checked. On a TTY an unknown key is shown and asked about;
 * without one it is refused unless --accept-new-host-key.
 */
export async function connectHost(ctx: Ctx, target: ConnectTarget): Promise<Executor> {
  const t: ConnectTarget = ctx.interactive
    ? {
        ...target,
        confirmHostKey: (k: HostKeyInfo) =>
          ctx.prompts.confirm({
            message: `The authenticity of ${k.role === 'bastion' ? 'bastion ' : ''}${k.host}:${k.port} can't be established.\n  ${k.type} key fingerprint is ${k.fingerprint}.\n  Trust it and add it to known_hosts?`,
            default: false,
          }),
      }
    : target;
  if (ctx.connect) return ctx.connect(t);
  const { address, user, port, ...ssh } = t;
  return createExecutor(
    { ...(address ? { address } : {}), ...(user ? { user } : {}), ...(port ? { port } : {}) },
    ssh,
  );
}

/** The executor plus, on first use, the host's Docker API over the same connection. */
export async function connectSession(ctx: Ctx, target: ConnectTarget): Promise<HostSession> {
  const exec = await connectHost(ctx, target);
  const { connectDockerApi } = await import('../remote/docker-api.js');
  return hostSession(exec, connectDockerApi);
}

/** SSH settings from flags, then cluster.yaml's `ssh:`; what every command passes on. */
export interface SshFlags {
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  /** --jump user@bastion[:port] */
  jump?: string;
}

export function connectTarget(
  host: { address?: string; user?: string; port?: number },
  flags: SshFlags,
  ssh: { identityFile?: string; knownHostsFile?: string } = {},
): ConnectTarget {
  const identityFile = flags.identity ?? ssh.identityFile;
  const knownHostsFile = flags.knownHosts ?? ssh.knownHostsFile;
  return {
    ...(host.address ? { address: host.address } : {}),
    ...(host.user ? { user: host.user } : {}),
    ...(host.port ? { port: host.port } : {}),
    ...(identityFile ? { identityFile } : {}),
    ...(knownHostsFile ? { knownHostsFile } : {}),
    ...(flags.jump ? { jump: flags.jump } : {}),
    acceptNewHostKey: Boolean(flags.acceptNewHostKey),
  };
}
