import { describe, expect, it } from 'vitest';
import { assessHealth, EXIT_CODE, type ServiceHealth } from '../../src/cluster/health.js';
import type { NodeFacts } from '../../src/cluster/probe.js';

const now = new Date('2026-11-24T04:00:00Z');
const node = (hostname: string, over: Partial<NodeFacts> = {}): NodeFacts => ({
  id: hostname,
  hostname,
  role: 'manager',
  labels: {},
  self: false,
  state: 'ready',
  availability: 'active',
  reachability: 'reachable',
  ...over,
});
const svc = (short: string, over: Partial<ServiceHealth> = {}): ServiceHealth => ({
  name: `platform_${short}`,
  present: true,
  running: 1,
  desired: 1,
  revision: 'r1',
  wanted: 'r1',
  ...over,
});
const essential = ['proxy', 'app', 'postgres', 'redis'].map((s) => `platform_${s}`);
const healthyServices = () => ['proxy', 'app', 'postgres', 'redis'].map((s) => svc(s));
const three = () => [node('n1', { leader: true }), node('n2'), node('n3')];

describe('assessHealth', () => {
  it('healthy: every node ready, every service at its count and revision', () => {
    const r = assessHealth({ nodes: three(), services: healthyServices(), essential, now });
    expect(r).toEqual({ verdict: 'healthy', findings: [] });
    expect(EXIT_CODE[r.verdict]).toBe(0);
  });

  it('one of three managers down: degraded (quorum holds), naming the node', () => {
    const nodes = [
      node('n1'),
      node('n2'),
      node('n3', { state: 'down', reachability: 'unreachable' }),
    ];
    const r = assessHealth({ nodes, services: healthyServices(), essential, now });
    expect(r.verdict).toBe('degraded');
    expect(r.findings.map((f) => f.text)).toEqual(['node n3 (manager) is down']);
    expect(EXIT_CODE[r.verdict]).toBe(1);
  });

  it('two of three managers down: down, quorum lost', () => {
    const nodes = [
      node('n1'),
      node('n2', { state: 'down', reachability: 'unreachable' }),
      node('n3', { state: 'down', reachability: 'unreachable' }),
    ];
    const r = assessHealth({ nodes, services: healthyServices(), essential, now });
    expect(r.verdict).toBe('down');
    expect(r.findings[0]?.text).toBe('quorum lost: 1 of 3 managers reachable, 2 needed');
    expect(EXIT_CODE[r.verdict]).toBe(2);
  });

  it('an essential service with no task is down; short of tasks is degraded, with the task error', () => {
    const none = assessHealth({
      nodes: three(),
      services: [
        ...healthyServices().slice(0, 3),
        svc('redis', { running: 0, lastError: 'no suitable node' }),
      ],
      essential,
      now,
    });
    expect(none.verdict).toBe('down');
    expect(none.findings[0]?.text).toBe(
      'platform_redis: 0/1 running (last error: no suitable node)',
    );
    const short = assessHealth({
      nodes: three(),
      services: [svc('proxy', { running: 2, desired: 3 }), ...healthyServices().slice(1)],
      essential,
      now,
    });
    expect(short.verdict).toBe('degraded');
    // the agent is not essential: none of its tasks running is degraded only
    const agent = assessHealth({
      nodes: three(),
      services: [...healthyServices(), svc('agent', { running: 0, desired: 3 })],
      essential,
      now,
    });
    expect(agent.verdict).toBe('degraded');
  });

  it('drift: a service running another revision than cluster.yaml renders says apply', () => {
    const r = assessHealth({
      nodes: three(),
      services: [svc('proxy'), svc('app', { revision: 'old' }), svc('postgres'), svc('redis')],
      essential,
      now,
    });
    expect(r.verdict).toBe('degraded');
    expect(r.findings).toContainEqual({
      level: 'warn',
      area: 'stack',
      text: 'platform_app runs revision old, cluster.yaml renders r1',
      next: 'cluster-cli apply',
    });
  });

  it('a missing essential service is down', () => {
    const r = assessHealth({
      nodes: three(),
      services: [
        svc('proxy'),
        svc('app', { present: false, running: 0, desired: 0 }),
        svc('postgres'),
        svc('redis'),
      ],
      essential,
      now,
    });
    expect(r.verdict).toBe('down');
  });

  it('certificates: expired is down, close to expiry without renewal or an ACME error is degraded', () => {
    const base = { nodes: three(), services: healthyServices(), essential, now };
    expect(
      assessHealth({ ...base, tls: { mode: 'cluster', notAfter: '2026-11-01T00:00:00Z' } }).verdict,
    ).toBe('down');
    expect(
      assessHealth({
        ...base,
        tls: { mode: 'cluster', notAfter: '2026-12-01T00:00:00Z', renewDays: 30 },
      }).findings.map((f) => f.text),
    ).toEqual(['the certificate expires in 6 days and was not renewed']);
    expect(
      assessHealth({ ...base, tls: { mode: 'cluster', notAfter: '2027-02-20T00:00:00Z' } }).verdict,
    ).toBe('healthy');
    expect(
      assessHealth({
        ...base,
        tls: { mode: 'cluster', notAfter: '2027-02-20T00:00:00Z', lastError: 'rateLimited' },
      }).verdict,
    ).toBe('degraded');
    expect(assessHealth({ ...base, tls: { mode: 'internal' } }).verdict).toBe('healthy');
  });

  it('backups: stale or failed last run is degraded, with the next command', () => {
    const base = { nodes: three(), services: healthyServices(), essential, now };
    const stale = assessHealth({ ...base, backup: { stale: true } });
    expect(stale.findings).toEqual([
      {
        level: 'warn',
        area: 'backups',
        text: 'no successful backup yet',
        next: 'cluster-cli backup run',
      },
    ]);
    const failed = assessHealth({
      ...base,
      backup: { stale: false, lastSuccessAt: '2026-11-24T03:00:00Z', lastRunFailed: 'S3 refused' },
    });
    expect(failed.findings[0]?.text).toBe('the last backup failed: S3 refused');
    expect(assessHealth({ ...base, backup: { stale: false } }).verdict).toBe('healthy');
  });
});
