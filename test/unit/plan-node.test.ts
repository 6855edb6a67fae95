import { describe, expect, it } from 'vitest';
import { parseLabelArgs, parseLabelKeys } from '../../src/cluster/labels.js';
import {
  allowedHosts,
  checkDataMove,
  checkManagers,
  labelHosts,
  nodeRows,
  nodesWithLabels,
  nodesWithRole,
  planAvailability,
  planLabel,
  planRemove,
  planRoles,
  type Reach,
  removeHosts,
  resolveNode,
  resolveNodes,
  setHostRoles,
  stepNode,
  waitDemoted,
  waitNodeDown,
  waitNoTasks,
  waitWorker,
} from '../../src/cluster/plan-node.js';
import type { ClusterFacts, NodeFacts, ServiceFacts } from '../../src/cluster/probe.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { UserError } from '../../src/core/errors.js';
import { formatPlan, type Step } from '../../src/core/plan.js';
import { quoteArg } from '../../src/core/quote.js';

const M = 'root@203.0.113.11';

function node(hostname: string, over: Partial<NodeFacts> = {}): NodeFacts {
  return {
    id: `${hostname}x0000000000000000000000`.slice(0, 25),
    hostname,
    role: 'worker',
    labels: {},
    self: false,
    state: 'ready',
    availability: 'active',
    engine: '27.5.1',
    ...over,
  };
}

const mgr = (hostname: string, over: Partial<NodeFacts> = {}) =>
  node(hostname, { role: 'manager', reachability: 'reachable', ...over });

/** node1..3 managers (node1 the leader, db=primary), node4 a worker. */
function swarm(
  over: Partial<Record<string, Partial<NodeFacts>>> = {},
  services: ServiceFacts[] = [],
): ClusterFacts {
  return {
    nodes: [
      mgr('node1', { leader: true, self: true, labels: { db: 'primary' }, ...over.node1 }),
      mgr('node2', over.node2),
      mgr('node3', over.node3),
      node('node4', over.node4),
    ],
    networks: [],
    secrets: [],
    configs: [],
    services,
  };
}

const ID = (h: string) => `${h}x0000000000000000000000`.slice(0, 25);
const argvs = (steps: readonly Step[]) =>
  steps.filter((s) => s.action === 'change').map((s) => [s.host, ...s.cmds.map(text)]);
const text = (c: Step['cmds'][number]) =>
  'argv' in c ? c.argv.join(' ') : 'path' in c ? c.path : c.refs.join(' ');

function refusal(fn: () => unknown): UserError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a UserError');
}

const input: ConfigInput = {
  domain: 'apps.example.com',
  email: 'ops@example.com',
  hosts: [
    { name: 'node1', address: '203.0.113.11', labels: { db: 'primary' } },
    { name: 'node2', address: '203.0.113.12' },
    { name: 'node3', address: '203.0.113.13', role: 'manager', labels: { zone: 'b' } },
    { name: 'node4', address: '203.0.113.14', role: 'worker' },
  ],
};
const config = validateConfig(input).config;
const dbServices: ServiceFacts[] = [
  { name: 'platform_postgres', constraints: ['node.labels.db == primary'] },
  { name: 'platform_redis', constraints: ['node.labels.db == primary'] },
];

describe('resolveNode', () => {
  const c = swarm();
  it('takes a hostname, an ID or a unique ID prefix', () => {
    expect(resolveNode(c, 'node2').hostname).toBe('node2');
    expect(resolveNode(c, ID('node3')).hostname).toBe('node3');
    expect(resolveNode(c, 'node4x').hostname).toBe('node4');
  });

  it('an unknown node names every node there is', () => {
    const e = refusal(() => resolveNode(c, 'node9'));
    expect(e.message).toBe('no node "node9" in the swarm (nodes: node1, node2, node3, node4)');
    expect(e.next).toContain('cluster-cli node ls');
  });

  it('an ambiguous ID prefix is refused; a dead twin loses to the live node', () => {
    expect(refusal(() => resolveNode(c, 'node')).message).toContain('is the start of 4 node IDs');
    const twins = {
      nodes: [...c.nodes, node('node4', { id: 'deadbeef00000000000000000', state: 'down' })],
    };
    expect(resolveNode(twins, 'node4').id).toBe(ID('node4'));
  });

  it('names a node once even when given twice', () => {
    expect(resolveNodes(c, ['node2', ID('node2'), 'node3']).map((n) => n.hostname)).toEqual([
      'node2',
      'node3',
    ]);
  });
});

