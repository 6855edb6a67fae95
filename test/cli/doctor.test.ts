import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ConnectFn } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { parseConfigYaml, validateConfig } from '../../src/config/load.js';
import type { Cmd } from '../../src/core/cmd.js';
import { CommandError, UserError } from '../../src/core/errors.js';
import type { Executor } from '../../src/core/executor.js';
import { buildStackModel } from '../../src/stack/model.js';
import { renderStack } from '../../src/stack/render.js';
import { testCtx } from '../helpers/ctx.js';
import { fakeFirewallCommand } from '../helpers/fake-firewall.js';

/**
 * `cluster-cli doctor` in-process against fake hosts. The swarm (nodes,
 * secrets, configs, services) is one object every manager answers from; each
 * host has its own clock, memory, disk, reachable ports and firewall (kept in
 * memory as test/cli/firewall.test.ts does, so `firewall apply` can bring the
 * nodes in step first). Real clocks, dockerd and iptables are the lab's job.
 */

const SWARM_ID = 'c1uster1d0000000000000000';
const YAML = `# the cluster
domain: apps.example.com
email: ops@example.com
swarmId: ${SWARM_ID}
hosts:
  - name: node1
    address: 203.0.113.11
  - name: node2
    address: 203.0.113.12
  - name: node3
    address: 203.0.113.13
`;

const config = validateConfig(parseConfigYaml(YAML)).config;
const rendered = renderStack(buildStackModel(config), { engine: '27.5.1' });
const CURRENT = rendered.configs.map((c) => c.name);
const STALE = ['platform_traefik_dynamic_0123456789ab', 'platform_traefik_yml_0123456789ab'];
/** An earlier revision the proxy's previous spec still names: kept for rollback. */
const ROLLBACK = 'platform_traefik_yml_111111111111';

interface FakeHost {
  readonly name: string;
  readonly address: string;
  readonly swarmAddr: string;
  engine: string;
  /** Its clock minus the real one. */
  skewMs: number;
  reachable: boolean;
  /** `addr:port` it cannot reach. */
  blocked: Set<string>;
  v4: Map<string, string[]>;
  v6: Map<string, string[]>;
  files: Map<string, string>;
  unit: { enabled: boolean; active: boolean };
}

interface Swarm {
  configs: Map<string, { managed: boolean }>;
  secrets: string[];
}

function host(name: string, n: number): FakeHost {
  return {
    name,
    address: `203.0.113.1${n}`,
    swarmAddr: `10.0.0.${n}`,
    engine: '27.5.1',
    skewMs: 0,
    reachable: true,
    blocked: new Set(),
    v4: new Map<string, string[]>([
      ['INPUT', []],
      ['FORWARD', ['-j DOCKER-USER']],
      ['OUTPUT', []],
      ['DOCKER-USER', ['-j RETURN']],
    ]),
    v6: new Map<string, string[]>([
      ['INPUT', []],
      ['FORWARD', []],
      ['OUTPUT', []],
    ]),
    files: new Map(),
    unit: { enabled: false, active: false },
  };
}

