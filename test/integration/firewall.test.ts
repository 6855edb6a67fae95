import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../../src/core/apply.js';
import type { Cmd } from '../../src/core/cmd.js';
import type { Executor } from '../../src/core/executor.js';
import { changesOf } from '../../src/core/plan.js';
import { hostSession } from '../../src/core/session.js';
import {
  checkFirewall,
  FIREWALL_DIR,
  FIREWALL_FILES,
  planFirewall,
  SCRIPT_FILE,
  UNIT_NAME,
} from '../../src/firewall/plan.js';
import { parseIptablesSave, probeFirewall } from '../../src/firewall/probe.js';
import {
  DOCKER_CHAIN,
  type FirewallRules,
  firewallRules,
  INPUT_CHAIN,
  renderRestore,
} from '../../src/firewall/rules.js';
import { LocalExecutor } from '../../src/remote/local.js';

/**
 * The firewall with REAL iptables, in network namespaces of its own (never
 * the machine's): a "node" (the host under test) joined by veth pairs to a
 * "member" (another cluster node), a "stranger" (the internet) and a
 * "container" behind a Docker-like bridge port (br-…), with DOCKER-USER,
 * FORWARD's jump to it, DNAT for published ports and masquerading set up as
 * dockerd sets them. No dockerd and no systemd run in the namespaces: the
 * node is planned as a host without systemd, and the boot unit's script is
 * run by hand where a reboot or a Docker restart would run it.
 */

const run = promisify(execFile);
const canRun =
  process.getuid?.() === 0 &&
  (() => {
    try {
      execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
      execFileSync('iptables', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

const id = randomBytes(3).toString('hex');
const NS = {
  node: `cc-fw-test-${id}-node`,
  member: `cc-fw-test-${id}-member`,
  stranger: `cc-fw-test-${id}-stranger`,
  ctr: `cc-fw-test-${id}-ctr`,
};
const ADDR = {
  node: '10.99.1.1',
  member: '10.99.1.2',
  nodeOut: '10.99.2.1',
  stranger: '10.99.2.2',
  node6: 'fd99:1::1',
  member6: 'fd99:1::2',
  nodeOut6: 'fd99:2::1',
  stranger6: 'fd99:2::2',
  ctr: '172.30.0.2',
};
/** Published ports of the "container" (all DNAT to its port 80): 80 is open, 9090 declared, 8080 not. */
const PUBLISHED = [80, 8080, 9090];
const ALLOW = [{ port: 9090, proto: 'tcp' as const }];

let root = '';
const servers: ChildProcess[] = [];

function sh(ns: string | undefined, ...argv: string[]): string {
  return execFileSync(
    ns ? 'ip' : (argv[0] as string),
    ns ? ['netns', 'exec', ns, ...argv] : argv.slice(1),
    {
      encoding: 'utf8',
    },
  );
}

/**
 * Runs commands inside the node's namespace. The files the plan saves go
 * under a temporary root instead of / (and are read back from there); the
 * namespace counts as a host without systemd.
 */
function nodeExecutor(): Executor {
  const local = new LocalExecutor(false);
  const inRoot = (a: string) =>
    a.startsWith(`${FIREWALL_DIR}/`) || a.startsWith('/etc/systemd/') ? `${root}${a}` : a;
  return {
    label: 'netns-node',
    async run(c: Cmd, opts) {
      const argv =
        c.argv.join(' ') === 'test -d /run/systemd/system' ? ['false'] : c.argv.map(inRoot);
      const r = await local.run({ ...c, argv: ['ip', 'netns', 'exec', NS.node, ...argv] }, opts);
      return { ...r, stdout: r.stdout.replaceAll(root, '') };
    },
    stream: () => Promise.reject(new Error('no streams here')),
    close: async () => {},
  };
}

const PROBE = { files: FIREWALL_FILES, unit: UNIT_NAME };

function wanted(members: string[]): FirewallRules {
  return firewallRules({ members, sshPorts: [22], allow: ALLOW });
}

/** probe → plan → apply, as `firewall apply` does for one node; returns the plan. */
async function applyRules(rules: FirewallRules) {
  const exec = nodeExecutor();
  const facts = await probeFirewall(exec, PROBE);
  const plan = planFirewall('test', [{ name: 'node', host: exec.label, rules, facts }]);
  const session = hostSession(exec, () => {
    throw new Error('no Docker API here');
  });
  await apply(plan, new Map([[exec.label, session]]));
  return plan;
}

async function check(rules: FirewallRules) {
  return checkFirewall(rules, await probeFirewall(nodeExecutor(), PROBE));
}

/** iptables-save of the node without the lines that change by themselves (date comments). */
function saved(bin: 'iptables' | 'ip6tables'): string {
  return sh(NS.node, `${bin}-save`, '-t', 'filter')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

/** A TCP server printing "ok" to each client, on every address of the namespace. */
async function serve(ns: string, ports: number[]): Promise<void> {
  const code = `
    const net = require('node:net');
    let n = 0;
    for (const p of ${JSON.stringify(ports)})
      net.createServer((s) => s.end('ok\\n')).listen({ port: p, host: '::', ipv6Only: false }, () => {
        if (++n === ${ports.length}) console.log('ready');
      });`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  servers.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`server in ${ns} exited (${c})`)));
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
  });
}

