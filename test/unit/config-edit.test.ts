import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isMap, isScalar, parse, parseDocument, stringify } from 'yaml';
import { editConfigText, updateDocument } from '../../src/config/edit.js';
import {
  ConfigError,
  configToYaml,
  loadConfig,
  SCHEMA_URL,
  saveConfig,
} from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';

const fixtureUrl = new URL('../fixtures/lab.cluster.yaml', import.meta.url);
const readmeUrl = new URL('../../README.md', import.meta.url);

/** The commented example under the README's "## cluster.yaml" heading. */
async function readmeExample(): Promise<string> {
  const readme = await readFile(readmeUrl, 'utf8');
  const section = readme.split('\n## cluster.yaml\n')[1] ?? '';
  const example = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  if (!example) throw new Error('README.md has no ```yaml example under "## cluster.yaml"');
  return example;
}

/** What the text says, as plain data to edit and pass back. */
function dataOf(text: string) {
  return parse(text);
}

const commented = `# cluster.yaml for the staging cluster
# (kept by hand)
name: staging # prefixes everything
domain: apps.example.com

# who gets the ACME mail
email: ops@example.com
hosts:
  # the first manager
  - name: node1 # primary
    address: 203.0.113.10
    port: 22 # ssh
  # a worker
  - name: node2
    address: 203.0.113.11
    role: worker
proxy:
  # traefik or caddy
  provider: traefik
  tls: acme # or internal
deploy: { resolveImage: always, timeout: 300 }
`;

