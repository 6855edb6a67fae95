import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSetArgs, prepareConfigEdit } from '../../src/cli/config-cmd.js';
import { affectedServices, configChanges } from '../../src/config/diff.js';
import { editConfigText } from '../../src/config/edit.js';
import { KEY_DEFS, keysHelp } from '../../src/config/key-defs.js';
import {
  concreteKeys,
  getValue,
  isSet,
  listKeys,
  resolveKey,
  setValues,
  unsetValues,
  viewKey,
} from '../../src/config/keys.js';
import { parseConfigYaml, validateConfig } from '../../src/config/load.js';
import { type ConfigInput, LETS_ENCRYPT } from '../../src/config/schema.js';
import { UserError } from '../../src/core/errors.js';

/** A cluster.yaml as a user keeps it: comments, flow maps, aligned comments. */
const TEXT = `# yaml-language-server: $schema=https://unpkg.com/cluster-cli/schema/cluster.schema.json
# Staging cluster (kept by hand)
name: staging # prefixes everything
domain: apps.example.com
email: ops@example.com   # who gets the ACME mail
hosts:
  - name: node1 # primary
    address: 203.0.113.10
proxy: { provider: traefik, tls: acme } # the ingress
app:
  image: ghcr.io/acme/web:1.4 # pinned
  replicas: 2

  # plain settings only: secrets go in Docker secrets
  env:
    LOG_LEVEL: info
    DB_PASSWORD: hunter2 # should not be here
postgres:
  resources:
    limits: { memory: 1G, cpus: 1 }
    reservations: { memory: 512M }
`;

const input = () => parseConfigYaml(TEXT) as ConfigInput;
const config = () => validateConfig(input()).config;

/** The message of the UserError `fn` throws. */
function errorOf(fn: () => unknown): { message: string; next?: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    const e = err as UserError;
    return { message: e.message, ...(e.next ? { next: e.next } : {}) };
  }
  throw new Error('expected a UserError');
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

describe('resolveKey', () => {
  it('maps plain keys and patterns to their place in cluster.yaml', () => {
    expect(resolveKey('app.replicas')).toMatchObject({
      key: 'app.replicas',
      path: ['app', 'replicas'],
      services: ['app'],
      secret: false,
    });
    expect(resolveKey('resources.postgres.memory')).toMatchObject({
      path: ['postgres', 'resources', 'limits', 'memory'],
      block: ['postgres', 'resources'],
      services: ['postgres'],
      description: 'memory limit of the postgres service, e.g. 512M or 1G',
    });
    expect(resolveKey('resources.redis.reservation').path).toEqual([
      'redis',
      'resources',
      'reservations',
      'memory',
    ]);
    expect(resolveKey('app.env.LOG_LEVEL')).toMatchObject({
      path: ['app', 'env', 'LOG_LEVEL'],
      services: ['app'],
      secret: false,
    });
    expect(resolveKey('domain').services).toEqual(['proxy', 'app']);
  });

  it.each([
    'DB_PASSWORD',
    'api_token',
    'SECRET_KEY_BASE',
    'SMTP_PASS',
    'GCP_CREDENTIALS',
    'Secret',
  ])('treats app.env.%s as a secret', (name) => {
    expect(resolveKey(`app.env.${name}`).secret).toBe(true);
  });

  it('suggests the closest keys for a typo, one line plus where to look', () => {
    expect(errorOf(() => resolveKey('app.replica'))).toEqual({
      message: 'Unknown key app.replica; did you mean app.replicas?',
      next: 'see every key with: cluster-cli config list (and what each means: cluster-cli config set --help)',
    });
    expect(errorOf(() => resolveKey('domian')).message).toBe(
      'Unknown key domian; did you mean domain?',
    );
    expect(errorOf(() => resolveKey('resources.app.memroy')).message).toBe(
      'Unknown key resources.app.memroy; did you mean resources.app.memory?',
    );
  });

  it("points cluster.yaml's own path at its key, and a group at its keys", () => {
    expect(errorOf(() => resolveKey('app.resources.limits.memory')).message).toBe(
      'Unknown key app.resources.limits.memory; did you mean resources.app.memory?',
    );
    expect(errorOf(() => resolveKey('ssl')).message).toBe(
      'Unknown key ssl; did you mean ssl.acme, ssl.directory, ssl.email, ssl.caRoot or ssl.renewDays?',
    );
    expect(errorOf(() => resolveKey('ssl.renew')).message).toBe(
      'Unknown key ssl.renew; did you mean ssl.renewDays?',
    );
    expect(errorOf(() => resolveKey('replicas')).message).toBe(
      'Unknown key replicas; did you mean app.replicas?',
    );
    expect(errorOf(() => resolveKey('hosts')).message).toBe('Unknown key hosts');
  });

  it('the help lists every key of the registry', () => {
    const help = keysHelp();
    for (const d of KEY_DEFS) expect(help).toContain(`  ${d.key}  `);
    expect(help).toContain(
      'resources.<service>.memory       memory limit of the proxy|app|postgres|redis service',
    );
  });
});

