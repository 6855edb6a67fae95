import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Cmd } from '../../src/core/cmd.js';
import { changesOf, formatPlan, type Step } from '../../src/core/plan.js';
import {
  checkFirewall,
  FIREWALL_FILES,
  firewallFiles,
  planFirewall,
  planFirewallRemoval,
  RULES_FILES,
  renderScript,
  renderUnit,
  SCRIPT_FILE,
  sha256,
  UNIT_FILE,
} from '../../src/firewall/plan.js';
import {
  type FamilyFacts,
  type FirewallFacts,
  parseIptablesSave,
} from '../../src/firewall/probe.js';
import {
  DOCKER_CHAIN,
  type FirewallRules,
  firewallRules,
  INPUT_CHAIN,
  renderRestore,
} from '../../src/firewall/rules.js';

const rules = (members: string[]) => firewallRules({ members, sshPorts: [22], allow: [] });

const THREE = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];

/** A node that holds exactly `r`: chains, jumps, files, unit. */
function inStep(r: FirewallRules, o: { ipv6?: boolean; systemd?: boolean } = {}): FirewallFacts {
  const family = (f: 'ipv4' | 'ipv6') => ({
    chains: new Map<string, string[]>([
      ['INPUT', ['-j CLUSTER-CLI-INPUT']],
      ['FORWARD', ['-j DOCKER-USER']],
      ['OUTPUT', []],
      [INPUT_CHAIN, [...r[f][INPUT_CHAIN]]],
      [DOCKER_CHAIN, [...r[f][DOCKER_CHAIN]]],
      ['DOCKER-USER', ['-j CLUSTER-CLI-DOCKER', '-j RETURN']],
    ]),
  });
  const systemd = o.systemd ?? true;
  return {
    ipv4: family('ipv4'),
    ...(o.ipv6 === false ? {} : { ipv6: family('ipv6') }),
    files: Object.fromEntries(firewallFiles(r).map((f) => [f.path, sha256(f.content)])),
    systemd,
    ...(systemd ? { unit: { enabled: true, active: true } } : {}),
  };
}

/** A Docker host cluster-cli never touched (real iptables-save text), IPv6 without Docker's ip6tables. */
function fresh(): FirewallFacts {
  const v4 = readFileSync(
    new URL('../fixtures/firewall/docker-host.iptables-save', import.meta.url),
    'utf8',
  );
  return {
    ipv4: { chains: parseIptablesSave(v4) },
    ipv6: {
      chains: new Map([
        ['INPUT', []],
        ['FORWARD', []],
        ['OUTPUT', []],
      ]),
    },
    files: Object.fromEntries(FIREWALL_FILES.map((f) => [f, undefined])),
    systemd: true,
    unit: { enabled: false, active: false },
  };
}

const byId = (steps: readonly Step[], id: string) => steps.find((s) => s.id === id) as Step;
const cmds = (s: Step) => s.cmds as Cmd[];