describe('editConfigText', () => {
  it('keeps every comment, blank line and the key order when other values change', () => {
    const next = dataOf(commented);
    next.domain = 'apps.example.org';
    next.hosts[1].address = '203.0.113.12';
    next.proxy.tls = 'internal';
    expect(editConfigText(commented, next)).toBe(`# cluster.yaml for the staging cluster
# (kept by hand)
name: staging # prefixes everything
domain: apps.example.org

# who gets the ACME mail
email: ops@example.com
hosts:
  # the first manager
  - name: node1 # primary
    address: 203.0.113.10
    port: 22 # ssh
  # a worker
  - name: node2
    address: 203.0.113.12
    role: worker
proxy:
  # traefik or caddy
  provider: traefik
  tls: internal # or internal
deploy: { resolveImage: always, timeout: 300 }
`);
  });

  it('keeps the line-end comment and the quoting of a changed scalar', () => {
    const text = 'port: 22 # ssh\nimage: "postgres:16-alpine" # pinned\nuser: \'app\'\n';
    expect(
      editConfigText(text, { port: 2222, image: 'postgres:17-alpine', user: 'postgres' }),
    ).toBe('port: 2222 # ssh\nimage: "postgres:17-alpine" # pinned\nuser: \'postgres\'\n');
  });

  it('appends a new key at the end of its map, in the order of the new value', () => {
    const next = dataOf(commented);
    next.swarmId = '4n1ix1x0ipc3pvh9b2rg2kmgx';
    next.proxy = { acmeServer: 'https://acme.example.com/dir', ...next.proxy, image: 'traefik:v3' };
    next.hosts[0] = { advertiseAddr: '203.0.113.10', ...next.hosts[0] };
    const out = editConfigText(commented, next);
    expect(out).toContain(`  - name: node1 # primary
    address: 203.0.113.10
    port: 22 # ssh
    advertiseAddr: 203.0.113.10
  # a worker
`);
    expect(out).toContain(`proxy:
  # traefik or caddy
  provider: traefik
  tls: acme # or internal
  acmeServer: https://acme.example.com/dir
  image: traefik:v3
deploy: { resolveImage: always, timeout: 300 }
swarmId: 4n1ix1x0ipc3pvh9b2rg2kmgx
`);
    expect(parse(out)).toEqual(next);
  });

  it('deletes a key missing from the new value, with the comments that stood before it', () => {
    const next = dataOf(commented);
    delete next.email;
    delete next.hosts[0].port;
    delete next.proxy.provider;
    expect(editConfigText(commented, next)).toBe(`# cluster.yaml for the staging cluster
# (kept by hand)
name: staging # prefixes everything
domain: apps.example.com
hosts:
  # the first manager
  - name: node1 # primary
    address: 203.0.113.10
  # a worker
  - name: node2
    address: 203.0.113.11
    role: worker
proxy:
  # traefik or caddy
  tls: acme # or internal
deploy: { resolveImage: always, timeout: 300 }
`);
  });

  it('keeps the comment at the top of the file when the first key is deleted', () => {
    // yaml attaches a leading comment with no blank line after it to the first key.
    const next = dataOf(commented);
    delete next.name;
    expect(editConfigText(commented, next)).toMatch(
      /^# cluster\.yaml for the staging cluster\n# \(kept by hand\)\ndomain: apps\.example\.com\n\n# who/,
    );
  });

  it('keeps flow maps and sequences flow', () => {
    const text = [
      'labels: { db: primary, public_ip: "true" }',
      'healthcheck: [ wget, -q, -O, /dev/null, "http://127.0.0.1:80/" ] # exec form',
      'deploy: { resolveImage: always, timeout: 300 }',
      '',
    ].join('\n');
    expect(
      editConfigText(text, {
        labels: { db: 'replica', public_ip: 'true', zone: 'a' },
        healthcheck: ['wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/'],
        deploy: { resolveImage: 'never', timeout: 300, extra: { nested: [1, 2] } },
      }),
    ).toBe(
      [
        'labels: { db: replica, public_ip: "true", zone: a }',
        'healthcheck: [ wget, -q, -O, /dev/null, "http://127.0.0.1:8080/" ] # exec form',
        'deploy: { resolveImage: never, timeout: 300, extra: { nested: [ 1, 2 ] } }',
        '',
      ].join('\n'),
    );
  });

  it('pads `{ }` and `[ ]` as the existing text does', () => {
    const padded = 'a: { x: 1 }\nb: [ 1, 2 ]\n';
    const tight = 'a: {x: 1}\nb: [1, 2]\n';
    expect(editConfigText(padded, { a: { x: 2 }, b: [1, 2, 3] })).toBe(
      'a: { x: 2 }\nb: [ 1, 2, 3 ]\n',
    );
    expect(editConfigText(tight, { a: { x: 2 }, b: [1, 2, 3] })).toBe('a: {x: 2}\nb: [1, 2, 3]\n');
  });

  it('appends a hosts[] entry to a sequence of commented maps, and removes one', () => {
    const next = dataOf(commented);
    next.hosts.push({ name: 'node3', address: '203.0.113.13', labels: { db: 'primary' } });
    const added = editConfigText(commented, next);
    expect(added).toContain(`hosts:
  # the first manager
  - name: node1 # primary
    address: 203.0.113.10
    port: 22 # ssh
  # a worker
  - name: node2
    address: 203.0.113.11
    role: worker
  - name: node3
    address: 203.0.113.13
    labels:
      db: primary
proxy:
`);
    next.hosts.splice(1, 1);
    // Items are matched by index: node2's entry becomes node3, keeping its comment.
    expect(editConfigText(added, next)).toContain(`hosts:
  # the first manager
  - name: node1 # primary
    address: 203.0.113.10
    port: 22 # ssh
  # a worker
  - name: node3
    address: 203.0.113.13
    labels:
      db: primary
proxy:
`);
  });

  it('keeps the comments of a value whose type changes', () => {
    const text = 'port: 22 # ssh\nnetworks: # defaults\n  app: { subnet: 10.0.20.0/24 }\nz: 1\n';
    expect(editConfigText(text, { port: { from: 22, to: 2222 }, networks: 'none', z: 1 })).toBe(
      'port: # ssh\n  from: 22\n  to: 2222\nnetworks: none # defaults\nz: 1\n',
    );
  });

  it('keeps a comment on the line of a key whose value is a block map or sequence', () => {
    // yaml reads it as a comment before the first entry and would move it there.
    const text =
      'networks: # from the reference\n  endpointMode: vip\nhosts:   # machines\n  - a\n';
    expect(editConfigText(text, { networks: { endpointMode: 'dnsrr' }, hosts: ['a', 'b'] })).toBe(
      'networks: # from the reference\n  endpointMode: dnsrr\nhosts:   # machines\n  - a\n  - b\n',
    );
  });

  it('keeps line-end comments aligned and a last comment right after the last entry', () => {
    const text = 'name: x        # stack name\ntimeout: 300   # seconds\n# retries: 3\n';
    expect(editConfigText(text, { name: 'y', timeout: 60 })).toBe(
      'name: y        # stack name\ntimeout: 60   # seconds\n# retries: 3\n',
    );
    const separated = 'name: x\n\n# the end\n';
    expect(editConfigText(separated, { name: 'y' })).toBe('name: y\n\n# the end\n');
  });

  it('keeps the indentation of the existing text', () => {
    const text = 'proxy:\n    provider: caddy\nhosts:\n    - name: a\n      port: 22\n';
    expect(
      editConfigText(text, {
        proxy: { provider: 'caddy', resources: { limits: { memory: '1G' } } },
        hosts: [{ name: 'a', port: 22 }, { name: 'b' }],
      }),
    ).toBe(
      'proxy:\n    provider: caddy\n    resources:\n        limits:\n            memory: 1G\nhosts:\n    - name: a\n      port: 22\n    - name: b\n',
    );
    const twoSpaces = 'hosts:\n- name: a\n';
    expect(editConfigText(twoSpaces, { hosts: [{ name: 'a' }, { name: 'b' }] })).toBe(
      'hosts:\n- name: a\n- name: b\n',
    );
  });

  it('keeps an alias while it stands for the new value, and replaces it when not', () => {
    const text = 'base: &res { memory: 512M }\napp: *res\npostgres: *res\n';
    const res = { memory: '512M' };
    expect(editConfigText(text, { base: res, app: res, postgres: { memory: '1G' } })).toBe(
      'base: &res { memory: 512M }\napp: *res\npostgres:\n  memory: 1G\n',
    );
    // The anchor goes with its key; what pointed at it gets the value itself.
    expect(editConfigText(text, { app: res })).toBe('app:\n  memory: 512M\n');
  });

  it('keeps Windows line endings', () => {
    expect(editConfigText('a: 1 # one\r\nb: 2\r\n', { a: 1, b: 3 })).toBe('a: 1 # one\r\nb: 3\r\n');
  });

  it('returns the text unchanged, byte for byte, when the value is unchanged', async () => {
    const fixture = await readFile(fixtureUrl, 'utf8');
    const readme = await readmeExample();
    for (const text of [commented, fixture, readme]) {
      expect(editConfigText(text, dataOf(text))).toBe(text);
    }
    const next = dataOf(commented);
    next.hosts[0].port = { a: 1 };
    next.proxy = 'caddy';
    next.added = [{ x: 1 }];
    const once = editConfigText(commented, next);
    expect(editConfigText(once, next)).toBe(once);
    expect(editConfigText(once, dataOf(once))).toBe(once);
  });

  it('starts a new document with the header as its first line', () => {
    const value = { name: 'platform', hosts: [{ name: 'node1', labels: {} }] };
    const header = `# yaml-language-server: $schema=${SCHEMA_URL}`;
    const expected = `${header}\nname: platform\nhosts:\n  - name: node1\n    labels: {}\n`;
    expect(editConfigText(undefined, value, header)).toBe(expected);
    expect(editConfigText('', value, header)).toBe(expected);
    expect(editConfigText(' \n', value, header)).toBe(expected);
    expect(editConfigText(undefined, value)).toBe(stringify(value));
  });

  it('does not add the header to a file that has content, even only comments', () => {
    expect(editConfigText('# mine\nname: a\n', { name: 'b' }, '# header')).toBe(
      '# mine\nname: b\n',
    );
    expect(editConfigText('# notes to self\n', { name: 'b' }, '# header')).toBe(
      '# notes to self\n\nname: b\n',
    );
  });

  it('writes an object used twice as two copies, not an anchor and an alias', () => {
    const res = { memory: '512M' };
    expect(editConfigText(undefined, { app: res, postgres: res })).toBe(
      'app:\n  memory: 512M\npostgres:\n  memory: 512M\n',
    );
    expect(editConfigText('app: {}\n', { app: res, postgres: res })).toBe(
      'app: { memory: 512M }\npostgres:\n  memory: 512M\n',
    );
  });

  it('throws the YAML syntax error of the text', () => {
    expect(() => editConfigText('a: [1\n', { a: [1] })).toThrow(/Flow sequence/);
  });
});

