import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { liveSecretsOfStack, planStack } from '../cluster/plan-init.js';
import {
  type ClusterFacts,
  ProbeError,
  probeCluster,
  probeSwarm,
  type SwarmFacts,
} from '../cluster/probe.js';
import { generateSecrets } from '../cluster/secrets.js';
import { oldestVersion } from '../cluster/versions.js';
import { DEFAULT_CONFIG_FILE, readConfigInput, validateConfig } from '../config/load.js';
import type { Config, ConfigInput, Host } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { Executor } from '../core/executor.js';
import type { Step } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { Secret } from '../core/secret.js';
import type { HostSession } from '../core/session.js';
import { buildStackModel } from '../stack/model.js';
import { renderStack } from '../stack/render.js';
import { connectSession, connectTarget, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';

/** An existing cluster: its file and a session on one reachable manager. */
export interface ClusterHandle {
  /** Absolute path of cluster.yaml, and the name the user gave it. */
  readonly file: string;
  readonly configArg: string;
  /** cluster.yaml's text as read: edits keep its comments (config/edit.ts). */
  readonly text: string;
  readonly input: ConfigInput;
  readonly config: Config;
  readonly manager: {
    readonly host: Host;
    readonly session: HostSession;
    readonly swarm: SwarmFacts;
    readonly cluster: ClusterFacts;
  };
}

/** ` -c <file>` for the next commands we print, empty for the default cluster.yaml. */
export function cfgFlag(opts: { config: string }): string {
  return opts.config === DEFAULT_CONFIG_FILE ? '' : ` -c ${quoteArg(opts.config)}`;
}

export function configPath(ctx: Pick<Ctx, 'cwd'>, arg: string): string {
  return isAbsolute(arg) ? arg : resolve(ctx.cwd, arg);
}

/** cluster.yaml as written by init, validated; a missing file says to run init. */
export async function readCluster(
  ctx: Pick<Ctx, 'cwd'>,
  configArg: string,
): Promise<{ file: string; input: ConfigInput; config: Config }> {
  const file = configPath(ctx, configArg);
  const raw = await readConfigInput(file, configArg);
  if (raw === undefined) {
    throw new UserError(
      `No cluster description at ${configArg}.`,
      'create the cluster first with cluster-cli init (it writes cluster.yaml), or pass -c <file>',
    );
  }
  const { config } = validateConfig(raw, configArg);
  return { file, input: raw as ConfigInput, config };
}

export function hostTarget(h: Host, flags: SshFlags, config: Config) {
  return connectTarget(
    {
      ...(h.address ? { address: h.address } : {}),
      ...(h.user ? { user: h.user } : {}),
      ...(h.port ? { port: h.port } : {}),
    },
    flags,
    config.ssh,
  );
}

/** How long a manager may take to name its swarm after losing its leader. */
const LEADER_WAIT_MS = 20_000;

/**
 * The swarm facts of a manager. Right after a manager stops, the others hold
 * an election and `docker info` omits the cluster for a few seconds: ask again
 * (bounded) instead of reading that as no cluster.
 */
async function probeManagerSwarm(exec: Executor) {
  const deadline = Date.now() + LEADER_WAIT_MS;
  for (;;) {
    const swarm = await probeSwarm(exec);
    if (swarm.state !== 'active' || !swarm.isManager || swarm.clusterId) return swarm;
    if (Date.now() >= deadline) return swarm;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Connect to the first manager of cluster.yaml that answers and check it is a
 * manager of the swarm the file describes. Read-only.
 */
export async function openCluster(
  ctx: Ctx,
  opts: SshFlags & { config: string },
): Promise<ClusterHandle> {
  const { file, input, config } = await readCluster(ctx, opts.config);
  const managers = config.hosts.filter((h) => h.role === 'manager');
  const errors: string[] = [];
  for (const host of managers) {
    let session: HostSession;
    try {
      session = await connectSession(ctx, hostTarget(host, opts, config));
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      errors.push(`${host.name}: ${err.message}`);
      continue;
    }
    try {
      const swarm = await probeManagerSwarm(session.exec);
      if (swarm.state === 'active' && swarm.isManager && !swarm.clusterId) {
        // A manager that cannot name its swarm has no leader to ask (an
        // election in progress, or quorum lost): not "another cluster".
        errors.push(
          `${host.name}: a manager, but its swarm has no leader it can reach${swarm.error ? ` (${swarm.error})` : ''}`,
        );
        await session.close();
        continue;
      }
      if (swarm.state !== 'active' || !swarm.isManager) {
        errors.push(`${host.name}: not an active swarm manager (${swarm.state})`);
        await session.close();
        continue;
      }
      if (config.swarmId && swarm.clusterId !== config.swarmId) {
        await session.close();
        throw new UserError(
          `${host.name} is a manager of swarm ${swarm.clusterId}, but ${opts.config} describes swarm ${config.swarmId}.`,
          'check -c/--config: it names another cluster',
        );
      }
      const cluster = await probeCluster(session.exec, config.name);
      return {
        file,
        configArg: opts.config,
        text: await readFile(file, 'utf8'),
        input,
        config,
        manager: { host, session, swarm, cluster },
      };
    } catch (err) {
      await session.close();
      // Its daemon is down (or it answers oddly): try the next manager.
      if (err instanceof ProbeError) {
        errors.push(`${host.name}: ${err.message}`);
        continue;
      }
      throw err;
    }
  }
  throw new UserError(
    `No manager of ${opts.config} could be reached:\n${errors.map((e) => `  ${e}`).join('\n')}`,
    'check that a manager is up and reachable over SSH, then run the command again',
  );
}

/** The stack cluster.yaml renders for this cluster: its live secrets, its oldest engine. */
export function renderedFor(h: ClusterHandle, config: Config) {
  const model = buildStackModel(config, liveSecretsOfStack(config.name, h.manager.cluster));
  const engine = oldestVersion([
    ...h.manager.cluster.nodes.map((n) => n.engine),
    h.manager.cluster.nodes.find((n) => n.self)?.engine,
  ]);
  return { model, rendered: renderStack(model, engine ? { engine } : {}) };
}

/**
 * The stack's steps on the manager for a cluster.yaml after a change (labels,
 * roles, hosts): a redeploy only when the rendered revision differs. With
 * --force a placement move of PostgreSQL/Redis goes on, with a warning.
 */
export function stackStepsFor(
  h: ClusterHandle,
  config: Config,
  force: boolean,
  /** Values for secrets the plan creates, instead of generated ones (the first admin's password). */
  secretValues: Readonly<Record<string, Secret>> = {},
): { steps: Step[]; deploys: boolean; warnings: string[] } {
  const { model, rendered } = renderedFor(h, config);
  const steps = planStack({
    config,
    host: h.manager.session.exec.label,
    cluster: h.manager.cluster,
    rendered,
    force,
    newSecrets: { ...generateSecrets(config), ...secretValues },
  });
  const warnings: string[] = [];
  for (const svc of ['postgres', 'redis'] as const) {
    const have = h.manager.cluster.services.find((s) => s.name === `${config.name}_${svc}`);
    const want = model[svc].constraints;
    if (have && [...have.constraints].sort().join() !== [...want].sort().join()) {
      warnings.push(
        `${config.name}_${svc} moves from [${have.constraints.join(', ')}] to [${want.join(', ')}]: its volume is per node, so it starts EMPTY there (move the data with a backup and restore)`,
      );
    }
  }
  return {
    steps,
    deploys: steps.some((s) => s.id === 'deploy' && s.action === 'change'),
    warnings,
  };
}
