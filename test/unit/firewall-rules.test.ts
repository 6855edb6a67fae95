import { describe, expect, it } from 'vitest';
import { connectedPort } from '../../src/cli/firewall.js';
import { Config } from '../../src/config/schema.js';
import { UserError } from '../../src/core/errors.js';
import {
  canonicalSource,
  DOCKER_CHAIN,
  firewallInputFor,
  firewallRules,
  INPUT_CHAIN,
  memberAddresses,
  renderRestore,
  sshPortsOf,
} from '../../src/firewall/rules.js';

const base = { domain: 'apps.example.com', email: 'ops@example.com' };

function config(extra: Record<string, unknown> = {}) {
  return Config.parse({
    ...base,
    hosts: [{ name: 'node1', address: '10.0.0.1' }],
    ...extra,
  });
}

/** The head every INPUT chain starts with, per family. */
const HEAD4 = [
  '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  '-i lo -j ACCEPT',
  '-i docker0 -j RETURN',
  '-i docker_gwbridge -j RETURN',
  '-i br-+ -j RETURN',
  '-p icmp -j ACCEPT',
  '-p udp -m udp --sport 67 --dport 68 -j ACCEPT',
];

const swarmFrom = (src: string) => [
  `-s ${src} -p tcp -m multiport --dports 2377,7946 -j ACCEPT`,
  `-s ${src} -p udp -m multiport --dports 4789,7946 -j ACCEPT`,
  `-s ${src} -p esp -j ACCEPT`,
];

const DOCKER_HEAD = [
  '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
  '-i docker0 -j RETURN',
  '-i docker_gwbridge -j RETURN',
  '-i br-+ -j RETURN',
  '-p tcp -m conntrack --ctorigdstport 80 -j RETURN',
  '-p tcp -m conntrack --ctorigdstport 443 -j RETURN',
];

