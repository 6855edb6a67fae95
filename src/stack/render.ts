import { createHash } from 'node:crypto';
import { Document } from 'yaml';
import type { Resources } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { contentHash, LIVE_SECRET_FILES, type LiveSecrets, type StackModel } from './model.js';
import { proxyProvider } from './providers/index.js';
import {
  type ComposeHealthcheck,
  type HealthcheckSpec,
  servesHttps,
  tlsState,
} from './providers/types.js';

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
  /** Stack-local service keys in file order (proxy, app, postgres, redis[, agent]). */
  readonly services: readonly string[];
  /**
   * Per service (stack-local key): the hash of everything that shapes it, also
   * its `io.cluster-cli.revision` label. A change to one service leaves the
   * others' revisions, so a deploy can update just the services that changed.
   */
  readonly revisions: Readonly<Record<string, string>>;
  /** The stack file with only these services (and what they reference): a deploy that touches nothing else. */
  yamlFor(services: readonly string[]): string;
  /** The live secrets the proxy mounts in this file (those of the model that its TLS state uses). */
  readonly live: LiveSecrets;
}

export const STACK_HEADER =
  ' Rendered by cluster-cli — do not edit; change cluster.yaml and run `cluster-cli init` again';

/** Where each service finds its Docker secrets (the stack-local keys are the file names). */
export const SECRET_FILES = {
  postgresPassword: '/run/secrets/postgres_password',
  redisPassword: '/run/secrets/redis_password',
  adminPassword: '/run/secrets/admin_password',
} as const;

/** A service of the platform stack, by its stack-local key. */
export type Role = 'proxy' | 'app' | 'postgres' | 'redis' | 'agent';
type Obj = Record<string, unknown>;

export interface RenderStackOptions {
  /**
   * Docker Engine version (`docker version` Server.Version, e.g. `20.10.24` or
   * `27.3.1`) of the oldest node that runs the stack's tasks: the engine on the
   * task's node runs its healthcheck and applies its limits, and the `docker`
   * client on the manager parses the file. Absent or unparseable: the form of
   * the oldest supported engine, 20.10 (see `engineProfile`).
   */
  readonly engine?: string;
}

/**
 * The platform stack as a compose file for `docker stack deploy`, plus the
 * Docker configs it references, in the form the engine honours (see
 * `engineProfile`): every service hardened as far as the engine allows
 * (see `hardening`). Pure: same model and engine, same bytes. Secrets,
 * networks and configs are all external (created by init), so no secret value
 * can appear here; `$` in any value is escaped so compose interpolation never
 * rewrites it.
 */
