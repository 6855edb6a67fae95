import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `cluster-cli config …` as a user runs it: the built CLI under plain Node,
 * in a directory holding a cluster.yaml. Built into a directory of its own
 * (under node_modules/, so packages resolve) so it never races
 * test/cli/built.test.ts, which rebuilds dist/.
 */
const root = new URL('../..', import.meta.url).pathname;
const out = join(root, 'node_modules/.cache/cluster-cli-config-test');
const entry = join(out, 'cli/entry.js');

const TEXT = `# Staging cluster (kept by hand)
name: staging # prefixes everything
domain: apps.example.com
email: ops@example.com   # who gets the ACME mail
hosts:
  - name: node1 # primary
    address: 203.0.113.10
app:
  image: ghcr.io/acme/web:1.4 # pinned
  replicas: 2
  env:
    LOG_LEVEL: info
    DB_PASSWORD: hunter2 # should not be here
`;

let cwd: string;

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [entry, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CI: '1' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cluster-cli config (built)', () => {
  beforeAll(() => {
    rmSync(out, { recursive: true, force: true });
    // Type errors are typecheck's and built.test.ts's to report; this needs the emitted JS.
    spawnSync(
      join(root, 'node_modules/.bin/tsc'),
      ['-p', 'tsconfig.build.json', '--outDir', out, '--sourceMap', 'false'],
      { cwd: root },
    );
    expect(existsSync(entry)).toBe(true);
    cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-config-'));
    writeFileSync(join(cwd, 'cluster.yaml'), TEXT);
  }, 120_000);

  afterAll(() => {
    rmSync(cwd, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  it('config get prints the value alone; --json says whether it is the default', () => {
    expect(cli('config', 'get', 'app.replicas')).toEqual({ code: 0, stdout: '2\n', stderr: '' });
    const set = cli('config', 'get', 'app.replicas', '--json');
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({ key: 'app.replicas', value: 2, default: false });
    const dflt = cli('config', 'get', 'resources.app.memory', '--json');
    expect(JSON.parse(dflt.stdout)).toEqual({
      key: 'resources.app.memory',
      value: '512M',
      default: true,
    });
    const unset = cli('config', 'get', 'proxy.dashboard');
    expect(unset).toEqual({ code: 0, stdout: '', stderr: 'proxy.dashboard is not set\n' });
  });

  it('never prints a secret-looking value', () => {
    const text = cli('config', 'get', 'app.env.DB_PASSWORD');
    expect(text.code).toBe(0);
    expect(text.stdout).toBe('[REDACTED]\n');
    expect(text.stderr).toContain('Docker secrets');
    const json = cli('config', 'get', 'app.env.DB_PASSWORD', '--json');
    expect(JSON.parse(json.stdout)).toEqual({
      key: 'app.env.DB_PASSWORD',
      value: '[REDACTED]',
      default: false,
      redacted: true,
    });
    for (const r of [text, json, cli('config', 'list'), cli('config', 'list', '--json')])
      expect(r.stdout + r.stderr).not.toContain('hunter2');
  });

  it('config list --json: every key, its effective value, whether it is the default', () => {
    const r = cli('config', 'list', '--json');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { key: string; value: unknown; default: boolean }[];
    const byKey = Object.fromEntries(rows.map((row) => [row.key, row]));
    expect(byKey.domain).toMatchObject({ value: 'apps.example.com', default: false });
    expect(byKey['app.replicas']).toMatchObject({ value: 2, default: false });
    expect(byKey['app.env.LOG_LEVEL']).toMatchObject({ value: 'info', default: false });
    expect(byKey['resources.postgres.cpus']).toMatchObject({ value: 0.5, default: true });
    expect(byKey['proxy.dashboard']).toMatchObject({ value: null, default: true });
    expect(byKey['ssl.email']).toMatchObject({ value: 'ops@example.com', default: true });
    expect(rows.map((row) => row.key)).not.toContain('app.env.<NAME>');
  });

  it('config list prints a table', () => {
    const r = cli('config', 'list');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^KEY +VALUE +FROM +DESCRIPTION$/);
    expect(r.stdout).toMatch(/\napp\.replicas +2 +cluster\.yaml +number of app containers/);
    expect(r.stdout).toMatch(/\nresources\.app\.memory +512M +default +memory limit of the app/);
  });

  it.each([
    [['email=nobody'], 'email: must be an email address such as admin@example.com'],
    [['domain', 'bad_domain'], 'domain: must be a domain name such as app.example.com'],
    [['resources.app.memory=12XB'], 'resources.app.memory: must be a size such as 512M or 1G'],
    [['app.replicas', '-1'], 'app.replicas: must be at least 0'],
    [['app.replicas=3', 'app.replicas=-1'], 'app.replicas is given twice'],
  ])('config set %j: one line, exit 2, cluster.yaml byte-identical', (args, line) => {
    const before = readFileSync(join(cwd, 'cluster.yaml'));
    const r = cli('config', 'set', ...args, '--yes');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toBe(`error: ${line}`);
    expect(r.stderr).not.toMatch(/\n {4}at /);
    expect(readFileSync(join(cwd, 'cluster.yaml')).equals(before)).toBe(true);
  });

  it('an unknown key names the closest one; with --json as one JSON object', () => {
    const r = cli('config', 'set', 'app.replica=3');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: Unknown key app.replica; did you mean app.replicas?\nnext: see every key with: cluster-cli config list (and what each means: cluster-cli config set --help)\n',
    );
    const j = cli('config', 'get', 'app.replica', '--json');
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stderr)).toMatchObject({
      error: 'Unknown key app.replica; did you mean app.replicas?',
      exitCode: 2,
    });
    expect(readFileSync(join(cwd, 'cluster.yaml'), 'utf8')).toBe(TEXT);
  });

  it('config unset refuses a required key', () => {
    const r = cli('config', 'unset', 'email', '--yes');
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('error: email is required: it cannot be unset');
    expect(readFileSync(join(cwd, 'cluster.yaml'), 'utf8')).toBe(TEXT);
  });

  it('config set --help lists the keys and examples', () => {
    const r = cli('config', 'set', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Keys:\n  domain ');
    expect(r.stdout).toContain('resources.<service>.memory');
    expect(r.stdout).toContain('Examples:\n  $ cluster-cli config set app.replicas 3');
  });
});
