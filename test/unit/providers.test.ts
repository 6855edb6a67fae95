import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Config, type ConfigInput } from '../../src/config/schema.js';
import { buildStackModel, type StackModel } from '../../src/stack/model.js';
import {
  caddy,
  proxyProvider,
  renderCaddyfile,
  traefik,
  traefikDynamicFromLabels,
  traefikStaticConfig,
  traefikStaticYaml,
} from '../../src/stack/providers/index.js';

const base = {
  domain: 'app.example.com',
  email: 'admin@example.com',
  hosts: [{ name: 'node1' }],
} satisfies ConfigInput;

function model(proxy: ConfigInput['proxy'], app: ConfigInput['app'] = {}): StackModel {
  return buildStackModel(Config.parse({ ...base, proxy, app }));
}

const TLS_CASES = {
  acme: { tls: 'acme' },
  'acme-server': { tls: 'acme', acmeServer: 'https://pebble.lab.test:14000/dir' },
  internal: { tls: 'internal' },
  off: { tls: 'off' },
} as const;
const TLS_NAMES = Object.keys(TLS_CASES) as (keyof typeof TLS_CASES)[];

// ajv-formats is CommonJS: its default export is the plugin (module.exports).
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function schemaValidator(file: string): ValidateFunction {
  const url = new URL(`../../../shared/schemas/${file}`, import.meta.url);
  const schema = JSON.parse(readFileSync(url, 'utf8'));
  // Both schemas declare draft-07, ajv's default dialect.
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  return ajv.compile(schema);
}