function harness(o: { stale?: boolean } = {}) {
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-doctor-'));
  writeFileSync(join(cwd, 'cluster.yaml'), YAML);
  const hosts = [host('node1', 1), host('node2', 2), host('node3', 3)];
  const swarm: Swarm = {
    secrets: ['platform_postgres_password', 'platform_redis_password', 'unrelated_secret'],
    configs: new Map<string, { managed: boolean }>([
      ...CURRENT.map((c) => [c, { managed: true }] as [string, { managed: boolean }]),
      [ROLLBACK, { managed: true }],
      ...(o.stale === false
        ? []
        : STALE.map((c) => [c, { managed: true }] as [string, { managed: boolean }])),
      // not this stack's, or not cluster-cli's: never stale
      ['other_traefik_yml_0123456789ab', { managed: true }],
      ['platform_my_own_0123456789ab', { managed: false }],
    ]),
  };
  const writes: string[] = [];
  const connect: ConnectFn = async (t) => {
    const me = hosts.find((h) => h.address === t.address);
    if (!me) throw new Error(`no fake host at ${t.address}`);
    if (!me.reachable)
      throw new UserError(`Cannot connect to ${t.address}:22: connection refused.`);
    const label = `root@${me.address}`;
    return fakeExecutor(label, me, hosts, swarm, (c) =>
      writes.push(`${label}: ${c.argv.join(' ')}`),
    );
  };
  const t = testCtx({ cwd, connect });
  return {
    hosts,
    swarm,
    writes,
    setYaml: (text: string) => writeFileSync(join(cwd, 'cluster.yaml'), text),
    run: async (...argv: string[]) => {
      t.reset();
      writes.length = 0;
      return main(argv, t.ctx);
    },
    get stdout() {
      return t.stdout();
    },
    get stderr() {
      return t.stderr();
    },
  };
}

function fakeExecutor(
  label: string,
  me: FakeHost,
  hosts: FakeHost[],
  swarm: Swarm,
  record: (c: Cmd) => void,
): Executor {
  const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
  const lines = (xs: unknown[]) => `${xs.map((x) => JSON.stringify(x)).join('\n')}\n`;
  const id = (h: FakeHost) => `n0de${h.name}`.padEnd(25, '0');
  const services = () =>
    ['proxy', 'app', 'postgres', 'redis'].map((key) => {
      const configs = (names: string[]) => names.map((ConfigName) => ({ ConfigName }));
      return {
        ID: `platform_${key}`,
        Spec: {
          Name: `platform_${key}`,
          Labels: { 'io.cluster-cli.revision': rendered.revisions[key] },
          TaskTemplate: {
            ContainerSpec: key === 'proxy' ? { Configs: configs(CURRENT) } : {},
          },
        },
        ...(key === 'proxy'
          ? {
              PreviousSpec: {
                Name: 'platform_proxy',
                TaskTemplate: {
                  ContainerSpec: { Configs: configs([ROLLBACK, CURRENT[1] as string]) },
                },
              },
            }
          : {}),
      };
    });
  return {
    label,
    address: me.address,
    async run(c: Cmd, opts) {
      const a = c.argv;
      const w = a.join(' ');
      if (!c.readOnly) record(c);
      // ---- the swarm, as every manager sees it
      if (w === 'docker info --format {{json .}}')
        return ok(
          JSON.stringify({
            Swarm: {
              LocalNodeState: 'active',
              ControlAvailable: true,
              NodeID: id(me),
              Cluster: { ID: SWARM_ID },
            },
          }),
        );
      if (w === 'docker node ls --format {{json .}}')
        return ok(lines(hosts.map((h) => ({ ID: id(h), Self: h === me }))));
      if (w.startsWith('docker node inspect'))
        return ok(
          lines(
            hosts
              .filter((h) => a.includes(id(h)))
              .map((h) => ({
                ID: id(h),
                Spec: { Role: 'manager', Availability: 'active', Labels: {} },
                Description: { Hostname: h.name, Engine: { EngineVersion: h.engine } },
                Status: { State: 'ready', Addr: h.swarmAddr },
                ManagerStatus: { Addr: `${h.swarmAddr}:2377`, Reachability: 'reachable' },
              })),
          ),
        );
      if (w === 'docker network ls --filter driver=overlay --format {{.Name}}') return ok('');
      if (w === 'docker secret ls --format {{.Name}}') return ok(`${swarm.secrets.join('\n')}\n`);
      if (w === 'docker config ls --format {{.Name}}')
        return ok(`${[...swarm.configs.keys()].join('\n')}\n`);
      if (w === 'docker config ls --filter label=io.cluster-cli.managed=true --format {{.Name}}')
        return ok(
          `${[...swarm.configs]
            .filter(([, v]) => v.managed)
            .map(([k]) => k)
            .join('\n')}\n`,
        );
      if (
        w ===
        'docker service ls --filter label=com.docker.stack.namespace=platform --format {{json .}}'
      )
        return ok(lines(services().map((s) => ({ Name: s.Spec.Name }))));
      if (w === 'docker service ls --format {{.ID}}')
        return ok(
          `${services()
            .map((s) => s.ID)
            .join('\n')}\n`,
        );
      if (w.startsWith('docker service inspect --format {{json .}}'))
        return ok(lines(services().filter((s) => a.includes(s.ID))));
      if (a[0] === 'docker' && a[1] === 'config' && a[2] === 'rm') {
        const name = a[3] as string;
        const used = services().some((s) =>
          (s.Spec.TaskTemplate.ContainerSpec.Configs ?? []).some((x) => x.ConfigName === name),
        );
        if (used || !swarm.configs.has(name)) {
          const err = `Error response from daemon: config '${name}' is in use or not found`;
          if (opts?.allowFailure) return { stdout: '', stderr: err, exitCode: 1 };
          throw new CommandError(label, a, 1, err);
        }
        swarm.configs.delete(name);
        return ok(`${name}\n`);
      }
      // ---- the host itself
      if (w === 'date -u +%s.%N') return ok(`${((Date.now() + me.skewMs) / 1000).toFixed(9)}\n`);
      if (w === 'cat /proc/meminfo')
        return ok(
          'MemTotal:        4026000 kB\nMemFree:  1000000 kB\nMemAvailable:    3000000 kB\n',
        );
      if (w === 'df -Pk /var/lib')
        return ok(
          'Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/sda1         40000000 10000000  30000000      25% /\n',
        );
      if (a[0] === 'sh' && a[2]?.includes('/dev/tcp'))
        return ok(
          a
            .slice(5)
            .map((x) => `${x} ${me.blocked.has(x) ? 'timeout' : 'ok'}`)
            .join('\n'),
        );
      // ---- its firewall (as in test/cli/firewall.test.ts)
      if (w === 'test -e /proc/net/if_inet6' || w === 'test -d /run/systemd/system') return ok();
      const fw = fakeFirewallCommand(me, c);
      if (fw) return fw;
      throw new Error(`fake host ${label}: unexpected command: ${w}`);
    },
    stream: () => Promise.reject(new Error('no streams')),
    close: async () => {},
  };
}

