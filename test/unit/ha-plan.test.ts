import { describe, expect, it } from 'vitest';
import { checkIds } from '../../src/cli/doctor-ha.js';
import { DEADMAN_MARGIN_S, isolationRules } from '../../src/cluster/ha-isolate.js';
import {
  degradedNodes,
  type HaFacts,
  type HaNodeFacts,
  type HaServiceFacts,
  type HaSettings,
  meetsAll,
  meetsConstraint,
  type PlannedCheck,
  planHa,
  quorumSurvivesLoss,
} from '../../src/cluster/ha-plan.js';
import { renderHaPlan } from '../../src/cluster/ha-report.js';
import { UserError } from '../../src/core/errors.js';

const S: HaSettings = { downSeconds: 20, rescheduleTimeout: 60, rps: 20 };

function node(
  name: string,
  role: 'manager' | 'worker',
  extra: Partial<HaNodeFacts> = {},
): HaNodeFacts {
  const n = Number(name.replace(/\D/g, ''));
  return {
    name,
    id: `id-${name}`,
    role,
    state: 'ready',
    availability: 'active',
    ...(role === 'manager' ? { reachability: 'reachable' } : {}),
    labels: {},
    inConfig: true,
    address: `203.0.113.1${n}`,
    access: { ifaces: ['eth0'], sshPorts: [22], dockerUnit: true },
    ...extra,
  };
}

const proxy = (on: string[]): HaServiceFacts => ({
  name: 'platform_proxy',
  mode: 'global',
  replicas: 0,
  constraints: ['node.role == manager'],
  runningOn: on,
});
const app = (on: string[], constraints: string[] = []): HaServiceFacts => ({
  name: 'platform_app',
  mode: 'replicated',
  replicas: on.length,
  constraints,
  runningOn: on,
});
const postgres = (on: string, constraint = `node.hostname == ${on}`): HaServiceFacts => ({
  name: 'platform_postgres',
  mode: 'replicated',
  replicas: 1,
  constraints: [constraint],
  runningOn: [on],
});

function facts(
  nodes: readonly HaNodeFacts[],
  services: readonly HaServiceFacts[],
  extra: Partial<HaFacts> = {},
): HaFacts {
  return {
    cluster: 'platform',
    cfg: '',
    operator: 'node1',
    nodes,
    services,
    proxyService: 'platform_proxy',
    app: { host: 'apps.example.com', port: 443, tls: true, path: '/' },
    ...extra,
  };
}

/** Three managers (node2 the leader), two workers running the app. */
const HA5 = () =>
  facts(
    [
      node('node1', 'manager'),
      node('node2', 'manager', { leader: true }),
      node('node3', 'manager'),
      node('node4', 'worker'),
      node('node5', 'worker'),
    ],
    [proxy(['node1', 'node2', 'node3']), app(['node4', 'node5', 'node5']), postgres('node1')],
  );

const check = (checks: readonly PlannedCheck[], id: string) => {
  const c = checks.find((x) => x.id === id);
  if (!c) throw new Error(`no ${id}`);
  return c;
};

describe('placement constraints', () => {
  const n = { id: 'abc', name: 'node4', role: 'worker' as const, labels: { db: 'primary' } };
  it('hostname, id, role and labels, == and !=', () => {
    expect(meetsConstraint(n, 'node.hostname == node4')).toBe(true);
    expect(meetsConstraint(n, 'node.hostname==node5')).toBe(false);
    expect(meetsConstraint(n, 'node.id == abc')).toBe(true);
    expect(meetsConstraint(n, 'node.role != manager')).toBe(true);
    expect(meetsConstraint(n, 'node.labels.db == primary')).toBe(true);
    expect(meetsConstraint(n, 'node.labels.public_ip == true')).toBe(false);
    expect(meetsConstraint(n, 'node.labels.public_ip != true')).toBe(true);
  });
  it('what the facts do not hold is not held against the node', () => {
    expect(meetsConstraint(n, 'engine.labels.zone == a')).toBeUndefined();
    expect(meetsConstraint(n, 'node.platform.os == linux')).toBeUndefined();
    expect(meetsAll(n, ['engine.labels.zone == a', 'node.role == worker'])).toBe(true);
    expect(meetsAll(n, ['engine.labels.zone == a', 'node.role == manager'])).toBe(false);
  });
});