describe('traefik', () => {
  const staticSchema = schemaValidator('traefik-v3.json');
  const dynamicSchema = schemaValidator('traefik-v3-file-provider.json');
  const errors = (v: ValidateFunction) => JSON.stringify(v.errors, null, 2);

  it.each(TLS_NAMES)('static config (%s) matches the Traefik v3 schema', async (name) => {
    const m = model({ provider: 'traefik', ...TLS_CASES[name] });
    const [file] = traefik.configs(m);
    if (!file) throw new Error('no traefik config');
    expect(file.target).toBe('/etc/traefik/traefik.yml');
    expect(file.content).toBe(traefikStaticYaml(m));
    const config = parse(file.content);
    expect(config).toEqual(traefikStaticConfig(m));
    expect(staticSchema(config), errors(staticSchema)).toBe(true);
    await expect(file.content).toMatchFileSnapshot(`./__snapshots__/traefik-${name}.yml`);
  });

  it('static config: swarm provider, ping, ACME resolver and redirect', () => {
    const c = traefikStaticConfig(
      model({ provider: 'traefik', tls: 'acme', acmeServer: 'https://pebble.lab.test:14000/dir' }),
    ) as Record<string, Record<string, unknown>>;
    expect(c.providers).toEqual({
      swarm: {
        endpoint: 'unix:///var/run/docker.sock',
        exposedByDefault: false,
        network: 'platform-ingress',
      },
    });
    expect(c.ping).toEqual({ entryPoint: 'traefik' });
    expect(c.api).toEqual({ dashboard: false });
    expect(c.log).toEqual({ level: 'INFO' });
    expect(c.entryPoints).toMatchObject({
      web: {
        address: ':80',
        http: { redirections: { entryPoint: { to: 'websecure', scheme: 'https' } } },
      },
      websecure: { address: ':443', http: { tls: { certResolver: 'letsencrypt' } } },
    });
    expect(c.certificatesResolvers).toEqual({
      letsencrypt: {
        acme: {
          email: 'admin@example.com',
          storage: '/data/acme.json',
          caServer: 'https://pebble.lab.test:14000/dir',
          httpChallenge: { entryPoint: 'web' },
        },
      },
    });
    const off = traefikStaticConfig(model({ provider: 'traefik', tls: 'off' })) as Record<
      string,
      Record<string, unknown>
    >;
    expect(off.entryPoints?.web).toEqual({ address: ':80' });
    expect(off.entryPoints?.websecure).toBeUndefined();
    expect(off.certificatesResolvers).toBeUndefined();
  });

  it('the static schema rejects a broken config (the validator is real)', () => {
    const good = traefikStaticConfig(model({ provider: 'traefik' })) as Record<string, unknown>;
    expect(staticSchema(good)).toBe(true);
    const numericAddress = structuredClone(good) as { entryPoints: { web: { address: unknown } } };
    numericAddress.entryPoints.web.address = 80;
    expect(staticSchema(numericAddress)).toBe(false);
    expect(staticSchema.errors?.[0]?.instancePath).toBe('/entryPoints/web/address');
    // dockerSwarmProvider forbids additional properties: a mis-cased field is caught.
    const typo = structuredClone(good) as { providers: { swarm: Record<string, unknown> } };
    typo.providers.swarm.exposedbydefault = false;
    expect(staticSchema(typo)).toBe(false);
  });

  it('app labels for each TLS mode', () => {
    const labels = (tls: 'acme' | 'internal' | 'off') =>
      traefik.appLabels(model({ provider: 'traefik', tls }, { port: 3000 }));
    const common = {
      'traefik.enable': 'true',
      'traefik.swarm.network': 'platform-ingress',
      'traefik.http.routers.platform-app.rule': 'Host(`app.example.com`)',
      'traefik.http.routers.platform-app.service': 'platform-app',
      'traefik.http.services.platform-app.loadbalancer.server.port': '3000',
    };
    expect(labels('acme')).toEqual({
      ...common,
      'traefik.http.routers.platform-app.entrypoints': 'websecure',
      'traefik.http.routers.platform-app.tls.certresolver': 'letsencrypt',
    });
    expect(labels('internal')).toEqual({
      ...common,
      'traefik.http.routers.platform-app.entrypoints': 'websecure',
      'traefik.http.routers.platform-app.tls': 'true',
    });
    expect(labels('off')).toEqual({
      ...common,
      'traefik.http.routers.platform-app.entrypoints': 'web',
    });
  });

  it('traefikDynamicFromLabels builds the file-provider structure', () => {
    const m = model({ provider: 'traefik', tls: 'acme' }, { port: 3000 });
    expect(traefikDynamicFromLabels(traefik.appLabels(m), { serverHost: 'app' })).toEqual({
      http: {
        routers: {
          'platform-app': {
            rule: 'Host(`app.example.com`)',
            entryPoints: ['websecure'],
            service: 'platform-app',
            tls: { certResolver: 'letsencrypt' },
          },
        },
        services: {
          'platform-app': { loadBalancer: { servers: [{ url: 'http://app:3000' }] } },
        },
      },
    });
    expect(
      traefikDynamicFromLabels({
        'traefik.http.routers.r.tls': 'true',
        'traefik.http.routers.r.priority': '10',
        'traefik.http.routers.r.middlewares': 'a, b',
        'traefik.http.routers.r.tls.certresolver': 'le',
      }),
    ).toEqual({
      http: {
        routers: {
          r: { tls: { certResolver: 'le' }, priority: 10, middlewares: ['a', 'b'] },
        },
      },
    });
  });

  it.each(TLS_NAMES)('dynamic config from the app labels (%s) matches the schema', (name) => {
    const dynamic = traefikDynamicFromLabels(
      traefik.appLabels(model({ provider: 'traefik', ...TLS_CASES[name] })),
    );
    expect(dynamicSchema(dynamic), errors(dynamicSchema)).toBe(true);
    // The router uses only entry points the static config defines.
    const entryPoints = Object.keys(
      traefikStaticConfig(model({ provider: 'traefik', ...TLS_CASES[name] })).entryPoints as object,
    );
    const router = (dynamic as { http: { routers: Record<string, { entryPoints: string[] }> } })
      .http.routers['platform-app'];
    for (const ep of router?.entryPoints ?? ['missing']) expect(entryPoints).toContain(ep);
  });

  it('the dynamic schema rejects broken labels (the validator is real)', () => {
    const labels = traefik.appLabels(model({ provider: 'traefik' }));
    // httpRouter forbids additional properties: `entrypoint` (singular) is a typo.
    const typo = { ...labels, 'traefik.http.routers.platform-app.entrypoint': 'web' };
    expect(dynamicSchema(traefikDynamicFromLabels(typo))).toBe(false);
    // A router needs a rule.
    const { 'traefik.http.routers.platform-app.rule': _rule, ...noRule } = labels;
    expect(dynamicSchema(traefikDynamicFromLabels(noRule))).toBe(false);
    // Priority must be a non-negative integer.
    const negative = { ...labels, 'traefik.http.routers.platform-app.priority': '-1' };
    expect(dynamicSchema(traefikDynamicFromLabels(negative))).toBe(false);
  });
});

const CADDY = process.env.CLUSTER_CLI_TEST_CADDY ?? '/usr/bin/caddy';
const caddyPresent = existsSync(CADDY);

