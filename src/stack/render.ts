import { createHash } from 'node:crypto';
import { Document } from 'yaml';
import type { Resources } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { StackModel } from './model.js';
import { proxyProvider } from './providers/index.js';
import type { ComposeHealthcheck } from './providers/types.js';

/** A Docker config the stack references as `external: true`; init creates it before the deploy. */
export interface RenderedConfig {
  /** Key in the stack file's `configs:` section. */
  readonly key: string;
  /** Docker config name, content-addressed because configs are immutable. */
  readonly name: string;
  /** Path inside the container. */
  readonly target: string;
  readonly content: string;
}

export interface RenderedStack {
  /** The stack file for `docker stack deploy -c`. */
  readonly yaml: string;
  readonly configs: RenderedConfig[];
}

export const STACK_HEADER =
  ' Rendered by cluster-cli — do not edit; change cluster.yaml and run `cluster-cli init` again';

/** Where each service finds its Docker secrets (the stack-local keys are the file names). */
export const SECRET_FILES = {
  postgresPassword: '/run/secrets/postgres_password',
  redisPassword: '/run/secrets/redis_password',
} as const;

type Role = 'proxy' | 'app' | 'postgres' | 'redis';
type Obj = Record<string, unknown>;

/**
 * The platform stack as a compose file (format 3.8) for `docker stack deploy`,
 * plus the Docker configs it references. Pure: same model and revision, same
 * bytes. Secrets, networks and configs are all external (created by init), so
 * no secret value can appear here; `$` in any value is escaped so compose
 * interpolation never rewrites it.
 */
export function renderStack(model: StackModel, opts: { revision: string }): RenderedStack {
  if (model.endpointMode === 'dnsrr' && model.proxy.publishMode === 'ingress') {
    throw new UserError(
      'networks.endpointMode dnsrr cannot publish ports through the routing mesh',
      'set proxy.publishMode: host in cluster.yaml (or networks.endpointMode: vip)',
    );
  }
  const provider = proxyProvider(model.proxy.provider);
  const configs: RenderedConfig[] = provider.configs(model).map((f) => ({
    key: f.key,
    name: `${model.name}_${f.key}_${sha256(f.content).slice(0, 12)}`,
    target: f.target,
    content: f.content,
  }));

  const deploy = (role: Role, extra: Obj = {}): Obj => {
    const spec = role === 'proxy' ? model.proxy : model[role];
    return {
      ...extra,
      endpoint_mode: model.endpointMode,
      ...(spec.constraints.length > 0 ? { placement: { constraints: [...spec.constraints] } } : {}),
      resources: resources(spec.resources),
      ...rollout(role === 'app' ? 'start-first' : 'stop-first'),
      labels: {
        ...(role === 'app' ? provider.appLabels(model) : {}),
        'io.cluster-cli.revision': opts.revision,
        'io.cluster-cli.role': role,
      },
    };
  };

  const proxyParts = provider.service(model);
  const proxy: Obj = {
    image: model.proxy.image,
    ...(proxyParts.command ? { command: [...proxyParts.command] } : {}),
    healthcheck: { ...proxyParts.healthcheck },
    ports: proxyParts.ports.map((p) => ({ ...p })),
    volumes: proxyParts.mounts.map((m) => ({ ...m })),
    configs: configs.map((c) => ({ source: c.key, target: c.target })),
    networks: ['ingress'],
    deploy: deploy('proxy', { mode: 'global' }),
  };

  const app: Obj = {
    image: model.app.image,
    environment: {
      DATABASE_HOST: 'postgres',
      DATABASE_PORT: '5432',
      DATABASE_NAME: model.postgres.database,
      DATABASE_USER: model.postgres.user,
      DATABASE_PASSWORD_FILE: SECRET_FILES.postgresPassword,
      REDIS_HOST: 'redis',
      REDIS_PORT: '6379',
      REDIS_PASSWORD_FILE: SECRET_FILES.redisPassword,
      ...sortedRecord(model.app.env),
    },
    ...(model.app.healthcheck
      ? {
          healthcheck: health(['CMD', ...model.app.healthcheck], {
            retries: 3,
            start_period: '30s',
          }),
        }
      : {}),
    secrets: [secretRef('postgres_password'), secretRef('redis_password')],
    networks: ['ingress', 'app', 'data'],
    deploy: deploy('app', { mode: 'replicated', replicas: model.app.replicas }),
  };

  const postgres: Obj = {
    image: model.postgres.image,
    environment: {
      POSTGRES_USER: model.postgres.user,
      POSTGRES_DB: model.postgres.database,
      POSTGRES_PASSWORD_FILE: SECRET_FILES.postgresPassword,
    },
    healthcheck: health(
      [
        'CMD',
        'pg_isready',
        '-h',
        '127.0.0.1',
        '-U',
        model.postgres.user,
        '-d',
        model.postgres.database,
      ],
      { retries: 5, start_period: '60s' },
    ),
    volumes: [{ type: 'volume', source: 'postgres_data', target: '/var/lib/postgresql/data' }],
    secrets: [secretRef('postgres_password')],
    networks: ['data'],
    // A clean shutdown (checkpoint) instead of crash recovery on the next start.
    stop_grace_period: '60s',
    deploy: deploy('postgres', { mode: 'replicated', replicas: 1 }),
  };

  const redis: Obj = {
    image: model.redis.image,
    command: ['sh', '-c', REDIS_START],
    healthcheck: health(['CMD-SHELL', REDIS_PING], { retries: 5, start_period: '10s' }),
    volumes: [{ type: 'volume', source: 'redis_data', target: '/data' }],
    secrets: [secretRef('redis_password')],
    networks: ['data'],
    stop_grace_period: '30s',
    deploy: deploy('redis', { mode: 'replicated', replicas: 1 }),
  };

  const volumes: Obj = {};
  for (const v of [...provider.volumes(model), 'postgres_data', 'redis_data']) volumes[v] = {};

  const stack: Obj = {
    version: '3.8',
    services: { proxy, app, postgres, redis },
    networks: {
      ingress: { external: true, name: model.networks.ingress },
      app: { external: true, name: model.networks.app },
      data: { external: true, name: model.networks.data },
    },
    volumes,
    secrets: {
      postgres_password: { external: true, name: model.secrets.postgresPassword },
      redis_password: { external: true, name: model.secrets.redisPassword },
    },
    configs: Object.fromEntries(configs.map((c) => [c.key, { external: true, name: c.name }])),
  };

  const doc = new Document(escapeInterpolation(stack));
  doc.commentBefore = STACK_HEADER;
  return { yaml: doc.toString({ lineWidth: 0 }), configs };
}

