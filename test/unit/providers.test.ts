import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { hashSync } from 'bcryptjs';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Config, type ConfigInput } from '../../src/config/schema.js';
import { buildStackModel, type LiveSecrets, type StackModel } from '../../src/stack/model.js';
import {
  caddy,
  proxyProvider,
  renderCaddyfile,
  traefik,
  traefikDynamicConfig,
  traefikDynamicYaml,
  traefikStaticConfig,
  traefikStaticYaml,
} from '../../src/stack/providers/index.js';

const base = {
  domain: 'app.example.com',
  email: 'admin@example.com',
  hosts: [{ name: 'node1' }],
} satisfies ConfigInput;

interface Case {
  readonly proxy?: ConfigInput['proxy'];
  readonly ssl?: ConfigInput['ssl'];
  readonly app?: ConfigInput['app'];
  readonly live?: LiveSecrets;
}

function model(c: Case, app: ConfigInput['app'] = {}): StackModel {
  return buildStackModel(
    Config.parse({ ...base, proxy: c.proxy, ssl: c.ssl, app: { ...c.app, ...app } }),
    c.live,
  );
}

const PEBBLE = 'https://pebble.lab.test:14000/dir';
const LIVE = {
  tlsCert: 'platform_tls_crt_0123',
  tlsKey: 'platform_tls_key_0123',
  dashboardUsers: 'platform_dashboard_users_4567',
};
/** Every TLS state the proxies render (see tlsState). */
const TLS_CASES: Record<string, Case> = {
  acme: { proxy: { tls: 'acme' } },
  'acme-server': { proxy: { tls: 'acme' }, ssl: { directory: PEBBLE } },
  internal: { proxy: { tls: 'internal' } },
  off: { proxy: { tls: 'off' } },
  'cluster-pending': {
    proxy: { tls: 'acme', dashboard: 'proxy.example.com' },
    ssl: { acme: 'cluster', directory: PEBBLE },
    app: { domains: ['www.example.com'] },
  },
  cluster: {
    proxy: { tls: 'acme', dashboard: 'proxy.example.com' },
    ssl: { acme: 'cluster', directory: PEBBLE },
    app: { domains: ['www.example.com'] },
    live: LIVE,
  },
};
const TLS_NAMES = Object.keys(TLS_CASES);

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

const TC = (name: string): Case => {
  const c = TLS_CASES[name] as Case;
  return { ...c, proxy: { ...c.proxy, provider: 'traefik' } };
};
const CC = (name: string): Case => {
  const c = TLS_CASES[name] as Case;
  return { ...c, proxy: { ...c.proxy, provider: 'caddy' } };
};