interface Json {
  verdict: string;
  cluster: string;
  checks: { id: string; verdict: string; detail: string; next?: string }[];
}
const verdicts = (j: Json) => Object.fromEntries(j.checks.map((c) => [c.id, c.verdict]));

describe('cluster-cli doctor', () => {
  it('everything in step (firewall applied, no stale config): every check ok, exit 0, read-only', async () => {
    const t = harness({ stale: false });
    expect(await t.run('firewall', 'apply', '--yes')).toBe(0);
    expect(await t.run('doctor')).toBe(0);
    expect(t.writes).toEqual([]);
    expect(t.stdout).toMatch(/^CHECK +VERDICT +DETAIL\n/);
    expect(t.stdout).toMatch(/\nquorum +ok +3 managers: the cluster survives 1 manager failure\n/);
    expect(t.stdout).toMatch(/\ndocker versions +ok +3 engine\(s\) on 27\.5 \(27\.5\.1\)\n/);
    expect(t.stdout).toMatch(
      /\nsecrets and configs +ok +the stack's 2 secret\(s\) and 2 config\(s\) exist\n/,
    );
    expect(t.stdout).toMatch(/\nstale configs +ok +none/);
    expect(t.stdout).toMatch(/\nclock node1 +ok +the reference: the manager cluster-cli reached\n/);
    expect(t.stdout).toMatch(/\nclock node2 +ok +0\.\d\d s (ahead of|behind) node1/);
    // node1 runs proxy, app, postgres and redis (64M + 256M + 256M + 64M of 3.8 GiB)
    expect(t.stdout).toMatch(
      /\nmemory node1 +ok +reserved 640 MiB of 3\.8 GiB \(proxy, app, postgres, redis\): 83 % headroom; 2\.9 GiB available now\n/,
    );
    expect(t.stdout).toMatch(
      /\ndisk node3 +ok +\/var\/lib: 28\.6 GiB free of 38\.1 GiB \(75 %\)\n/,
    );
    expect(t.stdout).toMatch(
      /\nports node2 +ok +reaches 2377\/tcp on 2 manager\(s\), 7946\/tcp on 2 node\(s\)\n/,
    );
    expect(t.stdout).toMatch(/\nfirewall node3 +ok +in step\n/);
    expect(t.stdout).not.toContain('Next:');
    expect(t.stdout).toMatch(/\nplatform: OK \(0 fail, 0 warn, 19 ok\)\n$/);

    expect(await t.run('doctor', '--json')).toBe(0);
    const j = JSON.parse(t.stdout) as Json;
    expect(j.verdict).toBe('ok');
    expect(j.checks).toHaveLength(19);
    expect(j.checks.every((c) => c.next === undefined)).toBe(true);
  });

  it('firewall not enabled and stale configs: warn rows with the next commands, exit 1', async () => {
    const t = harness();
    expect(await t.run('doctor')).toBe(1);
    expect(t.writes).toEqual([]);
    expect(t.stdout).toMatch(
      new RegExp(
        `\\nstale configs +warn +2 config\\(s\\) of earlier revisions no service uses or keeps for rollback: ${STALE.join(', ')}\\n`,
      ),
    );
    expect(t.stdout).toMatch(/\nfirewall +warn +not enabled/);
    expect(t.stdout).toContain(
      `\nNext:\n  stale configs: cluster-cli doctor --prune   # or on a manager: docker config rm ${STALE.join(' ')}\n  firewall: cluster-cli firewall apply --dry-run\n`,
    );
    expect(t.stdout).toMatch(/\nplatform: WARN \(0 fail, 2 warn, 15 ok\)\n$/);
  });

  it('an unreachable node, a skewed clock, an engine out of step, a blocked port: fail rows, exit 2 (--json)', async () => {
    const t = harness({ stale: false });
    const [, node2, node3] = t.hosts as [FakeHost, FakeHost, FakeHost];
    node3.reachable = false;
    node3.engine = '26.1.4';
    node2.skewMs = 12_000;
    node2.blocked.add('10.0.0.1:2377');
    expect(await t.run('doctor', '--json')).toBe(2);
    const j = JSON.parse(t.stdout) as Json;
    expect(j.verdict).toBe('fail');
    expect(verdicts(j)).toMatchObject({
      quorum: 'ok',
      engines: 'warn',
      'ssh:node3': 'fail',
      'clock:node2': 'fail',
      'ports:node2': 'fail',
      'memory:node2': 'ok',
    });
    const byId = (id: string) => j.checks.find((c) => c.id === id);
    expect(byId('engines')?.detail).toBe('not in step: node1 27.5.1, node2 27.5.1, node3 26.1.4');
    expect(byId('clock:node2')?.detail).toMatch(
      /^1[12]\.\d\d s ahead of node1 \(±\d\.\d\d s, half the SSH round trips\)/,
    );
    expect(byId('clock:node2')?.next).toMatch(/^ssh root@203\.0\.113\.12 timedatectl set-ntp true/);
    expect(byId('ports:node2')?.detail).toBe(
      'node1 (10.0.0.1) 2377/tcp swarm management: no answer (filtered?)',
    );
    expect(byId('ssh:node3')?.detail).toContain('Cannot connect to 203.0.113.13:22');
    // node3 could not be reached: none of its own checks is reported as passing
    expect(j.checks.filter((c) => c.id.endsWith(':node3')).map((c) => c.id)).toEqual(['ssh:node3']);
  });

  it('--prune --dry-run: the docker config rm commands for the stale configs only, nothing removed', async () => {
    const t = harness();
    const before = [...t.swarm.configs.keys()];
    expect(await t.run('doctor', '--prune', '--dry-run')).toBe(1);
    expect(t.writes).toEqual([]);
    expect([...t.swarm.configs.keys()]).toEqual(before);
    expect(t.stdout).toMatch(/^CHECK +VERDICT +DETAIL\n/);
    expect(t.stdout).toContain('doctor --prune on platform: 2 to change, 0 unchanged');
    for (const name of STALE) expect(t.stdout).toContain(`docker config rm ${name}`);
    expect(t.stdout).not.toContain(`docker config rm ${ROLLBACK}`);
    expect(t.stdout).toContain('Dry run: nothing was changed.');

    expect(await t.run('doctor', '--prune', '--dry-run', '--json')).toBe(1);
    const j = JSON.parse(t.stdout) as { dryRun: boolean; preflight: Json; plan: unknown };
    expect(j.dryRun).toBe(true);
    expect(j.preflight.verdict).toBe('warn');
  });

  it('--prune without --yes and without a terminal: refused, nothing removed', async () => {
    const t = harness();
    expect(await t.run('doctor', '--prune')).toBe(2);
    expect(t.stderr).toMatch(/--yes/);
    expect(t.writes).toEqual([]);
    expect(t.swarm.configs.has(STALE[0] as string)).toBe(true);
  });

  it('--prune --yes: removes exactly the stale configs; doctor then finds none', async () => {
    const t = harness();
    // exit 1: the firewall is still not enabled; the stale configs are fixed
    expect(await t.run('doctor', '--prune', '--yes')).toBe(1);
    expect(t.writes).toEqual(STALE.map((n) => `root@203.0.113.11: docker config rm ${n}`));
    expect([...t.swarm.configs.keys()].sort()).toEqual(
      [
        ...CURRENT,
        ROLLBACK,
        'other_traefik_yml_0123456789ab',
        'platform_my_own_0123456789ab',
      ].sort(),
    );
    expect(t.stdout).toContain('Removed 2 stale config(s).');
    expect(t.stdout).toMatch(/\nplatform: WARN \(0 fail, 1 warn, 16 ok\)\n$/);

    expect(await t.run('doctor', '--json')).toBe(1);
    const j = JSON.parse(t.stdout) as Json;
    expect(verdicts(j)['stale-configs']).toBe('ok');
    expect(verdicts(j).firewall).toBe('warn');

    expect(await t.run('doctor', '--prune', '--yes')).toBe(1);
    expect(t.writes).toEqual([]);
    expect(t.stdout).toContain('No stale config to remove.');
  });

  it('--yes or --dry-run without --prune: refused (doctor alone changes nothing)', async () => {
    const t = harness();
    expect(await t.run('doctor', '--yes')).toBe(2);
    expect(t.stderr).toContain('--dry-run and --yes go with --prune');
  });

  it('--ha with an unknown check name: one line naming the checks, no host touched', async () => {
    const t = harness();
    expect(await t.run('doctor', '--ha', '--check', 'frobnicate', '--yes')).toBe(2);
    expect(t.stderr).toContain(
      'Unknown HA check "frobnicate": the checks are manager-loss, worker-loss, proxy-failover, node-rejoin.',
    );
    expect(t.stderr.trim().split('\n')).toHaveLength(2); // the error and its next command
    expect(t.writes).toEqual([]);
    expect(await t.run('doctor', '--check', 'manager-loss')).toBe(2);
    expect(t.stderr).toContain('--check goes with --ha');
  });

  it('no manager answers: one fail row, exit 2', async () => {
    const t = harness();
    for (const h of t.hosts) h.reachable = false;
    expect(await t.run('doctor')).toBe(2);
    expect(t.stdout).toMatch(
      /^CHECK +VERDICT +DETAIL\n[- ]+\nmanager +FAIL +No manager of cluster\.yaml could be reached; node1: Cannot connect/,
    );
    expect(t.stdout).toMatch(/\nFAIL \(1 fail, 0 warn, 0 ok\)\n$/);
  });
});