export function renderStack(model: StackModel, opts: RenderStackOptions = {}): RenderedStack {
  if (model.endpointMode === 'dnsrr' && model.proxy.publishMode === 'ingress') {
    throw new UserError(
      'networks.endpointMode dnsrr cannot publish ports through the routing mesh',
      'set proxy.publishMode: host in cluster.yaml (or networks.endpointMode: vip)',
    );
  }
  const provider = proxyProvider(model.proxy.provider);
  const profile = engineProfile(opts.engine);
  const health = (spec: HealthcheckSpec): ComposeHealthcheck => healthcheck(spec, profile.cadence);
  const harden = (role: Role) => runtime(hardening(role, model), profile);
  const configs: RenderedConfig[] = provider.configs(model).map((f) => ({
    key: f.key,
    name: `${model.name}_${f.key}_${sha256(f.content).slice(0, 12)}`,
    target: f.target,
    content: f.content,
  }));

  const deploy = (role: Role, extra: Obj = {}): Obj => {
    const spec = role === 'agent' ? (model.agent as NonNullable<StackModel['agent']>) : model[role];
    return {
      ...extra,
      endpoint_mode: model.endpointMode,
      ...(spec.constraints.length > 0 ? { placement: { constraints: [...spec.constraints] } } : {}),
      resources: resources(
        spec.resources,
        profile.runtimeLimits ? hardening(role, model).pids : undefined,
      ),
      ...rollout(role === 'app' ? 'start-first' : 'stop-first'),
      labels: {
        'io.cluster-cli.role': role,
      },
    };
  };

  // Secrets delivered after init (certificate, admins' file): only once they exist.
  const live = liveSecretKeys(model);
  const proxyParts = provider.service(model);
  const proxyRun = harden('proxy');
  const proxy: Obj = {
    image: model.proxy.image,
    ...(proxyParts.command ? { command: [...proxyParts.command] } : {}),
    ...proxyRun.options,
    healthcheck: health(proxyParts.healthcheck),
    ports: proxyParts.ports.map((p) => ({ ...p })),
    volumes: [...proxyParts.mounts.map((m) => ({ ...m })), ...proxyRun.tmpfs],
    configs: configs.map((c) => ({ source: c.key, target: c.target })),
    ...(live.length
      ? { secrets: live.map(([key]) => ({ source: key, target: LIVE_FILE[key] })) }
      : {}),
    networks: ['ingress'],
    deploy: deploy('proxy', { mode: 'global' }),
  };

  const appRun = harden('app');
  const app: Obj = {
    image: model.app.image,
    ...appRun.options,
    environment: {
      DATABASE_HOST: 'postgres',
      DATABASE_PORT: '5432',
      DATABASE_NAME: model.postgres.database,
      DATABASE_USER: model.postgres.user,
      DATABASE_PASSWORD_FILE: SECRET_FILES.postgresPassword,
      REDIS_HOST: 'redis',
      REDIS_PORT: '6379',
      REDIS_PASSWORD_FILE: SECRET_FILES.redisPassword,
      ...(model.app.adminEmail
        ? { ADMIN_EMAIL: model.app.adminEmail, ADMIN_PASSWORD_FILE: SECRET_FILES.adminPassword }
        : {}),
      ...sortedRecord(model.app.env),
    },
    ...(model.app.healthcheck
      ? {
          healthcheck: health({
            test: ['CMD', ...model.app.healthcheck],
            retries: 3,
            startPeriod: '30s',
          }),
        }
      : {}),
    ...(appRun.tmpfs.length ? { volumes: appRun.tmpfs } : {}),
    secrets: [
      secretRef('postgres_password'),
      secretRef('redis_password'),
      ...(model.secrets.adminPassword ? [secretRef('admin_password')] : []),
    ],
    networks: ['ingress', 'app', 'data'],
    deploy: deploy('app', { mode: 'replicated', replicas: model.app.replicas }),
  };

  const postgresRun = harden('postgres');
  const postgres: Obj = {
    image: model.postgres.image,
    ...postgresRun.options,
    environment: {
      POSTGRES_USER: model.postgres.user,
      POSTGRES_DB: model.postgres.database,
      POSTGRES_PASSWORD_FILE: SECRET_FILES.postgresPassword,
    },
    healthcheck: health({
      test: [
        'CMD',
        'pg_isready',
        '-h',
        '127.0.0.1',
        '-U',
        model.postgres.user,
        '-d',
        model.postgres.database,
      ],
      retries: 5,
      startPeriod: '60s',
    }),
    volumes: [
      { type: 'volume', source: 'postgres_data', target: '/var/lib/postgresql/data' },
      ...postgresRun.tmpfs,
    ],
    secrets: [secretRef('postgres_password')],
    networks: ['data'],
    // A clean shutdown (checkpoint) instead of crash recovery on the next start.
    stop_grace_period: '60s',
    deploy: deploy('postgres', { mode: 'replicated', replicas: 1 }),
  };

  const redisRun = harden('redis');
  const redis: Obj = {
    image: model.redis.image,
    command: ['sh', '-c', redisStart(model)],
    ...redisRun.options,
    healthcheck: health({ test: ['CMD-SHELL', REDIS_PING], retries: 5, startPeriod: '10s' }),
    volumes: [{ type: 'volume', source: 'redis_data', target: '/data' }, ...redisRun.tmpfs],
    secrets: [secretRef('redis_password')],
    networks: ['data'],
    stop_grace_period: '30s',
    deploy: deploy('redis', { mode: 'replicated', replicas: 1 }),
  };

  const services: Record<string, Obj> = { proxy, app, postgres, redis };
  if (model.agent) services.agent = agentService(model, health, deploy, harden('agent'));

  const volumes: Obj = {};
  for (const v of [...provider.volumes(model), 'postgres_data', 'redis_data']) volumes[v] = {};

  const stack: Obj = {
    version: profile.composeVersion,
    services,
    networks: {
      ingress: { external: true, name: model.networks.ingress },
      app: { external: true, name: model.networks.app },
      data: { external: true, name: model.networks.data },
    },
    volumes,
    secrets: {
      postgres_password: { external: true, name: model.secrets.postgresPassword },
      redis_password: { external: true, name: model.secrets.redisPassword },
      ...(model.secrets.adminPassword
        ? { admin_password: { external: true, name: model.secrets.adminPassword } }
        : {}),
      ...Object.fromEntries(live.map(([key, name]) => [key, { external: true, name }])),
    },
    configs: Object.fromEntries(configs.map((c) => [c.key, { external: true, name: c.name }])),
  };

  const revisions: Record<string, string> = {};
  for (const [key, svc] of Object.entries(services)) {
    revisions[key] = serviceRevision(svc, stack, profile);
    const d = svc.deploy as { labels: Record<string, string> };
    d.labels = { ...d.labels, 'io.cluster-cli.revision': revisions[key] as string };
  }
  const toYaml = (s: Obj) => {
    const doc = new Document(escapeInterpolation(s));
    doc.commentBefore = STACK_HEADER;
    return doc.toString({ lineWidth: 0 });
  };
  return {
    yaml: toYaml(stack),
    configs,
    services: Object.keys(services),
    revisions,
    yamlFor: (keys) => toYaml(subset(stack, keys)),
    live: {
      ...(live.some(([k]) => k === 'tls_crt')
        ? { tlsCert: model.live.tlsCert, tlsKey: model.live.tlsKey }
        : {}),
      ...(live.some(([k]) => k === 'dashboard_users')
        ? { dashboardUsers: model.live.dashboardUsers }
        : {}),
    } as LiveSecrets,
  };
}