describe('traefik', () => {
  const staticSchema = schemaValidator('traefik-v3.json');
  const dynamicSchema = schemaValidator('traefik-v3-file-provider.json');
  const errors = (v: ValidateFunction) => JSON.stringify(v.errors, null, 2);

  it.each(TLS_NAMES)(
    'static and dynamic config (%s) match the Traefik v3 schemas',
    async (name) => {
      const m = model(TC(name), { port: 3000 });
      const [file, dyn] = traefik.configs(m);
      if (!file || !dyn) throw new Error('no traefik config');
      expect(file.target).toBe('/etc/traefik/traefik.yml');
      expect(dyn.target).toBe('/etc/traefik/dynamic.yml');
      expect(file.content).toBe(traefikStaticYaml(m));
      expect(dyn.content).toBe(traefikDynamicYaml(m));
      const config = parse(file.content);
      expect(config).toEqual(traefikStaticConfig(m));
      expect(staticSchema(config), errors(staticSchema)).toBe(true);
      const dynamic = parse(dyn.content);
      expect(dynamic).toEqual(traefikDynamicConfig(m));
      expect(dynamicSchema(dynamic), errors(dynamicSchema)).toBe(true);
      // Every router uses only entry points the static config defines.
      const entryPoints = Object.keys(config.entryPoints);
      for (const r of Object.values(dynamic.http.routers) as { entryPoints: string[] }[]) {
        for (const ep of r.entryPoints) expect(entryPoints).toContain(ep);
      }
      await expect(file.content).toMatchFileSnapshot(`./__snapshots__/traefik-${name}.yml`);
      await expect(dyn.content).toMatchFileSnapshot(`./__snapshots__/traefik-dynamic-${name}.yml`);
    },
  );

  it('needs no Docker socket: routes come from the file provider', () => {
    for (const name of TLS_NAMES) {
      const m = model(TC(name));
      const c = traefikStaticConfig(m) as Record<string, Record<string, unknown>>;
      expect(c.providers).toEqual({ file: { filename: '/etc/traefik/dynamic.yml', watch: false } });
      expect(JSON.stringify(traefik.service(m).mounts)).not.toContain('docker.sock');
    }
  });

  it("static config: ping, ACME resolver and redirect for the proxy's own ACME", () => {
    const c = traefikStaticConfig(model(TC('acme-server'))) as Record<
      string,
      Record<string, unknown>
    >;
    expect(c.ping).toEqual({ entryPoint: 'traefik' });
    expect(c.api).toEqual({ dashboard: false });
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
          caServer: PEBBLE,
          httpChallenge: { entryPoint: 'web' },
        },
      },
    });
    const off = traefikStaticConfig(model(TC('off'))) as Record<string, Record<string, unknown>>;
    expect(off.entryPoints?.web).toEqual({ address: ':80' });
    expect(off.entryPoints?.websecure).toBeUndefined();
    expect(off.certificatesResolvers).toBeUndefined();
  });

  it('cluster certificates: challenges to the agent, redirect below them, files from secrets, dashboard', () => {
    const m = model(TC('cluster'), { port: 3000 });
    const s = traefikStaticConfig(m) as Record<string, Record<string, unknown>>;
    // No entry-point redirect (it would outrank the challenge route) and no resolver.
    expect(s.entryPoints?.web).toEqual({ address: ':80' });
    expect(s.certificatesResolvers).toBeUndefined();
    expect(s.api).toEqual({ dashboard: true });
    const d = traefikDynamicConfig(m) as {
      http: { routers: Record<string, Record<string, unknown>>; middlewares: unknown };
      tls: unknown;
    };
    expect(d.http.routers['platform-app']).toEqual({
      rule: 'Host(`app.example.com`) || Host(`www.example.com`)',
      entryPoints: ['websecure'],
      service: 'platform-app',
      tls: {},
    });
    expect(d.http.routers['platform-acme-challenge']).toMatchObject({
      rule: 'PathPrefix(`/.well-known/acme-challenge/`)',
      entryPoints: ['web'],
      service: 'platform-agent',
      priority: 10000,
    });
    expect(d.http.routers['platform-https-redirect']).toMatchObject({ priority: 1 });
    expect(d.http.routers['platform-dashboard']).toEqual({
      rule: 'Host(`proxy.example.com`)',
      entryPoints: ['websecure'],
      service: 'api@internal',
      middlewares: ['platform-dashboard-auth'],
      tls: {},
    });
    expect(d.http.middlewares).toMatchObject({
      'platform-dashboard-auth': { basicAuth: { usersFile: '/run/secrets/dashboard_users' } },
    });
    const files = { certFile: '/run/secrets/tls.crt', keyFile: '/run/secrets/tls.key' };
    expect(d.tls).toEqual({
      certificates: [files],
      stores: { default: { defaultCertificate: files } },
    });
  });

  it('before the certificate arrives: the app on HTTP, challenges to the agent, no dashboard', () => {
    const d = traefikDynamicConfig(model(TC('cluster-pending'))) as {
      http: { routers: Record<string, Record<string, unknown>> };
      tls?: unknown;
    };
    expect(d.http.routers['platform-app']?.entryPoints).toEqual(['web']);
    expect(d.http.routers['platform-app']?.tls).toBeUndefined();
    expect(Object.keys(d.http.routers).sort()).toEqual(['platform-acme-challenge', 'platform-app']);
    expect(d.tls).toBeUndefined();
  });

  it('the schemas reject a broken config (the validators are real)', () => {
    const good = traefikStaticConfig(model(TC('acme'))) as Record<string, unknown>;
    expect(staticSchema(good)).toBe(true);
    const numericAddress = structuredClone(good) as { entryPoints: { web: { address: unknown } } };
    numericAddress.entryPoints.web.address = 80;
    expect(staticSchema(numericAddress)).toBe(false);
    expect(staticSchema.errors?.[0]?.instancePath).toBe('/entryPoints/web/address');
    const dyn = traefikDynamicConfig(model(TC('cluster'))) as {
      http: { routers: Record<string, Record<string, unknown>> };
    };
    expect(dynamicSchema(dyn)).toBe(true);
    // httpRouter forbids additional properties: `entrypoint` (singular) is a typo.
    const typo = structuredClone(dyn);
    (typo.http.routers['platform-app'] as Record<string, unknown>).entrypoint = ['web'];
    expect(dynamicSchema(typo)).toBe(false);
    // Priority must be a non-negative integer.
    const negative = structuredClone(dyn);
    (negative.http.routers['platform-app'] as Record<string, unknown>).priority = -1;
    expect(dynamicSchema(negative)).toBe(false);
  });
});