/** Connect from a namespace: 'ok' when the server answered, 'timeout' when dropped, else the error code. */
async function connect(from: string, host: string, port: number): Promise<string> {
  const code = `
    const s = require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port} });
    s.setTimeout(1500, () => { console.log('timeout'); process.exit(0); });
    s.on('data', (d) => { console.log(String(d).trim()); process.exit(0); });
    s.on('error', (e) => { console.log(e.code); process.exit(0); });`;
  const { stdout } = await run('ip', ['netns', 'exec', from, process.execPath, '-e', code]);
  return stdout.trim();
}

describe.skipIf(!canRun)('firewall rules in a network namespace (real iptables)', () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'cc-fw-test-'));
    for (const ns of Object.values(NS)) sh(undefined, 'ip', 'netns', 'add', ns);
    const link = (ifNode: string, peer: string, v4: [string, string], v6?: [string, string]) => {
      sh(
        undefined,
        'ip',
        '-n',
        NS.node,
        'link',
        'add',
        ifNode,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        peer,
      );
      sh(NS.node, 'ip', 'addr', 'add', `${v4[0]}/24`, 'dev', ifNode);
      sh(peer, 'ip', 'addr', 'add', `${v4[1]}/24`, 'dev', 'eth0');
      if (v6) {
        sh(NS.node, 'ip', 'addr', 'add', `${v6[0]}/64`, 'dev', ifNode, 'nodad');
        sh(peer, 'ip', 'addr', 'add', `${v6[1]}/64`, 'dev', 'eth0', 'nodad');
      }
      for (const [ns, dev] of [
        [NS.node, ifNode],
        [peer, 'eth0'],
        [peer, 'lo'],
      ] as const)
        sh(ns, 'ip', 'link', 'set', dev, 'up');
    };
    sh(NS.node, 'ip', 'link', 'set', 'lo', 'up');
    link('vmember', NS.member, [ADDR.node, ADDR.member], [ADDR.node6, ADDR.member6]);
    link('vstranger', NS.stranger, [ADDR.nodeOut, ADDR.stranger], [ADDR.nodeOut6, ADDR.stranger6]);
    // the container's side of a Docker bridge: its name matches br-+
    link('br-cctest', NS.ctr, ['172.30.0.1', ADDR.ctr]);
    sh(NS.ctr, 'ip', 'route', 'add', 'default', 'via', '172.30.0.1');
    sh(NS.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // What dockerd sets up: DOCKER-USER first in FORWARD, DNAT for the
    // published ports, masquerading for the containers' way out.
    for (const bin of ['iptables', 'ip6tables']) {
      sh(NS.node, bin, '-N', 'DOCKER-USER');
      sh(NS.node, bin, '-A', 'DOCKER-USER', '-j', 'RETURN');
      sh(NS.node, bin, '-A', 'FORWARD', '-j', 'DOCKER-USER');
    }
    for (const p of PUBLISHED)
      sh(
        NS.node,
        'iptables',
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-p',
        'tcp',
        '--dport',
        String(p),
        '-j',
        'DNAT',
        '--to-destination',
        `${ADDR.ctr}:80`,
      );
    sh(
      NS.node,
      'iptables',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-s',
      '172.30.0.0/24',
      '!',
      '-o',
      'br-cctest',
      '-j',
      'MASQUERADE',
    );
    // a rule of the user's own, which must survive every apply
    sh(NS.node, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '6000', '-j', 'ACCEPT');

    await serve(NS.node, [22, 2377, 5000]);
    await serve(NS.ctr, [80]);
    await serve(NS.stranger, [7000]);
  });

  afterAll(async () => {
    for (const s of servers) s.kill();
    await Promise.all(
      servers.map((s) =>
        s.exitCode === null && s.signalCode === null
          ? new Promise((r) => s.once('exit', r))
          : undefined,
      ),
    );
    for (const ns of Object.values(NS)) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // not created (an earlier step failed)
      }
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const THREE = [ADDR.node, ADDR.member, ADDR.node6, ADDR.member6];

  it('without rules everything answers (the test would notice a filter)', async () => {
    expect(await connect(NS.stranger, ADDR.nodeOut, 2377)).toBe('ok');
    expect(await connect(NS.stranger, ADDR.nodeOut, 8080)).toBe('ok');
  });

  it('loads the rules: iptables-save holds exactly the rendered rules, the probe reads them as in step', async () => {
    const rules = wanted(THREE);
    expect((await check(rules)).state).toBe('absent');
    const plan = await applyRules(rules);
    expect(changesOf(plan).map((s) => s.id)).toEqual([
      'firewall-rules-node',
      'firewall-files-node',
    ]);
    for (const [bin, family] of [
      ['iptables', 'ipv4'],
      ['ip6tables', 'ipv6'],
    ] as const) {
      const chains = parseIptablesSave(saved(bin));
      const rendered = renderRestore(family, rules[family])
        .split('\n')
        .filter((l) => l.startsWith('-A '));
      const live = [INPUT_CHAIN, DOCKER_CHAIN].flatMap((c) =>
        (chains.get(c) ?? []).map((r) => `-A ${c} ${r}`),
      );
      expect(live).toEqual(rendered);
      expect(chains.get('INPUT')?.[0]).toBe(`-j ${INPUT_CHAIN}`);
      expect(chains.get('DOCKER-USER')).toEqual([`-j ${DOCKER_CHAIN}`, '-j RETURN']);
    }
    expect(parseIptablesSave(saved('iptables')).get('INPUT')).toEqual([
      `-j ${INPUT_CHAIN}`,
      '-p tcp -m tcp --dport 6000 -j ACCEPT',
    ]);
    const c = await check(rules);
    expect(c).toMatchObject({ state: 'in step', differences: [] });
    expect(c.notes).toEqual(['no systemd: the rules are not put back after a reboot']);
  });

  it('applying again changes nothing, and re-running the load itself leaves iptables identical', async () => {
    const rules = wanted(THREE);
    const before = { v4: saved('iptables'), v6: saved('ip6tables') };
    const exec = nodeExecutor();
    const plan = planFirewall('test', [
      { name: 'node', host: exec.label, rules, facts: await probeFirewall(exec, PROBE) },
    ]);
    expect(changesOf(plan)).toEqual([]);
    // the restore and the jump checks, forced: no rule twice, no jump twice
    const forced = planFirewall('test', [
      {
        name: 'node',
        host: exec.label,
        rules,
        facts: {
          ipv4: { chains: new Map([['DOCKER-USER', []]]) },
          ipv6: { chains: new Map([['DOCKER-USER', []]]) },
          files: {},
          systemd: false,
        },
      },
    ]);
    for (const c of (forced.steps[0]?.cmds ?? []) as Cmd[]) await exec.run(c);
    expect(saved('iptables')).toBe(before.v4);
    expect(saved('ip6tables')).toBe(before.v6);
  });

  it('filters real traffic: the swarm ports for members only, published ports by their original port', async () => {
    const cases: [from: string, to: string, port: number, expected: string][] = [
      // host ports: the swarm's for members only, SSH for everyone
      [NS.member, ADDR.node, 2377, 'ok'],
      [NS.member, ADDR.node6, 2377, 'ok'],
      [NS.stranger, ADDR.nodeOut, 2377, 'timeout'],
      [NS.stranger, ADDR.nodeOut6, 2377, 'timeout'],
      [NS.stranger, ADDR.nodeOut, 22, 'ok'],
      [NS.stranger, ADDR.nodeOut6, 22, 'ok'],
      // a host port nobody declared: closed, to members too
      [NS.member, ADDR.node, 5000, 'timeout'],
      // published container ports (DNAT to the container's 80): 80 and the declared 9090 open, 8080 closed
      [NS.stranger, ADDR.nodeOut, 80, 'ok'],
      [NS.stranger, ADDR.nodeOut, 9090, 'ok'],
      [NS.stranger, ADDR.nodeOut, 8080, 'timeout'],
      [NS.member, ADDR.node, 8080, 'timeout'],
      // the container's own way out is left alone
      [NS.ctr, ADDR.stranger, 7000, 'ok'],
    ];
    const got = await Promise.all(cases.map(([from, to, port]) => connect(from, to, port)));
    expect(
      cases.map((c, i) => `${c[0].replace(/^cc-fw-test-\w+-/, '')} -> ${c[1]}:${c[2]} ${got[i]}`),
    ).toEqual(
      cases.map((c) => `${c[0].replace(/^cc-fw-test-\w+-/, '')} -> ${c[1]}:${c[2]} ${c[3]}`),
    );
  });

  it('a node removed: its address is gone and it is shut out', async () => {
    const rules = wanted([ADDR.node, ADDR.node6]);
    const plan = await applyRules(rules);
    expect(changesOf(plan).map((s) => s.id)).toEqual([
      'firewall-rules-node',
      'firewall-files-node',
    ]);
    expect(saved('iptables')).not.toContain(ADDR.member);
    expect(saved('ip6tables')).not.toContain(ADDR.member6);
    expect((await check(rules)).state).toBe('in step');
    expect(await connect(NS.member, ADDR.node, 2377)).toBe('timeout');
    expect(await connect(NS.member, ADDR.node6, 2377)).toBe('timeout');
    // and let in again when it comes back
    await applyRules(wanted(THREE));
    expect(await connect(NS.member, ADDR.node, 2377)).toBe('ok');
  });

  it('after a reboot and a Docker restart the saved script puts back exactly the same rules', async () => {
    const rules = wanted(THREE);
    const before = { v4: saved('iptables'), v6: saved('ip6tables') };
    // a reboot: the kernel's tables are empty; dockerd starts and makes DOCKER-USER
    for (const bin of ['iptables', 'ip6tables']) {
      sh(NS.node, bin, '-D', 'INPUT', '-j', INPUT_CHAIN);
      sh(NS.node, bin, '-D', 'DOCKER-USER', '-j', DOCKER_CHAIN);
      for (const c of [INPUT_CHAIN, DOCKER_CHAIN]) {
        sh(NS.node, bin, '-F', c);
        sh(NS.node, bin, '-X', c);
      }
    }
    expect((await check(rules)).state).toBe('drifted');
    expect(await connect(NS.stranger, ADDR.nodeOut, 2377)).toBe('ok');
    // what cluster-cli-firewall.service runs after docker.service started
    const script = `${root}${SCRIPT_FILE}`;
    sh(NS.node, 'sh', script, `${root}${FIREWALL_DIR}`);
    expect(saved('iptables')).toBe(before.v4);
    expect(saved('ip6tables')).toBe(before.v6);
    expect((await check(rules)).state).toBe('in step');
    // a Docker restart runs it again: nothing changes, nothing doubles
    sh(NS.node, 'sh', script, `${root}${FIREWALL_DIR}`);
    expect(saved('iptables')).toBe(before.v4);
    expect(saved('ip6tables')).toBe(before.v6);
    expect(await connect(NS.stranger, ADDR.nodeOut, 2377)).toBe('timeout');
  });
});