const LIVE_FILE: Readonly<Record<string, string>> = {
  tls_crt: LIVE_SECRET_FILES.tlsCert,
  tls_key: LIVE_SECRET_FILES.tlsKey,
  dashboard_users: LIVE_SECRET_FILES.dashboardUsers,
};

/** [stack-local key, Docker secret name] of the live secrets the proxy mounts now. */
function liveSecretKeys(model: StackModel): [string, string][] {
  const out: [string, string][] = [];
  const state = tlsState(model);
  if (state === 'cluster' && model.live.tlsCert && model.live.tlsKey) {
    out.push(['tls_crt', model.live.tlsCert], ['tls_key', model.live.tlsKey]);
  }
  if (model.dashboard && model.live.dashboardUsers && servesHttps(state)) {
    out.push(['dashboard_users', model.live.dashboardUsers]);
  }
  return out;
}

/**
 * A service's revision: its own definition plus the names of the configs it
 * mounts (content-addressed) and the compose format. Live secrets count by
 * key only: a renewed certificate is swapped in by the agent without making
 * the stack look changed.
 */
function serviceRevision(svc: Obj, stack: Obj, profile: EngineProfile): string {
  const configs = stack.configs as Record<string, { name: string }>;
  const used = ((svc.configs as { source: string }[] | undefined) ?? []).map(
    (c) => configs[c.source]?.name,
  );
  return contentHash({ svc, used, format: profile.composeVersion, v: 1 });
}

/** The stack file cut down to some services and the top-level entries they use. */
function subset(stack: Obj, keys: readonly string[]): Obj {
  const all = stack.services as Record<string, Obj>;
  const services: Record<string, Obj> = {};
  for (const k of keys) if (all[k]) services[k] = all[k];
  const used = (field: string, pick: (v: unknown) => string) =>
    new Set(
      Object.values(services).flatMap((s) => ((s[field] as unknown[] | undefined) ?? []).map(pick)),
    );
  const keep = (section: string, names: Set<string>) =>
    Object.fromEntries(
      Object.entries((stack[section] as Obj | undefined) ?? {}).filter(([k]) => names.has(k)),
    );
  const nets = used('networks', (n) => n as string);
  const secrets = used('secrets', (s) => (s as { source: string }).source);
  const configs = used('configs', (c) => (c as { source: string }).source);
  const vols = used('volumes', (v) => (v as { source?: string }).source ?? '');
  return {
    version: stack.version,
    services,
    networks: keep('networks', nets),
    volumes: keep('volumes', vols),
    secrets: keep('secrets', secrets),
    configs: keep('configs', configs),
  };
}

/**
 * cluster-cli's agent: answers ACME HTTP-01 challenges for every proxy (from
 * PostgreSQL, so any replica can), renews the certificate once across the
 * cluster (claimed in PostgreSQL) and swaps it into the proxy through the
 * manager's Docker API. Never published: the proxies reach it by name on the
 * ingress network, and only the challenge path is routed to it.
 */