const CADDY = process.env.CLUSTER_CLI_TEST_CADDY ?? '/usr/bin/caddy';
const caddyPresent = existsSync(CADDY);

describe('caddy', () => {
  it.each(TLS_NAMES)('Caddyfile (%s) snapshot', async (name) => {
    const m = model(CC(name), { port: 3000 });
    const [file] = caddy.configs(m);
    expect(file?.target).toBe('/etc/caddy/Caddyfile');
    expect(file?.content).toBe(renderCaddyfile(m));
    await expect(file?.content).toMatchFileSnapshot(`./__snapshots__/caddy-${name}.Caddyfile`);
  });

  it('internal CA: never installs its root into the read-only container (skip_install_trust)', () => {
    for (const name of TLS_NAMES) {
      const text = renderCaddyfile(model(CC(name)));
      expect(text.includes('\tskip_install_trust\n'), name).toBe(name === 'internal');
    }
  });

  it('keeps the admin API on loopback', () => {
    const m = model(CC('acme'));
    expect(proxyProvider('caddy').id).toBe('caddy');
    expect(renderCaddyfile(m)).toContain('\tadmin 127.0.0.1:2019\n');
  });

  it('refuses a value that would break the Caddyfile syntax', () => {
    const m = model(CC('acme-server'));
    const evil = {
      ...m,
      acme: { mode: 'proxy', email: 'a@b.c', directory: 'https://ca.example.com/dir }\n:2019 {' },
    } as const;
    expect(() => renderCaddyfile(evil)).toThrow(/Caddyfile/);
  });
});