/**
 * Redis start: the password goes from the secret file into a config file
 * (umask 077) through shell builtins only, so it never shows in any argv.
 * Init generates passwords without `"` or `\`, which redis.conf would unquote.
 */
const REDIS_START = [
  'umask 077',
  `IFS= read -r pw < ${SECRET_FILES.redisPassword} || [ -n "$pw" ] || { echo "redis: empty password secret" >&2; exit 1; }`,
  `printf 'requirepass "%s"\\n' "$pw" > /tmp/redis.conf`,
  'unset pw',
  'exec redis-server /tmp/redis.conf --appendonly yes --dir /data --bind 0.0.0.0 --protected-mode no',
].join('\n');

/** Redis health: the password reaches redis-cli through REDISCLI_AUTH, never `-a`. */
const REDIS_PING = `IFS= read -r REDISCLI_AUTH < ${SECRET_FILES.redisPassword} || [ -n "$REDISCLI_AUTH" ]; export REDISCLI_AUTH; [ "$(redis-cli -h 127.0.0.1 ping)" = PONG ]`;

function health(
  test: string[],
  opts: { retries: number; start_period: string },
): ComposeHealthcheck {
  return {
    test,
    interval: '10s',
    timeout: '5s',
    retries: opts.retries,
    start_period: opts.start_period,
  };
}

function resources(r: Resources): Obj {
  return {
    limits: { cpus: String(r.limits.cpus), memory: r.limits.memory },
    reservations: { memory: r.reservations.memory },
  };
}

/**
 * One task at a time, rolled back when it fails within 30 s. Only the app starts
 * the new task first: the proxy's host ports and the databases' volumes can't be
 * held by two tasks at once.
 */
function rollout(order: 'start-first' | 'stop-first'): Obj {
  return {
    update_config: {
      parallelism: 1,
      delay: '10s',
      failure_action: 'rollback',
      monitor: '30s',
      order,
    },
    rollback_config: {
      parallelism: 1,
      delay: '0s',
      failure_action: 'pause',
      monitor: '30s',
      order,
    },
    restart_policy: { condition: 'any', delay: '5s' },
  };
}

function secretRef(key: 'postgres_password' | 'redis_password'): Obj {
  return { source: key, target: key };
}

function sortedRecord(r: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Compose interpolates `$VAR` in every value; `$$` is a literal `$`. */
function escapeInterpolation(value: unknown): unknown {
  if (typeof value === 'string') return value.replaceAll('$', () => '$$');
  if (Array.isArray(value)) return value.map(escapeInterpolation);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeInterpolation(v)]));
  }
  return value;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
