import { describe, expect, it } from 'vitest';
import { loadStats } from '../../src/cluster/ha-load.js';
import { planHa } from '../../src/cluster/ha-plan.js';
import {
  type HaCheckResult,
  type HaReport,
  haVerdict,
  loadLine,
  planJson,
  renderHaMarkdown,
  renderHaSummary,
  reportFileName,
} from '../../src/cluster/ha-report.js';

const load = loadStats(
  [
    ...Array.from({ length: 198 }, (_, i) => ({
      start: i * 50,
      end: i * 50 + 20,
      ok: true,
      tried: 1,
    })),
    { start: 9900, end: 10900, ok: false, tried: 2, error: 'connect timeout on every address' },
    { start: 9950, end: 10950, ok: false, tried: 1, error: 'HTTP 502' },
  ],
  { start: 0, end: 10_000 },
);

const checks: HaCheckResult[] = [
  {
    id: 'manager-loss',
    title: 'manager loss',
    verdict: 'ok',
    detail: 'took out node2 (the leader) for 21.0 s: the API listed the nodes again after 11.2 s',
    steps: [
      '+0.4 s: took out node2 (incoming traffic dropped, SSH kept)',
      '+21.0 s: restored node2',
    ],
    restored: ['node2: removed 2 cluster-cli-ha rule(s), stopped its dead-man switch'],
    numbers: { node: 'node2', apiAnswersAfterSeconds: 11.2, wasLeader: true },
  },
  {
    id: 'worker-loss',
    title: 'worker loss',
    verdict: 'warn',
    detail: 'skipped: no worker runs a replicated task',
    steps: [],
    restored: [],
    numbers: {},
  },
  {
    id: 'proxy-failover',
    title: 'proxy failover',
    verdict: 'fail',
    detail: `98.9 % < 99 %: a | b`,
    next: 'cluster-cli status',
    steps: ['+0.0 s: load started'],
    restored: [],
    numbers: { requests: 200 },
    load,
  },
];

const report: HaReport = {
  cluster: 'platform',
  config: '/srv/cluster.yaml',
  date: '2026-01-02T03:04:05.678Z',
  manager: 'root@203.0.113.11',
  settings: { downSeconds: 20, rescheduleTimeout: 60, rps: 20 },
  verdict: haVerdict(checks),
  checks,
  leftovers: [{ node: 'node3', rules: 2 }],
};

describe('haVerdict', () => {
  it('the worst of the checks', () => {
    expect(haVerdict(checks)).toBe('fail');
    expect(haVerdict(checks.slice(0, 2))).toBe('warn');
    expect(haVerdict(checks.slice(0, 1))).toBe('ok');
    expect(haVerdict([])).toBe('ok');
  });
});

describe('loadLine', () => {
  it('requests, rate, worst gap and failures by reason, from the stats', () => {
    expect(loadLine(load)).toBe(
      `198/200 requests ok (99.0 %) at 20.0 req/s over 10.0 s, worst gap ${(load.worstGapMs / 1000).toFixed(1)} s; failures: 1× connect timeout on every address, 1× HTTP 502`,
    );
    // a success rate just under 99 % never prints as 99.0
    expect(loadLine({ ...load, successRate: 0.98999 })).toMatch(/\(98\.9 %\)/);
  });
});