describe('label arguments', () => {
  it.each([
    ['my key=v', 'label "my key=v": bad key "my key"'],
    ['a=b=c', 'label "a=b=c": bad value "b=c"'],
    ['novalue', 'label "novalue": must be key=value'],
    ['=v', 'label "=v": must be key=value'],
  ])('refuses %j', (word, message) => {
    expect(refusal(() => parseLabelArgs([word], 'label')).message.startsWith(message)).toBe(true);
  });

  it('refuses a bad --remove key', () => {
    expect(refusal(() => parseLabelKeys(['Zone'])).message).toBe(
      '--remove "Zone": bad label key; keys are lower-case letters, digits, . _ - (starting with a letter)',
    );
  });
});

describe('planLabel', () => {
  const c = swarm({ node2: { labels: { zone: 'a', old: 'x' } } });
  const n2 = c.nodes[1] as NodeFacts;

  it('sends only what differs, adds and removals in one update', () => {
    const { steps, edits } = planLabel({
      manager: M,
      cluster: c,
      node: n2,
      add: { zone: 'a', tier: 'web' },
      remove: ['old', 'absent'],
    });
    expect(argvs(steps)).toEqual([
      [M, `docker node update --label-add tier=web --label-rm old ${ID('node2')}`],
    ]);
    expect(steps[0]?.title).toBe('Label node node2: +tier=web, -old');
    expect(stepNode(steps[0] as Step)).toBe(ID('node2'));
    expect(edits).toEqual([
      {
        hostname: 'node2',
        id: ID('node2'),
        add: { zone: 'a', tier: 'web' },
        remove: ['old', 'absent'],
      },
    ]);
  });

  it('plans nothing when the labels are already so (a second run)', () => {
    const edit = { hostname: 'node2', id: ID('node2'), add: { tier: 'web' }, remove: ['old'] };
    const after = { nodes: nodesWithLabels(c.nodes, [edit]) };
    const { steps } = planLabel({
      manager: M,
      cluster: after,
      node: after.nodes[1] as NodeFacts,
      add: { tier: 'web' },
      remove: ['old'],
    });
    expect(argvs(steps)).toEqual([]);
    expect(formatPlan({ title: 'node label node2', steps })).toBe(
      [
        'node label node2: 0 to change, 1 unchanged',
        `  = [${M}] Node labels of node2 (tier=web, without old) (already so)`,
      ].join('\n'),
    );
  });

  it('db=primary is taken from the node that holds it first', () => {
    const { steps, edits } = planLabel({
      manager: M,
      cluster: c,
      node: n2,
      add: { db: 'primary' },
      remove: [],
    });
    expect(argvs(steps)).toEqual([
      [M, `docker node update --label-rm db ${ID('node1')}`],
      [M, `docker node update --label-add db=primary ${ID('node2')}`],
    ]);
    expect(edits.map((e) => e.hostname)).toEqual(['node1', 'node2']);
  });

  it('refuses a key both set and removed, and nothing at all', () => {
    expect(
      refusal(() => planLabel({ manager: M, cluster: c, node: n2, add: { a: 'b' }, remove: ['a'] }))
        .message,
    ).toBe('label a is both set and removed (--remove a)');
    expect(
      refusal(() => planLabel({ manager: M, cluster: c, node: n2, add: {}, remove: [] })).message,
    ).toContain('needs at least one key=value');
  });
});

