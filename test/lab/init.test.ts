import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  dockerOf,
  execIn,
  type Lab,
  type LabHost,
  labHost,
  ROOT,
  readLab,
  runCli,
  wipe,
} from './lab.js';

/**
 * `cluster-cli init` for real: the built CLI in its own process, over SSH
 * (host key checked) into a lab host running sshd and dockerd in its own
 * network namespace. Everything is checked through that host's Docker API.
 */

const MiB = 1024 * 1024;
const DOMAIN = 'app.lab.test';
const EMAIL = 'ops@lab.test';

let lab: Lab;
let h1: LabHost;
let h2: LabHost;
let docker1: Docker;
let docker2: Docker;

function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-init-'));
  copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, join(dir, 'cluster.yaml'));
  return dir;
}

function sshArgs(h: LabHost, user = 'root'): string[] {
  return [
    '--host',
    `${user}@${h.address}`,
    '--identity',
    lab.sshKey,
    '--known-hosts',
    lab.knownHosts,
  ];
}

async function swarmState(d: Docker): Promise<string> {
  const info = (await d.info()) as { Swarm: { LocalNodeState: string } };
  return info.Swarm.LocalNodeState;
}

/** Nothing on the host changed: still no swarm, no networks of ours, no secrets. */
async function expectUntouched(d: Docker): Promise<void> {
  expect(await swarmState(d)).toBe('inactive');
  const nets = await d.listNetworks();
  expect(nets.map((n) => n.Name).filter((n) => n.startsWith('platform'))).toEqual([]);
  expect(await d.listContainers({ all: true })).toEqual([]);
}

