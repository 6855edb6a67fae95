import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/json-schema.js';
import {
  ConfigError,
  configToYaml,
  parseConfigText,
  validateConfig,
} from '../../src/config/load.js';

const minimal = {
  domain: 'apps.example.com',
  email: 'ops@example.com',
  hosts: [{ name: 'node1', address: '203.0.113.10' }],
};

function errorsOf(input: unknown): string {
  try {
    validateConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).diagnostics.map((d) => `${d.path}: ${d.message}`).join('\n');
  }
  throw new Error('expected the config to be rejected');
}

describe('cluster.yaml validation', () => {
  it('fills the seed defaults for a minimal config', () => {
    const { config, warnings } = validateConfig(minimal);
    expect(warnings).toEqual([]);
    expect(config.networks).toEqual({
      endpointMode: 'vip',
      ingress: { subnet: '10.0.10.0/24' },
      app: { subnet: '10.0.20.0/24' },
      data: { subnet: '10.0.30.0/24' },
    });
    expect(config.postgres.resources).toEqual({
      limits: { memory: '512M', cpus: 0.5 },
      reservations: { memory: '256M' },
    });
    expect(config.redis.resources).toEqual({
      limits: { memory: '128M', cpus: 0.2 },
      reservations: { memory: '64M' },
    });
    expect(config.proxy.resources).toEqual({
      limits: { memory: '128M', cpus: 0.2 },
      reservations: { memory: '64M' },
    });
    expect(config.app.resources).toEqual({
      limits: { memory: '512M', cpus: 0.5 },
      reservations: { memory: '256M' },
    });
    expect(config.hosts[0]).toEqual({
      name: 'node1',
      address: '203.0.113.10',
      role: 'manager',
      labels: {},
    });
  });

  it('reports every problem as an exact `path: message` line', () => {
    expect(
      errorsOf({
        domain: 'not a domain',
        email: 'ops@',
        hosts: [{ name: 'node1', port: 70000, role: 'boss', labels: { DB: 'x' } }],
        proxy: { tls: 'sometimes' },
        networks: { data: { subnet: '10.0.30.1/24' } },
        app: {
          resources: { limits: { memory: '1 gig', cpus: -1 }, reservations: { memory: '1G' } },
        },
        bogus: true,
      }),
    ).toBe(
      [
        'domain: must be a domain name such as app.example.com',
        'email: must be an email address such as admin@example.com',
        'hosts[0].port: must be a port number from 1 to 65535',
        'hosts[0].role: must be manager or worker',
        'hosts[0].labels.DB: label key must be lower-case letters, digits, . _ -',
        'proxy.tls: must be acme, internal or off',
        'networks.data.subnet: must be an IPv4 network such as 10.0.10.0/24 (prefix 8 to 30)',
        'app.resources.limits.memory: must be a size such as 512M or 1G',
        'app.resources.limits.cpus: must be a number of CPUs such as 0.5',
        'bogus: unknown key',
      ].join('\n'),
    );
  });

  it('names required fields', () => {
    expect(errorsOf({})).toBe(
      ['domain: is required', 'email: is required', 'hosts: is required'].join('\n'),
    );
  });

  it('applies cross-field rules', () => {
    expect(
      errorsOf({
        ...minimal,
        hosts: [
          { name: 'a', address: '203.0.113.10', role: 'worker', labels: { db: 'primary' } },
          { name: 'a', address: '203.0.113.11', role: 'worker', labels: { db: 'primary' } },
        ],
        networks: { app: { subnet: '10.0.10.0/23' } },
      }),
    ).toBe(
      [
        'hosts[1].name: duplicates hosts[0].name "a"',
        'hosts: needs at least one host with role manager',
        'hosts: 2 hosts are labelled db=primary; PostgreSQL needs exactly one',
        'networks.app.subnet: 10.0.10.0/23 overlaps networks.ingress.subnet (10.0.10.0/24)',
      ].join('\n'),
    );
  });

  it('warns about an even number of managers', () => {
    const { warnings } = validateConfig({
      ...minimal,
      hosts: [
        { name: 'a', address: '203.0.113.10' },
        { name: 'b', address: '203.0.113.11' },
      ],
    });
    expect(warnings).toEqual([
      { path: 'hosts', message: '2 managers tolerate no more failures than 1; use an odd number' },
      {
        path: 'ssl.acme',
        message:
          '2 proxy replicas each run their own ACME (separate certificates, lost with their node); run cluster-cli ssl enable to share one',
      },
    ]);
    // With the cluster owning the certificate (or without ACME) there is nothing to warn about.
    for (const extra of [{ ssl: { acme: 'cluster' } }, { proxy: { tls: 'internal' } }] as const) {
      const v = validateConfig({
        ...minimal,
        ...extra,
        hosts: ['a', 'b', 'c'].map((name, i) => ({ name, address: `203.0.113.${20 + i}` })),
      });
      expect(v.warnings).toEqual([]);
    }
  });

  it('a value of the wrong type is named as such, not as missing', () => {
    expect(() => validateConfig({ ...minimal, app: { replicas: 'x' } })).toThrow(
      'app.replicas: Invalid input: expected number, received string',
    );
    expect(() => validateConfig({ email: minimal.email, hosts: minimal.hosts })).toThrow(
      'domain: is required',
    );
  });

  it('refuses a host name listed twice across domain, app.domains and proxy.dashboard', () => {
    expect(() => validateConfig({ ...minimal, app: { domains: [minimal.domain] } })).toThrow(
      `app.domains: ${minimal.domain} is listed twice`,
    );
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(() => parseConfigText('domain: [unclosed\n', 'x.yaml')).toThrow(
      'x.yaml is not valid:\nline 2: Flow sequence in block collection must be sufficiently indented and end with a ]',
    );
  });

  it('writes YAML that reads back to the same config, with the schema hint for editors', () => {
    const text = configToYaml(minimal);
    expect(text.split('\n')[0]).toBe(
      '# yaml-language-server: $schema=https://unpkg.com/cluster-cli/schema/cluster.schema.json',
    );
    expect(parseConfigText(text).config).toEqual(validateConfig(minimal).config);
  });

  it('ships a JSON Schema that matches the zod schema (run `npm run schema` after changing it)', () => {
    const shipped = JSON.parse(
      readFileSync(new URL('../../schema/cluster.schema.json', import.meta.url), 'utf8'),
    );
    expect(shipped).toEqual(configJsonSchema());
    expect(shipped.required).toEqual(['domain', 'email', 'hosts']);
  });
});
