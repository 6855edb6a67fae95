import { describe, expect, it } from 'vitest';
import { parseJoinTarget } from '../../src/cli/node-join.js';
import { aptInstall } from '../../src/cluster/docker-install.js';
import { parseLabelArgs } from '../../src/cluster/labels.js';
import { readNetcheck } from '../../src/cluster/netcheck.js';
import { planApply } from '../../src/cluster/plan-apply.js';
import {
  type JoinTarget,
  mergeJoinedHosts,
  planJoin,
  quorum,
} from '../../src/cluster/plan-join.js';
import { blockedPortsError, joinPortNeeds } from '../../src/cluster/ports.js';
import type { NodeFacts } from '../../src/cluster/probe.js';
import { validateConfig } from '../../src/config/load.js';
import { formatCmd } from '../../src/core/cmd.js';
import { formatPlan } from '../../src/core/plan.js';
import { secret } from '../../src/core/secret.js';
import { freshDebianHost, managerOf } from '../helpers/facts.js';

const node = (over: Partial<NodeFacts>): NodeFacts => ({
  id: 'n1',
  hostname: 'node1',
  role: 'manager',
  labels: {},
  self: true,
  state: 'ready',
  availability: 'active',
  addr: '203.0.113.10',
  managerAddr: '203.0.113.10:2377',
  leader: true,
  ...over,
});
const cluster = managerOf({ nodes: [node({})] }).cluster as NonNullable<
  ReturnType<typeof managerOf>['cluster']
>;
const SWARM = 'c1uster1d0000000';
const tokens = { manager: secret('SWMTKN-1-manager-xyz'), worker: secret('SWMTKN-1-worker-xyz') };
const fresh = (hostname: string, addr: string, over = {}) =>
  freshDebianHost({ hostname, addresses: [addr], routeSrc: addr, ...over });

describe('planJoin', () => {
  const targets: JoinTarget[] = [
    {
      label: 'root@203.0.113.11',
      address: '203.0.113.11',
      user: 'root',
      facts: fresh('node2', '203.0.113.11'),
      advertiseAddr: '203.0.113.11',
      role: 'manager',
      labels: {},
    },
    {
      label: 'deploy@203.0.113.12',
      address: '203.0.113.12',
      user: 'deploy',
      facts: fresh('node3', '203.0.113.12', {
        docker: { installed: false },
        swarm: { state: 'unknown', isManager: false },
      }),
      advertiseAddr: '203.0.113.12',
      role: 'worker',
      labels: { db: 'primary' },
    },
  ];
  const base = {
    manager: 'root@203.0.113.10',
    cluster,
    swarmId: SWARM,
    remoteAddrs: ['203.0.113.10:2377'],
    tokens,
    targets,
    forceLeave: false,
  };

  it('joins every host in one wave: Docker where missing, the join by API (token redacted), then labels', () => {
    const { steps, decisions } = planJoin(base);
    expect(formatPlan({ title: 'join', steps })).toBe(
      [
        'join: 4 to change, 0 unchanged',
        '  + [root@203.0.113.11] Join node2 as manager (advertise 203.0.113.11)',
        '      $ docker-api POST /swarm/join {"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"203.0.113.11","RemoteAddrs":["203.0.113.10:2377"],"JoinToken":"[REDACTED]"}',
        '  + [deploy@203.0.113.12] Install Docker (Debian GNU/Linux 12 (bookworm))',
        `      $ ${formatCmd(aptInstall(['docker.io']))}`,
        '      $ systemctl enable --now docker',
        '  + [deploy@203.0.113.12] Join node3 as worker (advertise 203.0.113.12)',
        '      $ docker-api POST /swarm/join {"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"203.0.113.12","RemoteAddrs":["203.0.113.10:2377"],"JoinToken":"[REDACTED]"}',
        '  + [root@203.0.113.10] Label node node3: db=primary',
        '      $ docker node update --label-add db=primary node3',
      ].join('\n'),
    );
    expect(steps.every((s) => s.wave === 'join')).toBe(true);
    expect(steps.at(-1)?.about).toBe('deploy@203.0.113.12');
    expect(decisions.map((d) => d.kind)).toEqual(['join', 'join']);
    expect(JSON.stringify(steps)).not.toContain('xyz');
  });

  it('a member of this swarm only gets its role and labels reconciled', () => {
    const member = {
      ...targets[1],
      facts: fresh('node3', '203.0.113.12', {
        swarm: { state: 'active', isManager: false, nodeId: 'n3' },
      }),
      role: 'manager' as const,
    } as JoinTarget;
    const c = {
      ...cluster,
      nodes: [
        ...cluster.nodes,
        node({
          id: 'n3',
          hostname: 'node3',
          role: 'worker',
          self: false,
          leader: false,
          labels: { db: 'primary' },
        }),
      ],
    };
    const { steps, decisions } = planJoin({ ...base, cluster: c, targets: [member] });
    expect(decisions[0]?.kind).toBe('member');
    expect(formatPlan({ title: 'j', steps })).toBe(
      [
        'j: 1 to change, 2 unchanged',
        '  = [deploy@203.0.113.12] deploy@203.0.113.12 in the swarm (already a worker)',
        '  + [root@203.0.113.10] Promote node3 to manager',
        '      $ docker node promote n3',
        '  = [root@203.0.113.10] Node labels of node3 (db=primary) (already set)',
      ].join('\n'),
    );
  });

  it('refuses a host of another swarm without --force-leave, and leaves first with it', () => {
    const other = {
      ...targets[0],
      facts: fresh('node2', '203.0.113.11', {
        swarm: { state: 'active', isManager: true, clusterId: 'otherswarm00000', nodeId: 'x' },
      }),
    } as JoinTarget;
    expect(() => planJoin({ ...base, targets: [other] })).toThrow(
      'root@203.0.113.11 is a member of another swarm (otherswarm00000); nothing was joined.',
    );
    const { steps } = planJoin({ ...base, targets: [other], forceLeave: true });
    expect(steps.map((s) => s.title)).toEqual([
      'Leave swarm otherswarm00',
      'Join node2 as manager (advertise 203.0.113.11)',
    ]);
  });

  it('removes a dead entry of the same hostname before joining', () => {
    const c = {
      ...cluster,
      nodes: [
        ...cluster.nodes,
        node({
          id: 'dead1',
          hostname: 'node2',
          state: 'down',
          role: 'worker',
          self: false,
          leader: false,
        }),
      ],
    };
    const { steps } = planJoin({
      ...base,
      cluster: c,
      targets: [targets[0] as JoinTarget],
    });
    expect(steps.map((s) => [s.host, s.title])).toEqual([
      ['root@203.0.113.10', 'Remove the dead node entry node2 (dead1)'],
      ['root@203.0.113.11', 'Join node2 as manager (advertise 203.0.113.11)'],
    ]);
  });

  it('records joined hosts in cluster.yaml: new ones appended, known ones updated, labels merged', () => {
    const input = {
      domain: 'a.example.com',
      email: 'o@example.com',
      hosts: [
        { name: 'node1', address: '203.0.113.10' },
        { name: 'node3', address: '203.0.113.12', role: 'worker' as const, labels: { zone: 'a' } },
      ],
    };
    const out = mergeJoinedHosts(input, targets);
    expect(validateConfig(out).config.hosts.map((h) => [h.name, h.role, h.user, h.labels])).toEqual(
      [
        ['node1', 'manager', undefined, {}],
        ['node3', 'worker', 'deploy', { zone: 'a', db: 'primary' }],
        ['node2', 'manager', 'root', {}],
      ],
    );
  });
});

