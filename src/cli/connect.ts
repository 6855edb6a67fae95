import { createExecutor } from '../remote/connect.js';
import type { Executor } from '../remote/executor.js';
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
        confirmHostKey: (k) =>
          ctx.prompts.confirm({
            message: `The authenticity of ${k.host}:${k.port} can't be established.\n  ${k.type} key fingerprint is ${k.fingerprint}.\n  Trust it and add it to known_hosts?`,
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
