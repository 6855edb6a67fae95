import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  dockerOf,
  formCluster,
  type Lab,
  type LabHost,
  labCli,
  labHost,
  ROOT,
  readLab,
  wipe,
} from './lab.js';

/**
 * `doctor --ha` for real on three managers (the proxy on each) and two
 * workers: it takes nodes out (iptables in each lab host's own network
 * namespace, as a crashed or cut-off node), measures, and puts them back.
 * What is checked is what a user would look at afterwards: the verdicts and
 * numbers, the report file, no rule left on any host, every node Ready.
 */

let lab: Lab;
let h: LabHost[];
let d: Docker[];
let cfg: string;
let dir: string;
let cli: ReturnType<typeof labCli>['cli'];
let ok: ReturnType<typeof labCli>['ok'];

const target = (n: number) => `root@${h[n - 1]?.address}`;

/** cluster-cli-ha rules in a lab host's raw table (its own netns). */
function haRules(n: number): string[] {
  const out = execFileSync('ip', [
    'netns',
    'exec',
    `clab-lab${n}`,
    'iptables',
    '-t',
    'raw',
    '-S',
    'PREROUTING',
  ]).toString();
  return out.split('\n').filter((l) => l.includes('cluster-cli-ha'));
}
const allRules = () => [1, 2, 3, 4, 5].flatMap((n) => haRules(n).map((r) => `lab${n}: ${r}`));

async function nodeStates(): Promise<Record<string, string>> {
  const nodes = await (d[0] as Docker).listNodes();
  return Object.fromEntries(
    nodes.map((n) => [n.Description?.Hostname ?? n.ID, String(n.Status?.State)]),
  );
}

async function untilAllReady(): Promise<Record<string, string>> {
  let states: Record<string, string> = {};
  for (let i = 0; i < 60; i++) {
    states = await nodeStates();
    if (Object.values(states).every((s) => s === 'ready')) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return states;
}

interface Check {
  id: string;
  verdict: string;
  detail: string;
  numbers: Record<string, number | string | boolean>;
  load?: { requests: number; successRate: number; worstGapMs: number };
  restored: string[];
}

beforeAll(() => {
  lab = readLab();
  ({ cli, ok } = labCli(lab, () => cfg));
  h = [1, 2, 3, 4, 5].map((n) => labHost(lab, `lab${n}`));
  d = h.map(dockerOf);
});

describe('doctor --ha on three managers and two workers', () => {
  beforeAll(async () => {
    wipe('all');
    dir = mkdtempSync(join(tmpdir(), 'cluster-cli-ha-'));
    cfg = join(dir, 'cluster.yaml');
    copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, cfg);
    await formCluster(ok, target(1), [
      `${target(2)},manager`,
      `${target(3)},manager`,
      `${target(4)},worker`,
      `${target(5)},worker`,
    ]);
    // Four app replicas: Swarm spreads the new ones onto the workers, so losing
    // a worker moves a task (and a proxy node going out leaves replicas).
    await ok(['config', 'set', 'app.replicas', '4', '--yes']);
  }, 600_000);

  it('--dry-run shows which node each check takes out and the exact commands; nothing changes', async () => {
    const r = await ok(['doctor', '--ha', '--dry-run', '--json']);
    const doc = JSON.parse(r.stdout) as { dryRun: boolean; plan: unknown };
    expect(doc.dryRun).toBe(true);
    const text = JSON.stringify(doc.plan);
    for (const id of ['manager-loss', 'worker-loss', 'proxy-failover', 'node-rejoin'])
      expect(text).toContain(id);
    expect(text).toContain('iptables');
    expect(allRules()).toEqual([]);
  });

  it('without --yes and without a TTY it refuses and takes nothing out', async () => {
    const r = await cli(['doctor', '--ha']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--yes/);
    expect(allRules()).toEqual([]);
  });

  it('runs the checklist: quorum holds, tasks move, >= 99 % under load while each proxy node is out, a node rejoins; all put back', async () => {
    const report = join(dir, 'ha.md');
    const r = await cli([
      'doctor',
      '--ha',
      '--yes',
      '--json',
      '--down-seconds',
      '10',
      '--report',
      report,
    ]);
    const doc = JSON.parse(r.stdout) as { verdict: string; checks: Check[]; report: string };
    const byId = Object.fromEntries(doc.checks.map((c) => [c.id, c]));
    const summary = doc.checks.map((c) => `${c.id}: ${c.verdict}: ${c.detail}`).join('\n');
    expect(byId['manager-loss']?.verdict, summary).toBe('ok');
    expect(byId['worker-loss']?.verdict, summary).toBe('ok');
    // the swarm really lost the worker (it listed it down) before its tasks moved
    expect(Number(byId['worker-loss']?.numbers.swarmSawDownAfterSeconds), summary).toBeGreaterThan(
      0,
    );
    const load = byId['proxy-failover']?.load;
    expect(load?.requests, summary).toBeGreaterThan(100);
    expect(load?.successRate, summary).toBeGreaterThanOrEqual(0.99);
    expect(byId['proxy-failover']?.verdict, summary).toBe('ok');
    expect(byId['node-rejoin']?.verdict, summary).toBe('ok');
    expect(doc.verdict).toBe('ok');
    expect(r.code, r.stderr).toBe(0);
    // The report a user keeps: every check with its verdict.
    expect(doc.report).toBe(report);
    const md = readFileSync(report, 'utf8');
    for (const title of ['manager loss', 'worker loss', 'proxy failover', 'node rejoin'])
      expect(md).toMatch(new RegExp(`\\| ${title} \\| ok \\|`));
    // Everything it took out is back.
    expect(allRules()).toEqual([]);
    expect(Object.values(await untilAllReady())).toEqual(Array(5).fill('ready'));
    const status = await cli(['status', '--json']);
    expect(status.code, status.stdout).toBe(0);
  });

  it('interrupted (SIGINT) while a node is out: it is put back, the report says so, exit 130', async () => {
    const report = join(dir, 'ha-interrupted.md');
    const child = spawn(
      process.execPath,
      [
        `${ROOT}bin/cluster-cli.js`,
        'doctor',
        '--ha',
        '--yes',
        '--down-seconds',
        '30',
        '--report',
        report,
        '--identity',
        lab.sshKey,
        '--known-hosts',
        lab.knownHosts,
        '-c',
        cfg,
      ],
      { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    // Wait until some node is out (its rules are in), then interrupt.
    let isolated: string[] = [];
    for (let i = 0; i < 600 && !isolated.length; i++) {
      isolated = allRules();
      if (!isolated.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(isolated.length, out).toBeGreaterThan(0);
    child.kill('SIGINT');
    const code = await exited;
    expect(code, out).toBe(130);
    expect(allRules()).toEqual([]);
    expect(existsSync(report)).toBe(true);
    expect(readFileSync(report, 'utf8')).toMatch(/interrupt/i);
    expect(Object.values(await untilAllReady())).toEqual(Array(5).fill('ready'));
  });
});