describe('planFirewall', () => {
  it('a fresh Docker host: load both families, save the files, enable the unit', () => {
    const r = rules(THREE);
    const plan = planFirewall('firewall apply on platform', [
      { name: 'node1', host: 'root@10.0.0.1', rules: r, facts: fresh() },
    ]);
    expect(plan.steps.map((s) => [s.id, s.action])).toEqual([
      ['firewall-rules-node1', 'change'],
      ['firewall-files-node1', 'change'],
      ['firewall-unit-node1', 'change'],
    ]);
    const load = cmds(byId(plan.steps, 'firewall-rules-node1'));
    expect(load.map((c) => c.argv)).toEqual([
      ['iptables-restore', '--wait=10', '--noflush'],
      [
        'sh',
        '-c',
        expect.stringContaining('-C "$2" -j "$3"'),
        'sh',
        'iptables',
        'INPUT',
        INPUT_CHAIN,
      ],
      ['sh', '-c', expect.any(String), 'sh', 'iptables', 'DOCKER-USER', DOCKER_CHAIN],
      ['ip6tables-restore', '--wait=10', '--noflush'],
      // no DOCKER-USER in ip6tables (Docker's ip6tables off): no jump to it
      ['sh', '-c', expect.any(String), 'sh', 'ip6tables', 'INPUT', INPUT_CHAIN],
    ]);
    // the rules go on stdin, exactly the saved file's text, never in argv
    expect(load[0]?.stdin).toBe(renderRestore('ipv4', r.ipv4));
    expect(load[3]?.stdin).toBe(renderRestore('ipv6', r.ipv6));
    for (const s of plan.steps)
      for (const c of cmds(s)) expect(c.argv.join(' ')).not.toMatch(/-A CLUSTER-CLI|--dports/);
    const files = cmds(byId(plan.steps, 'firewall-files-node1'));
    expect(files.map((c) => c.argv.slice(4))).toEqual([
      [RULES_FILES.ipv4, '0644'],
      [RULES_FILES.ipv6, '0644'],
      [SCRIPT_FILE, '0755'],
      [UNIT_FILE, '0644'],
    ]);
    expect(files.map((c) => c.stdin)).toEqual([
      renderRestore('ipv4', r.ipv4),
      renderRestore('ipv6', r.ipv6),
      renderScript(),
      renderUnit(),
    ]);
    expect(cmds(byId(plan.steps, 'firewall-unit-node1')).map((c) => c.argv.join(' '))).toEqual([
      'systemctl daemon-reload',
      'systemctl enable cluster-cli-firewall.service',
      'systemctl restart cluster-cli-firewall.service',
    ]);
    // every node's steps may run at once, each node's in order
    expect(new Set(plan.steps.map((s) => s.wave))).toEqual(new Set(['firewall']));
    expect(formatPlan(plan)).toMatchSnapshot();
  });

  it('a node in step: nothing to change', () => {
    const r = rules(THREE);
    const facts = inStep(r);
    const plan = planFirewall('t', [{ name: 'node1', host: 'h1', rules: r, facts }]);
    expect(changesOf(plan)).toEqual([]);
    expect(checkFirewall(r, facts)).toMatchObject({ state: 'in step', differences: [] });
    expect(formatPlan(plan)).toMatchSnapshot();
  });

  it('another iptables spelling of the same rules is in step (no -m tcp, no /32, states reordered)', () => {
    const r = rules(THREE);
    const facts = inStep(r);
    const chains = facts.ipv4.chains as Map<string, string[]>;
    chains.set(
      INPUT_CHAIN,
      r.ipv4[INPUT_CHAIN].map((x) =>
        x
          .replace(' -m tcp', '')
          .replace('/32', '')
          .replace('RELATED,ESTABLISHED', 'ESTABLISHED,RELATED'),
      ),
    );
    expect(checkFirewall(r, facts).state).toBe('in step');
  });

  it('a node removed from cluster.yaml: every remaining node reloads without its address', () => {
    const before = rules(THREE);
    const after = rules(THREE.slice(0, 2));
    const plan = planFirewall(
      't',
      ['node1', 'node2'].map((name) => ({ name, host: name, rules: after, facts: inStep(before) })),
    );
    expect(changesOf(plan).map((s) => s.id)).toEqual([
      'firewall-rules-node1',
      'firewall-files-node1',
      'firewall-rules-node2',
      'firewall-files-node2',
    ]);
    const load = cmds(byId(plan.steps, 'firewall-rules-node1'));
    expect(load[0]?.stdin).not.toContain('10.0.0.3');
    expect(String(load[0]?.stdin)).toContain('-s 10.0.0.2/32');
    // only IPv4 differs (the members are IPv4): ip6tables is left alone; the
    // jumps are there already: ensured again (a no-op), never duplicated by the restore
    expect(load.map((c) => c.argv[0])).toEqual(['iptables-restore', 'sh', 'sh']);
    // the unit is enabled and active: its script reads the new files at the next start
    expect(byId(plan.steps, 'firewall-unit-node1').action).toBe('unchanged');
    const check = checkFirewall(after, inStep(before));
    expect(check.state).toBe('drifted');
    expect(check.differences).toEqual([
      'IPv4 CLUSTER-CLI-INPUT: 3 unexpected, order differs',
      `${RULES_FILES.ipv4} differs`,
    ]);
  });

  it('a node added: the new address is let in everywhere', () => {
    const plan = planFirewall('t', [
      {
        name: 'node1',
        host: 'h1',
        rules: rules([...THREE, '10.0.0.4']),
        facts: inStep(rules(THREE)),
      },
    ]);
    const load = cmds(byId(plan.steps, 'firewall-rules-node1'));
    expect(String(load[0]?.stdin)).toContain(
      '-A CLUSTER-CLI-INPUT -s 10.0.0.4/32 -p tcp -m multiport --dports 2377,7946 -j ACCEPT',
    );
    expect(checkFirewall(rules([...THREE, '10.0.0.4']), inStep(rules(THREE))).differences).toEqual([
      'IPv4 CLUSTER-CLI-INPUT: 3 rule(s) missing, order differs',
      `${RULES_FILES.ipv4} differs`,
    ]);
  });

  it('only a jump gone (ufw or a person removed it): reload that family, report it', () => {
    const r = rules(THREE);
    const facts = inStep(r);
    ((facts.ipv6 as FamilyFacts).chains as Map<string, string[]>).set('INPUT', []);
    const plan = planFirewall('t', [{ name: 'node1', host: 'h1', rules: r, facts }]);
    expect(changesOf(plan).map((s) => s.id)).toEqual(['firewall-rules-node1']);
    expect(cmds(changesOf(plan)[0] as Step).map((c) => c.argv[0])).toEqual([
      'ip6tables-restore',
      'sh',
      'sh',
    ]);
    expect(checkFirewall(r, facts)).toMatchObject({
      state: 'drifted',
      differences: ['IPv6: INPUT does not jump to CLUSTER-CLI-INPUT'],
    });
  });

  it('no IPv6 in the kernel, no systemd: IPv4 only, no unit, said so', () => {
    const r = rules(THREE);
    const facts = inStep(r, { ipv6: false, systemd: false });
    const plan = planFirewall('t', [{ name: 'node1', host: 'h1', rules: r, facts }]);
    expect(changesOf(plan)).toEqual([]);
    expect(byId(plan.steps, 'firewall-unit-node1').reason).toMatch(/no systemd/);
    const check = checkFirewall(r, facts);
    expect(check.state).toBe('in step');
    expect(check.notes).toEqual([
      'no IPv6 in the kernel: only IPv4 rules',
      'no systemd: the rules are not put back after a reboot',
    ]);
  });

  it('the unit stopped or changed: enabled and restarted; daemon-reload only for a new unit file', () => {
    const r = rules(THREE);
    const off = { ...inStep(r), unit: { enabled: true, active: false } };
    expect(
      cmds(
        changesOf(planFirewall('t', [{ name: 'n', host: 'h', rules: r, facts: off }]))[0] as Step,
      ).map((c) => c.argv.join(' ')),
    ).toEqual([
      'systemctl enable cluster-cli-firewall.service',
      'systemctl restart cluster-cli-firewall.service',
    ]);
    const stale = inStep(r);
    const changed = { ...stale, files: { ...stale.files, [UNIT_FILE]: 'f'.repeat(64) } };
    const plan = planFirewall('t', [{ name: 'n', host: 'h', rules: r, facts: changed }]);
    expect(changesOf(plan).map((s) => s.id)).toEqual(['firewall-files-n', 'firewall-unit-n']);
    expect(cmds(byId(plan.steps, 'firewall-unit-n'))[0]?.argv.join(' ')).toBe(
      'systemctl daemon-reload',
    );
  });

  it('a fresh host reads as absent, one with part of ours as drifted', () => {
    const r = rules(THREE);
    expect(checkFirewall(r, fresh()).state).toBe('absent');
    const partly = fresh();
    (partly.ipv4.chains as Map<string, string[]>).set(INPUT_CHAIN, []);
    expect(checkFirewall(r, partly).state).toBe('drifted');
    // no IPv6 DOCKER-USER (Docker's ip6tables off): docker-proxy serves IPv6 through INPUT, no note
    expect(checkFirewall(r, fresh()).notes).toEqual([]);
    const noDocker = fresh();
    (noDocker.ipv4.chains as Map<string, string[]>).delete('DOCKER-USER');
    expect(checkFirewall(r, noDocker).notes).toEqual([
      'no DOCKER-USER chain (Docker not running, or its nftables backend): published container ports are not filtered',
    ]);
  });
});

