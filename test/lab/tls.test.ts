import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dockerOf,
  execIn,
  formCluster,
  type Lab,
  type LabHost,
  labCli,
  labHost,
  ROOT,
  readLab,
  runCli,
  samplePs,
  stopNode,
  wipe,
} from './lab.js';

/**
 * HTTPS from a real ACME CA (Debian's pebble on the lab bridge, challenges
 * really validated), admins and `config set` on three managers (the proxy on
 * each) plus a worker holding the database. The certificate is obtained by
 * cluster-cli's agent (its own image, built from this repository), served
 * from Docker secrets by every proxy replica, and survives losing the node
 * that obtained it.
 */

const APP = 'app.lab.test';
const DASH = 'proxy.lab.test';
const PASSWORD = 'correct horse battery staple';

let lab: Lab;
let h: LabHost[];
let d: Docker[];
let cfg: string;
let pebbleRoot: string;

const target = (n: number) => `root@${h[n - 1]?.address}`;
const acme = () => lab.acme;

/** challtestsrv's management API: point a name at lab hosts (its A records add up, so clear first). */
async function pointDns(host: string, addresses: string[]): Promise<void> {
  const post = (path: string, body: unknown) =>
    fetch(`${acme().challtestsrv}${path}`, { method: 'POST', body: JSON.stringify(body) });
  await post('/clear-a', { host });
  if (addresses.length) await post('/add-a', { host, addresses });
}

function getText(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

const orders = () => (readFileSync(acme().log, 'utf8').match(/Added order "/g) ?? []).length;

interface Https {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  verified: boolean;
  error?: string;
}

/** HTTPS to one node's address for a host name, verified against pebble's issuing root only. */
function https(address: string, host: string, auth?: string): Promise<Https> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: address,
        port: 443,
        servername: host,
        headers: {
          host,
          ...(auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}),
        },
        ca: pebbleRoot,
        timeout: 5000,
        path: '/',
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, verified: true }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, verified: false, error: e.message }));
    req.end();
  });
}

function http(address: string, host: string): Promise<{ status: number; location?: string }> {
  return new Promise((resolve) => {
    const req = httpRequest(
      { host: address, port: 80, headers: { host }, path: '/x?y=1', timeout: 5000 },
      (res) => {
        res.resume();
        resolve({
          status: res.statusCode ?? 0,
          ...(res.headers.location ? { location: res.headers.location } : {}),
        });
      },
    );
    req.on('error', () => resolve({ status: 0 }));
    req.end();
  });
}

/** A service's container spec (dockerode types TaskTemplate as container-or-plugin). */
function containerSpec(svc: Docker.Service | undefined): { Env?: string[]; Mounts?: unknown[] } {
  const t = svc?.Spec?.TaskTemplate as { ContainerSpec?: { Env?: string[]; Mounts?: unknown[] } };
  return t?.ContainerSpec ?? {};
}

const serviceVersions = async () =>
  Object.fromEntries(
    (await (d[0] as Docker).listServices()).map((s) => [s.Spec?.Name, s.Version?.Index]),
  );

let cli: ReturnType<typeof labCli>['cli'];
let ok: ReturnType<typeof labCli>['ok'];

beforeAll(async () => {
  lab = readLab();
  ({ cli, ok } = labCli(lab, () => cfg));
  h = [1, 2, 3, 4].map((n) => labHost(lab, `lab${n}`));
  d = h.map(dockerOf);
});