describe('quorum', () => {
  it('survives losing one of three managers, not one of two, not when one is already down', () => {
    expect(quorumSurvivesLoss(HA5().nodes)).toBe(true);
    expect(quorumSurvivesLoss([node('node1', 'manager'), node('node2', 'manager')])).toBe(false);
    expect(
      quorumSurvivesLoss([
        node('node1', 'manager'),
        node('node2', 'manager'),
        node('node3', 'manager', { state: 'down', reachability: 'unreachable' }),
      ]),
    ).toBe(false);
    const five = ['node1', 'node2', 'node3', 'node4', 'node5'].map((n) => node(n, 'manager'));
    expect(quorumSurvivesLoss(five)).toBe(true);
  });
});

describe('planHa on a healthy HA cluster', () => {
  const plan = planHa(HA5(), S);

  it('manager-loss takes out the leader, not the manager cluster-cli talks to', () => {
    const c = check(plan.checks, 'manager-loss');
    expect(c.skip).toBeUndefined();
    expect(c.nodes).toEqual(['node2']);
    expect(c.leader).toBe(true);
    expect(c.probeTargets).toEqual(['203.0.113.11', '203.0.113.13']);
    expect(c.boundSeconds).toBe(60);
  });

  it('with the leader being the operator, another manager (by name) goes', () => {
    const f = HA5();
    const p = planHa(
      { ...f, nodes: f.nodes.map((n) => ({ ...n, leader: n.name === 'node1' })) },
      S,
    );
    expect(check(p.checks, 'manager-loss')).toMatchObject({ nodes: ['node2'], leader: false });
  });

  it('worker-loss takes the worker with the most movable replicated tasks', () => {
    const c = check(plan.checks, 'worker-loss');
    expect(c.nodes).toEqual(['node4']);
    expect(c.services).toEqual([{ name: 'platform_app', replicas: 3, there: 1 }]);
    expect(c.pinned).toEqual([]);
  });

  it('proxy-failover takes out every proxy node in turn, the operator last, under bounded load', () => {
    const c = check(plan.checks, 'proxy-failover');
    expect(c.nodes).toEqual(['node2', 'node3', 'node1']);
    expect(c.load).toMatchObject({
      rps: 20,
      maxInFlight: 4,
      targets: ['203.0.113.12', '203.0.113.13', '203.0.113.11'],
      host: 'apps.example.com',
      port: 443,
      tls: true,
    });
    expect(c.load?.maxSeconds).toBe(6 + 3 * (20 + 60));
    expect(c.holdSeconds).toBe(20);
  });

  it('node-rejoin restarts a worker through systemd when systemd runs Docker', () => {
    const c = check(plan.checks, 'node-rejoin');
    expect(c).toMatchObject({ method: 'systemd', restarted: 'node4', nodes: [] });
  });

  it('each node taken out has its rules and a dead-man switch past its longest bound', () => {
    expect(Object.keys(plan.isolation).sort()).toEqual(['node1', 'node2', 'node3', 'node4']);
    expect(plan.isolation.node2).toEqual(isolationRules(['eth0'], [22]));
    expect(plan.deadMan.node2).toBe(60 + DEADMAN_MARGIN_S); // manager-loss outlasts proxy-failover
    expect(plan.deadMan.node1).toBe(20 + DEADMAN_MARGIN_S);
  });

  it('prints the plan', async () => {
    await expect(
      renderHaPlan(plan, { manager: 'root@203.0.113.11', leftovers: [] }),
    ).toMatchFileSnapshot('__snapshots__/ha-plan-ha5.txt');
  });
});

