import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ConnectFn } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import type { Cmd } from '../../src/core/cmd.js';
import type { Executor } from '../../src/core/executor.js';
import { testCtx } from '../helpers/ctx.js';
import { fakeFirewallCommand } from '../helpers/fake-firewall.js';

/**
 * `cluster-cli firewall …` in-process against fake hosts: each answers the
 * swarm probes of its manager and keeps its firewall in memory (the
 * iptables-restore input it is sent is read with the same parser as
 * iptables-save's output, the jump script adds a jump once, files are kept by
 * content). The real iptables is test/integration/firewall.test.ts's job.
 */

const SWARM_ID = 'c1uster1d0000000000000000';
const YAML = `# the cluster
domain: apps.example.com
email: ops@example.com
swarmId: ${SWARM_ID}
hosts:
  - name: node1 # first manager
    address: 203.0.113.11
  - name: node2
    address: 203.0.113.12
    port: 2222
  - name: node3
    address: node3-alias # the swarm knows its address
    role: worker
firewall:
  allow:
    - { port: 9100, from: 10.0.0.0/8 } # node_exporter
`;

interface FakeHost {
  readonly name: string;
  readonly address: string;
  /** The address the swarm sees it at. */
  readonly swarmAddr: string;
  readonly role: 'manager' | 'worker';
  v4: Map<string, string[]>;
  v6: Map<string, string[]>;
  files: Map<string, string>;
  unit: { enabled: boolean; active: boolean };
  reachable: boolean;
}

function host(name: string, address: string, swarmAddr: string, role: 'manager' | 'worker') {
  const chains = () =>
    new Map<string, string[]>([
      ['INPUT', []],
      ['FORWARD', ['-j DOCKER-USER']],
      ['OUTPUT', []],
      ['DOCKER-USER', ['-j RETURN']],
    ]);
  return {
    name,
    address,
    swarmAddr,
    role,
    v4: chains(),
    v6: new Map([
      ['INPUT', []],
      ['FORWARD', []],
      ['OUTPUT', []],
    ]),
    files: new Map(),
    unit: { enabled: false, active: false },
    reachable: true,
  } satisfies FakeHost;
}

function harness() {
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-firewall-'));
  writeFileSync(join(cwd, 'cluster.yaml'), YAML);
  const hosts: FakeHost[] = [
    host('node1', '203.0.113.11', '10.0.0.1', 'manager'),
    host('node2', '203.0.113.12', '10.0.0.2', 'manager'),
    host('node3', 'node3-alias', '10.0.0.3', 'worker'),
  ];
  const writes: string[] = [];
  const connect: ConnectFn = async (t) => {
    const me = hosts.find((h) => h.address === t.address);
    if (!me) throw new Error(`no fake host at ${t.address}`);
    if (!me.reachable) {
      const { UserError } = await import('../../src/core/errors.js');
      throw new UserError(`Cannot connect to ${t.address}:22: connection refused.`);
    }
    const label = `root@${me.address}${t.port ? `:${t.port}` : ''}`;
    return fakeExecutor(label, me, hosts, (c) => {
      writes.push(`${label}: ${c.argv.join(' ')}`);
    });
  };
  const t = testCtx({ cwd, connect });
  return {
    hosts,
    writes,
    yaml: () => readFileSync(join(cwd, 'cluster.yaml'), 'utf8'),
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
  record: (c: Cmd) => void,
): Executor {
  const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
  const lines = (xs: unknown[]) => `${xs.map((x) => JSON.stringify(x)).join('\n')}\n`;
  const id = (h: FakeHost) => `n0de${h.name}`.padEnd(25, '0');
  return {
    label,
    address: me.address,
    async run(c: Cmd) {
      const a = c.argv;
      const w = a.join(' ');
      if (!c.readOnly) record(c);
      if (w === 'docker info --format {{json .}}')
        return ok(
          JSON.stringify({
            Swarm: {
              LocalNodeState: 'active',
              ControlAvailable: me.role === 'manager',
              NodeID: id(me),
              Cluster: me.role === 'manager' ? { ID: SWARM_ID } : null,
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
                Spec: { Role: h.role, Availability: 'active', Labels: {} },
                Description: { Hostname: h.name, Engine: { EngineVersion: '27.5.1' } },
                Status: { State: 'ready', Addr: h.swarmAddr },
                ManagerStatus: h.role === 'manager' ? { Addr: `${h.swarmAddr}:2377` } : null,
              })),
          ),
        );
      if (a[0] === 'docker') return ok('');
      if (w === 'test -e /proc/net/if_inet6' || w === 'test -d /run/systemd/system') return ok();
      const fw = fakeFirewallCommand(me, c);
      if (fw) return fw;
      throw new Error(`fake host ${label}: unexpected command: ${w}`);
    },
    stream: () => Promise.reject(new Error('no streams')),
    close: async () => {},
  };
}

