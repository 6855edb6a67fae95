import { cmd } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import { change, type Plan, unchanged } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import { hostSession } from '../core/session.js';
import { LocalExecutor } from '../remote/local.js';
import { readCluster } from './cluster.js';
import type { Ctx } from './context.js';
import { type PipelineFlags, runPipeline } from './pipeline.js';

export interface ContextOpts extends PipelineFlags {
  config: string;
  name?: string;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$/;

/**
 * `context create`: a Docker context on this machine for the cluster's first
 * manager over SSH (`docker --context <name> service ls` from the laptop).
 * The docker CLI dials with the system's ssh, so ~/.ssh/config (keys,
 * ProxyJump, known_hosts) applies, not cluster-cli's flags. Runs as the
 * user (a context lives in ~/.docker), never through sudo.
 */
export async function runContextCreate(opts: ContextOpts, ctx: Ctx): Promise<void> {
  const { config } = await readCluster(ctx, opts.config);
  const name = opts.name ?? config.name;
  if (!NAME.test(name)) {
    throw new UserError(
      `--name ${JSON.stringify(name)}: a Docker context name is two or more letters, digits and _ . + - (not first).`,
      `cluster-cli context create --name ${config.name.replace(/[^a-zA-Z0-9_.+-]/g, '-')}`,
    );
  }
  const manager = config.hosts.find((h) => h.role === 'manager');
  if (!manager?.address) {
    throw new UserError(
      `${opts.config}'s first manager is this machine: its Docker needs no context.`,
      'docker service ls',
    );
  }
  const user = manager.user ?? 'root';
  const url = `ssh://${user}@${manager.address.includes(':') ? `[${manager.address}]` : manager.address}${manager.port ? `:${manager.port}` : ''}`;
  const local = new LocalExecutor(false);
  const probe = await local
    .run(
      cmd(['docker', 'context', 'inspect', name, '--format', '{{json .Endpoints.docker.Host}}'], {
        readOnly: true,
      }),
      { allowFailure: true },
    )
    .catch((err: unknown) => {
      throw new UserError(
        `Could not run the docker CLI here: ${err instanceof Error ? err.message : String(err)}`,
        'install the Docker CLI (the client is enough), then run the same command again',
      );
    });
  if (probe.exitCode === 127) {
    throw new UserError(
      'There is no docker CLI on this machine.',
      'install the Docker CLI (the client is enough), then run the same command again',
    );
  }
  const exists = probe.exitCode === 0;
  if (!exists && !/not found|does not exist/i.test(probe.stderr)) {
    throw new UserError(
      `docker context inspect ${name} failed: ${probe.stderr.trim().split('\n')[0]}`,
      'check the Docker CLI (docker context ls), then run the same command again',
    );
  }
  const current = exists ? (JSON.parse(probe.stdout.trim() || '""') as string) : undefined;
  const title = `Docker context ${name} → ${url}`;
  const step =
    current === url
      ? unchanged('context', local.label, title, 'already there')
      : change('context', local.label, exists ? `${title} (was ${current})` : title, [
          cmd([
            'docker',
            'context',
            exists ? 'update' : 'create',
            name,
            '--description',
            `cluster-cli: ${config.name}`,
            '--docker',
            `host=${url}`,
          ]),
        ]);
  const plan: Plan = { title: `context create for ${config.name}`, steps: [step] };
  await runPipeline(ctx, opts, {
    name: 'context create',
    plan,
    sessions: new Map([
      [
        local.label,
        hostSession(local, () => {
          throw new Error('context create uses no Docker API');
        }),
      ],
    ]),
    summary() {
      return {
        text: `\nDocker context ${name} reaches ${url} with your ssh (keys, ~/.ssh/config).\n\nNext:\n  docker --context ${quoteArg(name)} service ls\n  docker context use ${quoteArg(name)}   # make it the default\n`,
        json: { name, host: url, changed: step.action === 'change' },
      };
    },
  });
}