describe('renderHaMarkdown', () => {
  const md = renderHaMarkdown(report);

  it('names the cluster, the date, the settings and the verdict', () => {
    expect(md.split('\n').slice(0, 8)).toEqual([
      '# HA validation: platform',
      '',
      '- Date: 2026-01-02T03:04:05.678Z',
      '- Cluster file: /srv/cluster.yaml',
      '- Through manager: root@203.0.113.11',
      '- Settings: down 20 s, recovery bound 60 s, load 20 req/s',
      '- Verdict: **FAIL**',
      '- Leftovers of an interrupted earlier run, removed first: node3 (2 rules)',
    ]);
  });

  it('one table row per check, pipes escaped, then a section each with steps, numbers and what was restored', () => {
    const rows = md.split('\n').filter((l) => /^\| (manager|worker|proxy)/.test(l));
    expect(rows.map((r) => r.split(/(?<!\\)\|/).map((c) => c.trim())[2])).toEqual([
      'ok',
      'warn',
      '**FAIL**',
    ]);
    expect(rows[2]).toContain('a \\| b');
    const section = md.slice(md.indexOf('## manager loss: OK'), md.indexOf('## worker loss'));
    for (const s of checks[0]?.steps ?? []) expect(section).toContain(`- ${s}`);
    expect(section).toContain('- apiAnswersAfterSeconds: 11.2');
    expect(section).toContain('Restored:\n\n- node2: removed 2 cluster-cli-ha rule(s)');
    const proxy = md.slice(md.indexOf('## proxy failover: FAIL'));
    expect(proxy).toContain('Next: `cluster-cli status`');
    expect(proxy).toContain(`Load: ${loadLine(load)}`);
  });

  it('says when a node could not be restored and when its dead-man switch heals it', () => {
    const m = renderHaMarkdown({
      ...report,
      interrupted: 'SIGINT',
      unrestored: [
        { node: 'node2', error: 'connection lost', healsBy: '2026-01-02T03:06:00.000Z' },
      ],
    });
    expect(m).toContain('- Interrupted by SIGINT');
    expect(m).toContain(
      '## Not restored\n\n- node2: connection lost; its dead-man switch removes the rules by 2026-01-02T03:06:00.000Z',
    );
  });
});

describe('renderHaSummary', () => {
  it('a line per check, the next commands, and the counts', () => {
    const s = renderHaSummary(report).split('\n');
    expect(s[0]).toBe(`  ok    manager loss: ${checks[0]?.detail}`);
    expect(s[2]).toMatch(/^ {2}FAIL {2}proxy failover: /);
    expect(s).toContain('  proxy failover: cluster-cli status');
    expect(s.at(-1)).toBe('platform: FAIL (1 fail, 1 warn, 1 ok)');
  });
});

describe('reportFileName', () => {
  it('cluster name and UTC time, no characters a file system dislikes', () => {
    expect(reportFileName('prod-eu', new Date('2026-01-02T03:04:05.678Z'))).toBe(
      'doctor-ha-prod-eu-20260102T030405Z.md',
    );
  });
});

describe('planJson', () => {
  it('carries the checks and, per node taken out, the exact commands', () => {
    const plan = planHa(
      {
        cluster: 'platform',
        cfg: '',
        operator: 'node1',
        nodes: ['node1', 'node2'].map((name, i) => ({
          name,
          id: name,
          role: i === 0 ? ('manager' as const) : ('worker' as const),
          state: 'ready',
          availability: 'active',
          reachability: 'reachable',
          labels: {},
          inConfig: true,
          address: `10.0.0.${i + 1}`,
          access: { ifaces: ['ens4'], sshPorts: [22], dockerUnit: false },
        })),
        services: [
          {
            name: 'platform_app',
            mode: 'replicated',
            replicas: 2,
            constraints: [],
            runningOn: ['node1', 'node2'],
          },
        ],
        proxyService: 'platform_proxy',
        app: { host: 'a.example.com', port: 443, tls: true, path: '/' },
      },
      { downSeconds: 20, rescheduleTimeout: 60, rps: 20 },
    );
    const j = planJson(plan, { manager: 'root@10.0.0.1', leftovers: [] });
    expect(Object.keys(j.isolation)).toEqual(['node2']);
    const cmds = j.isolation.node2?.commands ?? [];
    expect(cmds[0]).toMatch(/^\$ sh -c .*setsid sh -c/s);
    expect(cmds).toContain(
      '$ iptables --wait=10 -t raw -I PREROUTING 2 -i ens4 -m comment --comment cluster-cli-ha -j DROP',
    );
    expect(cmds).toContain(
      '$ iptables --wait=10 -t raw -D PREROUTING -i ens4 -p tcp -m tcp --dport 22 -m comment --comment cluster-cli-ha -j ACCEPT',
    );
    expect(j.checks.map((c) => [c.id, Boolean(c.skip)])).toEqual([
      ['manager-loss', true],
      ['worker-loss', false],
      ['proxy-failover', true],
      ['node-rejoin', false],
    ]);
  });
});
