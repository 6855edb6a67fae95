import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ConnectFn, Ctx } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { validateConfig } from '../../src/config/load.js';
import type { Cmd } from '../../src/core/cmd.js';
import { CommandError } from '../../src/core/errors.js';
import type { Executor } from '../../src/core/executor.js';
import { buildStackModel, networkNames, placement, secretNames } from '../../src/stack/model.js';
import { renderStack } from '../../src/stack/render.js';

/**
 * `cluster-cli node …` in-process. Argument errors never reach a host (the
 * `connect` guard fails the test if anything tries). The rest runs against a
 * recording fake of a swarm's docker CLI: it answers the probes from a small
 * in-memory state and records every write, so the plan, the refusals and the
 * cluster.yaml edits are checked here; the real thing (sshd + dockerd, waits,
 * leave, quorum) is the lab's job.
 */

const SWARM_ID = 'c1uster1d0000000000000000';
const CLUSTER_YAML = `# the cluster
domain: apps.example.com
email: ops@example.com
swarmId: ${SWARM_ID}
hosts:
  - name: node1 # first manager
    address: 203.0.113.11
    labels:
      db: primary
  - name: node2
    address: 203.0.113.12
  - name: node3
    address: 203.0.113.13
  - name: node4
    address: 203.0.113.14
    role: worker
  - name: node5 # not joined yet
    address: 203.0.113.15
    role: worker
`;

interface FakeNode {
  id: string;
  hostname: string;
  address: string;
  role: 'manager' | 'worker';
  labels: Record<string, string>;
  availability: string;
  state: string;
  leader?: boolean;
  /** False once it left the swarm. */
  member: boolean;
}