describe('updateDocument', () => {
  it('makes toJS() equal the new value, keeping the nodes of unchanged values', () => {
    const doc = parseDocument(commented);
    const before = doc.getIn(['hosts', 0, 'name'], true);
    const proxy = doc.get('proxy', true);
    const next = dataOf(commented);
    next.hosts[0].port = 2200;
    next.proxy.tls = undefined; // an undefined property counts as absent
    next.topology = 'single';
    updateDocument(doc, next);
    expect(doc.toJS()).toEqual({ ...next, proxy: { provider: 'traefik' } });
    expect(doc.getIn(['hosts', 0, 'name'], true)).toBe(before);
    expect(doc.get('proxy', true)).toBe(proxy);
    const port = doc.getIn(['hosts', 0, 'port'], true);
    expect(isScalar(port) && port.comment).toBe(' ssh');
  });

  it('replaces the whole content when its type changes, and fills an empty document', () => {
    const doc = parseDocument('# just a list\n- a\n- b\n');
    updateDocument(doc, { a: 1 });
    expect(isMap(doc.contents)).toBe(true);
    expect(doc.toString()).toBe('# just a list\na: 1\n');
    const empty = parseDocument('');
    updateDocument(empty, { a: [1] });
    expect(empty.toString()).toBe('a:\n  - 1\n');
  });
});