describe('cluster.yaml edits', () => {
  it('labelHosts edits the named entry; db=primary leaves the others; empty labels go', () => {
    const next = labelHosts(input, [
      { hostname: 'node1', id: ID('node1'), add: {}, remove: ['db'] },
      { hostname: 'node3', id: ID('node3'), add: { db: 'primary' }, remove: ['zone'] },
    ]);
    expect(next.hosts).toEqual([
      { name: 'node1', address: '203.0.113.11' },
      { name: 'node2', address: '203.0.113.12' },
      { name: 'node3', address: '203.0.113.13', role: 'manager', labels: { db: 'primary' } },
      { name: 'node4', address: '203.0.113.14', role: 'worker' },
    ]);
    expect(() => validateConfig(next)).not.toThrow();
  });

  it('a node cluster.yaml does not list leaves the file as it was', () => {
    expect(
      labelHosts(input, [{ hostname: 'node9', id: 'x', add: { a: 'b' }, remove: [] }]),
    ).toEqual(input);
  });

  it('setHostRoles and removeHosts touch only the named entries', () => {
    expect(setHostRoles(input, ['node3', 'node4'], 'worker').hosts?.map((h) => h.role)).toEqual([
      undefined,
      undefined,
      'worker',
      'worker',
    ]);
    expect(removeHosts(input, ['node2']).hosts?.map((h) => h.name)).toEqual([
      'node1',
      'node3',
      'node4',
    ]);
  });
});

describe('promote and demote', () => {
  it('promotes by ID on the manager; a manager already is one', () => {
    const c = swarm();
    const r = planRoles({
      manager: M,
      cluster: c,
      nodes: [c.nodes[3] as NodeFacts, c.nodes[1] as NodeFacts],
      role: 'manager',
      force: false,
    });
    expect(argvs(r.steps)).toEqual([[M, `docker node promote ${ID('node4')}`]]);
    expect(r.steps[1]).toMatchObject({ action: 'unchanged', reason: 'already a manager' });
    expect(r.managersAfter).toBe(4);
    expect(r.warnings).toEqual(['4 managers tolerate no more failures than 3; use an odd number']);
  });

  it('demotes one of three managers', () => {
    const c = swarm();
    const r = planRoles({
      manager: M,
      cluster: c,
      nodes: [c.nodes[2] as NodeFacts],
      role: 'worker',
      force: false,
    });
    expect(argvs(r.steps)).toEqual([[M, `docker node demote ${ID('node3')}`]]);
    expect(r.managersAfter).toBe(2);
  });

  it('never demotes the last manager, not even with --force', () => {
    const c = { nodes: [mgr('node1', { self: true }), node('node2')] };
    for (const force of [false, true]) {
      const e = refusal(() =>
        planRoles({
          manager: M,
          cluster: c,
          nodes: [c.nodes[0] as NodeFacts],
          role: 'worker',
          force,
        }),
      );
      expect(e.message).toBe(
        'node1 is the last manager of the swarm; a swarm needs at least one, so demoting it is refused (also with --force)',
      );
      expect(e.next).toBe('promote another node first: cluster-cli node promote <node>');
    }
  });

  it('refuses a demotion that leaves the reachable managers without quorum, unless --force', () => {
    const c = swarm({ node3: { state: 'down', reachability: 'unreachable' } });
    const demote2 = (force: boolean) =>
      planRoles({
        manager: M,
        cluster: c,
        nodes: [c.nodes[1] as NodeFacts],
        role: 'worker',
        force,
      });
    const e = refusal(() => demote2(false));
    expect(e.message).toBe(
      'after demoting node2, only 1 of the 2 remaining managers answer (node3 does not): the swarm would lose its quorum (2 needed) and stop taking changes',
    );
    expect(e.next).toContain('bring node3 back first');
    expect(argvs(demote2(true).steps)).toEqual([[M, `docker node demote ${ID('node2')}`]]);
    // Demoting the dead one is the repair, and allowed.
    expect(
      argvs(
        planRoles({
          manager: M,
          cluster: c,
          nodes: [c.nodes[2] as NodeFacts],
          role: 'worker',
          force: false,
        }).steps,
      ),
    ).toEqual([[M, `docker node demote ${ID('node3')}`]]);
  });

  it('remove also refuses leaving fewer managers than a majority of today', () => {
    const c = swarm();
    const e = refusal(() =>
      checkManagers(c, [c.nodes[1] as NodeFacts, c.nodes[2] as NodeFacts], {
        force: false,
        verb: 'remove',
      }),
    );
    expect(e.message).toBe(
      "removing node2, node3 leaves 1 of 3 managers, fewer than a majority (2) of today's",
    );
    expect(
      checkManagers(c, [c.nodes[1] as NodeFacts, c.nodes[2] as NodeFacts], {
        force: true,
        verb: 'remove',
      }),
    ).toEqual({ managersAfter: 1 });
  });
});

