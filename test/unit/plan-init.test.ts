import { describe, expect, it } from 'vitest';
import { planInit } from '../../src/cluster/plan-init.js';
import { validateConfig } from '../../src/config/load.js';
import { formatPlan, planToJson } from '../../src/core/plan.js';
import { secret } from '../../src/core/secret.js';
import type { RenderedStack } from '../../src/stack/render.js';
import { freshDebianHost, managerOf } from '../helpers/facts.js';

const { config } = validateConfig({
  domain: 'apps.example.com',
  email: 'ops@example.com',
  hosts: [{ name: 'node1', address: '203.0.113.10', labels: { db: 'primary' } }],
});
// Hand-built render output: the planner only passes it through to the deploy step.
const rendered: RenderedStack = {
  yaml: 'services: {}\n',
  configs: [
    {
      key: 'traefik',
      name: 'platform_traefik_0123456789ab',
      target: '/etc/traefik/traefik.yml',
      content: 'ping: {}\n',
    },
  ],
  services: ['proxy', 'app', 'postgres', 'redis'],
  revisions: { proxy: 'rev1', app: 'rev1', postgres: 'rev1', redis: 'rev1' },
  yamlFor: (keys) => `services: {${keys.join(', ')}}\n`,
  live: {},
};
const newSecrets = {
  platform_postgres_password: secret('pg-value-never-printed'),
  platform_redis_password: secret('redis-value-never-printed'),
};
const base = {
  config,
  host: 'root@203.0.113.10',
  advertiseAddr: '203.0.113.10',
  rendered,
  force: false,
  newSecrets,
};

/** A manager on which init already ran, with the stack at the given revision. */
function deployedAt(revision: string, dataConstraints: string[] = ['node.labels.db == primary']) {
  return managerOf({
    nodes: [
      {
        id: 'n0de1d',
        hostname: 'node1',
        role: 'manager',
        labels: { db: 'primary' },
        self: true,
        state: 'ready',
        availability: 'active',
      },
    ],
    networks: [
      { name: 'platform-ingress', subnet: '10.0.10.0/24', internal: false, attachable: true },
      { name: 'platform-app', subnet: '10.0.20.0/24', internal: false, attachable: true },
      { name: 'platform-data', subnet: '10.0.30.0/24', internal: true, attachable: true },
    ],
    secrets: ['platform_postgres_password', 'platform_redis_password'],
    configs: ['platform_traefik_0123456789ab'],
    services: [
      { name: 'platform_proxy', revision, constraints: ['node.role == manager'] },
      { name: 'platform_app', revision, constraints: [] },
      { name: 'platform_postgres', revision, constraints: dataConstraints },
      { name: 'platform_redis', revision, constraints: dataConstraints },
    ],
  });
}

