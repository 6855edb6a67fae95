import { createHash } from 'node:crypto';
import { type Config, LETS_ENCRYPT, proxyImage, type Resources } from '../config/schema.js';

/**
 * The platform stack, provider-neutral. Built from cluster.yaml alone (pure), so
 * `stack render` needs no host. Each proxy provider turns it into its own config.
 */
export interface StackModel {
  /** Stack namespace: services become `<name>_app`, volumes `<name>_postgres_data`. */
  readonly name: string;
  readonly domain: string;
  /** Every host name routed to the app: `domain` first, then `app.domains`. */
  readonly appDomains: readonly string[];
  readonly email: string;
  readonly tls: 'acme' | 'internal' | 'off';
  /** With tls acme: who talks to the CA (see `ssl.acme` in the schema) and where. */
  readonly acme?: {
    readonly mode: 'cluster' | 'proxy';
    readonly directory: string;
    readonly email: string;
  };
  /**
   * Secrets that change without the stack's description changing (a renewed
   * certificate, a new admin): their current names, read from the running
   * proxy. Absent: not delivered yet (the proxy serves what it can without).
   */
  readonly live: LiveSecrets;
  /** The proxy's dashboard host name (HTTPS only, admins' basic auth). */
  readonly dashboard?: string;
  /** cluster-cli's agent (ACME in the cluster), present with tls acme + ssl.acme cluster. */
  readonly agent?: {
    readonly image: string;
    readonly constraints: readonly string[];
    readonly resources: Resources;
  };
  readonly endpointMode: 'vip' | 'dnsrr';
  /** External overlay networks created by init before the deploy. */
  readonly networks: { readonly ingress: string; readonly app: string; readonly data: string };
  /** External Docker secret names created by init before the deploy. */
  readonly secrets: {
    readonly postgresPassword: string;
    readonly redisPassword: string;
    /** With app.adminEmail: the first admin's initial password (see `user create`). */
    readonly adminPassword?: string;
  };
  readonly proxy: {
    readonly provider: 'traefik' | 'caddy';
    readonly image: string;
    readonly publishMode: 'host' | 'ingress';
    readonly constraints: readonly string[];
    readonly resources: Resources;
  };
  readonly app: {
    readonly adminEmail?: string;
    readonly image: string;
    readonly port: number;
    readonly replicas: number;
    readonly env: Readonly<Record<string, string>>;
    readonly healthcheck?: readonly string[];
    /** A read-only root filesystem with a tmpfs at each `tmpfs` path (opt-in: the image is the user's). */
    readonly readOnly: boolean;
    readonly tmpfs: readonly string[];
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

/** Names of secrets the proxy mounts that are delivered outside `init` (see StackModel.live). */
export interface LiveSecrets {
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly dashboardUsers?: string;
}

/** File names under /run/secrets of the live secrets: fixed, so the proxy's config never changes with them. */
export const LIVE_SECRET_FILES = {
  tlsCert: 'tls.crt',
  tlsKey: 'tls.key',
  dashboardUsers: 'dashboard_users',
} as const;

/** The live secrets a running proxy service mounts (by their fixed file names). */
export function liveSecretsOf(
  mounted: readonly { readonly name: string; readonly target: string }[] | undefined,
): LiveSecrets {
  const find = (file: string) => mounted?.find((m) => m.target === file)?.name;
  const tlsCert = find(LIVE_SECRET_FILES.tlsCert);
  const tlsKey = find(LIVE_SECRET_FILES.tlsKey);
  const dashboardUsers = find(LIVE_SECRET_FILES.dashboardUsers);
  return {
    ...(tlsCert && tlsKey ? { tlsCert, tlsKey } : {}),
    ...(dashboardUsers ? { dashboardUsers } : {}),
  };
}

/** Swarm service names of the platform stack, as `docker stack deploy` names them. */
export function stackServiceNames(name: string, withAgent = false): string[] {
  return ['proxy', 'app', 'postgres', 'redis', ...(withAgent ? ['agent'] : [])].map(
    (s) => `${name}_${s}`,
  );
}

/** The services a cluster.yaml deploys: the four platform services, plus the agent when the cluster owns TLS. */
export function configServiceNames(config: Config): string[] {
  return stackServiceNames(config.name, hasAgent(config));
}

export function hasAgent(config: Config): boolean {
  return config.proxy.tls === 'acme' && config.ssl.acme === 'cluster';
}

/** Host names the certificate covers: the app's, then the dashboard's. */
export function certificateDomains(model: Pick<StackModel, 'appDomains' | 'dashboard'>): string[] {
  return [...model.appDomains, ...(model.dashboard ? [model.dashboard] : [])];
}

export function networkNames(name: string) {
  return { ingress: `${name}-ingress`, app: `${name}-app`, data: `${name}-data` } as const;
}

export function secretNames(name: string, withAdmin = false) {
  return {
    postgresPassword: `${name}_postgres_password`,
    redisPassword: `${name}_redis_password`,
    ...(withAdmin ? { adminPassword: `${name}_admin_password` } : {}),
  };
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

/**
 * The model of a cluster.yaml. `live` names the secrets the running proxy
 * mounts (from `liveSecretsOf`); a fresh cluster has none.
 */
export function buildStackModel(config: Config, live: LiveSecrets = {}): StackModel {
  const where = placement(config);
  const acme =
    config.proxy.tls === 'acme'
      ? {
          mode: config.ssl.acme,
          directory: config.ssl.directory ?? LETS_ENCRYPT,
          email: config.ssl.email ?? config.email,
        }
      : undefined;
  return {
    name: config.name,
    domain: config.domain,
    appDomains: [config.domain, ...config.app.domains],
    email: config.email,
    tls: config.proxy.tls,
    ...(acme ? { acme } : {}),
    live,
    ...(config.proxy.dashboard ? { dashboard: config.proxy.dashboard } : {}),
    ...(hasAgent(config)
      ? {
          agent: {
            image: config.agent.image,
            constraints: ['node.role == manager'],
            resources: AGENT_RESOURCES,
          },
        }
      : {}),
    endpointMode: config.networks.endpointMode,
    networks: networkNames(config.name),
    secrets: secretNames(config.name, Boolean(config.app.adminEmail)),
    proxy: {
      provider: config.proxy.provider,
      image: proxyImage(config),
      publishMode: config.proxy.publishMode,
      constraints: where.proxy,
      resources: config.proxy.resources,
    },
    app: {
      ...(config.app.adminEmail ? { adminEmail: config.app.adminEmail } : {}),
      image: config.app.image,
      port: config.app.port,
      replicas: config.app.replicas,
      env: config.app.env,
      ...(config.app.healthcheck ? { healthcheck: config.app.healthcheck } : {}),
      readOnly: config.app.readOnly,
      tmpfs: config.app.tmpfs,
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

const AGENT_RESOURCES: Resources = {
  limits: { memory: '128M', cpus: 0.2 },
  reservations: { memory: '48M' },
};

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