describe('drain and activate', () => {
  it('drains by ID; an already drained node is unchanged', () => {
    const c = swarm({ node3: { availability: 'drain' } });
    const r = planAvailability({
      manager: M,
      cluster: c,
      nodes: [c.nodes[3] as NodeFacts, c.nodes[2] as NodeFacts],
      availability: 'drain',
    });
    expect(argvs(r.steps)).toEqual([[M, `docker node update --availability drain ${ID('node4')}`]]);
    expect(r.steps[1]).toMatchObject({ action: 'unchanged', reason: 'already drain' });
    expect(r.warnings).toEqual([]);
  });

  it('warns when draining the database node or every node', () => {
    const c = swarm();
    const r = planAvailability({
      manager: M,
      cluster: c,
      nodes: c.nodes,
      availability: 'drain',
      dataHosts: ['node1'],
    });
    expect(r.warnings).toEqual([
      'no active node would be left: no service can run anywhere',
      'PostgreSQL and Redis may only run on node1 (their volumes are there): draining stops them until: cluster-cli node activate node1',
    ]);
  });

  it('activates', () => {
    const c = swarm({ node4: { availability: 'drain' } });
    expect(
      argvs(
        planAvailability({
          manager: M,
          cluster: c,
          nodes: [c.nodes[3] as NodeFacts],
          availability: 'active',
        }).steps,
      ),
    ).toEqual([[M, `docker node update --availability active ${ID('node4')}`]]);
  });
});