describe('getValue / listKeys', () => {
  it('gives effective values, defaults included', () => {
    const c = config();
    expect(getValue(c, 'app.replicas')).toBe(2);
    expect(getValue(c, 'resources.app.memory')).toBe('512M');
    expect(getValue(c, 'resources.app.cpus')).toBe(0.5);
    expect(getValue(c, 'resources.postgres.memory')).toBe('1G');
    expect(getValue(c, 'ssl.renewDays')).toBe(30);
    expect(getValue(c, 'ssl.email')).toBe('ops@example.com');
    expect(getValue(c, 'ssl.directory')).toBe(LETS_ENCRYPT);
    expect(getValue(c, 'proxy.dashboard')).toBeUndefined();
    expect(getValue(c, 'app.env.NOPE')).toBeUndefined();
    expect(isSet(input(), 'app.replicas')).toBe(true);
    expect(isSet(input(), 'ssl.email')).toBe(false);
  });

  it('lists every key once: services expanded, environment variables as set', () => {
    const keys = concreteKeys(config());
    expect(keys.slice(0, 7)).toEqual([
      'domain',
      'email',
      'app.image',
      'app.replicas',
      'app.domains',
      'app.env.LOG_LEVEL',
      'app.env.DB_PASSWORD',
    ]);
    expect(keys.filter((k) => k.startsWith('resources.'))).toHaveLength(12);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('never shows a secret-looking value', () => {
    const views = listKeys(config(), input());
    expect(JSON.stringify(views)).not.toContain('hunter2');
    expect(views.find((v) => v.key === 'app.env.DB_PASSWORD')).toMatchObject({
      value: '[REDACTED]',
      redacted: true,
      default: false,
    });
    expect(viewKey(config(), input(), 'app.env.LOG_LEVEL')).toMatchObject({
      value: 'info',
      default: false,
    });
    expect(viewKey(config(), input(), 'proxy.dashboard')).toMatchObject({
      value: null,
      default: true,
    });
  });
});

describe('setValues', () => {
  it('returns a new, validated object with typed values; the input is not touched', () => {
    const before = deepFreeze(input());
    const next = setValues(before, [
      ['app.replicas', '3'],
      ['resources.postgres.cpus', '1.5'],
      ['app.domains', 'www.example.com, shop.example.com'],
      ['ssl.renewDays', '20'],
      ['proxy.provider', 'caddy'],
      ['app.env.FEATURE_X', 'on=1'],
    ]);
    expect(next).not.toBe(before);
    expect(next.app?.replicas).toBe(3);
    expect(next.postgres?.resources?.limits.cpus).toBe(1.5);
    expect(next.app?.domains).toEqual(['www.example.com', 'shop.example.com']);
    expect(next.ssl).toEqual({ renewDays: 20 });
    expect(next.proxy).toEqual({ provider: 'caddy', tls: 'acme' });
    expect(next.app?.env).toEqual({ LOG_LEVEL: 'info', DB_PASSWORD: 'hunter2', FEATURE_X: 'on=1' });
    expect(before.app?.replicas).toBe(2);
  });

  it("writes a service's resources whole: the fields not given keep their defaults", () => {
    const next = setValues(input(), [['resources.app.memory', '1G']]);
    expect(next.app?.resources).toEqual({
      limits: { memory: '1G', cpus: 0.5 },
      reservations: { memory: '256M' },
    });
    expect(validateConfig(next).config.app.resources.limits.memory).toBe('1G');
  });

  it.each([
    [[['email', 'nobody']], 'email: must be an email address such as admin@example.com'],
    [[['domain', 'bad_domain']], 'domain: must be a domain name such as app.example.com'],
    [[['resources.app.memory', '12XB']], 'resources.app.memory: must be a size such as 512M or 1G'],
    [[['app.replicas', '-1']], 'app.replicas: must be at least 0'],
    [[['app.replicas', '101']], 'app.replicas: must be at most 100'],
    [[['app.replicas', 'two']], 'app.replicas: must be a whole number'],
    [[['app.replicas', '1.5']], 'app.replicas: must be a whole number'],
    [
      [['resources.redis.cpus', 'lots']],
      'resources.redis.cpus: must be a number of CPUs such as 0.5',
    ],
    [[['resources.redis.cpus', '0']], 'resources.redis.cpus: must be a number of CPUs such as 0.5'],
    [[['proxy.provider', 'nginx']], 'proxy.provider: must be traefik or caddy'],
    [[['ssl.renewDays', '90']], 'ssl.renewDays: must be at most 89'],
    [[['ssl.caRoot', '']], 'ssl.caRoot: must not be empty'],
    [
      [['ssl.directory', 'http://ca.example.com/dir']],
      'ssl.directory: must be an https URL of an ACME directory',
    ],
    [[['app.env.1BAD', 'x']], 'app.env.1BAD: must be an environment variable name'],
    [
      [['app.domains', 'apps.example.com']],
      'app.domains: apps.example.com is listed twice (domain, app.domains, proxy.dashboard)',
    ],
    [
      [
        ['email', 'nobody'],
        ['app.replicas', '-1'],
      ],
      'email: must be an email address such as admin@example.com; app.replicas: must be at least 0',
    ],
    [
      [
        ['app.replicas', '1'],
        ['app.replicas', '2'],
      ],
      'app.replicas is given twice',
    ],
    [[['app.replica', '2']], 'Unknown key app.replica; did you mean app.replicas?'],
  ] as const)('%j → one line: %s', (pairs, message) => {
    const before = deepFreeze(input());
    const e = errorOf(() => setValues(before, pairs));
    expect(e.message).toBe(message);
    expect(e.message).not.toContain('\n');
    expect(before).toEqual(input());
  });
});

describe('unsetValues', () => {
  it('removes keys, and the mappings they leave empty', () => {
    const next = unsetValues(deepFreeze(input()), [
      'app.env.DB_PASSWORD',
      'app.env.LOG_LEVEL',
      'proxy.tls',
      'app.env.NEVER_SET',
    ]);
    expect(next.app).toEqual({ image: 'ghcr.io/acme/web:1.4', replicas: 2 });
    expect(next.proxy).toEqual({ provider: 'traefik' });
  });

  it('puts a resources field back to its default, and drops the block once all of it is', () => {
    const once = unsetValues(input(), ['resources.postgres.memory']);
    expect(once.postgres?.resources).toEqual({
      limits: { memory: '512M', cpus: 1 },
      reservations: { memory: '512M' },
    });
    const all = unsetValues(once, ['resources.postgres.cpus', 'resources.postgres.reservation']);
    expect(all.postgres).toBeUndefined();
  });

  it.each(['domain', 'email'])('refuses the required key %s', (key) => {
    expect(errorOf(() => unsetValues(input(), [key]))).toEqual({
      message: `${key} is required: it cannot be unset`,
      next: `change it instead: cluster-cli config set ${key}=<value>`,
    });
  });
});

describe('configChanges', () => {
  it('lists the keys whose effective value changed, secrets redacted', () => {
    const before = config();
    const after = validateConfig(
      setValues(input(), [
        ['app.replicas', '3'],
        ['resources.app.memory', '1G'],
        ['app.env.DB_PASSWORD', 'correct-horse'],
        ['app.env.API_TOKEN', 'tok'],
        ['email', 'admin@example.com'],
      ]),
    ).config;
    const changes = configChanges(before, after);
    expect(changes).toEqual([
      { key: 'email', before: 'ops@example.com', after: 'admin@example.com', services: ['proxy'] },
      { key: 'app.replicas', before: 2, after: 3, services: ['app'] },
      {
        key: 'app.env.DB_PASSWORD',
        before: '[REDACTED]',
        after: '[REDACTED]',
        services: ['app'],
      },
      { key: 'app.env.API_TOKEN', before: null, after: '[REDACTED]', services: ['app'] },
      { key: 'resources.app.memory', before: '512M', after: '1G', services: ['app'] },
      // ssl.email follows email while unset
      {
        key: 'ssl.email',
        before: 'ops@example.com',
        after: 'admin@example.com',
        services: ['proxy', 'agent'],
      },
    ]);
    expect(JSON.stringify(changes)).not.toMatch(/hunter2|correct-horse|tok"/);
    expect(affectedServices(changes)).toEqual(['proxy', 'app', 'agent']);
    expect(configChanges(before, before)).toEqual([]);
  });

  it('a removed environment variable is a change', () => {
    const after = validateConfig(unsetValues(input(), ['app.env.LOG_LEVEL'])).config;
    expect(configChanges(config(), after)).toEqual([
      { key: 'app.env.LOG_LEVEL', before: 'info', after: null, services: ['app'] },
    ]);
  });
});

describe('comments are kept', () => {
  it('set: only the changed lines change, new keys are appended', () => {
    const next = setValues(input(), [
      ['app.replicas', '3'],
      ['resources.postgres.memory', '2G'],
      ['proxy.tls', 'internal'],
      ['ssl.renewDays', '20'],
    ]);
    expect(editConfigText(TEXT, next)).toBe(
      TEXT.replace('replicas: 2', 'replicas: 3')
        .replace('memory: 1G', 'memory: 2G')
        .replace('tls: acme', 'tls: internal')
        .concat('ssl:\n  renewDays: 20\n'),
    );
  });

  it('unset: the key goes, the rest stays as written', () => {
    const next = unsetValues(input(), ['app.env.LOG_LEVEL']);
    expect(editConfigText(TEXT, next)).toBe(TEXT.replace('    LOG_LEVEL: info\n', ''));
  });
});

describe('parseSetArgs', () => {
  it('takes `key value` and `key=value…`', () => {
    expect(parseSetArgs(['app.replicas', '2'])).toEqual([['app.replicas', '2']]);
    expect(parseSetArgs(['app.replicas', '-1'])).toEqual([['app.replicas', '-1']]);
    expect(parseSetArgs(['app.replicas=2', 'domain=x.example.com'])).toEqual([
      ['app.replicas', '2'],
      ['domain', 'x.example.com'],
    ]);
    expect(parseSetArgs(['app.env.URL=postgres://db/app?ssl=true'])).toEqual([
      ['app.env.URL', 'postgres://db/app?ssl=true'],
    ]);
    expect(parseSetArgs(['app.env.EMPTY='])).toEqual([['app.env.EMPTY', '']]);
  });

  it('refuses words that are not key=value', () => {
    expect(errorOf(() => parseSetArgs(['app.replicas', '3', 'domain=x.example.com']))).toEqual({
      message: 'config set: app.replicas is not key=value',
      next: 'cluster-cli config set app.replicas=3 (or: cluster-cli config set app.replicas 3)',
    });
    expect(errorOf(() => parseSetArgs(['=3'])).message).toBe('config set: =3 is not key=value');
  });
});

describe('prepareConfigEdit', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cluster-cli-keys-'));
    await writeFile(join(dir, 'cluster.yaml'), TEXT);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('renders the new text and the changes, and writes nothing', async () => {
    const edit = await prepareConfigEdit(
      { cwd: dir },
      { config: 'cluster.yaml', pairs: [['app.replicas', '3']] },
    );
    expect(edit.file).toBe(join(dir, 'cluster.yaml'));
    expect(edit.beforeText).toBe(TEXT);
    expect(edit.afterText).toBe(TEXT.replace('replicas: 2', 'replicas: 3'));
    expect(edit.before.app.replicas).toBe(2);
    expect(edit.after.app.replicas).toBe(3);
    expect(edit.changes).toEqual([{ key: 'app.replicas', before: 2, after: 3, services: ['app'] }]);
    expect(edit.warnings).toEqual([]);
    expect(await readFile(join(dir, 'cluster.yaml'), 'utf8')).toBe(TEXT);
  });

  it('a value that changes nothing leaves the text as it is', async () => {
    const edit = await prepareConfigEdit(
      { cwd: dir },
      { config: 'cluster.yaml', pairs: [['app.replicas', '2']] },
    );
    expect(edit.afterText).toBe(TEXT);
    expect(edit.changes).toEqual([]);
  });

  it('unset: a change per key', async () => {
    const edit = await prepareConfigEdit(
      { cwd: dir },
      { config: 'cluster.yaml', keys: ['resources.postgres.memory'] },
    );
    expect(edit.changes).toEqual([
      { key: 'resources.postgres.memory', before: '1G', after: '512M', services: ['postgres'] },
    ]);
  });

  it('warns when a secret-looking variable is written to the file', async () => {
    const edit = await prepareConfigEdit(
      { cwd: dir },
      { config: 'cluster.yaml', pairs: [['app.env.STRIPE_KEY', 'sk_live_x']] },
    );
    expect(edit.warnings.map((w) => w.path)).toEqual(['app.env.STRIPE_KEY']);
    expect(JSON.stringify(edit.changes)).not.toContain('sk_live_x');
  });

  it('backup.*: schedule and retention of an existing setup, cron grammar checked; none without a setup', async () => {
    await expect(
      prepareConfigEdit(
        { cwd: dir },
        { config: 'cluster.yaml', pairs: [['backup.schedule', '0 4 * * *']] },
      ),
    ).rejects.toThrow(/^Backups are not set up in cluster\.yaml/);
    await writeFile(
      join(dir, 'cluster.yaml'),
      `${TEXT}backup:\n  s3: { endpoint: 'https://s3.example.com', bucket: backups }\n  schedule: '0 3 * * *' # nightly\n`,
    );
    const edit = await prepareConfigEdit(
      { cwd: dir },
      {
        config: 'cluster.yaml',
        pairs: [
          ['backup.schedule', '30 2 * * *'],
          ['backup.retention.daily', '14'],
        ],
      },
    );
    expect(edit.changes).toEqual([
      { key: 'backup.schedule', before: '0 3 * * *', after: '30 2 * * *', services: ['backup'] },
      { key: 'backup.retention.daily', before: 7, after: 14, services: ['backup'] },
    ]);
    expect(edit.afterText).toContain("schedule: '30 2 * * *' # nightly");
    await expect(
      prepareConfigEdit(
        { cwd: dir },
        { config: 'cluster.yaml', pairs: [['backup.schedule', '61 3 * * *']] },
      ),
    ).rejects.toThrow('backup.schedule: minute 61 is out of range (0-59)');
    await expect(
      prepareConfigEdit(
        { cwd: dir },
        { config: 'cluster.yaml', pairs: [['backup.retention.weekly', 'many']] },
      ),
    ).rejects.toThrow(/backup\.retention\.weekly: must be a whole number/);
  });

  it('a bad value throws before anything is rendered', async () => {
    await expect(
      prepareConfigEdit({ cwd: dir }, { config: 'cluster.yaml', pairs: [['app.replicas', '-1']] }),
    ).rejects.toThrow(new UserError('app.replicas: must be at least 0'));
    await expect(
      prepareConfigEdit({ cwd: dir }, { config: 'missing.yaml', keys: ['app.replicas'] }),
    ).rejects.toThrow('No cluster description at missing.yaml.');
  });
});