describe.skipIf(!caddyPresent)(`caddy adapt --validate (${CADDY})`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-caddy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // What the proxy finds in /run/secrets once the certificate and the admins' file are delivered.
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets);
  spawnSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(secrets, 'tls.key'),
    '-out',
    join(secrets, 'tls.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=app.example.com',
    '-addext',
    'subjectAltName=DNS:app.example.com,DNS:www.example.com,DNS:proxy.example.com',
  ]);
  writeFileSync(
    join(secrets, 'dashboard_users'),
    `admin ${Buffer.from(hashSync('correct horse battery', 4)).toString('base64')}\n`,
  );

  function adapt(content: string, name: string) {
    const file = join(dir, `${name}.Caddyfile`);
    writeFileSync(file, content.replaceAll('/run/secrets/', `${secrets}/`));
    // Provisioning (`--validate`) may create an internal CA: keep it in the tmp dir.
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir };
    const run = (args: string[]) =>
      spawnSync(CADDY, args, { encoding: 'utf8', env, timeout: 30_000 });
    const adapted = run(['adapt', '--config', file, '--adapter', 'caddyfile', '--validate']);
    writeFileSync(file, content);
    const formatted = run(['fmt', file]);
    return { adapted, formatted };
  }

  type Server = { listen: string[]; routes: unknown[]; automatic_https?: { disable?: boolean } };
  const serverOn = (json: { apps: { http: { servers: Record<string, Server> } } }, port: string) =>
    Object.values(json.apps.http.servers).find((s) => s.listen.includes(port));

  it.each(TLS_NAMES)('%s: accepted, routes the domain to app:<port>', (name) => {
    const m = model(CC(name), { port: 3000 });
    const content = renderCaddyfile(m);
    const { adapted, formatted } = adapt(content, name);
    expect(adapted.status, adapted.stderr).toBe(0);
    expect(adapted.stderr).not.toMatch(/not formatted/);
    expect(formatted.stdout).toBe(content);

    const json = JSON.parse(adapted.stdout);
    expect(json.admin).toEqual({ listen: '127.0.0.1:2019' });
    const http = serverOn(json, ':80');
    const https = serverOn(json, ':443');
    const app = '"handler":"reverse_proxy","upstreams":[{"dial":"app:3000"}]';
    const agent = '"handler":"reverse_proxy","upstreams":[{"dial":"agent:8080"}]';
    const policies = json.apps.tls?.automation?.policies ?? [];
    const issuers = policies.flatMap((p: { issuers?: unknown[] }) => p.issuers ?? []);
    if (name === 'off' || name === 'cluster-pending') {
      expect(https).toBeUndefined();
      expect(http?.automatic_https?.disable).toBe(true);
      expect(JSON.stringify(http?.routes)).toContain(app);
      expect(issuers).toEqual([]);
    } else {
      expect(JSON.stringify(https?.routes)).toContain('"host":["app.example.com"');
      expect(JSON.stringify(https?.routes)).toContain(app);
    }
    if (name === 'cluster-pending' || name === 'cluster') {
      const text = JSON.stringify(http?.routes);
      expect(text).toContain('"path":["/.well-known/acme-challenge/*"]');
      expect(text).toContain(agent);
    }
    if (name === 'cluster') {
      expect(JSON.stringify(http?.routes)).toContain(
        '"Location":["https://{http.request.host}{http.request.uri}"]',
      );
      expect(JSON.stringify(http?.routes)).not.toContain(app);
      // The delivered certificate is loaded from the secret files; no ACME issuer at all.
      expect(json.apps.tls.certificates.load_files).toEqual([
        expect.objectContaining({ certificate: `${secrets}/tls.crt`, key: `${secrets}/tls.key` }),
      ]);
      expect(issuers).toEqual([]);
      const dash = JSON.stringify(https?.routes);
      expect(dash).toContain('"host":["proxy.example.com"]');
      expect(dash).toContain('"handler":"authentication"');
      expect(dash).toContain('"username":"admin"');
    }
    if (name === 'internal') {
      expect(issuers).toEqual([{ module: 'internal' }]);
      expect(json.apps.pki.certificate_authorities.local.install_trust).toBe(false);
    }
    if (name === 'acme') {
      expect(issuers).toContainEqual({ email: 'admin@example.com', module: 'acme' });
    }
    if (name === 'acme-server') {
      expect(issuers).toEqual([{ ca: PEBBLE, email: 'admin@example.com', module: 'acme' }]);
    }
  });

  it('caddy rejects a broken Caddyfile (the check is real)', () => {
    const broken = renderCaddyfile(model(CC('acme'))).replace(
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
    const h = proxyProvider(id).service(model({ proxy: { provider: id } })).healthcheck;
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
