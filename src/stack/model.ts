import { createHash } from 'node:crypto';
import { type Config, proxyImage, type Resources } from '../config/schema.js';

/**
 * The platform stack, provider-neutral. Built from cluster.yaml alone (pure), so
 * `stack render` needs no host. Each proxy provider turns it into its own config.
 */
export interface StackModel {
  /** Stack namespace: services become `<name>_app`, volumes `<name>_postgres_data`. */
  readonly name: string;
  readonly domain: string;
  readonly email: string;
  readonly tls: 'acme' | 'internal' | 'off';
  readonly acmeServer?: string;
  readonly endpointMode: 'vip' | 'dnsrr';
  /** External overlay networks created by init before the deploy. */
  readonly networks: { readonly ingress: string; readonly app: string; readonly data: string };
  /** External Docker secret names created by init before the deploy. */
  readonly secrets: { readonly postgresPassword: string; readonly redisPassword: string };
  readonly proxy: {
    readonly provider: 'traefik' | 'caddy';
    readonly image: string;
    readonly publishMode: 'host' | 'ingress';
    readonly constraints: readonly string[];
    readonly resources: Resources;
  };
  readonly app: {
    readonly image: string;
    readonly port: number;
    readonly replicas: number;
    readonly env: Readonly<Record<string, string>>;
    readonly healthcheck?: readonly string[];
    readonly constraints: readonly string[];
    readonly resources: Resources;
  };
  readonly postgres: {
    readonly image: string;
    readonly database: string;
    readonly user: string;
    readonly constraints: readonly string[];
    readonly resources: Resources;
  };
  readonly redis: {
    readonly image: string;
    readonly constraints: readonly string[];
    readonly resources: Resources;
  };
}

/** Swarm service names of the platform stack, as `docker stack deploy` names them. */
export function stackServiceNames(name: string): string[] {
  return ['proxy', 'app', 'postgres', 'redis'].map((s) => `${name}_${s}`);
}

export function networkNames(name: string) {
  return { ingress: `${name}-ingress`, app: `${name}-app`, data: `${name}-data` } as const;
}

export function secretNames(name: string) {
  return {
    postgresPassword: `${name}_postgres_password`,
    redisPassword: `${name}_redis_password`,
  } as const;
}

/**
 * Placement from the seed: the proxy on managers (and on `public_ip=true` nodes
 * when any host carries that label); PostgreSQL and Redis on `db=primary` when
 * labelled, else pinned to the first manager so their local volumes stay put.
 */
export function placement(config: Config) {
  const managers = config.hosts.filter((h) => h.role === 'manager');
  const first = managers[0] ?? config.hosts[0];
  const anyPublic = config.hosts.some((h) => h.labels.public_ip === 'true');
  const anyDb = config.hosts.some((h) => h.labels.db === 'primary');
  const proxy = ['node.role == manager', ...(anyPublic ? ['node.labels.public_ip == true'] : [])];
  const data = anyDb ? ['node.labels.db == primary'] : [`node.hostname == ${first?.name}`];
  return { proxy, app: [] as string[], data };
}

export function buildStackModel(config: Config): StackModel {
  const where = placement(config);
  return {
    name: config.name,
    domain: config.domain,
    email: config.email,
    tls: config.proxy.tls,
    ...(config.proxy.acmeServer ? { acmeServer: config.proxy.acmeServer } : {}),
    endpointMode: config.networks.endpointMode,
    networks: networkNames(config.name),
    secrets: secretNames(config.name),
    proxy: {
      provider: config.proxy.provider,
      image: proxyImage(config),
      publishMode: config.proxy.publishMode,
      constraints: where.proxy,
      resources: config.proxy.resources,
    },
    app: {
      image: config.app.image,
      port: config.app.port,
      replicas: config.app.replicas,
      env: config.app.env,
      ...(config.app.healthcheck ? { healthcheck: config.app.healthcheck } : {}),
      constraints: where.app,
      resources: config.app.resources,
    },
    postgres: {
      image: config.postgres.image,
      database: config.postgres.database,
      user: config.postgres.user,
      constraints: where.data,
      resources: config.postgres.resources,
    },
    redis: {
      image: config.redis.image,
      constraints: where.data,
      resources: config.redis.resources,
    },
  };
}

/** Stable short hash of any JSON value (object keys sorted). */
export function contentHash(value: unknown, length = 12): string {
  const canonical = JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
  return createHash('sha256').update(canonical).digest('hex').slice(0, length);
}