describe('saveConfig', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cluster-cli-config-edit-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fills the lab preset in place, keeping its comments and layout', async () => {
    const fixture = await readFile(fixtureUrl, 'utf8');
    const file = join(dir, 'cluster.yaml');
    await writeFile(file, fixture);
    const input: ConfigInput = {
      ...dataOf(fixture),
      domain: 'lab.test',
      email: 'ops@lab.test',
      hosts: [{ name: 'lab1', address: '10.77.0.11', advertiseAddr: '10.77.0.11' }],
    };
    await saveConfig(file, input);
    const saved = await readFile(file, 'utf8');
    expect(saved).toBe(`${fixture}domain: lab.test
email: ops@lab.test
hosts:
  - name: lab1
    address: 10.77.0.11
    advertiseAddr: 10.77.0.11
`);
    expect(await readdir(dir)).toEqual(['cluster.yaml']);

    // init's second save (the swarm ID) touches one line.
    await saveConfig(file, { ...input, swarmId: '4n1ix1x0ipc3pvh9b2rg2kmgx' });
    expect(await readFile(file, 'utf8')).toBe(`${saved}swarmId: 4n1ix1x0ipc3pvh9b2rg2kmgx\n`);
    expect((await loadConfig(file))?.config.swarmId).toBe('4n1ix1x0ipc3pvh9b2rg2kmgx');
  });

  it("changes only the changed lines of the README's commented example", async () => {
    const example = await readmeExample();
    expect(example).toContain('    port: 22\n');
    expect(example).toContain('deploy: { resolveImage: always, timeout: 300 }\n');
    const file = join(dir, 'cluster.yaml');
    await writeFile(file, example);
    const input = dataOf(example);
    input.hosts[0].port = 2222;
    input.hosts[0].labels.zone = 'a';
    input.deploy.timeout = 600;
    await saveConfig(file, input);
    expect(await readFile(file, 'utf8')).toBe(
      example
        .replace('    port: 22\n', '    port: 2222\n')
        .replace('public_ip: "true" }', 'public_ip: "true", zone: a }')
        .replace('timeout: 300 }', 'timeout: 600 }'),
    );
  });

  it("keeps the file's own $schema key as it is, and adds none", async () => {
    const file = join(dir, 'cluster.yaml');
    const text = `$schema: ./my.schema.json # local copy\ndomain: a.example.com\nemail: ops@example.com\nhosts:\n  - name: node1\n`;
    await writeFile(file, text);
    const input: ConfigInput = { ...dataOf(text), $schema: 'https://elsewhere.example.com/s.json' };
    await saveConfig(file, input);
    expect(await readFile(file, 'utf8')).toBe(text);

    const plain = 'domain: a.example.com\nemail: ops@example.com\nhosts:\n  - name: node1\n';
    await writeFile(file, plain);
    await saveConfig(file, { ...dataOf(plain), $schema: 'https://elsewhere.example.com/s.json' });
    expect(await readFile(file, 'utf8')).toBe(plain);
  });

  it('writes a new file as configToYaml does: the schema hint, then the config', async () => {
    const file = join(dir, 'cluster.yaml');
    const input: ConfigInput = {
      $schema: 'https://elsewhere.example.com/s.json',
      domain: 'apps.example.com',
      email: 'ops@example.com',
      hosts: [{ name: 'node1', address: '203.0.113.10' }],
    };
    await saveConfig(file, input);
    const { $schema: _dropped, ...rest } = input;
    const expected = `# yaml-language-server: $schema=${SCHEMA_URL}\n${stringify(rest, { lineWidth: 0 })}`;
    expect(await readFile(file, 'utf8')).toBe(expected);
    expect(configToYaml(input)).toBe(expected);
  });

  it('refuses an invalid config and a file that is no longer valid YAML, writing nothing', async () => {
    const file = join(dir, 'cluster.yaml');
    await writeFile(file, 'domain: [broken\n');
    const input: ConfigInput = {
      domain: 'apps.example.com',
      email: 'ops@example.com',
      hosts: [{ name: 'node1' }],
    };
    await expect(saveConfig(file, input)).rejects.toThrow(ConfigError);
    await expect(saveConfig(file, { ...input, email: 'nope' })).rejects.toThrow(
      'email: must be an email address',
    );
    expect(await readFile(file, 'utf8')).toBe('domain: [broken\n');
    expect(await readdir(dir)).toEqual(['cluster.yaml']);
  });
});
