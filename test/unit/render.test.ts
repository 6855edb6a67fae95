import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Config, type ConfigInput } from '../../src/config/schema.js';
import { UserError } from '../../src/core/errors.js';
import { buildStackModel, type LiveSecrets } from '../../src/stack/model.js';
import { engineProfile, healthCadence, renderStack } from '../../src/stack/render.js';
import {
  docker2010Available,
  dockerCliAvailable,
  dockerStackConfig,
  dockerStackLoad,
} from '../helpers/docker-stack-config.js';

const base = {
  domain: 'app.example.com',
  email: 'admin@example.com',
  hosts: [{ name: 'node1', address: '203.0.113.10' }],
} satisfies ConfigInput;

/** Three nodes with the seed's labels, as the lab runs it (dnsrr, host ports). */
const labelled: ConfigInput = {
  ...base,
  topology: 'three-node',
  hosts: [
    { name: 'manager1', address: '10.77.0.11', labels: { public_ip: 'true' } },
    { name: 'manager2', address: '10.77.0.12', labels: { db: 'primary' } },
    { name: 'worker1', address: '10.77.0.13', role: 'worker' },
  ],
  networks: { endpointMode: 'dnsrr' },
};

type CaseName = 'traefik-acme' | 'caddy-internal' | 'caddy-acme-server' | 'tls-off';
const CASES: Record<CaseName, ConfigInput> = {
  'traefik-acme': base,
  'caddy-internal': { ...labelled, proxy: { provider: 'caddy', tls: 'internal' } },
  'caddy-acme-server': {
    ...labelled,
    proxy: { provider: 'caddy', tls: 'acme' },
    ssl: { directory: 'https://pebble.lab.test:14000/dir' },
  },
  'tls-off': { ...base, proxy: { tls: 'off' }, app: { port: 8080, replicas: 2 } },
};
const NAMES = Object.keys(CASES) as CaseName[];

function render(input: ConfigInput, engine?: string) {
  return renderStack(buildStackModel(Config.parse(input)), engine ? { engine } : {});
}

/** The lab's Debian engine (no start_interval) and a current one. */
const OLD_ENGINE = '20.10.24';
const NEW_ENGINE = '27.3.1';
const ENGINES = [OLD_ENGINE, NEW_ENGINE] as const;
/** Before Engine API 1.41: no capabilities, ulimits or PIDs limit for services. */
const PRE_2010_ENGINE = '19.03.15';

/** Every service with a healthcheck: the app gets one from the config. */
const checked = (proxy: ConfigInput['proxy'] = {}): ConfigInput => ({
  ...base,
  proxy,
  app: { healthcheck: ['/bin/check'] },
});

/** Consecutive failures each service tolerates at the steady 10 s cadence. */
const RETRIES_AT_10S = { proxy: 3, app: 3, postgres: 5, redis: 5 } as const;