describe('firewallRules', () => {
  it('one node: SSH and 80/443 for all, the swarm ports for itself, everything else dropped', () => {
    const r = firewallRules({ members: ['10.0.0.1'], sshPorts: [22], allow: [] });
    expect(r.ipv4[INPUT_CHAIN]).toEqual([
      ...HEAD4,
      '-p tcp -m tcp --dport 22 -j ACCEPT',
      '-p tcp -m multiport --dports 80,443 -j ACCEPT',
      ...swarmFrom('10.0.0.1/32'),
      '-j DROP',
    ]);
    expect(r.ipv4[DOCKER_CHAIN]).toEqual([...DOCKER_HEAD, '-m conntrack --ctstate DNAT -j DROP']);
  });

  it('three nodes: each member address, in order, before the final DROP; on every node the same', () => {
    const c = config({
      hosts: [
        { name: 'node1', address: '203.0.113.10', advertiseAddr: '10.0.0.1' },
        { name: 'node2', address: '10.0.0.2', role: 'worker' },
        { name: 'node3', address: 'node3.internal' },
      ],
    });
    const members = memberAddresses(c, [{ hostname: 'node3', addr: '10.0.0.3' }]);
    expect(Object.fromEntries(members)).toEqual({
      node1: ['10.0.0.1', '203.0.113.10'],
      node2: ['10.0.0.2'],
      node3: ['10.0.0.3'],
    });
    const r = firewallRules(firewallInputFor(c, members, [2222]));
    const input = r.ipv4[INPUT_CHAIN];
    expect(input.slice(HEAD4.length)).toEqual([
      '-p tcp -m tcp --dport 2222 -j ACCEPT',
      '-p tcp -m multiport --dports 80,443 -j ACCEPT',
      ...swarmFrom('10.0.0.1/32'),
      ...swarmFrom('203.0.113.10/32'),
      ...swarmFrom('10.0.0.2/32'),
      ...swarmFrom('10.0.0.3/32'),
      '-j DROP',
    ]);
    // no IPv4 member leaks into the IPv6 chains
    expect(r.ipv6[INPUT_CHAIN].some((x) => x.includes('10.0.0.'))).toBe(false);
  });

  it('declared ports: open in INPUT and DOCKER-USER (by original port), per family, sources canonical', () => {
    const c = config({
      firewall: {
        allow: [
          { port: 9100, from: '10.1.2.3/8' },
          { port: 5353, proto: 'udp' },
          { port: 8443, from: '2001:DB8:0:0:0:0:0:5/64' },
          { port: 9100, proto: 'tcp', from: '10.0.0.0/8' }, // the same as the first one
        ],
      },
    });
    const r = firewallRules(firewallInputFor(c, memberAddresses(c), [22]));
    expect(r.ipv4[INPUT_CHAIN].slice(-3)).toEqual([
      '-s 10.0.0.0/8 -p tcp -m tcp --dport 9100 -j ACCEPT',
      '-p udp -m udp --dport 5353 -j ACCEPT',
      '-j DROP',
    ]);
    expect(r.ipv4[DOCKER_CHAIN].slice(-3)).toEqual([
      '-s 10.0.0.0/8 -p tcp -m conntrack --ctorigdstport 9100 -j RETURN',
      '-p udp -m conntrack --ctorigdstport 5353 -j RETURN',
      '-m conntrack --ctstate DNAT -j DROP',
    ]);
    expect(r.ipv6[INPUT_CHAIN].slice(-3)).toEqual([
      '-p udp -m udp --dport 5353 -j ACCEPT',
      '-s 2001:db8::/64 -p tcp -m tcp --dport 8443 -j ACCEPT',
      '-j DROP',
    ]);
    expect(r.ipv6[DOCKER_CHAIN].slice(-3)).toEqual([
      '-p udp -m conntrack --ctorigdstport 5353 -j RETURN',
      '-s 2001:db8::/64 -p tcp -m conntrack --ctorigdstport 8443 -j RETURN',
      '-m conntrack --ctstate DNAT -j DROP',
    ]);
  });

  it('IPv6: members by their compressed address, ICMPv6 and DHCPv6 replies let in', () => {
    const r = firewallRules({
      members: ['10.0.0.1', '2001:DB8:0:0::A', 'fd00::1:0:0:2'],
      sshPorts: [22],
      allow: [],
    });
    expect(r.ipv6[INPUT_CHAIN]).toEqual([
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-i lo -j ACCEPT',
      '-i docker0 -j RETURN',
      '-i docker_gwbridge -j RETURN',
      '-i br-+ -j RETURN',
      '-p ipv6-icmp -j ACCEPT',
      '-s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT',
      '-p tcp -m tcp --dport 22 -j ACCEPT',
      '-p tcp -m multiport --dports 80,443 -j ACCEPT',
      ...swarmFrom('2001:db8::a/128'),
      ...swarmFrom('fd00::1:0:0:2/128'),
      '-j DROP',
    ]);
    expect(r.ipv4[INPUT_CHAIN].filter((x) => x.startsWith('-s '))).toEqual(
      swarmFrom('10.0.0.1/32'),
    );
    expect(r.ipv6[DOCKER_CHAIN]).toEqual(r.ipv4[DOCKER_CHAIN]);
  });

  it('renders one iptables-restore --noflush input: our chains declared (emptied), refilled, no jumps', () => {
    const r = firewallRules({ members: ['10.0.0.1'], sshPorts: [22], allow: [] });
    const text = renderRestore('ipv4', r.ipv4);
    const lines = text.split('\n');
    expect(lines.filter((l) => !l.startsWith('-A ') && !l.startsWith('#'))).toEqual([
      '*filter',
      ':CLUSTER-CLI-INPUT - [0:0]',
      ':CLUSTER-CLI-DOCKER - [0:0]',
      'COMMIT',
      '',
    ]);
    expect(lines.filter((l) => l.startsWith('-A '))).toEqual([
      ...r.ipv4[INPUT_CHAIN].map((x) => `-A CLUSTER-CLI-INPUT ${x}`),
      ...r.ipv4[DOCKER_CHAIN].map((x) => `-A CLUSTER-CLI-DOCKER ${x}`),
    ]);
    // never a rule in a chain that is not ours (no -A INPUT, no -F, no -X)
    expect(text).not.toMatch(/^-[AIDFX] (INPUT|DOCKER-USER|FORWARD)/m);
    expect(renderRestore('ipv4', r.ipv4)).toBe(text);
  });
});