function harness(opts: { swarm?: boolean; failOn?: string } = {}) {
  let stdout = '';
  let stderr = '';
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-node-'));
  writeFileSync(join(cwd, 'cluster.yaml'), CLUSTER_YAML);
  const nodes: FakeNode[] = [1, 2, 3, 4, 6].map(
    (i): FakeNode => ({
      id: `n0de${i}`.padEnd(25, '0'),
      hostname: `node${i}`,
      address: `203.0.113.1${i}`,
      role: i <= 3 ? 'manager' : 'worker',
      labels: i === 1 ? { db: 'primary' } : {},
      availability: 'active',
      state: 'ready',
      member: true,
      ...(i === 1 ? { leader: true } : {}),
    }),
  );
  const writes: string[] = [];
  const connected: string[] = [];
  const connect: ConnectFn = async (t) => {
    if (!opts.swarm)
      throw new Error(`test must not connect anywhere (tried ${t.address ?? 'local'})`);
    const me = nodes.find((n) => n.address === t.address);
    if (!me) throw new Error(`no fake host at ${t.address}`);
    const label = `root@${me.address}`;
    connected.push(label);
    return fakeExecutor(label, me, nodes, writes, opts.failOn);
  };
  const ctx: Ctx = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    cwd,
    interactive: false,
    tty: false,
    prompts: {
      password: () => Promise.reject(new Error('no prompts')),
      input: () => Promise.reject(new Error('no prompts')),
      select: () => Promise.reject(new Error('no prompts')),
      confirm: () => Promise.reject(new Error('no prompts')),
    },
    connect,
  };
  return {
    nodes,
    writes,
    connected,
    file: join(cwd, 'cluster.yaml'),
    yaml: () => readFileSync(join(cwd, 'cluster.yaml'), 'utf8'),
    run: async (...argv: string[]) => {
      stdout = '';
      stderr = '';
      writes.length = 0;
      return main(argv, ctx);
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}

const config = validateConfig(parse(CLUSTER_YAML)).config;
const model = buildStackModel(config);
// The fake nodes' engine: the healthcheck cadence (part of each revision) follows it.
const rendered = renderStack(model, { engine: '27.5.1' });
const configNames = rendered.configs.map((c) => c.name);
const data = placement(config).data;

/** The docker CLI of one host of the fake swarm: probes answered from `nodes`, writes recorded. */
function fakeExecutor(
  label: string,
  me: FakeNode,
  nodes: FakeNode[],
  writes: string[],
  failOn?: string,
): Executor {
  const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
  const byId = (id: string) => {
    const n = nodes.find((x) => x.id === id);
    if (!n) throw new Error(`fake: no node ${id}`);
    return n;
  };
  const lines = (xs: unknown[]) => `${xs.map((x) => JSON.stringify(x)).join('\n')}\n`;
  return {
    label,
    address: me.address,
    async run(c: Cmd) {
      const a = c.argv;
      const w = a.join(' ');
      if (w === 'docker info --format {{json .}}') {
        const manager = me.member && me.role === 'manager';
        return ok(
          JSON.stringify({
            Swarm: {
              LocalNodeState: me.member ? 'active' : 'inactive',
              ControlAvailable: manager,
              ...(me.member ? { NodeID: me.id, NodeAddr: me.address } : {}),
              Cluster: manager ? { ID: SWARM_ID } : null,
            },
          }),
        );
      }
      if (w === 'docker node ls --format {{json .}}')
        return ok(lines(nodes.map((n) => ({ ID: n.id, Self: n.id === me.id }))));
      if (w.startsWith('docker node inspect --format {{json .}} '))
        return ok(
          lines(
            a.slice(5).map((id) => {
              const n = byId(id);
              return {
                ID: n.id,
                Spec: { Role: n.role, Availability: n.availability, Labels: n.labels },
                Description: { Hostname: n.hostname, Engine: { EngineVersion: '27.5.1' } },
                Status: { State: n.state, Addr: n.address },
                ManagerStatus:
                  n.role === 'manager'
                    ? {
                        Leader: Boolean(n.leader),
                        Reachability: n.state === 'ready' ? 'reachable' : 'unreachable',
                        Addr: `${n.address}:2377`,
                      }
                    : null,
              };
            }),
          ),
        );
      const nets = networkNames('platform');
      if (w.startsWith('docker network ls')) return ok(`${Object.values(nets).join('\n')}\n`);
      if (w.startsWith('docker network inspect'))
        return ok(
          lines(
            (['ingress', 'app', 'data'] as const).map((k) => ({
              Name: nets[k],
              Internal: k === 'data',
              Attachable: true,
              IPAM: { Config: [{ Subnet: config.networks[k].subnet }] },
            })),
          ),
        );
      if (w.startsWith('docker secret ls'))
        return ok(`${Object.values(secretNames('platform')).join('\n')}\n`);
      if (w.startsWith('docker config ls')) return ok(`${configNames.join('\n')}\n`);
      if (w.startsWith('docker service ls'))
        return ok(
          lines(['proxy', 'app', 'postgres', 'redis'].map((s) => ({ Name: `platform_${s}` }))),
        );
      if (w.startsWith('docker service inspect'))
        return ok(
          lines(
            a.slice(5).map((name) => ({
              Spec: {
                Name: name,
                Labels: {
                  'io.cluster-cli.revision': rendered.revisions[name.replace(/^platform_/, '')],
                },
                TaskTemplate: {
                  Placement: {
                    Constraints: /postgres|redis/.test(name) ? data : model.proxy.constraints,
                  },
                },
              },
            })),
          ),
        );

      // Writes: recorded, and applied to the fake swarm.
      writes.push(`${label}: ${a[0] === 'sh' ? `sh -c … ${a.slice(4).join(' ')}` : w}`);
      if (failOn && w.startsWith(failOn))
        throw new CommandError(label, [...a], 1, 'Error response from daemon: boom');
      if (w.startsWith('docker node update ')) {
        const n = byId(a[a.length - 1] as string);
        for (let i = 3; i < a.length - 1; i += 2) {
          const v = a[i + 1] as string;
          if (a[i] === '--label-add') n.labels[v.split('=')[0] as string] = v.split('=')[1] ?? '';
          if (a[i] === '--label-rm') delete n.labels[v];
          if (a[i] === '--availability') n.availability = v;
        }
      } else if (a[1] === 'node' && (a[2] === 'promote' || a[2] === 'demote')) {
        byId(a[3] as string).role = a[2] === 'promote' ? 'manager' : 'worker';
      } else if (a[1] === 'node' && a[2] === 'rm') {
        nodes.splice(nodes.indexOf(byId(a[a.length - 1] as string)), 1);
      } else if (w === 'docker swarm leave') {
        me.member = false;
        me.state = 'down';
      }
      return ok();
    },
    stream: () => Promise.reject(new Error('fake: no streams (Docker API)')),
    close: async () => {},
  };
}

describe('node commands: bad input never reaches a host', () => {
  it.each([
    [['node', 'bogus'], "error: unknown command 'bogus'"],
    [['node', 'promote'], "error: missing required argument 'node'"],
    [['node', 'remove'], "error: missing required argument 'node'"],
    [['node', 'label'], "error: missing required argument 'node'"],
    [
      ['node', 'label', 'node2', 'a=b=c'],
      'error: label "a=b=c": bad value "b=c"; values are letters, digits, . _ - (one = only, between key and value)',
    ],
    [
      ['node', 'label', 'node2', 'my key=v'],
      'error: label "my key=v": bad key "my key"; keys are lower-case letters, digits, . _ - (starting with a letter)',
    ],
    [
      ['node', 'label', 'node2'],
      'error: node label needs at least one key=value to set or --remove key',
    ],
    [['node', 'label', 'node2', 'a=b', '--remove', 'a'], 'error: label a is both set and removed'],
    [['node', 'label', 'node2', '--remove', 'Zone'], 'error: --remove "Zone": bad label key'],
    [
      ['node', 'demote', 'node2', '--timeout', '5'],
      'error: --timeout "5": must be a whole number of seconds from 10 to 3600',
    ],
    [['node', 'drain', 'node2', '--timeout', '60'], "error: unknown option '--timeout'"],
  ])('%j', async (args, line) => {
    const h = harness();
    expect(await h.run(...args)).toBe(2);
    expect(h.stderr.split('\n')[0]?.startsWith(line)).toBe(true);
    expect(h.connected).toEqual([]);
  });

  it('with --json an argument error is one JSON object', async () => {
    const h = harness();
    expect(await h.run('node', 'label', 'node2', 'a=b=c', '--json')).toBe(2);
    expect(JSON.parse(h.stderr)).toMatchObject({ error: expect.stringContaining('bad value') });
  });

  it('every subcommand has help with examples', async () => {
    for (const sub of ['ls', 'label', 'promote', 'demote', 'drain', 'activate', 'remove']) {
      const h = harness();
      expect(await h.run('node', sub, '--help')).toBe(0);
      expect(h.stdout).toContain('Examples:');
      expect(h.stdout).toContain(sub === 'ls' ? '--json' : '--dry-run');
    }
  });
});

describe('node commands against a fake swarm', () => {
  it('node ls: a table, flags for hosts only one side knows, and --json', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'ls')).toBe(0);
    const out = h.stdout.split('\n');
    expect(out[0]).toMatch(/^NAME +ROLE +AVAILABILITY +STATUS +MANAGER +LABELS +ENGINE +NOTES$/);
    expect(out.find((l) => l.startsWith('node1 *'))).toMatch(
      /manager +active +ready +leader +db=primary +27\.5\.1/,
    );
    expect(out.find((l) => l.startsWith('node5'))).toMatch(/not joined.*in cluster\.yaml only/);
    expect(out.find((l) => l.startsWith('node6'))).toMatch(/not in cluster\.yaml/);
    expect(h.stdout).toContain('Quorum: 3 managers: the cluster survives 1 manager failure');
    expect(h.writes).toEqual([]);

    expect(await h.run('node', 'ls', '--json')).toBe(0);
    const rows = JSON.parse(h.stdout);
    expect(rows.map((r: { name: string }) => r.name)).toEqual([
      'node1',
      'node2',
      'node3',
      'node4',
      'node5',
      'node6',
    ]);
  });

  it('an unknown node is refused before anything changes', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'promote', 'node9', '--yes')).toBe(2);
    expect(h.stderr).toBe(
      'error: no node "node9" in the swarm (nodes: node1, node2, node3, node4, node6)\nnext: cluster-cli node ls   # every node with its name and state\n',
    );
    expect(h.writes).toEqual([]);
  });

  it('node label: one update on the manager, recorded in cluster.yaml; a second run plans nothing', async () => {
    const h = harness({ swarm: true });
    const rc = await h.run('node', 'label', 'node2', 'zone=a', '--yes');
    expect(h.stderr).toBe('');
    expect(rc).toBe(0);
    expect(h.writes).toEqual([
      `root@203.0.113.11: docker node update --label-add zone=a ${h.nodes[1]?.id}`,
    ]);
    expect(h.stdout).toContain('= [root@203.0.113.11] Stack platform (revision');
    expect(h.stdout).toMatch(/node2 +labelled/);
    expect(h.stdout).toContain('cluster.yaml: updated');
    expect(h.yaml()).toContain(
      '  - name: node2\n    address: 203.0.113.12\n    labels:\n      zone: a\n',
    );
    expect(h.yaml()).toContain('# the cluster\n');
    expect(h.yaml()).toContain('  - name: node1 # first manager\n');

    expect(await h.run('node', 'label', 'node2', 'zone=a', '--yes')).toBe(0);
    expect(h.writes).toEqual([]);
    expect(h.stdout).toContain('node label node2: 0 to change');
    expect(h.stdout).toContain('cluster.yaml: unchanged');
  });

  it('node label db=primary elsewhere: refused without --force; with it a warning and the label moves', async () => {
    const h = harness({ swarm: true });
    const before = h.yaml();
    expect(await h.run('node', 'label', 'node2', 'db=primary', '--yes')).toBe(2);
    expect(h.stderr).toContain(
      'error: platform_postgres and platform_redis run on node1 ([node.labels.db == primary]); after this they would run on node2',
    );
    expect(h.stderr).toContain('next: move the data first');
    expect(h.writes).toEqual([]);
    expect(h.yaml()).toBe(before);

    expect(await h.run('node', 'label', 'node2', 'db=primary', '--force', '--dry-run')).toBe(0);
    expect(h.stdout).toContain('warning: platform_postgres and platform_redis run on node1');
    expect(h.stdout).toContain(`$ docker node update --label-rm db ${h.nodes[0]?.id}`);
    expect(h.stdout).toContain(`$ docker node update --label-add db=primary ${h.nodes[1]?.id}`);
    expect(h.stdout).toContain('Dry run: nothing was changed.');
    expect(h.writes).toEqual([]);
    expect(h.yaml()).toBe(before);
  });

  it('node label db=primary on a node cluster.yaml does not list is refused; other labels only warn', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'label', 'node6', 'db=primary', '--force', '--yes')).toBe(2);
    expect(h.stderr).toContain('error: node6 is not in cluster.yaml: db=primary places PostgreSQL');
    expect(h.writes).toEqual([]);
    expect(await h.run('node', 'label', 'node6', 'zone=c', '--yes')).toBe(0);
    expect(h.stdout).toContain(
      'warning: node6 is not in cluster.yaml (its labels are set in the swarm only)',
    );
    expect(h.writes).toEqual([
      `root@203.0.113.11: docker node update --label-add zone=c ${'n0de6'.padEnd(25, '0')}`,
    ]);
  });

  it('node drain: runtime state only, cluster.yaml untouched; --json --dry-run is one document', async () => {
    const h = harness({ swarm: true });
    const before = h.yaml();
    expect(await h.run('node', 'drain', 'node4', '--dry-run', '--json')).toBe(0);
    const doc = JSON.parse(h.stdout);
    expect(doc.dryRun).toBe(true);
    expect(doc.plan.steps.map((s: { commands: string[] }) => s.commands)).toEqual([
      [`docker node update --availability drain ${h.nodes[3]?.id}`],
    ]);
    expect(await h.run('node', 'drain', 'node4', '--yes', '--json')).toBe(0);
    expect(JSON.parse(h.stdout)).toMatchObject({
      nodes: [{ node: 'node4', status: 'done' }],
      clusterYaml: 'not recorded',
    });
    expect(h.nodes[3]?.availability).toBe('drain');
    expect(h.yaml()).toBe(before);
  });

  it('node demote of the manager cluster-cli connects through runs on another manager', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'demote', 'node1', '--yes')).toBe(0);
    expect(h.writes).toEqual([`root@203.0.113.12: docker node demote ${h.nodes[0]?.id}`]);
    expect(h.stdout).toContain('Quorum: 2 managers');
    expect(parse(h.yaml()).hosts[0]).toMatchObject({ name: 'node1', role: 'worker' });
  });

  it('node demote of the last managers is refused', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'demote', 'node1', 'node2', 'node3', '--yes', '--force')).toBe(2);
    expect(h.stderr).toContain('are the last managers of the swarm');
    expect(h.writes).toEqual([]);
  });

  it('node remove: drain, leave on the node, wait, rm on the manager; the host leaves cluster.yaml', async () => {
    const h = harness({ swarm: true });
    const id = h.nodes[3]?.id;
    expect(await h.run('node', 'remove', 'node4', '--yes')).toBe(0);
    expect(h.writes).toEqual([
      `root@203.0.113.11: docker node update --availability drain ${id}`,
      'root@203.0.113.14: sh -c … 60',
      'root@203.0.113.14: docker swarm leave',
      `root@203.0.113.11: sh -c … ${id} 60`,
      `root@203.0.113.11: docker node rm ${id}`,
    ]);
    expect(parse(h.yaml()).hosts.map((x: { name: string }) => x.name)).toEqual([
      'node1',
      'node2',
      'node3',
      'node5',
    ]);
    expect(h.stdout).toMatch(/node4 +removed/);
    // no firewall in cluster.yaml: nothing to say about it
    expect(h.stdout).not.toContain('firewall');
  });

  // node remove with the firewall on updates the staying nodes' rules: test/lab/firewall.test.ts
  // (it reads each node's iptables, which this fake swarm has none of).

  it('a failed step stops the rest; cluster.yaml records only the nodes that were done', async () => {
    const h = harness({ swarm: true, failOn: `docker node demote ${'n0de3'.padEnd(25, '0')}` });
    expect(await h.run('node', 'demote', 'node2', 'node3', '--yes', '--force')).toBe(2);
    expect(h.writes).toEqual([
      `root@203.0.113.11: docker node demote ${h.nodes[1]?.id}`,
      `root@203.0.113.11: docker node demote ${h.nodes[2]?.id}`,
    ]);
    expect(h.stdout).toMatch(/node2 +demoted to worker/);
    expect(h.stdout).toMatch(/node3 +FAILED: root@203\.0\.113\.11: command failed/);
    expect(h.stderr).toContain(
      'error: node demote stopped at "Demote node3 to worker" on root@203.0.113.11',
    );
    expect(h.stderr).toContain(
      'next: fix the cause, then run again (steps already done plan nothing): cluster-cli node demote node2 node3 --force',
    );
    const hosts = parse(h.yaml()).hosts;
    expect(hosts[1]).toMatchObject({ name: 'node2', role: 'worker' });
    expect(hosts[2]).toEqual({ name: 'node3', address: '203.0.113.13' });
  });

  it('node remove refuses halving the managers, and the database node, without --force', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'remove', 'node2', 'node3', '--yes')).toBe(2);
    expect(h.stderr).toContain("leaves 1 of 3 managers, fewer than a majority (2) of today's");
    expect(await h.run('node', 'remove', 'node1', '--dry-run')).toBe(2);
    expect(h.stderr).toContain('platform_postgres and platform_redis run on node1');
    expect(h.stderr).toContain('next: back up the database first');
    expect(h.writes).toEqual([]);
  });

  it('node remove of a node cluster.yaml does not list: no address, so it must be down or forced', async () => {
    const h = harness({ swarm: true });
    expect(await h.run('node', 'rm', 'node6', '--yes')).toBe(2);
    expect(h.stderr).toContain(
      'cannot make node6 leave the swarm (not in cluster.yaml, so no address to reach it), and the swarm still sees it ready',
    );
    expect(await h.run('node', 'rm', 'node6', '--yes', '--force')).toBe(0);
    expect(h.writes.at(-1)).toBe(
      `root@203.0.113.11: docker node rm --force ${'n0de6'.padEnd(25, '0')}`,
    );
  });
});