/** Go durations as rendered (`2s`) or normalised by the docker client (`1m0s`). */
function seconds(d: string): number {
  const m = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(d);
  if (!m || d === '') throw new Error(`not a duration: ${d}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0);
}

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked loosely in assertions
type Any = any;
function services(yaml: string): Record<'proxy' | 'app' | 'postgres' | 'redis', Any> {
  return parse(yaml).services;
}

/** Seed 001's resource table. */
const SEED = {
  proxy: { limits: { cpus: '0.2', memory: '128M' }, reservations: { memory: '64M' } },
  app: { limits: { cpus: '0.5', memory: '512M' }, reservations: { memory: '256M' } },
  postgres: { limits: { cpus: '0.5', memory: '512M' }, reservations: { memory: '256M' } },
  redis: { limits: { cpus: '0.2', memory: '128M' }, reservations: { memory: '64M' } },
} as const;
const BYTES = { '64M': 67108864, '128M': 134217728, '256M': 268435456, '512M': 536870912 } as const;
const ROLES = ['proxy', 'app', 'postgres', 'redis'] as const;
const MIB = 1024 * 1024;
const tmpfs = (target: string, size: number) => ({ type: 'tmpfs', target, tmpfs: { size } });

/**
 * What each service runs with (README, Security). The app keeps Docker's
 * default capabilities minus four, and is read-only only on request.
 */
const HARDENED = {
  proxy: { user: undefined, capDrop: ['ALL'], capAdd: ['NET_BIND_SERVICE'], pids: 512 },
  app: {
    user: undefined,
    capDrop: ['MKNOD', 'NET_RAW', 'SETFCAP', 'SYS_CHROOT'],
    capAdd: undefined,
    pids: 2048,
  },
  postgres: { user: 'postgres', capDrop: ['ALL'], capAdd: undefined, pids: 512 },
  redis: { user: 'redis', capDrop: ['ALL'], capAdd: undefined, pids: 256 },
  agent: { user: undefined, capDrop: ['ALL'], capAdd: undefined, pids: 256 },
} as const;
type HardenedRole = keyof typeof HARDENED;

/** cluster-cli's agent with the cluster's own certificates: every service there is. */
const withAgent: ConfigInput = {
  ...base,
  proxy: { provider: 'caddy', tls: 'acme' },
  ssl: { acme: 'cluster' },
  agent: { image: 'cluster-cli:dev' },
};

/** test/fixtures/lab.cluster.yaml as init completes it: what the lab deploys. */
function labInput(): ConfigInput {
  const preset = parse(
    readFileSync(new URL('../fixtures/lab.cluster.yaml', import.meta.url), 'utf8'),
  ) as ConfigInput;
  return { ...preset, ...labelled, proxy: preset.proxy, networks: preset.networks };
}

describe('renderStack snapshots', () => {
  it.each(NAMES)('%s', async (name) => {
    const r = render(CASES[name]);
    await expect(r.yaml).toMatchFileSnapshot(`./__snapshots__/stack-${name}.yml`);
  });

  it(`traefik-acme on engine ${NEW_ENGINE} (start_interval)`, async () => {
    const r = render(CASES['traefik-acme'], NEW_ENGINE);
    await expect(r.yaml).toMatchFileSnapshot('./__snapshots__/stack-traefik-acme-engine-27.yml');
  });
});

describe('healthcheck cadence per engine', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['unknown', false],
    ['20.10.24', false],
    ['20.10.24+dfsg1', false],
    ['24.0.7', false],
    // 25.0.0 accepts start_interval but drops it for swarm tasks (moby/moby#47163).
    ['25.0.0', false],
    ['25.0.1', true],
    ['26.1.4', true],
    ['27.3.1', true],
    ['28.0.0-rc.1', true],
    ['v28.2.2', true],
    ['30.0', true],
  ])('engine %s: start_interval %s', (engine, expected) => {
    const c = healthCadence(engine);
    expect(c.startInterval !== undefined).toBe(expected);
    expect(engineProfile(engine).composeVersion).toBe(expected ? '3.12' : '3.9');
  });

  it.each(ENGINES)(
    'engine %s: a ready task is seen healthy within ~2 s; tolerance unchanged',
    (engine) => {
      for (const proxy of [{ provider: 'traefik' }, { provider: 'caddy' }] as const) {
        const svc = services(render(checked(proxy), engine).yaml);
        for (const role of ROLES) {
          const h = svc[role].healthcheck;
          const interval = seconds(h.interval);
          // The first check runs one (start) interval after the container starts.
          expect(seconds(h.start_interval ?? h.interval), role).toBeLessThanOrEqual(2);
          expect(seconds(h.timeout), role).toBeLessThanOrEqual(interval);
          // Failing checks in a row before "unhealthy": as long as at 10 s before.
          expect(h.retries * interval, role).toBe(RETRIES_AT_10S[role] * 10);
        }
      }
    },
  );

  it(`engine ${OLD_ENGINE}: a short steady interval, retries scaled, format 3.9`, () => {
    const doc = parse(render(checked(), OLD_ENGINE).yaml);
    expect(doc.version).toBe('3.9');
    for (const role of ROLES) {
      const h = doc.services[role].healthcheck;
      expect(h, role).toMatchObject({
        interval: '2s',
        timeout: '2s',
        retries: RETRIES_AT_10S[role] * 5,
      });
      expect(h.start_interval, role).toBeUndefined();
    }
    expect(doc.services.postgres.healthcheck.start_period).toBe('60s');
  });

  it(`engine ${NEW_ENGINE}: start_interval 1s, steady 10s, format 3.12`, () => {
    const doc = parse(render(checked(), NEW_ENGINE).yaml);
    expect(doc.version).toBe('3.12');
    for (const role of ROLES) {
      expect(doc.services[role].healthcheck, role).toMatchObject({
        interval: '10s',
        timeout: '5s',
        retries: RETRIES_AT_10S[role],
        start_interval: '1s',
      });
    }
    expect(doc.services.postgres.healthcheck.start_period).toBe('60s');
  });

  it('no engine renders the form every supported engine accepts', () => {
    expect(render(checked()).yaml).toBe(render(checked(), OLD_ENGINE).yaml);
    expect(render(checked(), 'not-a-version').yaml).toBe(render(checked()).yaml);
  });
});

describe('renderStack semantics', () => {
  it.each(NAMES)('%s: seed resource limits and reservations on every service', (name) => {
    const svc = services(render(CASES[name]).yaml);
    for (const role of ROLES) {
      const seed = SEED[role];
      expect(svc[role].deploy.resources, role).toEqual({
        ...seed,
        limits: { ...seed.limits, pids: HARDENED[role].pids },
      });
    }
  });

  it('single host: proxy on managers, data services pinned to the first manager', () => {
    const svc = services(render(base).yaml);
    expect(svc.proxy.deploy.placement.constraints).toEqual(['node.role == manager']);
    expect(svc.postgres.deploy.placement.constraints).toEqual(['node.hostname == node1']);
    expect(svc.redis.deploy.placement.constraints).toEqual(['node.hostname == node1']);
    expect(svc.app.deploy.placement).toBeUndefined();
  });

  it('labelled nodes: proxy on public managers, data services on db=primary', () => {
    const svc = services(render(CASES['caddy-internal']).yaml);
    expect(svc.proxy.deploy.placement.constraints).toEqual([
      'node.role == manager',
      'node.labels.public_ip == true',
    ]);
    expect(svc.postgres.deploy.placement.constraints).toEqual(['node.labels.db == primary']);
    expect(svc.redis.deploy.placement.constraints).toEqual(['node.labels.db == primary']);
  });

  it.each(NAMES)('%s: networks per service, all external with model names', (name) => {
    const doc = parse(render(CASES[name]).yaml);
    const n = doc.services;
    expect(n.proxy.networks).toEqual(['ingress']);
    expect(n.app.networks).toEqual(['ingress', 'app', 'data']);
    expect(n.postgres.networks).toEqual(['data']);
    expect(n.redis.networks).toEqual(['data']);
    expect(doc.networks).toEqual({
      ingress: { external: true, name: 'platform-ingress' },
      app: { external: true, name: 'platform-app' },
      data: { external: true, name: 'platform-data' },
    });
  });

  it('secrets are external, referenced by key, and read from files', () => {
    const doc = parse(render(base).yaml);
    expect(doc.secrets).toEqual({
      postgres_password: { external: true, name: 'platform_postgres_password' },
      redis_password: { external: true, name: 'platform_redis_password' },
    });
    const s = doc.services;
    const sources = (svc: Any) => svc.secrets.map((x: Any) => x.source);
    expect(s.proxy.secrets).toBeUndefined();
    expect(sources(s.app)).toEqual(['postgres_password', 'redis_password']);
    expect(sources(s.postgres)).toEqual(['postgres_password']);
    expect(sources(s.redis)).toEqual(['redis_password']);
    expect(s.postgres.environment).toEqual({
      POSTGRES_USER: 'app',
      POSTGRES_DB: 'app',
      POSTGRES_PASSWORD_FILE: '/run/secrets/postgres_password',
    });
    expect(s.app.environment).toMatchObject({
      DATABASE_HOST: 'postgres',
      DATABASE_PORT: '5432',
      DATABASE_NAME: 'app',
      DATABASE_USER: 'app',
      DATABASE_PASSWORD_FILE: '/run/secrets/postgres_password',
      REDIS_HOST: 'redis',
      REDIS_PORT: '6379',
      REDIS_PASSWORD_FILE: '/run/secrets/redis_password',
    });
  });

  it.each(NAMES)('%s: no key that names a password carries a literal value', (name) => {
    const r = render(CASES[name]);
    const offenders: string[] = [];
    const walk = (v: unknown, path: string) => {
      if (Array.isArray(v)) {
        for (const [i, x] of v.entries()) walk(x, `${path}[${i}]`);
      } else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          const p = `${path}.${k}`;
          if (/pass(word)?|secret|token/i.test(k) && typeof x !== 'object') {
            if (!/_FILE$/.test(k) && !/^\/run\/secrets\//.test(String(x))) offenders.push(p);
          }
          walk(x, p);
        }
      }
    };
    walk(parse(r.yaml), '');
    expect(offenders).toEqual([]);
    expect(r.yaml).not.toMatch(/requirepass\s+[^"\s]/);
    // Redis reads its password from the secret file: never `-a` on any command line.
    expect(r.yaml).not.toMatch(/redis-cli[^\n]*\s-a\s/);
  });

  it('redis starts from a private config file and checks PONG with REDISCLI_AUTH', () => {
    const { redis } = services(render(base).yaml);
    expect(redis.command.slice(0, 2)).toEqual(['sh', '-c']);
    const script: string = redis.command[2];
    expect(script.split('\n')[0]).toBe('umask 077');
    expect(script).toContain('< /run/secrets/redis_password');
    expect(script).toMatch(
      /exec redis-server \/tmp\/redis\.conf --appendonly yes --dir \/data --bind 0\.0\.0\.0 --protected-mode no$/,
    );
    expect(redis.healthcheck.test[0]).toBe('CMD-SHELL');
    expect(redis.healthcheck.test[1]).toContain('REDISCLI_AUTH');
    expect(redis.healthcheck.test[1]).toContain('= PONG');
  });

  it('healthchecks: postgres pg_isready with a start period of at least 30s', () => {
    const svc = services(render(base).yaml);
    expect(svc.postgres.healthcheck.test).toEqual([
      'CMD',
      'pg_isready',
      '-h',
      '127.0.0.1',
      '-U',
      'app',
      '-d',
      'app',
    ]);
    expect(Number.parseInt(svc.postgres.healthcheck.start_period, 10)).toBeGreaterThanOrEqual(30);
    expect(svc.app.healthcheck).toBeUndefined();
    expect(svc.proxy.healthcheck.test).toEqual(['CMD', 'traefik', 'healthcheck', '--ping']);
    const caddy = services(render(CASES['caddy-internal']).yaml);
    expect(caddy.proxy.healthcheck.test).toEqual([
      'CMD',
      'wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:2019/config/',
    ]);
  });

  it('app healthcheck from the config, exec form', () => {
    const svc = services(render({ ...base, app: { healthcheck: ['/bin/check', '--quick'] } }).yaml);
    expect(svc.app.healthcheck.test).toEqual(['CMD', '/bin/check', '--quick']);
  });

  it.each(NAMES)('%s: rolling updates, restart policy, endpoint mode and labels', (name) => {
    const model = buildStackModel(Config.parse(CASES[name]));
    const r = renderStack(model);
    const svc = services(r.yaml);
    for (const role of ROLES) {
      const d = svc[role].deploy;
      expect(d.update_config, role).toEqual({
        parallelism: 1,
        delay: '10s',
        failure_action: 'rollback',
        monitor: '10s',
        order: role === 'app' ? 'start-first' : 'stop-first',
      });
      expect(d.rollback_config.parallelism).toBe(1);
      expect(d.restart_policy.condition).toBe('any');
      expect(d.endpoint_mode).toBe(model.endpointMode);
      expect(d.labels['io.cluster-cli.revision']).toBe(r.revisions[role]);
      expect(d.labels['io.cluster-cli.role']).toBe(role);
    }
    expect(svc.proxy.deploy.mode).toBe('global');
    expect(svc.proxy.deploy.replicas).toBeUndefined();
    expect(svc.app.deploy.replicas).toBe(model.app.replicas);
    expect(svc.postgres.deploy.replicas).toBe(1);
    expect(svc.redis.deploy.replicas).toBe(1);
  });

  it('volumes: named data volumes, no Docker socket in any internet-facing proxy', () => {
    const traefik = parse(render(base).yaml);
    expect(Object.keys(traefik.volumes)).toEqual(['proxy_data', 'postgres_data', 'redis_data']);
    expect(traefik.services.postgres.volumes).toEqual([
      { type: 'volume', source: 'postgres_data', target: '/var/lib/postgresql/data' },
      tmpfs('/var/run/postgresql', MIB),
      tmpfs('/tmp', 16 * MIB),
    ]);
    expect(traefik.services.redis.volumes).toEqual([
      { type: 'volume', source: 'redis_data', target: '/data' },
      tmpfs('/tmp', 16 * MIB),
    ]);
    expect(traefik.services.proxy.volumes).toEqual([
      { type: 'volume', source: 'proxy_data', target: '/data' },
      tmpfs('/tmp', 16 * MIB),
    ]);
    const caddy = parse(render(CASES['caddy-internal']).yaml);
    expect(caddy.services.proxy.volumes).toEqual([
      { type: 'volume', source: 'proxy_data', target: '/data' },
      { type: 'volume', source: 'proxy_config', target: '/config' },
      tmpfs('/tmp', 16 * MIB),
    ]);
    expect(Object.keys(caddy.volumes)).toContain('proxy_config');
  });

  it('proxy ports: 80 and 443 in the model publish mode; only 80 when TLS is off', () => {
    const port = (p: number) => ({ target: p, published: p, protocol: 'tcp', mode: 'host' });
    expect(services(render(base).yaml).proxy.ports).toEqual([port(80), port(443)]);
    expect(services(render(CASES['tls-off']).yaml).proxy.ports).toEqual([port(80)]);
    const mesh = render({ ...base, proxy: { publishMode: 'ingress' } });
    expect(services(mesh.yaml).proxy.ports.map((p: Any) => p.mode)).toEqual(['ingress', 'ingress']);
  });

  it('dnsrr cannot publish through the routing mesh', () => {
    const input: ConfigInput = {
      ...base,
      networks: { endpointMode: 'dnsrr' },
      proxy: { publishMode: 'ingress' },
    };
    expect(() => render(input)).toThrow(UserError);
  });

  it('configs are external and content-addressed', () => {
    const a = render(base);
    expect(a.configs.map((x) => x.key)).toEqual(['traefik_yml', 'traefik_dynamic']);
    const [c] = a.configs;
    if (!c) throw new Error('no config');
    const hash = createHash('sha256').update(c.content).digest('hex').slice(0, 12);
    expect(c).toMatchObject({
      key: 'traefik_yml',
      name: `platform_traefik_yml_${hash}`,
      target: '/etc/traefik/traefik.yml',
    });
    const doc = parse(a.yaml);
    expect(doc.configs.traefik_yml).toEqual({ external: true, name: c.name });
    expect(doc.services.proxy.configs).toEqual([
      { source: 'traefik_yml', target: '/etc/traefik/traefik.yml' },
      { source: 'traefik_dynamic', target: '/etc/traefik/dynamic.yml' },
    ]);
    // Same input, same name; a changed file gets a new name (configs are immutable).
    const other = render({ ...base, proxy: { tls: 'off' } }).configs[0];
    expect(other?.name).not.toBe(c.name);
    expect(render(CASES['caddy-internal']).configs.map((x) => x.key)).toEqual(['caddyfile']);
  });

  it('is deterministic and starts with the header comment', () => {
    const a = render(CASES['caddy-acme-server']);
    const b = render(CASES['caddy-acme-server']);
    expect([b.yaml, b.configs, b.revisions]).toEqual([a.yaml, a.configs, a.revisions]);
    expect(a.yaml.startsWith('# Rendered by cluster-cli — do not edit;')).toBe(true);
    expect(parse(a.yaml).version).toBe('3.9');
  });

  it('app env from the config follows the platform variables', () => {
    const env = services(render({ ...base, app: { env: { ZED: '1', ALPHA: 'x' } } }).yaml).app
      .environment;
    expect(Object.keys(env).slice(-2)).toEqual(['ALPHA', 'ZED']);
  });
});

describe('hardening per engine', () => {
  it.each([
    [undefined, '3.9', true],
    ['not-a-version', '3.9', true],
    ['18.09.1', '3.8', false],
    [PRE_2010_ENGINE, '3.8', false],
    ['20.10.0', '3.9', true],
    [OLD_ENGINE, '3.9', true],
    ['20.10.24+dfsg1', '3.9', true],
    ['24.0.7', '3.9', true],
    ['25.0.0', '3.9', true],
    ['25.0.1', '3.12', true],
    [NEW_ENGINE, '3.12', true],
    ['28.2.2', '3.12', true],
  ] as const)(
    'engine %s: format %s, capabilities/ulimits/PIDs limit %s',
    (engine, format, limits) => {
      const p = engineProfile(engine);
      expect(p.composeVersion).toBe(format);
      expect(p.runtimeLimits).toBe(limits);
    },
  );

  it.each([OLD_ENGINE, NEW_ENGINE])(
    'engine %s: every service as tight as it runs (user, read-only, capabilities, PIDs)',
    (engine) => {
      const doc = parse(render(withAgent, engine).yaml);
      const svc = doc.services as Record<HardenedRole, Any>;
      expect(Object.keys(svc)).toEqual(['proxy', 'app', 'postgres', 'redis', 'agent']);
      for (const role of Object.keys(HARDENED) as HardenedRole[]) {
        const want = HARDENED[role];
        const s = svc[role];
        expect(s.user, role).toBe(want.user);
        expect(s.read_only, role).toBe(role === 'app' ? undefined : true);
        expect(s.cap_drop, role).toEqual(want.capDrop);
        expect(s.cap_add, role).toEqual(want.capAdd);
        expect(s.deploy.resources.limits.pids, role).toBe(want.pids);
        // never: a limit above dockerd's own hard limit stops every task from starting
        expect(s.ulimits, role).toBeUndefined();
        // Never a key `docker stack deploy` ignores: security_opt is warned about and
        // dropped, the service-level `tmpfs:` silently dropped (tmpfs mounts instead).
        expect(s.security_opt, role).toBeUndefined();
        expect(s.tmpfs, role).toBeUndefined();
        expect(s.privileged, role).toBeUndefined();
      }
      // The proxy's, the databases' and the agent's writable places besides their volumes.
      const tmpfsOf = (role: HardenedRole) =>
        (svc[role].volumes ?? []).filter((v: Any) => v.type === 'tmpfs').map((v: Any) => v.target);
      expect(tmpfsOf('proxy')).toEqual(['/tmp']);
      expect(tmpfsOf('app')).toEqual([]);
      expect(tmpfsOf('postgres')).toEqual(['/var/run/postgresql', '/tmp']);
      expect(tmpfsOf('redis')).toEqual(['/tmp']);
      expect(tmpfsOf('agent')).toEqual(['/tmp']);
      for (const role of Object.keys(HARDENED) as HardenedRole[]) {
        for (const v of svc[role].volumes ?? []) {
          if (v.type === 'tmpfs') expect(v.tmpfs.size, `${role} ${v.target}`).toBeGreaterThan(0);
        }
      }
    },
  );

  it(`engine ${PRE_2010_ENGINE}: format 3.8, read-only and users kept, no key it would drop`, () => {
    const doc = parse(render(withAgent, PRE_2010_ENGINE).yaml);
    expect(doc.version).toBe('3.8');
    for (const [role, s] of Object.entries(doc.services as Record<HardenedRole, Any>)) {
      expect(s.read_only, role).toBe(role === 'app' ? undefined : true);
      expect(s.user, role).toBe(HARDENED[role as HardenedRole].user);
      expect(s.cap_drop, role).toBeUndefined();
      expect(s.cap_add, role).toBeUndefined();
      expect(s.ulimits, role).toBeUndefined();
      expect(s.deploy.resources.limits.pids, role).toBeUndefined();
    }
    expect(doc.services.postgres.volumes.map((v: Any) => v.target)).toContain(
      '/var/run/postgresql',
    );
  });

  it('no engine renders the 20.10 form (the oldest supported engine)', () => {
    expect(render(withAgent).yaml).toBe(render(withAgent, OLD_ENGINE).yaml);
  });

  it('app: read-only only on request, with a tmpfs at each path it writes', () => {
    const plain = services(render(base).yaml).app;
    expect(plain.read_only).toBeUndefined();
    expect(plain.volumes).toBeUndefined();
    const ro = services(
      render({ ...base, app: { readOnly: true, tmpfs: ['/tmp', '/var/cache/nginx', '/var/run'] } })
        .yaml,
    ).app;
    expect(ro.read_only).toBe(true);
    expect(ro.volumes).toEqual([
      tmpfs('/tmp', 64 * MIB),
      tmpfs('/var/cache/nginx', 64 * MIB),
      tmpfs('/var/run', 64 * MIB),
    ]);
    expect(services(render({ ...base, app: { readOnly: true } }).yaml).app.volumes).toEqual([
      tmpfs('/tmp', 64 * MIB),
    ]);
    // The paths are checked like every other setting.
    for (const bad of ['/', 'tmp', '/a/../b', '/tmp/']) {
      expect(() => Config.parse({ ...base, app: { readOnly: true, tmpfs: [bad] } }), bad).toThrow();
    }
    expect(() => Config.parse({ ...base, app: { tmpfs: ['/tmp', '/tmp'] } })).toThrow();
  });

  it('redis writes only where it can: its config on the /tmp tmpfs, its data in the volume', () => {
    const redis = services(render(base).yaml).redis;
    const script: string = redis.command[2];
    const writable = redis.volumes.map((v: Any) => v.target as string);
    const written = [...script.matchAll(/>\s*(\/[^\s;]+)/g)].map((m) => m[1] as string);
    expect(written).toEqual(['/tmp/redis.conf']);
    for (const path of written) {
      expect(writable.some((w: string) => path.startsWith(`${w}/`))).toBe(true);
    }
    expect(script).toContain('--dir /data');
    expect(writable).toContain('/data');
  });

  it('redis refuses a volume the old root-run redis left, naming the fix', () => {
    const script: string = services(render(base).yaml).redis.command[2];
    const lines = script.split('\n');
    // As written in the file: `$$` is compose's literal `$`.
    expect(lines[1]).toBe(
      'other=$$(find /data -mindepth 1 -maxdepth 1 ! -user "$$(id -u)" | head -n 1)',
    );
    expect(lines[2]).toContain(
      'docker run --rm -u 0 -v platform_redis_data:/data redis:7-alpine chown -R redis:redis /data',
    );
    expect(lines[2]).toMatch(/exit 1; }$/);
  });

  it('hardening changes every revision once; the engine form is part of it', () => {
    const a = render(base, OLD_ENGINE).revisions;
    const b = render(base, PRE_2010_ENGINE).revisions;
    for (const role of ROLES) expect(a[role], role).not.toBe(b[role]);
  });

  it(`the lab's cluster.yaml on engine ${OLD_ENGINE} (snapshot): every service read-only`, async () => {
    const r = render(labInput(), OLD_ENGINE);
    await expect(r.yaml).toMatchFileSnapshot('./__snapshots__/stack-lab-engine-20.10.yml');
    const svc = services(r.yaml);
    for (const role of ROLES) expect(svc[role].read_only, role).toBe(true);
    expect(svc.app.volumes).toEqual([tmpfs('/tmp', 64 * MIB)]);
  });
});