function agentService(
  model: StackModel,
  health: (spec: HealthcheckSpec) => ComposeHealthcheck,
  deploy: (role: Role, extra?: Obj) => Obj,
  run: Runtime,
): Obj {
  const agent = model.agent as NonNullable<StackModel['agent']>;
  return {
    image: agent.image,
    command: ['agent'],
    ...run.options,
    environment: {
      CLUSTER_CLI_STACK: model.name,
      CLUSTER_CLI_NODE: '{{.Node.Hostname}}',
      PGHOST: 'postgres',
      PGPORT: '5432',
      PGDATABASE: model.postgres.database,
      PGUSER: model.postgres.user,
      PGPASSWORD_FILE: SECRET_FILES.postgresPassword,
    },
    healthcheck: health({
      test: ['CMD', '/usr/local/bin/node', '-e', AGENT_HEALTH],
      retries: 3,
      startPeriod: '20s',
    }),
    // The socket is root's (srw-rw---- root:docker): the agent, root in its
    // container, reaches it as its owner, with no capability at all.
    volumes: [
      { type: 'bind', source: DOCKER_SOCKET, target: DOCKER_SOCKET, read_only: false },
      ...run.tmpfs,
    ],
    secrets: [secretRef('postgres_password')],
    networks: ['ingress', 'data'],
    deploy: deploy('agent', { mode: 'global' }),
  };
}

const DOCKER_SOCKET = '/var/run/docker.sock';
const AGENT_HEALTH =
  "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))";

/**
 * Redis start, as the image's `redis` user (see `hardening`): the password
 * goes from the secret file into a config file on the /tmp tmpfs (umask 077)
 * through shell builtins only, so it never shows in any argv. Init generates
 * passwords without `"` or `\`, which redis.conf would unquote.
 *
 * Stacks rendered before the hardening started redis through `sh`, which the
 * image's entrypoint does not step down from root for, so an old volume holds
 * root's files the redis user cannot open: the start says so, with the one
 * command that fixes it, instead of failing on the first file.
 */
function redisStart(model: StackModel): string {
  const volume = `${model.name}_redis_data`;
  const fix = `docker run --rm -u 0 -v ${volume}:/data ${model.redis.image} chown -R redis:redis /data`;
  return [
    'umask 077',
    'other=$(find /data -mindepth 1 -maxdepth 1 ! -user "$(id -u)" | head -n 1)',
    `[ -z "$other" ] || { echo "redis: $other belongs to another user (redis ran as root before); once, on this node: ${fix}" >&2; exit 1; }`,
    `IFS= read -r pw < ${SECRET_FILES.redisPassword} || [ -n "$pw" ] || { echo "redis: empty password secret" >&2; exit 1; }`,
    `printf 'requirepass "%s"\\n' "$pw" > /tmp/redis.conf`,
    'unset pw',
    'exec redis-server /tmp/redis.conf --appendonly yes --dir /data --bind 0.0.0.0 --protected-mode no',
  ].join('\n');
}

/** Redis health: the password reaches redis-cli through REDISCLI_AUTH, never `-a`. */
const REDIS_PING = `IFS= read -r REDISCLI_AUTH < ${SECRET_FILES.redisPassword} || [ -n "$REDISCLI_AUTH" ]; export REDISCLI_AUTH; [ "$(redis-cli -h 127.0.0.1 ping)" = PONG ]`;

/** How often, and how patiently, healthchecks run on a given engine. */
export interface HealthCadence {
  readonly interval: string;
  readonly timeout: string;
  /** Multiplies a spec's retries (counted at the steady 10 s cadence). */
  readonly retriesScale: number;
  readonly startInterval?: string;
}

/**
 * Swarm counts a task as running only once its healthcheck has passed, and
 * Docker runs the first check one `interval` after the container starts (then
 * one `interval` after each check ends). At a 10 s interval a database that is
 * ready after 3.5 s is seen healthy at 10 s. The aim: a ready task is seen
 * healthy within ~2 s, while a task that stops answering is declared unhealthy
 * after about as long as before (retries × interval ≈ 5 × 10 s for the data
 * services, 3 × 10 s for the proxy and the app).
 *
 * - Engine 25.0.1+ (API 1.44; 25.0.0 dropped the field for swarm tasks,
 *   moby/moby#47163): `start_interval: 1s` checks every second during
 *   `start_period` only; afterwards the steady 10 s cadence and the retries stay
 *   as they were. The key needs compose format 3.12 (docker CLI 25.0+):
 *   `docker stack config` rejects it under 3.8–3.11 ("Additional property
 *   start_interval is not allowed"), and a 20.10 CLI rejects 3.12 itself, hence
 *   the format switch (see `engineProfile`).
 * - Older engines (Debian's 20.10): one interval for the container's whole
 *   life, so it has to be short: 2 s, timeout 2 s (≤ interval), retries × 5 so
 *   retries × interval keeps the previous tolerance.
 */