describe('planRemove', () => {
  const ok = (label: string, id: string): Reach => ({
    kind: 'ok',
    label,
    swarm: { state: 'active', isManager: false, nodeId: id },
  });

  it('a reachable worker: drain, wait, leave on the node, wait down, rm', () => {
    const c = swarm();
    const n4 = c.nodes[3] as NodeFacts;
    const r = planRemove({
      manager: M,
      cluster: c,
      nodes: [n4],
      reach: new Map([[n4.id, ok('root@203.0.113.14', n4.id)]]),
      force: false,
    });
    expect(formatPlan({ title: 'node remove node4', steps: r.steps })).toBe(
      [
        'node remove node4: 5 to change, 0 unchanged',
        `  + [${M}] Drain node4 (its tasks move to other nodes)`,
        `      $ docker node update --availability drain ${ID('node4')}`,
        '  + [root@203.0.113.14] Wait until no swarm task runs on node4 (up to 60 s; leaving stops what remains)',
        `      $ sh -c ${quoteArg(waitNoTasks(60).argv[2] as string)} sh 60`,
        '  + [root@203.0.113.14] Leave the swarm',
        '      $ docker swarm leave',
        `  + [${M}] Wait until the managers see node4 down (up to 60 s)`,
        `      $ sh -c ${quoteArg(waitNodeDown('x', 60).argv[2] as string)} sh ${ID('node4')} 60`,
        `  + [${M}] Remove node node4 from the swarm`,
        `      $ docker node rm ${ID('node4')}`,
      ].join('\n'),
    );
    expect(r.notes).toEqual([]);
  });

  it('a reachable manager is demoted, and waited for, before it leaves', () => {
    const c = swarm();
    const n3 = c.nodes[2] as NodeFacts;
    const r = planRemove({
      manager: M,
      cluster: c,
      nodes: [n3],
      reach: new Map([[n3.id, ok('root@203.0.113.13', n3.id)]]),
      force: false,
    });
    expect(r.steps.map((s) => `${s.id.split('@')[0]} ${s.host}`)).toEqual([
      `drain ${M}`,
      `demote ${M}`,
      `demoted ${M}`,
      'tasks root@203.0.113.13',
      'worker root@203.0.113.13',
      'leave root@203.0.113.13',
      `down ${M}`,
      `rm ${M}`,
    ]);
    expect(argvs(r.steps).map((a) => a[1])).toEqual([
      `docker node update --availability drain ${ID('node3')}`,
      `docker node demote ${ID('node3')}`,
      waitDemoted(ID('node3'), 60).argv.join(' '),
      waitNoTasks(60).argv.join(' '),
      waitWorker(60).argv.join(' '),
      'docker swarm leave',
      waitNodeDown(ID('node3'), 60).argv.join(' '),
      `docker node rm ${ID('node3')}`,
    ]);
  });

  it('an unreachable node that is down: no leave, no wait, plain rm, and a note', () => {
    const c = swarm({ node4: { state: 'down' } });
    const n4 = c.nodes[3] as NodeFacts;
    const r = planRemove({
      manager: M,
      cluster: c,
      nodes: [n4],
      reach: new Map([[n4.id, { kind: 'unreachable', why: 'connection refused' }]]),
      force: false,
    });
    expect(argvs(r.steps)).toEqual([
      [M, `docker node update --availability drain ${ID('node4')}`],
      [M, `docker node rm ${ID('node4')}`],
    ]);
    expect(r.steps[1]).toMatchObject({
      action: 'unchanged',
      reason: 'skipped: connection refused',
    });
    expect(r.notes[0]).toContain('docker swarm leave --force');
  });

  it('an unreachable node the swarm still sees ready: refused, or rm --force with --force', () => {
    const c = swarm();
    const n4 = c.nodes[3] as NodeFacts;
    const reach = new Map<string, Reach>([[n4.id, { kind: 'unreachable', why: 'timed out' }]]);
    const e = refusal(() =>
      planRemove({ manager: M, cluster: c, nodes: [n4], reach, force: false }),
    );
    expect(e.message).toBe(
      'cannot make node4 leave the swarm (timed out), and the swarm still sees it ready',
    );
    const r = planRemove({ manager: M, cluster: c, nodes: [n4], reach, force: true });
    expect(argvs(r.steps).map((a) => a[1])).toEqual([
      `docker node update --availability drain ${ID('node4')}`,
      `docker node rm --force ${ID('node4')}`,
    ]);
    expect(r.warnings[0]).toContain('docker node rm --force');
  });

  it('a host at that address that is another node (or has left) is not made to leave', () => {
    const c = swarm();
    const n4 = c.nodes[3] as NodeFacts;
    const other = planRemove({
      manager: M,
      cluster: c,
      nodes: [n4],
      reach: new Map([[n4.id, ok('root@203.0.113.14', 'someoneelse0000000000000')]]),
      force: true,
    });
    expect(argvs(other.steps).some((a) => a[1]?.includes('swarm leave'))).toBe(false);
    const left = planRemove({
      manager: M,
      cluster: c,
      nodes: [n4],
      reach: new Map<string, Reach>([
        [
          n4.id,
          {
            kind: 'ok',
            label: 'root@203.0.113.14',
            swarm: { state: 'inactive', isManager: false },
          },
        ],
      ]),
      force: false,
    });
    expect(left.steps.map((s) => `${s.id.split('@')[0]} ${s.action}`)).toEqual([
      'drain change',
      'leave unchanged',
      'down change',
      'rm change',
    ]);
  });

  it('refuses the last manager always', () => {
    const c = { nodes: [mgr('node1', { self: true }), node('node2')] };
    const e = refusal(() =>
      planRemove({
        manager: M,
        cluster: c,
        nodes: [c.nodes[0] as NodeFacts],
        reach: new Map(),
        force: true,
      }),
    );
    expect(e.message).toContain('node1 is the last manager of the swarm');
  });
});