describe('ssl, users and config on three managers with a real ACME CA', () => {
  beforeAll(async () => {
    // pebble's issuing root (new at each pebble start), from its management port (lab CA)
    pebbleRoot = await getText(acme().rootsUrl, readFileSync(acme().caFile, 'utf8'));
    for (const n of [1, 2, 3, 4]) wipe(`lab${n}`);
    await pointDns(APP, []);
    await pointDns(DASH, []);
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-tls-'));
    cfg = join(dir, 'cluster.yaml');
    copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, cfg);
    const text = readFileSync(cfg, 'utf8');
    writeFileSync(
      cfg,
      `${text.replace('  tls: internal\n', `  tls: internal\n  dashboard: ${DASH} # the admins' view\n`)}agent:\n  image: cluster-cli:dev # built by scripts/build-image\n`,
    );
    await formCluster(
      ok,
      target(1),
      [`${target(2)},manager`, `${target(3)},manager`, `${target(4)},worker,db=primary`],
      { domain: APP, joinFlags: ['--force'] },
    );
  }, 600_000);

  afterAll(async () => {
    await pointDns(APP, []);
    await pointDns(DASH, []);
  });

  it('bad input is one line and changes nothing', async () => {
    const before = readFileSync(cfg, 'utf8');
    const cases: [string[], RegExp][] = [
      [
        ['ssl', 'enable', '--acme-ca', 'https://10.77.0.1:1/dir', '--yes'],
        /^error: ACME directory https:\/\/10\.77\.0\.1:1\/dir is unreachable: .*ECONNREFUSED/,
      ],
      [
        ['ssl', 'enable', '--acme-ca', 'http://10.77.0.1:14000/dir', '--yes'],
        /^error: --acme-ca http:\/\/10\.77\.0\.1:14000\/dir is not an https URL/,
      ],
      [
        ['ssl', 'enable', '--email', 'not-an-email', '--yes'],
        /^error: --email not-an-email is not an email address/,
      ],
      [
        ['ssl', 'enable', '--acme-ca', acme().directory, '--yes'],
        /^error: ACME directory .* is not trusted .*--acme-ca-root/,
      ],
      [['config', 'set', 'domain=not a domain', '--yes'], /^error: domain: must be a domain name/],
      [['config', 'set', 'app.replicas=-1', '--yes'], /^error: app\.replicas: /],
      [
        ['config', 'set', 'resources.app.memory=12XB', '--yes'],
        /^error: resources\.app\.memory: must be a size such as 512M or 1G/,
      ],
      [['config', 'set', 'no.such.key=1', '--yes'], /^error: Unknown key no\.such\.key/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n')[0], args.join(' ')).toMatch(want);
      expect(r.stderr.trim().split('\n').length, args.join(' ')).toBeLessThanOrEqual(2);
    }
    const short = await cli(
      ['user', 'create', 'bob', '--email', 'bob@lab.test', '--password-stdin', '--yes'],
      'too short',
    );
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('error: Password too short: 12 characters at least');
    expect(readFileSync(cfg, 'utf8')).toBe(before);
    expect((await (d[0] as Docker).listServices()).map((s) => s.Spec?.Name)).not.toContain(
      'platform_agent',
    );
  });

  it('ssl enable asks no CA while a domain points at a node that runs no proxy', async () => {
    const lab4 = h[3]?.address as string; // the database worker
    await pointDns(APP, [lab4]);
    try {
      const before = orders();
      const r = await cli([
        'ssl',
        'enable',
        '--acme-ca',
        acme().directory,
        '--acme-ca-root',
        acme().caFile,
        '--dns-server',
        acme().dnsServer,
        '--yes',
      ]);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toContain(
        `Not asking the CA: ${APP} resolves to ${lab4}, which runs no proxy of this cluster`,
      );
      expect(orders()).toBe(before);
    } finally {
      await pointDns(APP, []);
    }
  });

  it('user create stores a scrypt hash the login check accepts; the first admin is the app’s', async () => {
    await ok(
      ['user', 'create', 'alice', '--email', 'Alice@Lab.test', '--password-stdin', '--yes'],
      PASSWORD,
    );
    expect((await cli(['user', 'verify', 'alice', '--password-stdin'], PASSWORD)).code).toBe(0);
    const wrong = await cli(
      ['user', 'verify', 'alice@lab.test', '--password-stdin'],
      `${PASSWORD}!`,
    );
    expect(wrong.code).toBe(1);
    const dup = await cli([
      'user',
      'create',
      'bob',
      '--email',
      'ALICE@lab.test',
      '--generate',
      '--yes',
    ]);
    expect(dup.stderr).toContain('error: ALICE@lab.test is already the email of user alice.');
    const list = JSON.parse((await ok(['user', 'list', '--json'])).stdout);
    expect(list).toEqual([
      expect.objectContaining({ name: 'alice', email: 'Alice@Lab.test', disabled: false }),
    ]);
    expect(JSON.stringify(list)).not.toMatch(/scrypt|\$2[aby]\$/);
    expect(readFileSync(cfg, 'utf8')).toContain('adminEmail: Alice@Lab.test');
    const [app] = await (d[0] as Docker).listServices({ filters: { name: ['platform_app'] } });
    expect(containerSpec(app).Env).toContain('ADMIN_EMAIL=Alice@Lab.test');
  });

  let obtainedBy = '';
  let firstFingerprint = '';

  it('ssl enable: one order, HTTP-01 validated by pebble, every manager serves the certificate', async () => {
    const before = orders();
    const log0 = readFileSync(acme().log, 'utf8').length;
    const t0 = Date.now();
    const r = await ok([
      'ssl',
      'enable',
      '--acme-ca',
      acme().directory,
      '--acme-ca-root',
      acme().caFile,
      '--dns-server',
      acme().dnsServer,
      '--yes',
      '--json',
    ]);
    const doc = JSON.parse(r.stdout);
    console.log(
      `[measure] ssl enable, to every replica serving the first certificate: ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(doc.certificate.domains.sort()).toEqual([APP, DASH].sort());
    expect(doc.served.every((s: { current: boolean }) => s.current)).toBe(true);
    // ssl status: issuer, expiry, the serving nodes, the renewal, no error
    const st = JSON.parse((await ok(['ssl', 'status', '--json'])).stdout);
    expect(st.certificate.issuer).toMatch(/Pebble/i);
    expect(new Date(st.certificate.notAfter).getTime()).toBeGreaterThan(Date.now());
    expect(st.certificate.daysLeft).toBeGreaterThan(0);
    expect(st.lastRenewal?.at).toBeDefined();
    expect(st.lastError ?? '').toBe('');
    expect([...new Set(st.served.map((x: { node: string }) => x.node))].sort()).toEqual([
      'lab1',
      'lab2',
      'lab3',
    ]);
    expect(orders()).toBe(before + 1);
    // pebble's VA fetched both tokens for real (no ALWAYS_VALID in the lab)
    const log = readFileSync(acme().log, 'utf8').slice(log0);
    for (const name of [APP, DASH])
      expect(log).toMatch(new RegExp(`Value:"${name.replaceAll('.', '\\.')}"`));
    for (const n of [1, 2, 3]) {
      for (const name of [APP, DASH]) {
        const res = await https(h[n - 1]?.address as string, name);
        expect(res.verified, `lab${n} ${name}: ${res.error}`).toBe(true);
      }
      expect(await http(h[n - 1]?.address as string, APP)).toEqual({
        status: 308,
        location: `https://${APP}/x?y=1`,
      });
    }
    obtainedBy = String(doc.certificate.obtainedBy).split('/')[0] as string;
    firstFingerprint = doc.certificate.fingerprint;
    expect(['lab1', 'lab2', 'lab3']).toContain(obtainedBy);
    // The proxy holds no Docker socket; the agent is the one that does.
    const svcs = await (d[0] as Docker).listServices();
    const mounts = (n: string) =>
      JSON.stringify(containerSpec(svcs.find((s) => s.Spec?.Name === n)).Mounts ?? []);
    expect(mounts('platform_proxy')).not.toContain('docker.sock');
    expect(mounts('platform_agent')).toContain('docker.sock');
    expect(readFileSync(cfg, 'utf8')).toMatch(/ssl:\n\s+acme: cluster/);
  });

  it('dashboard: 401 without credentials, 200 with them, on its own host name over HTTPS', async () => {
    for (const n of [1, 2, 3]) {
      const a = h[n - 1]?.address as string;
      expect((await https(a, DASH)).status).toBe(401);
      expect((await https(a, DASH, `alice:${PASSWORD}`)).status).toBe(200);
      expect((await https(a, DASH, 'alice:wrong password!!')).status).toBe(401);
      expect((await https(a, APP, `alice:${PASSWORD}`)).status).toBe(200); // the app, not the dashboard
    }
  });

  it('the node that obtained it stops: the others still serve it; ssl renew --force orders once and reaches every replica left', async () => {
    const n = Number(obtainedBy.replace('lab', ''));
    const alive = [1, 2, 3].filter((x) => x !== n);
    const stoppedAt = Date.now();
    const restart = stopNode(n);
    try {
      // the CA must reach a live proxy now
      for (const name of [APP, DASH])
        await pointDns(name, [h[(alive[0] as number) - 1]?.address as string]);
      await new Promise((res) => setTimeout(res, 3000));
      for (const x of alive) {
        const res = await https(h[x - 1]?.address as string, APP);
        expect(res.verified, `lab${x}: ${res.error}`).toBe(true);
      }
      console.log(
        `[measure] failover: HTTPS verified on ${alive.map((x) => `lab${x}`).join(' and ')} ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s after ${obtainedBy}'s Docker was stopped`,
      );
      const before = orders();
      const t0 = Date.now();
      const r = await ok(['ssl', 'renew', '--force', '--yes', '--json']);
      console.log(
        `[measure] ssl renew --force with ${obtainedBy} down, to every replica left serving it: ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      const doc = JSON.parse(r.stdout);
      expect(orders()).toBe(before + 1);
      expect(doc.renewed).toBe(true);
      expect(doc.certificate.fingerprint).not.toBe(firstFingerprint);
      const rows = doc.served as { node: string; current: boolean }[];
      expect([...new Set(rows.map((x) => x.node))].sort()).toEqual(alive.map((x) => `lab${x}`));
      expect(rows.every((x) => x.current)).toBe(true);
      const status = JSON.parse((await ok(['ssl', 'status', '--json'])).stdout);
      expect(status.certificate.fingerprint).toBe(doc.certificate.fingerprint);
      expect(status.lastError ?? '').toBe('');
    } finally {
      await restart();
    }
    // Back up, the node's proxy task runs the current spec: the new certificate.
    let rows: { node: string; current: boolean }[] = [];
    for (let i = 0; i < 60; i++) {
      rows = JSON.parse((await ok(['ssl', 'status', '--json'])).stdout).served;
      if (rows.length === 6 && rows.every((x) => x.current)) break;
      await new Promise((res) => setTimeout(res, 2000));
    }
    expect(rows.filter((x) => x.current).map((x) => x.node)).toContain(obtainedBy);
  });

  it('user passwd and delete change who logs in, in the database and on the dashboard', async () => {
    // Every host's processes (they share this machine's PID namespace) while the password changes.
    const sampler = samplePs();
    const r = await ok(['user', 'passwd', 'alice', '--generate', '--yes', '--json']);
    const argv = await sampler.stop();
    const generated = JSON.parse(r.stdout).password as string;
    expect(argv.some((l) => l.includes('docker exec') || l.includes('nc 127.0.0.1 5432'))).toBe(
      true,
    );
    const pgPassword = (
      await execIn(d[3] as Docker, 'platform_postgres', ['cat', '/run/secrets/postgres_password'])
    ).trim();
    expect(pgPassword.length).toBeGreaterThan(10);
    expect(
      argv.filter(
        (l) => l.includes(generated) || l.includes(pgPassword) || /\$2[aby]\$|\$scrypt\$/.test(l),
      ),
    ).toEqual([]);
    expect(generated.length).toBeGreaterThanOrEqual(20);
    expect((await cli(['user', 'verify', 'alice', '--password-stdin'], generated)).code).toBe(0);
    expect((await cli(['user', 'verify', 'alice', '--password-stdin'], PASSWORD)).code).toBe(1);
    const a = h[1]?.address as string;
    expect((await https(a, DASH, `alice:${generated}`)).status).toBe(200);
    expect((await https(a, DASH, `alice:${PASSWORD}`)).status).toBe(401);
    // disabled: no login anywhere; enabled again: back in
    await ok(['user', 'disable', 'alice', '--yes']);
    expect((await cli(['user', 'verify', 'alice', '--password-stdin'], generated)).code).toBe(1);
    expect(JSON.parse((await ok(['user', 'list', '--json'])).stdout)).toEqual([
      expect.objectContaining({ name: 'alice', disabled: true }),
    ]);
    expect((await https(a, DASH, `alice:${generated}`)).status).toBe(401);
    await ok(['user', 'enable', 'alice', '--yes']);
    expect((await cli(['user', 'verify', 'alice', '--password-stdin'], generated)).code).toBe(0);
    expect((await https(a, DASH, `alice:${generated}`)).status).toBe(200);
    await ok(['user', 'delete', 'alice', '--yes']);
    expect((await cli(['user', 'verify', 'alice', '--password-stdin'], generated)).code).toBe(1);
    expect(JSON.parse((await ok(['user', 'list', '--json'])).stdout)).toEqual([]);
    // nobody left: the dashboard refuses everyone rather than opening up
    expect((await https(a, DASH, `alice:${generated}`)).status).toBe(401);
  });

  it('config set app.replicas 2 updates only the app service', async () => {
    const before = await serviceVersions();
    const text = readFileSync(cfg, 'utf8');
    const r = await ok(['config', 'set', 'app.replicas', '2', '--yes', '--json']);
    expect(JSON.parse(r.stdout).changes).toEqual([
      expect.objectContaining({ key: 'app.replicas', before: 1, after: 2 }),
    ]);
    const after = await serviceVersions();
    for (const [name, v] of Object.entries(before)) {
      if (name === 'platform_app') expect(after[name]).not.toBe(v);
      else expect(after[name], name).toBe(v);
    }
    const [app] = await (d[0] as Docker).listServices({ filters: { name: ['platform_app'] } });
    expect(app?.Spec?.Mode?.Replicated?.Replicas).toBe(2);
    // cluster.yaml keeps its comments
    const now = readFileSync(cfg, 'utf8');
    expect(now).toContain("# the admins' view");
    expect(now).not.toBe(text);
    // config get reads cluster.yaml only: no SSH options
    const get = await runCli(['config', 'get', 'app.replicas', '--json', '-c', cfg]);
    expect(JSON.parse(get.stdout).value).toBe(2);
  });

  it('ssl disable goes back to plain HTTP on every proxy', async () => {
    const r = JSON.parse((await ok(['ssl', 'disable', '--yes', '--json'])).stdout);
    expect(r.tls).toBe('off');
    expect(readFileSync(cfg, 'utf8')).toMatch(/tls: off/);
    for (const n of [1, 2, 3]) {
      const res = await http(h[n - 1]?.address as string, APP);
      expect(res.status, `lab${n}`).toBeGreaterThan(0);
      expect(res.status, `lab${n}: no redirect to HTTPS any more`).not.toBe(308);
    }
  });
});