describe('memberAddresses', () => {
  it('skips what is no source (0.0.0.0 from the swarm, a zone) and de-duplicates', () => {
    const c = config({
      hosts: [{ name: 'node1', address: '10.0.0.1', advertiseAddr: '10.0.0.1' }],
    });
    const m = memberAddresses(c, [
      { hostname: 'node1', addr: '0.0.0.0' },
      { hostname: 'node1', addr: 'fe80::1%eth0' },
      { hostname: 'node1', addr: '10.0.0.1' },
      { hostname: 'other', addr: '10.9.9.9' },
    ]);
    expect(Object.fromEntries(m)).toEqual({ node1: ['10.0.0.1'] });
  });

  it('a host known by alias only, not in the swarm: a UserError naming advertiseAddr', () => {
    const c = config({
      hosts: [
        { name: 'node1', address: '10.0.0.1' },
        { name: 'node4', address: 'node4-alias' },
      ],
    });
    expect(() => memberAddresses(c)).toThrow(UserError);
    expect(() => memberAddresses(c)).toThrow(/Cannot tell the address of node4/);
    try {
      memberAddresses(c);
    } catch (err) {
      expect((err as UserError).next).toMatch(/hosts\[\]\.advertiseAddr for node4/);
    }
  });
});

describe('helpers', () => {
  it('sshPortsOf: the file port and the connection port, else 22', () => {
    expect(sshPortsOf({})).toEqual([22]);
    expect(sshPortsOf({ port: 2222 })).toEqual([2222]);
    expect(sshPortsOf({}, 2200)).toEqual([2200]);
    expect(sshPortsOf({ port: 2222 }, 2222)).toEqual([2222]);
    expect(sshPortsOf({ port: 2222 }, 22)).toEqual([22, 2222]);
  });

  it('connectedPort: the SSH port cluster-cli reached a host on, from its label', () => {
    expect(connectedPort('root@10.0.0.1')).toBeUndefined();
    expect(connectedPort('deploy@10.0.0.1:2222')).toBe(2222);
    expect(connectedPort('root@[2001:db8::1]:2200')).toBe(2200);
    expect(connectedPort('root@2001:db8::1')).toBeUndefined();
    expect(connectedPort('local')).toBeUndefined();
  });

  it('canonicalSource spells like iptables-save', () => {
    expect(canonicalSource('10.0.0.5').text).toBe('10.0.0.5/32');
    expect(canonicalSource('10.1.2.3/8').text).toBe('10.0.0.0/8');
    expect(canonicalSource('0.0.0.0/0').text).toBe('0.0.0.0/0');
    expect(canonicalSource('2001:DB8::1').text).toBe('2001:db8::1/128');
    expect(canonicalSource('2001:db8:1:2:3:4:5:6/48').text).toBe('2001:db8:1::/48');
    expect(canonicalSource('2001:db8:0:1:0:0:0:1').text).toBe('2001:db8:0:1::1/128');
    expect(canonicalSource('::ffff:10.0.0.1').family).toBe('ipv6');
    expect(() => canonicalSource('10.0.0.1/33')).toThrow(RangeError);
    expect(() => canonicalSource('node1')).toThrow(RangeError);
  });
});

describe('cluster.yaml firewall section', () => {
  it('defaults change nothing: not enabled, nothing declared', () => {
    expect(config().firewall).toEqual({ enabled: false, allow: [] });
  });

  it('declared ports: tcp by default; a bad source or protocol is refused with the reason', () => {
    const c = config({ firewall: { allow: [{ port: 9100 }, { port: 53, proto: 'udp' }] } });
    expect(c.firewall.allow).toEqual([
      { port: 9100, proto: 'tcp' },
      { port: 53, proto: 'udp' },
    ]);
    const bad = Config.safeParse({
      ...base,
      hosts: [{ name: 'node1' }],
      firewall: {
        allow: [
          { port: 1, from: '10.0.0.0/40' },
          { port: 2, proto: 'sctp' },
          { port: 70000 },
          { port: 3, from: 'fe80::1%eth0' },
        ],
      },
    });
    expect(bad.success).toBe(false);
    const messages = bad.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(messages).toEqual([
      'firewall.allow.0.from: must be an IP address or network such as 203.0.113.7 or 10.0.0.0/8',
      'firewall.allow.1.proto: must be tcp or udp',
      'firewall.allow.2.port: must be a port number from 1 to 65535',
      'firewall.allow.3.from: must be an IP address or network such as 203.0.113.7 or 10.0.0.0/8',
    ]);
  });
});