function httpsGet(
  address: string,
  servername: string,
  ca: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: address,
        port: 443,
        path: '/',
        servername,
        headers: { host: servername },
        ca,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

beforeAll(() => {
  lab = readLab();
  h1 = labHost(lab, 'lab1');
  h2 = labHost(lab, 'lab2');
  docker1 = dockerOf(h1);
  docker2 = dockerOf(h2);
  wipe('all');
});

let initDir: string;

describe('init on a fresh lab host over SSH', () => {
  let dir: string;
  let first: { code: number; stdout: string; stderr: string };
  let summary: { changed: string[]; timingsMs: Record<string, number> };

  beforeAll(async () => {
    dir = workDir();
    initDir = dir;
    first = await runCli([
      'init',
      ...sshArgs(h1),
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--yes',
      '--json',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    if (first.code !== 0)
      throw new Error(`init failed (${first.code}):\n${first.stderr}\n${first.stdout}`);
    summary = JSON.parse(first.stdout);
  }, 600_000);

  it('initialises the swarm and reports what it changed', async () => {
    const info = (await docker1.info()) as {
      Swarm: { LocalNodeState: string; ControlAvailable: boolean; NodeAddr: string };
    };
    expect(info.Swarm.LocalNodeState).toBe('active');
    expect(info.Swarm.ControlAvailable).toBe(true);
    expect(info.Swarm.NodeAddr).toBe(h1.address);
    expect(summary.changed).toContain(`Initialise swarm (advertise ${h1.address})`);
  });

  it('creates the three overlay networks from the seed, data internal', async () => {
    const nets = await docker1.listNetworks({ filters: { driver: ['overlay'] } });
    const byName = Object.fromEntries(nets.map((n) => [n.Name, n]));
    for (const [name, subnet, internal] of [
      ['platform-ingress', '10.0.10.0/24', false],
      ['platform-app', '10.0.20.0/24', false],
      ['platform-data', '10.0.30.0/24', true],
    ] as const) {
      const n = byName[name];
      expect(n, name).toBeDefined();
      expect(n?.IPAM?.Config?.[0]?.Subnet).toBe(subnet);
      expect(n?.Internal).toBe(internal);
      expect(n?.Scope).toBe('swarm');
    }
  });

  it('runs every service with the declared limits, reservations and constraints', async () => {
    const services = await docker1.listServices({
      filters: { label: ['com.docker.stack.namespace=platform'] },
    });
    const spec = (name: string) => {
      const s = services.find((x) => x.Spec?.Name === `platform_${name}`);
      expect(s, name).toBeDefined();
      return s?.Spec?.TaskTemplate as {
        Resources: { Limits: Record<string, number>; Reservations: Record<string, number> };
        Placement: { Constraints: string[] };
      };
    };
    const expectRes = (name: string, mem: number, cpus: number, resMem: number) => {
      const t = spec(name);
      expect(t.Resources.Limits.MemoryBytes).toBe(mem * MiB);
      expect(t.Resources.Limits.NanoCPUs).toBe(cpus * 1e9);
      expect(t.Resources.Reservations.MemoryBytes).toBe(resMem * MiB);
    };
    expectRes('proxy', 128, 0.2, 64);
    expectRes('app', 512, 0.5, 256);
    expectRes('postgres', 512, 0.5, 256);
    expectRes('redis', 128, 0.2, 64);
    expect(spec('proxy').Placement.Constraints).toEqual(['node.role == manager']);
    expect(spec('postgres').Placement.Constraints).toEqual(['node.hostname == lab1']);
    expect(spec('redis').Placement.Constraints).toEqual(['node.hostname == lab1']);

    for (const name of ['proxy', 'app', 'postgres', 'redis']) {
      const tasks = await docker1.listTasks({
        filters: { service: [`platform_${name}`], 'desired-state': ['running'] },
      });
      expect(
        tasks.map((t) => t.Status?.State),
        name,
      ).toEqual(['running']);
    }
    // the limit reaches the container itself, not just the service spec
    const [pg] = await docker1.listContainers({
      filters: { label: ['com.docker.swarm.service.name=platform_postgres'] },
    });
    const inspect = await docker1.getContainer(pg?.Id ?? '').inspect();
    expect(inspect.HostConfig.Memory).toBe(512 * MiB);
    expect(inspect.State.Health?.Status).toBe('healthy');
  });

  it('runs every container hardened: read-only root, capabilities dropped, a PIDs limit, non-root data services', async () => {
    const inspect = async (service: string) => {
      const [c] = await docker1.listContainers({
        filters: { label: [`com.docker.swarm.service.name=platform_${service}`] },
      });
      expect(c, service).toBeDefined();
      return docker1.getContainer(c?.Id ?? '').inspect();
    };
    const caps = async (service: string) =>
      (await execIn(docker1, `platform_${service}`, ['grep', 'CapBnd', '/proc/1/status'])).trim();
    for (const service of ['proxy', 'app', 'postgres', 'redis']) {
      const i = await inspect(service);
      expect(i.HostConfig.ReadonlyRootfs, service).toBe(true);
      expect(i.HostConfig.PidsLimit, service).toBeGreaterThan(0);
      // the root filesystem really refuses writes
      await expect(execIn(docker1, `platform_${service}`, ['touch', '/x'])).rejects.toThrow(
        /Read-only file system/,
      );
    }
    expect((await inspect('postgres')).Config.User).toBe('postgres');
    expect((await inspect('redis')).Config.User).toBe('redis');
    // bounding sets: the proxy keeps only NET_BIND_SERVICE, the data services nothing
    expect(await caps('proxy')).toBe('CapBnd:\t0000000000000400');
    expect(await caps('postgres')).toBe('CapBnd:\t0000000000000000');
    expect(await caps('redis')).toBe('CapBnd:\t0000000000000000');
    // and they still work: healthy (the previous test), answering (the next)
    expect((await inspect('redis')).State.Health?.Status).toBe('healthy');
  });

  it('serves the app through the proxy over HTTPS', async () => {
    const ca = await execIn(docker1, 'platform_proxy', [
      'cat',
      '/data/caddy/pki/authorities/local/root.crt',
    ]);
    let last: unknown;
    for (let i = 0; i < 20; i++) {
      try {
        const r = await httpsGet(h1.address, DOMAIN, ca);
        expect(r.status).toBe(200);
        expect(r.body).toContain('cluster-cli lab app');
        return;
      } catch (err) {
        last = err;
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
    throw last;
  });

  it('keeps the generated secrets in Docker only: never in output, cluster.yaml, the stack file or specs', async () => {
    const secrets = (await docker1.listSecrets()).map((s) => s.Spec?.Name).sort();
    expect(secrets).toEqual(['platform_postgres_password', 'platform_redis_password']);
    const pgPassword = (
      await execIn(docker1, 'platform_postgres', ['cat', '/run/secrets/postgres_password'])
    ).trim();
    const redisPassword = (
      await execIn(docker1, 'platform_redis', ['cat', '/run/secrets/redis_password'])
    ).trim();
    expect(pgPassword.length).toBeGreaterThanOrEqual(24);
    expect(redisPassword.length).toBeGreaterThanOrEqual(24);

    const rendered = await runCli(['stack', 'render', '--config', join(dir, 'cluster.yaml')]);
    expect(rendered.code).toBe(0);
    const stack = parse(rendered.stdout);
    expect(stack.secrets.postgres_password).toEqual({
      external: true,
      name: 'platform_postgres_password',
    });
    const services = JSON.stringify(await docker1.listServices());
    for (const haystack of [
      first.stdout,
      first.stderr,
      readFileSync(join(dir, 'cluster.yaml'), 'utf8'),
      rendered.stdout,
      services,
    ]) {
      expect(haystack).not.toContain(pgPassword);
      expect(haystack).not.toContain(redisPassword);
    }
    // and they work: PostgreSQL accepts its password over TCP, Redis requires its own
    const one = await execIn(docker1, 'platform_postgres', [
      'sh',
      '-c',
      'PGPASSWORD="$(cat /run/secrets/postgres_password)" psql -h 127.0.0.1 -U app -d app -tAc "select 40+2"',
    ]);
    expect(one.trim()).toBe('42');
    const noauth = await execIn(docker1, 'platform_redis', ['redis-cli', 'ping']);
    expect(noauth).toContain('NOAUTH');
  });

  it('writes cluster.yaml with the host, its advertise address and the swarm ID', async () => {
    const cfg = parse(readFileSync(join(dir, 'cluster.yaml'), 'utf8'));
    expect(cfg.hosts).toEqual([
      { name: 'lab1', address: h1.address, user: 'root', advertiseAddr: h1.address },
    ]);
    expect(cfg.domain).toBe(DOMAIN);
    const info = (await docker1.info()) as { Swarm: { Cluster: { ID: string } } };
    expect(cfg.swarmId).toBe(info.Swarm.Cluster.ID);
  });

  it('a second init changes nothing', async () => {
    const before = await docker1.listServices();
    const tasksBefore = (await docker1.listTasks()).map((t) => t.ID).sort();
    const again = await runCli([
      'init',
      ...sshArgs(h1),
      '--yes',
      '--json',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).changed).toEqual([]);
    const after = await docker1.listServices();
    expect(after.map((s) => [s.ID, s.Version?.Index])).toEqual(
      before.map((s) => [s.ID, s.Version?.Index]),
    );
    expect((await docker1.listTasks()).map((t) => t.ID).sort()).toEqual(tasksBefore);
  });

  it('refuses to move PostgreSQL and Redis away from their volumes when labels change', async () => {
    const cfgFile = join(dir, 'cluster.yaml');
    const saved = readFileSync(cfgFile, 'utf8');
    const cfg = parse(saved);
    cfg.hosts[0].labels = { db: 'primary' };
    writeFileSync(cfgFile, stringify(cfg));
    try {
      const r = await runCli(['init', ...sshArgs(h1), '--yes', '--config', cfgFile]);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe(
        'error: platform_postgres runs with placement [node.hostname == lab1]; cluster.yaml now wants [node.labels.db == primary]. Its data volume is local to its node, so moving it would start it empty elsewhere.',
      );
      const node = (await docker1.listNodes())[0];
      expect(node?.Spec?.Labels).toEqual({});
    } finally {
      writeFileSync(cfgFile, saved);
    }
  });
});

describe('init that must not change anything', () => {
  it('refuses a host that manages another swarm than the one cluster.yaml describes', async () => {
    wipe('lab2');
    await docker2.swarmInit({ ListenAddr: '0.0.0.0:2377', AdvertiseAddr: h2.address });
    try {
      const dir = workDir();
      const cfg = parse(readFileSync(join(initDir, 'cluster.yaml'), 'utf8'));
      cfg.hosts[0].address = h2.address;
      delete cfg.hosts[0].advertiseAddr;
      delete cfg.hosts[0].name;
      writeFileSync(join(dir, 'cluster.yaml'), stringify(cfg));
      const r = await runCli([
        'init',
        '--identity',
        lab.sshKey,
        '--known-hosts',
        lab.knownHosts,
        '--yes',
        '--config',
        join(dir, 'cluster.yaml'),
      ]);
      expect(r.code).not.toBe(0);
      expect(r.stderr.split('\n')[0]).toMatch(
        new RegExp(
          `^error: root@${h2.address.replaceAll('.', '\\.')} is a manager of swarm \\w{25}, but this cluster.yaml describes swarm ${cfg.swarmId}\\.$`,
        ),
      );
      expect(await docker2.listNetworks({ filters: { name: ['platform'] } })).toEqual([]);
      expect(await docker2.listServices()).toEqual([]);
    } finally {
      wipe('lab2');
    }
  });

  beforeAll(() => wipe('lab2'));

  it('--dry-run prints every step with its exact command and leaves the host as it was', async () => {
    const dir = workDir();
    const before = readFileSync(join(dir, 'cluster.yaml'), 'utf8');
    const r = await runCli([
      'init',
      ...sshArgs(h2),
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--dry-run',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`$ docker swarm init --advertise-addr ${h2.address}`);
    expect(r.stdout).toContain(
      '$ docker network create --driver overlay --subnet 10.0.30.0/24 --attachable --internal',
    );
    expect(r.stdout).toContain(
      '$ docker secret create --label io.cluster-cli.managed=true platform_postgres_password - < [REDACTED]',
    );
    expect(r.stdout).toContain(
      '$ docker stack deploy --compose-file - --resolve-image never --prune platform',
    );
    expect(r.stdout).toContain('Dry run: nothing was changed');
    await expectUntouched(docker2);
    expect(readFileSync(join(dir, 'cluster.yaml'), 'utf8')).toBe(before);
  });

  it('without --yes and without a terminal it refuses to apply', async () => {
    const dir = workDir();
    const r = await runCli([
      'init',
      ...sshArgs(h2),
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /^error: init would make \d+ change\(s\) on root@10\.77\.0\.12; refusing without confirmation/,
    );
    expect(r.stderr).toContain('next: pass --yes to apply, or --dry-run to preview');
    await expectUntouched(docker2);
  });

  it.each([
    [
      'an invalid domain',
      ['--domain', 'not_a_domain', '--email', EMAIL],
      'error: --domain "not_a_domain": must be a domain name such as apps.example.com',
    ],
    [
      'an invalid email',
      ['--domain', DOMAIN, '--email', 'ops@'],
      'error: --email "ops@": must be an email address such as ops@example.com',
    ],
    [
      'an invalid advertise address',
      ['--domain', DOMAIN, '--email', EMAIL, '--advertise-addr', '10.77.0.300'],
      'error: --advertise-addr "10.77.0.300": must be an IPv4 or IPv6 address of the host',
    ],
    [
      'an advertise address the host does not have',
      ['--domain', DOMAIN, '--email', EMAIL, '--advertise-addr', '192.0.2.1'],
      'error: --advertise-addr 192.0.2.1 is not an address of root@10.77.0.12 (it has 10.77.0.12).',
    ],
    [
      'a missing domain with no terminal',
      ['--email', EMAIL],
      'error: Missing --domain: Domain the platform app answers on (no terminal to ask on).',
    ],
    [
      'an unknown --proxy value',
      ['--domain', DOMAIN, '--email', EMAIL, '--proxy', 'nginx'],
      "error: option '--proxy <provider>' argument 'nginx' is invalid. Allowed choices are traefik, caddy.",
    ],
    [
      'an unknown --tls value',
      ['--domain', DOMAIN, '--email', EMAIL, '--tls', 'maybe'],
      "error: option '--tls <mode>' argument 'maybe' is invalid. Allowed choices are acme, internal, off.",
    ],
  ])('rejects %s with one clear line and leaves the host untouched', async (_what, args, line) => {
    const dir = workDir();
    const before = readFileSync(join(dir, 'cluster.yaml'), 'utf8');
    const r = await runCli([
      'init',
      ...sshArgs(h2),
      ...args,
      '--yes',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toBe(line);
    expect(r.stdout).not.toContain('Apply');
    await expectUntouched(docker2);
    expect(readFileSync(join(dir, 'cluster.yaml'), 'utf8')).toBe(before);
  });

  it('rejects a bad port in --host before connecting', async () => {
    const dir = workDir();
    const r = await runCli([
      'init',
      '--host',
      `root@${h2.address}:99999`,
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--yes',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toMatch(/^error: .*port/i);
    await expectUntouched(docker2);
  });

  it('refuses an unknown host key without --accept-new-host-key, showing its fingerprint', async () => {
    const dir = workDir();
    const empty = join(dir, 'known_hosts');
    writeFileSync(empty, '');
    const fingerprint = execFileSync('ssh-keygen', ['-lf', lab.knownHosts, '-F', h2.address], {
      encoding: 'utf8',
    })
      .split('\n')
      .find((l) => l.includes('SHA256:'))
      ?.match(/SHA256:\S+/)?.[0];
    expect(fingerprint).toBeDefined();
    const args = [
      'init',
      '--host',
      `root@${h2.address}`,
      '--identity',
      lab.sshKey,
      '--known-hosts',
      empty,
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
    ];
    const r = await runCli([...args, '--dry-run', '--config', join(dir, 'cluster.yaml')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toContain('Unknown host key');
    expect(r.stderr).toContain(fingerprint);
    expect(readFileSync(empty, 'utf8')).toBe('');
    await expectUntouched(docker2);

    // accepting it records it, and the next run trusts it without the flag
    const ok = await runCli([
      ...args,
      '--accept-new-host-key',
      '--dry-run',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readFileSync(empty, 'utf8')).toContain(h2.address);
    const again = await runCli([...args, '--dry-run', '--config', join(dir, 'cluster.yaml')]);
    expect(again.code, again.stderr).toBe(0);
    await expectUntouched(docker2);
  });

  it('works as a sudo user (sudo -n) for its probes', async () => {
    const dir = workDir();
    const r = await runCli([
      'init',
      ...sshArgs(h2, lab.sudoUser),
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--dry-run',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Checking ${lab.sudoUser}@${h2.address}`);
    expect(r.stdout).toMatch(/Docker\s+20\.10\.\S+\s+running\s+OK/);
    await expectUntouched(docker2);
  });

  it('runs on the local machine without --host (inside the lab host, as `npx cluster-cli init` would)', async () => {
    const dir = workDir();
    const before = readFileSync(join(dir, 'cluster.yaml'), 'utf8');
    const out = execFileSync(
      'nsenter',
      [
        `--net=/var/run/netns/${h2.netns}`,
        'env',
        `DOCKER_HOST=unix://${h2.dockerSocket}`,
        'CI=true',
        process.execPath,
        `${ROOT}bin/cluster-cli.js`,
        'init',
        '--domain',
        DOMAIN,
        '--email',
        EMAIL,
        '--dry-run',
        '--config',
        join(dir, 'cluster.yaml'),
      ],
      { encoding: 'utf8' },
    );
    expect(out).toContain('Checking local');
    expect(out).toContain(`$ docker swarm init --advertise-addr ${h2.address}`);
    await expectUntouched(docker2);
    expect(readFileSync(join(dir, 'cluster.yaml'), 'utf8')).toBe(before);
  });
});

describe('init when a service never comes up', () => {
  beforeAll(() => wipe('lab2'));

  it('a deploy whose image no node has and no registry gives stops at once, naming the push to run', async () => {
    const dir = workDir();
    const cfg = parse(readFileSync(join(dir, 'cluster.yaml'), 'utf8'));
    cfg.app.image = 'cluster-lab/no-such-image:1';
    writeFileSync(join(dir, 'cluster.yaml'), stringify(cfg));
    const t0 = performance.now();
    const r = await runCli([
      'init',
      ...sshArgs(h2),
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--yes',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe(
      'error: The image of platform_app is not on lab2 and no registry gave it: cluster-lab/no-such-image:1',
    );
    expect(r.stderr).toContain(
      'next: copy the images to the nodes (no registry serves them): cluster-cli images push --yes',
    );
    // long before the deploy timeout (240 s in the lab preset)
    expect(performance.now() - t0).toBeLessThan(120_000);
    // what did come up keeps running (or is still starting); the rest is left to fix and re-run
    let states: (string | undefined)[] = [];
    for (let i = 0; i < 60; i++) {
      const tasks = await docker2.listTasks({
        filters: { service: ['platform_postgres'], 'desired-state': ['running'] },
      });
      states = tasks.map((t) => t.Status?.State);
      if (states.join() === 'running') break;
      await new Promise((res) => setTimeout(res, 1000));
    }
    expect(states).toEqual(['running']);
    wipe('lab2');
  });

  it('stops waiting at --timeout, prints each failing task with its error, and exits non-zero', async () => {
    const dir = workDir();
    const cfg = parse(readFileSync(join(dir, 'cluster.yaml'), 'utf8'));
    // a reservation no node can meet: the task waits for a node forever
    cfg.app.resources = { limits: { memory: '900G', cpus: 0.5 }, reservations: { memory: '800G' } };
    writeFileSync(join(dir, 'cluster.yaml'), stringify(cfg));
    const r = await runCli([
      'init',
      ...sshArgs(h2),
      '--domain',
      DOMAIN,
      '--email',
      EMAIL,
      '--yes',
      '--force',
      '--timeout',
      '20',
      '--config',
      join(dir, 'cluster.yaml'),
    ]);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe(
      'error: Not every service was running its new revision after 20s: platform_app',
    );
    expect(lines[1]).toBe('  platform_app: 0 of 1 running the new revision');
    expect(lines[2]).toMatch(/^ {2}platform_app\.1 on .*: pending: .*insufficient resources/);
    expect(r.stderr).toContain('next: inspect with: docker service ps --no-trunc platform_app');
    const tasks = await docker2.listTasks({
      filters: { service: ['platform_postgres'], 'desired-state': ['running'] },
    });
    expect(tasks.map((t) => t.Status?.State)).toEqual(['running']);
    wipe('lab2');
  });
});

describe('init when the new revision fails its healthcheck', () => {
  beforeAll(() => wipe('lab2'));

  it('exits non-zero naming the service Swarm rolled back; the old revision keeps running', async () => {
    const dir = workDir();
    const cfgFile = join(dir, 'cluster.yaml');
    const args = ['init', ...sshArgs(h2), '--domain', DOMAIN, '--email', EMAIL, '--yes'];
    const first = await runCli([...args, '--config', cfgFile]);
    expect(first.code, first.stderr).toBe(0);
    const before = (await docker2.getService('platform_app').inspect()) as {
      Spec: { TaskTemplate: { ContainerSpec: { Healthcheck?: { Test: string[] } } } };
    };

    const cfg = parse(readFileSync(cfgFile, 'utf8'));
    cfg.app.healthcheck = ['false'];
    writeFileSync(cfgFile, stringify(cfg));
    const r = await runCli([...args, '--config', cfgFile]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toBe(
      'error: The update of platform_app failed and Swarm rolled it back: the previous revision is still running.',
    );
    expect(lines[1]).toMatch(/^ {2}platform_app: rollback (started|completed|paused)/);
    expect(r.stderr).toContain('next: inspect with: docker service ps --no-trunc platform_app');
    // Swarm put the old task spec back (its healthcheck is the one that passed)
    // (the rollback restores the previous spec at once; its tasks follow)
    const svc = (await docker2.getService('platform_app').inspect()) as typeof before & {
      UpdateStatus?: { State: string };
    };
    expect(svc.UpdateStatus?.State).toMatch(/^rollback_/);
    expect(svc.Spec.TaskTemplate.ContainerSpec.Healthcheck?.Test).toEqual(
      before.Spec.TaskTemplate.ContainerSpec.Healthcheck?.Test,
    );
    wipe('lab2');
  });
});