export function healthCadence(engine: string | undefined): HealthCadence {
  if (engineAtLeast(engine, [25, 0, 1])) {
    return { interval: '10s', timeout: '5s', retriesScale: 1, startInterval: '1s' };
  }
  return { interval: '2s', timeout: '2s', retriesScale: 5 };
}

/** What one engine (and the docker client of its release, on the manager) honours in a stack file. */
export interface EngineProfile {
  /**
   * Compose file format: 3.12 where `start_interval` works (25.0.1+); else
   * 3.9 where the PIDs limit does (20.10+: `deploy.resources.limits.pids` is
   * in the schema from 3.9 on, and the 3.8 schema rejects it); else 3.8.
   */
  readonly composeVersion: '3.8' | '3.9' | '3.12';
  readonly cadence: HealthCadence;
  /**
   * `cap_drop`/`cap_add`, `ulimits` and `deploy.resources.limits.pids` reach
   * the tasks: Engine API 1.41 (Engine 20.10.0) added CapabilityAdd/Drop and
   * Ulimits to the ContainerSpec and Pids to the task's limits, and docker
   * CLI 20.10.0 converts the compose keys (earlier clients print "Ignoring
   * unsupported options: cap_add, cap_drop, ulimits"; a manager strips the
   * fields from a client below API 1.41). `read_only`, `user` and tmpfs
   * mounts need nothing newer than any engine that runs compose 3.8.
   */
  readonly runtimeLimits: boolean;
}

/**
 * The stack form for an engine version (the oldest node's). Unknown or
 * unparseable: 20.10's, the oldest supported engine (Debian 12's docker.io),
 * so `stack render` without a host shows what a 20.10 cluster gets. A known
 * engine before 20.10 gets 3.8 without the limits it would only drop.
 */
export function engineProfile(engine: string | undefined): EngineProfile {
  const cadence = healthCadence(engine);
  const runtimeLimits = parseEngine(engine) === undefined || engineAtLeast(engine, [20, 10, 0]);
  const composeVersion = cadence.startInterval ? '3.12' : runtimeLimits ? '3.9' : '3.8';
  return { composeVersion, cadence, runtimeLimits };
}