describe.skipIf(!dockerCliAvailable())('docker stack config (docker client, offline)', () => {
  it.each(NAMES)('%s: accepted, and the normalised stack keeps the limits', (name) => {
    const r = dockerStackConfig(render(CASES[name]).yaml);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const svc = services(r.stdout);
    for (const role of ROLES) {
      const res = svc[role].deploy.resources;
      const seed = SEED[role];
      expect(res.limits.cpus, role).toBe(seed.limits.cpus);
      expect(Number(res.limits.memory), role).toBe(BYTES[seed.limits.memory]);
      expect(Number(res.reservations.memory), role).toBe(BYTES[seed.reservations.memory]);
    }
    expect(svc.proxy.deploy.mode).toBe('global');
    expect(svc.proxy.ports.every((p: Any) => p.mode === 'host')).toBe(true);
  });

  it('compose interpolation cannot pull a value from the environment into the stack', () => {
    // The redis scripts use $pw and $REDISCLI_AUTH; unescaped, compose would
    // substitute these from the deploying shell's environment.
    const fake = 'fake-secret-7f3a9c';
    const env = {
      pw: fake,
      REDISCLI_AUTH: fake,
      POSTGRES_PASSWORD: fake,
      REDIS_PASSWORD: fake,
      PASSWORD: fake,
    };
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal compose placeholder is the point
    const greeting = 'costs $5, or ${PASSWORD}';
    const yaml = render({ ...base, app: { env: { GREETING: greeting } } }).yaml;
    const r = dockerStackConfig(yaml, env);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toContain(fake);
    const svc = services(r.stdout);
    expect(svc.app.environment.GREETING).toBe(greeting);
    expect(svc.redis.command[2]).toContain('"$pw"');
    expect(svc.redis.healthcheck.test[1]).toContain('$(redis-cli -h 127.0.0.1 ping)');
  });

  it.each(
    ENGINES.flatMap((engine) => (['traefik', 'caddy'] as const).map((p) => [engine, p] as const)),
  )('engine %s, %s: accepted with the healthcheck cadence intact', (engine, provider) => {
    const r = dockerStackConfig(render(checked({ provider }), engine).yaml);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const doc = parse(r.stdout);
    expect(doc.version).toBe(engine === NEW_ENGINE ? '3.12' : '3.9');
    for (const role of ROLES) {
      const h = doc.services[role].healthcheck;
      if (engine === NEW_ENGINE) {
        expect(h, role).toMatchObject({ interval: '10s', start_interval: '1s' });
        expect(h.retries, role).toBe(RETRIES_AT_10S[role]);
      } else {
        expect(h, role).toMatchObject({ interval: '2s', timeout: '2s' });
        expect(h.start_interval, role).toBeUndefined();
        expect(h.retries, role).toBe(RETRIES_AT_10S[role] * 5);
      }
    }
    expect(seconds(doc.services.postgres.healthcheck.start_period)).toBe(60);
  });

  it('format 3.8 rejects start_interval (why a new engine gets 3.12)', () => {
    const yaml = render(base, NEW_ENGINE).yaml;
    expect(yaml).toContain('version: "3.12"');
    // (without the PIDs limit, which 3.8 rejects as well: see below)
    const r = dockerStackConfig(
      yaml.replace('version: "3.12"', 'version: "3.8"').replace(/^ +pids: \d+\n/gm, ''),
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/start_interval is not allowed/);
  });

  it('rejects an unknown key (the validation is real)', () => {
    const broken = render(base).yaml.replace('    stop_grace_period: 60s', '    stop_grace: 60s');
    const r = dockerStackConfig(broken);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/stop_grace/);
  });

  it.each([PRE_2010_ENGINE, OLD_ENGINE, NEW_ENGINE])(
    'engine %s: the hardened stack is accepted and normalised with every limit intact',
    (engine) => {
      for (const input of [withAgent, checked({ provider: 'traefik' }), labInput()]) {
        const yaml = render(input, engine).yaml;
        const r = dockerStackConfig(yaml);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const out = parse(r.stdout).services as Record<string, Any>;
        const mine = parse(yaml).services as Record<string, Any>;
        for (const [role, s] of Object.entries(mine)) {
          const n = out[role];
          expect(n.user, role).toBe(s.user);
          expect(n.read_only, role).toBe(s.read_only);
          expect(n.cap_drop, role).toEqual(s.cap_drop);
          expect(n.cap_add, role).toEqual(s.cap_add);
          expect(n.ulimits, role).toEqual(s.ulimits);
          expect(n.deploy.resources.limits.pids, role).toBe(s.deploy.resources.limits.pids);
          const mounts = (x: Any) => (x.volumes ?? []).filter((v: Any) => v.type === 'tmpfs');
          expect(mounts(n), role).toEqual(mounts(s));
        }
      }
    },
  );

  it('format 3.8 rejects the PIDs limit (why 20.10 gets 3.9)', () => {
    const yaml = render(base, OLD_ENGINE).yaml;
    expect(yaml).toContain('version: "3.9"');
    const r = dockerStackConfig(yaml.replace('version: "3.9"', 'version: "3.8"'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Additional property pids is not allowed/);
  });
});