describe('persistence', () => {
  it('the unit re-applies after Docker starts, and again when Docker restarts', () => {
    const unit = renderUnit();
    expect(unit).toMatch(/^After=docker\.service$/m);
    expect(unit).toMatch(/^PartOf=docker\.service$/m);
    expect(unit).toMatch(/^WantedBy=docker\.service$/m);
    expect(unit).toMatch(/^Type=oneshot$/m);
    expect(unit).toMatch(/^RemainAfterExit=yes$/m);
    expect(unit).toContain(`ExecStart=${SCRIPT_FILE}\n`);
  });

  it('the script loads each saved file with --noflush and adds a jump only when missing', () => {
    const s = renderScript();
    expect(s.startsWith('#!/bin/sh\n')).toBe(true);
    expect(s).toContain('"$1-restore" --wait=10 --noflush "$2"');
    expect(s).toContain('-C "$2" -j "$3" 2>/dev/null ||');
    expect(s).toContain('load iptables "$dir/firewall.rules"');
    expect(s).toContain('load ip6tables "$dir/firewall6.rules"');
    expect(s).toContain(`dir=\${1:-/usr/local/lib/cluster-cli}`);
  });
});

describe('planFirewallRemoval', () => {
  it('a node holding the rules: unit off first, then jumps and chains of both families, then the files', () => {
    const plan = planFirewallRemoval('firewall remove on platform', [
      { name: 'node1', host: 'root@10.0.0.1', facts: inStep(rules(THREE)) },
    ]);
    const step = byId(plan.steps, 'firewall-remove-node1');
    expect(step.action).toBe('change');
    expect(cmds(step).map((c) => c.argv.filter((a) => !a.includes('"$1"')).join(' '))).toEqual([
      'systemctl disable --now cluster-cli-firewall.service',
      `sh -c sh iptables INPUT ${INPUT_CHAIN}`,
      `sh -c sh iptables DOCKER-USER ${DOCKER_CHAIN}`,
      `iptables -w 10 -F ${INPUT_CHAIN}`,
      `iptables -w 10 -X ${INPUT_CHAIN}`,
      `iptables -w 10 -F ${DOCKER_CHAIN}`,
      `iptables -w 10 -X ${DOCKER_CHAIN}`,
      `sh -c sh ip6tables INPUT ${INPUT_CHAIN}`,
      `sh -c sh ip6tables DOCKER-USER ${DOCKER_CHAIN}`,
      `ip6tables -w 10 -F ${INPUT_CHAIN}`,
      `ip6tables -w 10 -X ${INPUT_CHAIN}`,
      `ip6tables -w 10 -F ${DOCKER_CHAIN}`,
      `ip6tables -w 10 -X ${DOCKER_CHAIN}`,
      `rm -f -- ${FIREWALL_FILES.join(' ')}`,
      'systemctl daemon-reload',
    ]);
    // a jump is deleted as often as it is there, and only while it is
    expect(cmds(step)[1]?.argv[2]).toContain('while "$1" -w 10 -C "$2" -j "$3"');
    // Docker's chains are never flushed or deleted
    for (const c of cmds(step)) expect(c.argv.join(' ')).not.toMatch(/-[FX] (DOCKER-USER|INPUT)\b/);
  });

  it('a node cluster-cli never touched: unchanged; without systemd no unit commands', () => {
    const plan = planFirewallRemoval('t', [{ name: 'node1', host: 'h1', facts: fresh() }]);
    expect(changesOf(plan)).toEqual([]);
    const noSystemd = planFirewallRemoval('t', [
      { name: 'n', host: 'h', facts: inStep(rules(THREE), { systemd: false, ipv6: false }) },
    ]);
    const argv = cmds(byId(noSystemd.steps, 'firewall-remove-n')).map((c) => c.argv.join(' '));
    expect(argv.some((a) => a.startsWith('systemctl'))).toBe(false);
    expect(argv.some((a) => a.includes('ip6tables'))).toBe(false);
    expect(argv.at(-1)).toMatch(/^rm -f -- /);
  });
});