/** `20.10.24`, `20.10.24+dfsg1`, `27.3.1`, `28.0.0-rc.1`…; anything else is undefined. */
function parseEngine(engine: string | undefined): [number, number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(engine?.trim() ?? '');
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

/** The engine is at least `min`; an unparseable version reads as too old. */
function engineAtLeast(
  engine: string | undefined,
  min: readonly [number, number, number],
): boolean {
  const version = parseEngine(engine);
  if (!version) return false;
  for (const [i, part] of version.entries()) {
    const floor = min[i] ?? 0;
    if (part !== floor) return part > floor;
  }
  return true;
}

const MiB = 1024 * 1024;
// No `ulimits` (CIS Docker 5.19): a container's RLIMIT_NOFILE cannot exceed
// the hard limit dockerd itself runs with, and where that is lower than the
// value asked (20000 on the lab's machine; whatever LimitNOFILE a distribution
// sets) every task fails to start ("error setting rlimit type 7"). The
// daemon's default is the safe one.

/**
 * How one service runs (README, Security), beyond its image's defaults.
 * Sources: the official images' Dockerfiles and entrypoints
 * (docker-library/postgres, docker-library/redis, caddyserver/caddy-docker,
 * traefik/traefik-library-image) and cluster-cli's own agent.
 */
export interface Hardening {
  /** The image's own unprivileged user, by name (resolved in the image's /etc/passwd). */
  readonly user?: string;
  readonly readOnly: boolean;
  /** Where a read-only service writes besides its volumes: a tmpfs (nosuid, nodev, noexec), size in bytes. */
  readonly tmpfs: readonly { readonly target: string; readonly size: number }[];
  /** `ALL`, then `capAdd` keeps only those; or the few dropped from Docker's default set. */
  readonly capDrop: readonly string[];
  readonly capAdd: readonly string[];
  /** Processes and threads of the container (the pids cgroup counts both). */
  readonly pids: number;
}

const TMP = { target: '/tmp', size: 16 * MiB } as const;

/**
 * - proxy: root in the image, binds 80/443: NET_BIND_SERVICE only (the
 *   official Caddy binary also carries it as a file capability, which execve
 *   refuses when the bounding set lacks it). Writes its volumes only.
 * - app: a user's image, so conservative: Docker's default capabilities minus
 *   those a web app has no use for (raw sockets, device nodes, file
 *   capabilities, chroot); read-only only when cluster.yaml says so.
 * - postgres, redis: the images' own users (postgres, redis), which the
 *   official entrypoints support without their root step-down: no capability
 *   at all. PostgreSQL writes its socket and lock to /var/run/postgresql.
 * - agent: root, talks to the root-owned Docker socket as its owner: no capability.
 */
export function hardening(role: Role, model: StackModel): Hardening {
  switch (role) {
    case 'proxy':
      return {
        readOnly: true,
        tmpfs: [TMP],
        capDrop: ['ALL'],
        capAdd: ['NET_BIND_SERVICE'],
        pids: 512,
      };
    case 'app':
      return {
        readOnly: model.app.readOnly,
        tmpfs: model.app.readOnly
          ? model.app.tmpfs.map((target) => ({ target, size: 64 * MiB }))
          : [],
        capDrop: ['MKNOD', 'NET_RAW', 'SETFCAP', 'SYS_CHROOT'],
        capAdd: [],
        pids: 2048,
      };
    case 'postgres':
      return {
        user: 'postgres',
        readOnly: true,
        tmpfs: [{ target: '/var/run/postgresql', size: 1 * MiB }, TMP],
        capDrop: ['ALL'],
        capAdd: [],
        pids: 512,
      };
    case 'redis':
      return {
        user: 'redis',
        readOnly: true,
        tmpfs: [TMP],
        capDrop: ['ALL'],
        capAdd: [],
        pids: 256,
      };
    case 'agent':
      return { readOnly: true, tmpfs: [TMP], capDrop: ['ALL'], capAdd: [], pids: 256 };
  }
}

/** A service's hardening as compose keys (those the engine honours) and its tmpfs mounts. */
interface Runtime {
  readonly options: Obj;
  readonly tmpfs: Obj[];
}

function runtime(h: Hardening, profile: EngineProfile): Runtime {
  const limits = profile.runtimeLimits;
  return {
    options: {
      ...(h.user ? { user: h.user } : {}),
      ...(h.readOnly ? { read_only: true } : {}),
      ...(limits && h.capDrop.length ? { cap_drop: [...h.capDrop] } : {}),
      ...(limits && h.capAdd.length ? { cap_add: [...h.capAdd] } : {}),
    },
    tmpfs: h.tmpfs.map((t) => ({ type: 'tmpfs', target: t.target, tmpfs: { size: t.size } })),
  };
}

function healthcheck(spec: HealthcheckSpec, cadence: HealthCadence): ComposeHealthcheck {
  return {
    test: [...spec.test],
    interval: cadence.interval,
    timeout: cadence.timeout,
    retries: spec.retries * cadence.retriesScale,
    start_period: spec.startPeriod,
    ...(cadence.startInterval ? { start_interval: cadence.startInterval } : {}),
  };
}

function resources(r: Resources, pids: number | undefined): Obj {
  return {
    limits: {
      cpus: String(r.limits.cpus),
      memory: r.limits.memory,
      ...(pids === undefined ? {} : { pids }),
    },
    reservations: { memory: r.reservations.memory },
  };
}

/**
 * One task at a time, rolled back when it fails. A task that fails its
 * healthcheck never counts as running, so it fails the update whenever that
 * happens; the monitor window only watches a healthy task for a crash right
 * after, and 10 s of it is what every update (and a deploy's "done") waits
 * for. Only the app starts
 * the new task first: the proxy's host ports and the databases' volumes can't be
 * held by two tasks at once.
 */
function rollout(order: 'start-first' | 'stop-first'): Obj {
  return {
    update_config: {
      parallelism: 1,
      delay: '10s',
      failure_action: 'rollback',
      monitor: '10s',
      order,
    },
    rollback_config: {
      parallelism: 1,
      delay: '0s',
      failure_action: 'pause',
      monitor: '10s',
      order,
    },
    restart_policy: { condition: 'any', delay: '5s' },
  };
}

function secretRef(key: 'postgres_password' | 'redis_password' | 'admin_password'): Obj {
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