describe('planInit', () => {
  it('plans everything on a fresh host with Docker', async () => {
    const plan = planInit({ ...base, facts: freshDebianHost() });
    const text = formatPlan(plan);
    await expect(text).toMatchFileSnapshot('./__snapshots__/plan-init-fresh.txt');
    expect(text).not.toContain('never-printed');
    expect(JSON.stringify(planToJson(plan))).not.toContain('never-printed');
  });

  it('installs Docker first when it is missing', async () => {
    const plan = planInit({
      ...base,
      facts: freshDebianHost({
        docker: { installed: false },
        swarm: { state: 'unknown', isManager: false },
      }),
    });
    expect(plan.steps.map((s) => s.id).slice(0, 2)).toEqual(['docker', 'swarm']);
    await expect(formatPlan(plan)).toMatchFileSnapshot('./__snapshots__/plan-init-no-docker.txt');
  });

  it('plans nothing when the host already matches (safe to re-run)', async () => {
    const facts = deployedAt('rev1');
    const plan = planInit({ ...base, facts });
    expect(plan.steps.every((s) => s.action === 'unchanged')).toBe(true);
    await expect(formatPlan(plan)).toMatchFileSnapshot('./__snapshots__/plan-init-unchanged.txt');
  });

  it('redeploys only the stack when its revision changed, and keeps existing secrets', () => {
    const facts = deployedAt('old');
    const changed = planInit({ ...base, facts }).steps.filter((s) => s.action === 'change');
    expect(changed.map((s) => s.id)).toEqual(['deploy']);
    // Every service differs: the whole file, but no prune of an existing stack.
    expect(changed[0]?.cmds).toEqual([
      expect.objectContaining({
        argv: expect.not.arrayContaining(['--prune']),
        stdin: rendered.yaml,
      }),
    ]);
  });

  it('updates only the services whose revision changed', () => {
    const facts = deployedAt('rev1');
    const app = { ...rendered, revisions: { ...rendered.revisions, app: 'rev2' } };
    const changed = planInit({ ...base, rendered: app, facts }).steps.filter(
      (s) => s.action === 'change',
    );
    expect(changed.map((s) => s.title)).toEqual([expect.stringMatching(/^Update platform_app \(/)]);
    expect(changed[0]?.cmds).toEqual([
      expect.objectContaining({
        stdin: 'services: {app}\n',
        argv: expect.not.arrayContaining(['--prune']),
      }),
    ]);
  });

  it('removes the agent service once cluster.yaml no longer has it', () => {
    const facts = deployedAt('rev1');
    const withAgent = managerOf({
      ...facts.cluster,
      services: [
        ...(facts.cluster?.services ?? []),
        { name: 'platform_agent', revision: 'x', constraints: [] },
      ],
    } as never);
    const changed = planInit({ ...base, facts: withAgent }).steps.filter(
      (s) => s.action === 'change',
    );
    expect(changed.map((s) => s.id)).toEqual(['remove-platform_agent']);
  });

  it('refuses to change an existing network it would have to recreate', () => {
    const facts = managerOf({
      networks: [
        { name: 'platform-data', subnet: '10.9.0.0/24', internal: false, attachable: true },
      ],
    });
    expect(() => planInit({ ...base, facts })).toThrow(
      'Network platform-data exists with 10.9.0.0/24, but cluster.yaml wants 10.0.30.0/24, internal.',
    );
  });

  it('refuses a worker of another swarm', () => {
    const facts = freshDebianHost({ swarm: { state: 'active', isManager: false } });
    expect(() => planInit({ ...base, facts })).toThrow(
      'root@203.0.113.10 is a worker node of another swarm',
    );
  });
});

describe('planInit and the swarm cluster.yaml describes', () => {
  it('refuses a manager of another swarm than the one recorded in cluster.yaml', () => {
    const { config: recorded } = validateConfig({
      domain: 'apps.example.com',
      email: 'ops@example.com',
      swarmId: 'abcdefghijklmnopqrstuvwxy',
      hosts: [{ name: 'node1', address: '203.0.113.10' }],
    });
    const facts = managerOf({});
    expect(() => planInit({ ...base, config: recorded, facts })).toThrow(
      'root@203.0.113.10 is a manager of swarm c1uster1d0000000, but this cluster.yaml describes swarm abcdefghijklmnopqrstuvwxy.',
    );
    const same = managerOf(
      {},
      { swarm: { state: 'active', isManager: true, clusterId: 'abcdefghijklmnopqrstuvwxy' } },
    );
    expect(
      planInit({ ...base, config: recorded, facts: same }).steps.find((s) => s.id === 'swarm')
        ?.action,
    ).toBe('unchanged');
  });
});

describe('planInit and data that lives on one node', () => {
  it('refuses a change that would move PostgreSQL away from its volume, unless --force', () => {
    // deployed before any node carried db=primary: pinned by hostname
    const facts = deployedAt('old', ['node.hostname == node1']);
    expect(() => planInit({ ...base, facts })).toThrow(
      'platform_postgres runs with placement [node.hostname == node1]; cluster.yaml now wants [node.labels.db == primary]. Its data volume is local to its node, so moving it would start it empty elsewhere.',
    );
    const forced = planInit({ ...base, force: true, facts });
    expect(forced.steps.filter((s) => s.action === 'change').map((s) => s.id)).toEqual(['deploy']);
  });
});