describe('quorum, ports and the overlay check', () => {
  it('says how many manager failures the cluster survives', () => {
    expect(quorum(1).text).toBe('1 manager: the cluster survives 0 manager failures');
    expect(quorum(3).text).toBe('3 managers: the cluster survives 1 manager failure');
    expect(quorum(4)).toEqual({
      tolerates: 1,
      even: true,
      text: '4 managers: the cluster survives 1 manager failure (3 would survive as many: use an odd number)',
    });
  });

  it('a new node must reach every live manager on 2377 and every node on 7946', () => {
    const nodes = [
      node({}),
      node({
        id: 'n2',
        hostname: 'node2',
        role: 'worker',
        addr: '203.0.113.11',
        managerAddr: undefined,
        self: false,
      }),
      node({ id: 'n3', hostname: 'node3', state: 'down', addr: '203.0.113.12', self: false }),
    ];
    expect(joinPortNeeds(nodes).map((n) => `${n.to} ${n.addr}:${n.port}`)).toEqual([
      'node1 203.0.113.10:2377',
      'node1 203.0.113.10:7946',
      'node2 203.0.113.11:7946',
    ]);
    const err = blockedPortsError([
      {
        to: 'node1',
        addr: '203.0.113.10',
        port: 2377,
        what: 'swarm management',
        from: 'node4',
        result: 'timeout',
      },
      {
        to: 'node2',
        addr: '203.0.113.11',
        port: 7946,
        what: 'node gossip',
        from: 'node4',
        result: 'ok',
      },
    ]);
    expect(err?.message).toBe(
      'A swarm port is blocked; nothing was joined:\n  node4 -> node1 (203.0.113.10) 2377/tcp swarm management: no answer (filtered?)',
    );
    expect(err?.next).toMatch(/^open 2377\/tcp between the nodes/);
    // With cluster-cli's firewall on, the way in is to make the host a member first.
    const fw = blockedPortsError(
      [
        {
          to: 'node1',
          addr: '203.0.113.10',
          port: 2377,
          what: 'swarm management',
          from: 'node4',
          result: 'timeout',
        },
      ],
      true,
    );
    // the join opens cluster-cli's own rules itself: what still blocks is something else
    expect(fw?.next).toMatch(/already lets the new host in there/);
    expect(fw?.next).toContain('open 2377/tcp in whatever else filters between the nodes');
  });

  it('reads the overlay check: a pair is ok only when both directions passed', () => {
    const ips = new Map([
      ['10.0.5.2', 'a'],
      ['10.0.5.3', 'b'],
      ['10.0.5.4', 'c'],
    ]);
    const logs = [
      'NETCHECK 10.0.5.2 10.0.5.3 ok',
      'NETCHECK 10.0.5.3 10.0.5.2 ok',
      'NETCHECK 10.0.5.2 10.0.5.4 ok',
      'NETCHECK 10.0.5.4 10.0.5.2 fail',
      'NETCHECK 10.0.5.3 10.0.5.4 ok',
      'NETCHECK 10.0.5.4 10.0.5.3 ok',
      'NETCHECK-DONE 10.0.5.2 3',
      'NETCHECK-DONE 10.0.5.3 3',
      'NETCHECK-DONE 10.0.5.4 3',
    ].join('\n');
    expect(readNetcheck(logs, ips, ['a', 'b', 'c'])).toEqual({
      pairs: [
        { a: 'a', b: 'b', ok: true },
        { a: 'a', b: 'c', ok: false },
        { a: 'b', b: 'c', ok: true },
      ],
      silent: [],
    });
    expect(readNetcheck('NETCHECK-DONE 10.0.5.2 1', ips, ['a', 'b']).silent).toEqual([
      { node: 'b', why: 'its check task did not finish' },
    ]);
  });
});