describe('planHa skips what the cluster cannot have', () => {
  it('one manager: manager-loss and proxy-failover warn, with the promote command', () => {
    const f = facts(
      [node('node1', 'manager'), node('node2', 'worker'), node('node3', 'worker')],
      [proxy(['node1']), app(['node2']), postgres('node1')],
    );
    const p = planHa(f, S);
    expect(check(p.checks, 'manager-loss').skip).toEqual({
      reason: 'with 1 manager, losing one loses quorum',
      next: 'cluster-cli node promote node2 node3   # 3 managers survive one failure',
    });
    expect(check(p.checks, 'proxy-failover').skip?.reason).toBe(
      'only node1 runs the proxy: taking it out stops the stack',
    );
    expect(check(p.checks, 'worker-loss').nodes).toEqual(['node2']);
    expect(check(p.checks, 'node-rejoin').restarted).toBe('node2');
  });

  it('two managers and no worker to promote: add nodes', () => {
    const f = facts(
      [node('node1', 'manager'), node('node2', 'manager')],
      [proxy(['node1', 'node2'])],
      {
        cfg: ' -c prod.yaml',
      },
    );
    const p = planHa(f, S);
    expect(check(p.checks, 'manager-loss').skip?.reason).toBe(
      'with 2 managers, losing one loses quorum',
    );
    expect(check(p.checks, 'manager-loss').skip?.next).toMatch(/^add nodes .*-c prod\.yaml/);
    expect(check(p.checks, 'worker-loss').skip).toEqual({
      reason: 'no worker runs a replicated task',
      next: 'add a worker: cluster-cli node join <user@host> --role worker -c prod.yaml',
    });
    // both proxies are managers, and losing either loses quorum
    const pf = check(p.checks, 'proxy-failover');
    expect(pf.skip?.reason).toMatch(
      /^no proxy node can be taken out: node2: taking it out loses quorum; node1: taking it out loses quorum$/,
    );
    expect(check(p.checks, 'node-rejoin').skip?.reason).toMatch(
      /node2: taking it out loses quorum/,
    );
  });

  it('a worker whose only tasks are pinned to it is not taken out; pinned ones are listed', () => {
    const f = facts(
      [
        node('node1', 'manager'),
        node('node2', 'manager'),
        node('node3', 'manager'),
        node('node4', 'worker', { labels: { db: 'primary' } }),
        node('node5', 'worker'),
      ],
      [
        proxy(['node1', 'node2', 'node3']),
        postgres('node4', 'node.labels.db == primary'),
        app(['node5', 'node4']),
      ],
    );
    const c = check(planHa(f, S).checks, 'worker-loss');
    // node4 has app (movable) and postgres (pinned); node5 only app: both have one movable, node4 first by name
    expect(c.nodes).toEqual(['node4']);
    expect(c.pinned).toEqual([
      {
        name: 'platform_postgres',
        replicas: 1,
        there: 1,
        constraints: ['node.labels.db == primary'],
      },
    ]);
    const onlyPinned = facts(f.nodes, [
      proxy(['node1', 'node2', 'node3']),
      postgres('node4', 'node.labels.db == primary'),
    ]);
    expect(check(planHa(onlyPinned, S).checks, 'worker-loss').skip?.reason).toBe(
      'no worker can be taken out: node4: every replicated task there is pinned to it (platform_postgres)',
    );
  });

  it('a drained node does not count as a place to move to', () => {
    const f = facts(
      [
        node('node1', 'manager'),
        node('node2', 'worker'),
        node('node3', 'worker', { availability: 'drain' }),
      ],
      [proxy(['node1']), app(['node2'], ['node.role == worker'])],
    );
    expect(check(planHa(f, S).checks, 'worker-loss').skip?.reason).toMatch(
      /pinned to it \(platform_app\)/,
    );
  });

  it('nodes cluster-cli cannot cut off are never taken out', () => {
    const f = HA5();
    const nodes = f.nodes.map((n) => {
      if (n.name === 'node2') {
        const { access: _a, ...rest } = n;
        return { ...rest, accessError: 'not reached over SSH: timeout' };
      }
      if (n.name === 'node4') {
        const { address: _a, ...rest } = n;
        return rest; // the machine cluster-cli runs on
      }
      return n;
    });
    const p = planHa({ ...f, nodes }, S);
    expect(check(p.checks, 'manager-loss').nodes).toEqual(['node3']);
    expect(check(p.checks, 'worker-loss').nodes).toEqual(['node5']);
    const pf = check(p.checks, 'proxy-failover');
    expect(pf.nodes).toEqual(['node3', 'node1']);
    expect(pf.notTaken).toEqual([{ node: 'node2', why: 'not reached over SSH: timeout' }]);
    expect(check(p.checks, 'node-rejoin').restarted).toBe('node5');
    expect(Object.keys(p.isolation)).not.toContain('node2');
    expect(Object.keys(p.isolation)).not.toContain('node4');
  });

  it('Docker not under systemd: node-rejoin takes the node out instead', () => {
    const f = HA5();
    const nodes = f.nodes.map((n) =>
      n.access ? { ...n, access: { ...n.access, dockerUnit: false } } : n,
    );
    const c = check(planHa({ ...f, nodes }, S).checks, 'node-rejoin');
    expect(c).toMatchObject({
      method: 'isolate',
      restarted: 'node4',
      nodes: ['node4'],
      holdSeconds: 20,
    });
  });

  it('an already degraded cluster: nothing is taken out', () => {
    const f = HA5();
    const nodes = f.nodes.map((n) =>
      n.name === 'node3' ? { ...n, state: 'down', reachability: 'unreachable' } : n,
    );
    expect(degradedNodes(nodes).map((n) => n.name)).toEqual(['node3']);
    const p = planHa({ ...f, nodes }, S);
    expect(
      p.checks.every((c) =>
        c.skip?.reason.startsWith('the cluster is already degraded (node3 down, unreachable)'),
      ),
    ).toBe(true);
    expect(p.isolation).toEqual({});
  });

  it('a down node the swarm lists but cluster.yaml does not (a removed worker) does not block', () => {
    const f = HA5();
    const p = planHa(
      { ...f, nodes: [...f.nodes, node('old9', 'worker', { state: 'down', inConfig: false })] },
      S,
    );
    expect(p.checks.filter((c) => c.skip)).toEqual([]);
  });

  it('a single node: every check warns', () => {
    const p = planHa(facts([node('node1', 'manager')], [proxy(['node1']), app(['node1'])]), S);
    expect(p.checks.map((c) => Boolean(c.skip))).toEqual([true, true, true, true]);
    expect(check(p.checks, 'node-rejoin').skip?.reason).toBe(
      'a single node: restarting it is a full outage',
    );
  });
});

describe('--check picks the checks', () => {
  it('only the named checks are planned, in the checklist order', () => {
    const p = planHa(HA5(), { ...S, only: checkIds(['node-rejoin,manager-loss']) });
    expect(p.checks.map((c) => c.id)).toEqual(['manager-loss', 'node-rejoin']);
    expect(checkIds(['proxy-failover', 'worker-loss'])).toEqual(['worker-loss', 'proxy-failover']);
  });

  it('an unknown check name is one clear line naming the known ones', () => {
    expect(() => checkIds(['manager-loss,frobnicate'])).toThrow(UserError);
    expect(() => checkIds(['frobnicate'])).toThrow(
      'Unknown HA check "frobnicate": the checks are manager-loss, worker-loss, proxy-failover, node-rejoin.',
    );
    expect(() => checkIds([','])).toThrow(/Unknown HA check \(none given\)/);
  });
});