describe.skipIf(!docker2010Available())(
  "Debian 12's docker 20.10 client (the lab's; no `stack config`, so `stack deploy` to no daemon)",
  () => {
    it.each([undefined, PRE_2010_ENGINE, OLD_ENGINE, '24.0.7', '25.0.0'])(
      'engine %s: every stack loads with no option ignored',
      (engine) => {
        for (const input of [withAgent, checked({ provider: 'traefik' }), labInput()]) {
          const r = dockerStackLoad(render(input, engine).yaml);
          expect(r.messages).toBe('');
          expect(r.loaded).toBe(true);
        }
      },
    );

    it('the check is real: it reports an ignored option, a 3.8 PIDs limit and format 3.12', () => {
      const yaml = render(base, OLD_ENGINE).yaml;
      const ignored = dockerStackLoad(
        yaml.replace(
          '    read_only: true\n',
          '    read_only: true\n    security_opt: [no-new-privileges]\n',
        ),
      );
      expect(ignored.messages).toMatch(/Ignoring unsupported options: security_opt/);
      const pids = dockerStackLoad(yaml.replace('version: "3.9"', 'version: "3.8"'));
      expect(pids.loaded).toBe(false);
      expect(pids.messages).toMatch(/Additional property pids is not allowed/);
      const newer = dockerStackLoad(render(base, NEW_ENGINE).yaml);
      expect(newer.loaded).toBe(false);
      expect(newer.messages).toMatch(/unsupported Compose file version: 3\.12/);
    });
  },
);