describe('join input', () => {
  it('a target may carry its own role and labels', () => {
    expect(
      parseJoinTarget('deploy@10.0.0.5:2222,manager,db=primary', 'worker', { zone: 'a' }),
    ).toEqual({
      arg: 'deploy@10.0.0.5:2222,manager,db=primary',
      address: '10.0.0.5',
      user: 'deploy',
      port: 2222,
      role: 'manager',
      labels: { zone: 'a', db: 'primary' },
    });
    expect(() => parseJoinTarget('10.0.0.5,boss', 'worker', {})).toThrow(
      '"10.0.0.5,boss": "boss" is neither a role (manager, worker) nor a label key=value',
    );
  });

  it('rejects malformed labels with the word that is wrong', () => {
    expect(() => parseLabelArgs(['a=b=c'])).toThrow('--label "a=b=c": bad value "b=c"');
    expect(() => parseLabelArgs(['my key=v'])).toThrow('--label "my key=v": bad key "my key"');
    expect(() => parseLabelArgs(['novalue'])).toThrow('--label "novalue": must be key=value');
    expect(parseLabelArgs(['db=primary', 'public_ip=true'])).toEqual({
      db: 'primary',
      public_ip: 'true',
    });
  });
});

describe('planApply', () => {
  const config = validateConfig({
    domain: 'a.example.com',
    email: 'o@example.com',
    hosts: [
      { name: 'node1', address: '203.0.113.10' },
      { name: 'node2', address: '203.0.113.11', role: 'worker', labels: { zone: 'b' } },
      { name: 'node3', address: '203.0.113.12', role: 'manager' },
    ],
  }).config;
  const c = {
    ...cluster,
    nodes: [
      node({}),
      node({
        id: 'n2',
        hostname: 'node2',
        role: 'manager',
        self: false,
        leader: false,
        labels: { old: 'x' },
      }),
    ],
  };
  const member = (name: string, id: string, addr: string) => ({
    host: config.hosts.find((h) => h.name === name) as (typeof config.hosts)[number],
    label: `root@${addr}`,
    facts: fresh(name, addr, {
      swarm: { state: 'active', isManager: true, clusterId: SWARM, nodeId: id },
    }),
    advertiseAddr: addr,
  });

  it('joins hosts outside the swarm, promotes before labels before demotions, removes labels not in the file', () => {
    const d = planApply(config, 'root@203.0.113.10', c, SWARM, [
      member('node1', 'n1', '203.0.113.10'),
      member('node2', 'n2', '203.0.113.11'),
      {
        host: config.hosts[2] as (typeof config.hosts)[number],
        label: 'root@203.0.113.12',
        facts: fresh('node3', '203.0.113.12'),
        advertiseAddr: '203.0.113.12',
      },
    ]);
    expect(d.joins.map((j) => [j.facts.hostname, j.role])).toEqual([['node3', 'manager']]);
    expect(d.steps.filter((s) => s.action === 'change').map((s) => s.title)).toEqual([
      'Labels of node2: set zone=b; remove old',
      'Demote node2 to worker',
    ]);
    expect(d.strays).toEqual([]);
  });

  it('refuses a host whose hostname is not the name in cluster.yaml', () => {
    const wrong = {
      ...member('node1', 'n1', '203.0.113.10'),
      facts: fresh('other', '203.0.113.10'),
    };
    expect(() => planApply(config, 'm', c, SWARM, [wrong])).toThrow(
      'hosts[0].name is node1, but the host at root@203.0.113.10 is called other.',
    );
  });
});