describe('cluster-cli firewall', () => {
  it('apply --dry-run: every node planned, the members listed, nothing written', async () => {
    const t = harness();
    expect(await t.run('firewall', 'apply', '--dry-run')).toBe(0);
    expect(t.writes).toEqual([]);
    expect(t.stdout).toContain('Swarm ports (2377/tcp, 7946/tcp+udp, 4789/udp) open to:');
    expect(t.stdout).toContain('  node1: 203.0.113.11, 10.0.0.1');
    expect(t.stdout).toContain('  node3: 10.0.0.3');
    expect(t.stdout).toContain('declared: 9100/tcp from 10.0.0.0/8');
    expect(t.stdout).toContain('firewall apply on platform: 9 to change, 0 unchanged');
    for (const n of ['node1', 'node2', 'node3'])
      expect(t.stdout).toContain(`Load the firewall rules on ${n}`);
    expect(t.stdout).toContain('Dry run: nothing was changed.');
    expect(t.yaml()).not.toContain('enabled');
  });

  it('apply without --yes and without a terminal: refused, nothing written', async () => {
    const t = harness();
    expect(await t.run('firewall', 'apply')).toBe(2);
    expect(t.stderr).toMatch(/--yes/);
    expect(t.writes).toEqual([]);
  });

  it('--node names a host that is not in the cluster: one clear line, nothing written', async () => {
    const t = harness();
    expect(await t.run('firewall', 'apply', '--node', 'node9', '--yes')).toBe(2);
    expect(t.stderr).toMatch(/^error: Unknown node node9: cluster\.yaml lists node1, node2/);
    expect(t.writes).toEqual([]);
    expect(await t.run('firewall', 'status', '--node', 'node9')).toBe(2);
    expect(t.writes).toEqual([]);
  });

  it('apply --node: only that host gets the rules, which still name every member', async () => {
    const t = harness();
    expect(await t.run('firewall', 'apply', '--node', 'node2', '--dry-run')).toBe(0);
    expect(t.stdout).toContain('Load the firewall rules on node2');
    expect(t.stdout).not.toMatch(/Load the firewall rules on node[13]/);
    // node1 and node3 are still members in the rules node2 gets
    expect(t.stdout).toMatch(
      /node1: 203\.0\.113\.11, 10\.0\.0\.1\n {2}node2: .*\n {2}node3: 10\.0\.0\.3/,
    );
    expect(t.writes).toEqual([]);
  });

  it('apply --yes: every node loaded and saved, cluster.yaml records it; status says in step; a second apply changes nothing', async () => {
    const t = harness();
    expect(await t.run('firewall', 'status')).toBe(1);
    expect(t.stdout).toMatch(
      /node1 +root@203\.0\.113\.11 +absent +no rules, files or unit of cluster-cli/,
    );

    expect(await t.run('firewall', 'apply', '--yes')).toBe(0);
    for (const label of ['root@203.0.113.11', 'root@203.0.113.12:2222', 'root@node3-alias'])
      expect(t.writes.filter((w) => w.startsWith(`${label}: iptables-restore`))).toHaveLength(1);
    // node2 is reached on 2222: that is its SSH port in its rules
    const node2 = t.hosts[1] as FakeHost;
    expect(node2.v4.get('CLUSTER-CLI-INPUT')).toContain('-p tcp -m tcp --dport 2222 -j ACCEPT');
    expect(node2.v4.get('CLUSTER-CLI-INPUT')).not.toContain('-p tcp -m tcp --dport 22 -j ACCEPT');
    expect(node2.v4.get('CLUSTER-CLI-INPUT')).toContain(
      '-s 10.0.0.3/32 -p udp -m multiport --dports 4789,7946 -j ACCEPT',
    );
    expect(node2.v4.get('INPUT')).toEqual(['-j CLUSTER-CLI-INPUT']);
    expect(node2.v4.get('DOCKER-USER')).toEqual(['-j CLUSTER-CLI-DOCKER', '-j RETURN']);
    // the rules never ride on a command line
    expect(t.writes.join('\n')).not.toContain('--dports');
    expect(t.stdout).toContain('Firewall in step on node1, node2, node3');
    expect(t.yaml()).toContain('# the cluster\n');
    expect(t.yaml()).toContain('- { port: 9100, from: 10.0.0.0/8 } # node_exporter');
    expect(t.yaml()).toMatch(/firewall:\n {2}allow:[\s\S]*\n {2}enabled: true\n/);

    expect(await t.run('firewall', 'status')).toBe(0);
    expect(t.stdout).toMatch(/node3 +root@node3-alias +in step +-/);
    expect(t.stdout).not.toContain('Note:');

    expect(await t.run('firewall', 'apply', '--yes')).toBe(0);
    expect(t.writes).toEqual([]);
    expect(t.stdout).toContain('firewall apply on platform: 0 to change, 9 unchanged');
  });

  it('a node removed from cluster.yaml: status shows the others drifted, apply shuts it out everywhere', async () => {
    const t = harness();
    expect(await t.run('firewall', 'apply', '--yes')).toBe(0);
    t.setYaml(t.yaml().replace(/ {2}- name: node3[\s\S]*?role: worker\n/, ''));
    t.hosts.pop();
    expect(await t.run('firewall', 'status', '--json')).toBe(1);
    const status = JSON.parse(t.stdout) as {
      inStep: boolean;
      nodes: { node: string; state: string; differences: string[] }[];
    };
    expect(status.inStep).toBe(false);
    expect(status.nodes.map((n) => [n.node, n.state])).toEqual([
      ['node1', 'drifted'],
      ['node2', 'drifted'],
    ]);
    expect(status.nodes[0]?.differences).toContain(
      'IPv4 CLUSTER-CLI-INPUT: 3 unexpected, order differs',
    );
    expect(JSON.parse(t.stderr.trim()).next).toBe('cluster-cli firewall apply');

    expect(await t.run('firewall', 'apply', '--yes', '--json')).toBe(0);
    const out = JSON.parse(t.stdout) as { changed: string[]; failed: unknown[] };
    expect(out.failed).toEqual([]);
    expect(out.changed).toEqual([
      'Load the firewall rules on node1 (IPv4 31 rules, IPv6 17 rules)',
      'Save the rules for reboots on node1: /usr/local/lib/cluster-cli/firewall.rules',
      'Load the firewall rules on node2 (IPv4 31 rules, IPv6 17 rules)',
      'Save the rules for reboots on node2: /usr/local/lib/cluster-cli/firewall.rules',
    ]);
    for (const h of t.hosts)
      expect(h.v4.get('CLUSTER-CLI-INPUT')?.join('\n')).not.toContain('10.0.0.3');
  });

  it('status: an unreachable node is reported, not fatal', async () => {
    const t = harness();
    expect(await t.run('firewall', 'apply', '--yes')).toBe(0);
    (t.hosts[2] as FakeHost).reachable = false;
    expect(await t.run('firewall', 'status')).toBe(1);
    expect(t.stdout).toMatch(/node3 +node3-alias +unreachable +Cannot connect/);
    expect(t.stderr).toContain('1 of 3 node(s) not in step: node3 (unreachable)');
  });
});