describe('database placement', () => {
  it('reads the constraints the stack uses', () => {
    const c = swarm();
    expect(allowedHosts(['node.labels.db == primary'], c.nodes)).toEqual(['node1']);
    expect(allowedHosts(['node.role == manager', 'node.hostname != node2'], c.nodes)).toEqual([
      'node1',
      'node3',
    ]);
    expect(allowedHosts(['engine.labels.x == y'], c.nodes)).toBeUndefined();
  });

  it('labelling another node db=primary is refused without --force, a warning with it', () => {
    const c = swarm({}, dbServices);
    const { edits } = planLabel({
      manager: M,
      cluster: c,
      node: c.nodes[1] as NodeFacts,
      add: { db: 'primary' },
      remove: [],
    });
    const next = validateConfig(labelHosts(input, edits)).config;
    const check = (force: boolean) =>
      checkDataMove({
        stack: 'platform',
        cluster: c,
        nodesAfter: nodesWithLabels(c.nodes, edits),
        next,
        force,
        hint: 'hint',
      });
    const e = refusal(() => check(false));
    expect(e.message).toBe(
      'platform_postgres and platform_redis run on node1 ([node.labels.db == primary]); after this they would run on node2 ([node.labels.db == primary]). Their volumes are per node, so they start EMPTY there.',
    );
    expect(e.next).toBe('hint');
    expect(check(true)).toEqual({
      moved: true,
      warning: expect.stringContaining('move the data with a backup and restore'),
    });
  });

  it('labelling the node the database is pinned to is no move', () => {
    const pinned = [
      { name: 'platform_postgres', constraints: ['node.hostname == node1'] },
      { name: 'platform_redis', constraints: ['node.hostname == node1'] },
    ];
    const noDb = { ...input, hosts: input.hosts.map((h) => ({ ...h, labels: {} })) };
    const c = swarm({ node1: { labels: {} } }, pinned);
    const { edits } = planLabel({
      manager: M,
      cluster: c,
      node: c.nodes[0] as NodeFacts,
      add: { db: 'primary' },
      remove: [],
    });
    const next = validateConfig(labelHosts(noDb, edits)).config;
    expect(
      checkDataMove({
        stack: 'platform',
        cluster: c,
        nodesAfter: nodesWithLabels(c.nodes, edits),
        next,
        force: false,
        hint: '',
      }),
    ).toEqual({ moved: false });
  });

  it('removing the database node is refused; demoting the pinned first manager too', () => {
    const c = swarm({}, dbServices);
    const next = validateConfig(removeHosts(input, ['node1'])).config;
    expect(() =>
      checkDataMove({
        stack: 'platform',
        cluster: c,
        nodesAfter: c.nodes.filter((n) => n.hostname !== 'node1'),
        next,
        force: false,
        hint: '',
      }),
    ).toThrow(/run on node1 .*after this they would run on node2/);

    const pinned = [{ name: 'platform_postgres', constraints: ['node.hostname == node1'] }];
    const noDb = { ...input, hosts: input.hosts.map((h) => ({ ...h, labels: {} })) };
    const c2 = swarm({ node1: { labels: {} } }, pinned);
    const demoted = validateConfig(setHostRoles(noDb, ['node1'], 'worker')).config;
    expect(() =>
      checkDataMove({
        stack: 'platform',
        cluster: c2,
        nodesAfter: nodesWithRole(c2.nodes, [ID('node1')], 'worker'),
        next: demoted,
        force: false,
        hint: '',
      }),
    ).toThrow(/after this they would run on node2/);
  });

  it('no stack deployed: nothing to move', () => {
    const c = swarm();
    expect(
      checkDataMove({
        stack: 'platform',
        cluster: c,
        nodesAfter: c.nodes,
        next: config,
        force: false,
        hint: '',
      }),
    ).toEqual({ moved: false });
  });
});

describe('nodeRows', () => {
  it('flags where cluster.yaml and the swarm disagree', () => {
    const c: ClusterFacts = {
      ...swarm({ node3: { labels: {} }, node4: { role: 'manager', reachability: 'unreachable' } }),
    };
    const extra = { ...c, nodes: [...c.nodes, node('node7')] };
    const hosts = [
      ...config.hosts,
      { ...(config.hosts[3] as (typeof config.hosts)[number]), name: 'node5' },
    ];
    const rows = nodeRows(extra, hosts);
    expect(rows.map((r) => [r.name, r.role, r.status, r.manager, r.notes.join('; ')])).toEqual([
      ['node1', 'manager', 'ready', 'leader', ''],
      ['node2', 'manager', 'ready', 'reachable', ''],
      ['node3', 'manager', 'ready', 'reachable', 'cluster.yaml labels: zone=b'],
      ['node4', 'manager', 'ready', 'unreachable', 'cluster.yaml says worker'],
      ['node5', 'worker', 'not joined', undefined, 'in cluster.yaml only'],
      ['node7', 'worker', 'ready', undefined, 'not in cluster.yaml'],
    ]);
    expect(rows[0]).toMatchObject({ self: true, engine: '27.5.1', labels: { db: 'primary' } });
  });
});