describe('caddy', () => {
  it.each(TLS_NAMES)('Caddyfile (%s) snapshot', async (name) => {
    const m = model({ provider: 'caddy', ...TLS_CASES[name] }, { port: 3000 });
    const [file] = caddy.configs(m);
    expect(file?.target).toBe('/etc/caddy/Caddyfile');
    expect(file?.content).toBe(renderCaddyfile(m));
    await expect(file?.content).toMatchFileSnapshot(`./__snapshots__/caddy-${name}.Caddyfile`);
  });

  it('needs no app labels and keeps the admin API on loopback', () => {
    const m = model({ provider: 'caddy' });
    expect(proxyProvider('caddy').appLabels(m)).toEqual({});
    expect(renderCaddyfile(m)).toContain('\tadmin 127.0.0.1:2019\n');
  });

  it('refuses a value that would break the Caddyfile syntax', () => {
    const m = model({ provider: 'caddy' });
    const evil = { ...m, acmeServer: 'https://ca.example.com/dir }\n:2019 {' };
    expect(() => renderCaddyfile(evil)).toThrow(/Caddyfile/);
  });
});

describe.skipIf(!caddyPresent)(`caddy adapt --validate (${CADDY})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-caddy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function adapt(content: string, name: string) {
    const file = join(dir, `${name}.Caddyfile`);
    writeFileSync(file, content);
    // Provisioning (`--validate`) may create an internal CA: keep it in the tmp dir.
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir };
    const run = (args: string[]) =>
      spawnSync(CADDY, args, { encoding: 'utf8', env, timeout: 30_000 });
    const adapted = run(['adapt', '--config', file, '--adapter', 'caddyfile', '--validate']);
    const formatted = run(['fmt', file]);
    return { adapted, formatted };
  }

  it.each(TLS_NAMES)('%s: accepted, routes the domain to app:<port>', (name) => {
    const m = model({ provider: 'caddy', ...TLS_CASES[name] }, { port: 3000 });
    const content = renderCaddyfile(m);
    const { adapted, formatted } = adapt(content, name);
    expect(adapted.status, adapted.stderr).toBe(0);
    expect(adapted.stderr).not.toMatch(/not formatted/);
    expect(formatted.stdout).toBe(content);

    const json = JSON.parse(adapted.stdout);
    expect(json.admin).toEqual({ listen: '127.0.0.1:2019' });
    const servers = Object.values(json.apps.http.servers) as {
      listen: string[];
      routes: unknown[];
      automatic_https?: { disable?: boolean };
    }[];
    expect(servers).toHaveLength(1);
    const [server] = servers;
    const text = JSON.stringify(server?.routes);
    expect(server?.routes).toHaveLength(1);
    expect(text).toContain('"host":["app.example.com"]');
    expect(text).toContain('"handler":"reverse_proxy","upstreams":[{"dial":"app:3000"}]');

    const policies = json.apps.tls?.automation?.policies ?? [];
    const issuers = policies.flatMap((p: { issuers?: unknown[] }) => p.issuers ?? []);
    if (name === 'off') {
      expect(server?.listen).toEqual([':80']);
      expect(server?.automatic_https?.disable).toBe(true);
      expect(issuers).toEqual([]);
    } else {
      expect(server?.listen).toEqual([':443']);
    }
    if (name === 'internal') expect(issuers).toEqual([{ module: 'internal' }]);
    if (name === 'acme') {
      expect(issuers).toContainEqual({ email: 'admin@example.com', module: 'acme' });
    }
    if (name === 'acme-server') {
      expect(issuers).toEqual([
        { ca: 'https://pebble.lab.test:14000/dir', email: 'admin@example.com', module: 'acme' },
      ]);
    }
  });

  it('caddy rejects a broken Caddyfile (the check is real)', () => {
    const broken = renderCaddyfile(model({ provider: 'caddy' })).replace(
      'reverse_proxy app:80',
      'reverse_proxi app:80',
    );
    const { adapted } = adapt(broken, 'broken');
    expect(adapted.status).not.toBe(0);
    expect(adapted.stderr).toMatch(/unrecognized directive: reverse_proxi/);
  });
});

it.each(['traefik', 'caddy'] as const)(
  '%s healthcheck: test, retries and start period only; the renderer sets the cadence',
  (id) => {
    const h = proxyProvider(id).service(model({ provider: id })).healthcheck;
    expect(Object.keys(h).sort()).toEqual(['retries', 'startPeriod', 'test']);
    expect(h.test[0]).toBe('CMD');
    expect(h.retries).toBe(3);
    expect(h.startPeriod).toBe('10s');
  },
);

it('schemas are where the tests expect them', () => {
  const p = fileURLToPath(new URL('../../../shared/schemas/traefik-v3.json', import.meta.url));
  expect(existsSync(p)).toBe(true);
});