describe('per-service revisions and cluster-owned certificates', () => {
  const cluster: ConfigInput = {
    ...base,
    proxy: { provider: 'caddy', tls: 'acme', dashboard: 'proxy.example.com' },
    ssl: { acme: 'cluster' },
    agent: { image: 'cluster-cli:dev' },
  };
  const live = {
    tlsCert: 'platform_tls_crt_aaaa',
    tlsKey: 'platform_tls_key_aaaa',
    dashboardUsers: 'platform_dashboard_users_bbbb',
  };
  const renderLive = (input: ConfigInput, l: LiveSecrets = live) =>
    renderStack(buildStackModel(Config.parse(input), l));

  it('a change to the app changes only the app revision', () => {
    const a = render(base);
    const b = render({ ...base, app: { replicas: 2 } });
    const differ = Object.keys(a.revisions).filter((k) => a.revisions[k] !== b.revisions[k]);
    expect(differ).toEqual(['app']);
    const c = render({
      ...base,
      postgres: {
        resources: { limits: { memory: '1G', cpus: 1 }, reservations: { memory: '512M' } },
      },
    });
    expect(Object.keys(a.revisions).filter((k) => a.revisions[k] !== c.revisions[k])).toEqual([
      'postgres',
    ]);
  });

  it('a renewed certificate leaves every revision as it was (the agent swaps it in)', () => {
    const a = renderLive(cluster);
    const b = renderLive(cluster, {
      ...live,
      tlsCert: 'platform_tls_crt_cccc',
      tlsKey: 'platform_tls_key_cccc',
    });
    expect(b.revisions).toEqual(a.revisions);
    expect(b.yaml).not.toBe(a.yaml);
    expect(parse(b.yaml).secrets.tls_crt).toEqual({
      external: true,
      name: 'platform_tls_crt_cccc',
    });
  });

  it('the proxy mounts the live secrets under fixed names; the agent runs on managers with the socket', () => {
    const doc = parse(renderLive(cluster).yaml);
    expect(doc.services.proxy.secrets).toEqual([
      { source: 'tls_crt', target: 'tls.crt' },
      { source: 'tls_key', target: 'tls.key' },
      { source: 'dashboard_users', target: 'dashboard_users' },
    ]);
    const agent = doc.services.agent;
    expect(agent.image).toBe('cluster-cli:dev');
    expect(agent.command).toEqual(['agent']);
    expect(agent.deploy.mode).toBe('global');
    expect(agent.deploy.placement.constraints).toEqual(['node.role == manager']);
    expect(agent.networks).toEqual(['ingress', 'data']);
    expect(agent.ports).toBeUndefined();
    expect(agent.volumes).toEqual([
      {
        type: 'bind',
        source: '/var/run/docker.sock',
        target: '/var/run/docker.sock',
        read_only: false,
      },
      tmpfs('/tmp', 16 * MIB),
    ]);
    expect(agent.environment.PGPASSWORD_FILE).toBe('/run/secrets/postgres_password');
    // The proxy never gets the socket.
    expect(JSON.stringify(doc.services.proxy)).not.toContain('docker.sock');
    // Before delivery: no live secrets at all.
    const pending = parse(renderLive(cluster, {}).yaml);
    expect(pending.services.proxy.secrets).toBeUndefined();
    expect(pending.secrets.tls_crt).toBeUndefined();
    // The proxy's own ACME: no agent.
    expect(
      parse(render({ ...cluster, ssl: { acme: 'proxy' } }).yaml).services.agent,
    ).toBeUndefined();
  });

  it('yamlFor: only the named services and what they use', () => {
    const r = renderLive(cluster);
    const doc = parse(r.yamlFor(['app']));
    expect(Object.keys(doc.services)).toEqual(['app']);
    expect(Object.keys(doc.networks).sort()).toEqual(['app', 'data', 'ingress']);
    expect(Object.keys(doc.secrets).sort()).toEqual(['postgres_password', 'redis_password']);
    expect(doc.configs).toEqual({});
    expect(doc.services.app).toEqual(parse(r.yaml).services.app);
  });

  it.skipIf(!dockerCliAvailable())(
    'cluster stack and a partial file pass `docker stack config`',
    () => {
      const r = renderLive(cluster);
      for (const yaml of [r.yaml, r.yamlFor(['proxy']), r.yamlFor(['app', 'agent'])]) {
        const out = dockerStackConfig(yaml);
        expect(out.status, out.stderr).toBe(0);
      }
    },
  );
});
