import { isIP } from 'node:net';
import type { Config, FirewallAllow, Host } from '../config/schema.js';
import { ipv4ToInt } from '../config/validators.js';
import { UserError } from '../core/errors.js';

/**
 * The nodes' firewall as data: pure, from cluster.yaml and the addresses of its
 * nodes. cluster-cli owns two chains of the filter table, in iptables and
 * ip6tables alike, and nothing else:
 *
 * - CLUSTER-CLI-INPUT, jumped to from the top of INPUT: traffic to the host
 *   itself (sshd, the swarm's own ports, anything a host process serves).
 * - CLUSTER-CLI-DOCKER, jumped to from the top of DOCKER-USER: traffic Docker
 *   forwards to containers. Docker's DNAT for published ports happens in
 *   PREROUTING, before the filter table, so these packets never reach INPUT
 *   (the reason ufw does not see them) and their destination port is already the
 *   container's: the chain matches the ORIGINAL destination port (conntrack
 *   --ctorigdstport) and the interface the packet came in on.
 *
 * Applying is "flush our chains and refill them" in one atomic
 * `iptables-restore --noflush` (renderRestore): a chain declared in its input is
 * emptied and refilled; every other chain (the user's, ufw's, Docker's) is left
 * exactly as it is.
 *
 * Rules are written as iptables-save prints them (`-s 10.0.0.5/32`, `-p tcp -m
 * tcp --dport 22`, `--ctstate RELATED,ESTABLISHED`), so what the probe reads
 * back compares equal to what was loaded.
 */

export const INPUT_CHAIN = 'CLUSTER-CLI-INPUT';
export const DOCKER_CHAIN = 'CLUSTER-CLI-DOCKER';
export type OurChain = typeof INPUT_CHAIN | typeof DOCKER_CHAIN;
export const OUR_CHAINS: readonly OurChain[] = [INPUT_CHAIN, DOCKER_CHAIN];

/** Where each of our chains is jumped to from (the first rule there). */
export const JUMPS: readonly { readonly from: string; readonly to: OurChain }[] = [
  { from: 'INPUT', to: INPUT_CHAIN },
  { from: 'DOCKER-USER', to: DOCKER_CHAIN },
];

export type Family = 'ipv4' | 'ipv6';
export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

/** iptables or ip6tables (`-save` and `-restore` follow from it). */
export function iptablesBin(family: Family): 'iptables' | 'ip6tables' {
  return family === 'ipv4' ? 'iptables' : 'ip6tables';
}

export function familyName(family: Family): 'IPv4' | 'IPv6' {
  return family === 'ipv4' ? 'IPv4' : 'IPv6';
}

/** The swarm's ports: management (managers), gossip, and the overlay's VXLAN. */
export const SWARM_TCP_PORTS: readonly number[] = [2377, 7946];
export const SWARM_UDP_PORTS: readonly number[] = [4789, 7946];
/** The proxy's ports: open to everyone. */
export const WEB_PORTS: readonly number[] = [80, 443];
/**
 * Interfaces of Docker's own bridges (the default one, the swarm's gateway
 * bridge, user-defined networks): traffic coming in on them is from this
 * host's containers, not from outside, and is left to the host's own rules.
 */
export const DOCKER_BRIDGES: readonly string[] = ['docker0', 'docker_gwbridge', 'br-+'];

/** What one node's rules are made of. */
export interface FirewallInput {
  /** Every cluster node's addresses, IPv4 and IPv6 mixed: the swarm ports are open to these only. */
  readonly members: readonly string[];
  /** The ports this node's sshd answers on. */
  readonly sshPorts: readonly number[];
  /** cluster.yaml's firewall.allow. */
  readonly allow: readonly FirewallAllow[];
}

/** One family's chains: their rules as iptables-save prints them, without the `-A <chain>`. */
export type ChainRules = Readonly<Record<OurChain, readonly string[]>>;

export interface FirewallRules {
  readonly ipv4: ChainRules;
  readonly ipv6: ChainRules;
}

/**
 * The chains' rules for one node. CLUSTER-CLI-INPUT, in order:
 *  1. replies and related packets (RELATED,ESTABLISHED): accepted first, so an
 *     open SSH session survives any change;
 *  2. loopback: accepted;
 *  3. from Docker's bridges (this host's containers): RETURN, the host's rules decide;
 *  4. ICMP and DHCP replies to this host's client (IPv6: ICMPv6, which
 *     neighbour discovery needs; and DHCPv6 replies between link-local
 *     addresses): accepted;
 *  5. SSH, then 80/443 (tcp): accepted from anywhere;
 *  6. the swarm's ports (2377/tcp, 7946/tcp+udp, 4789/udp) and ESP (encrypted
 *     overlays): accepted from each member address only;
 *  7. firewall.allow: accepted (from `from` when given);
 *  8. everything else: dropped.
 *
 * CLUSTER-CLI-DOCKER only ever drops (RETURN hands a packet back to Docker's
 * own chains, which accept what they published):
 *  1. replies and related packets: RETURN;
 *  2. from Docker's bridges (container to container, container to outside): RETURN;
 *  3. to original port 80/443 (tcp) and to firewall.allow's ports: RETURN;
 *  4. any other connection Docker DNATed (a published port), coming in from
 *     outside: dropped. Traffic Docker did not DNAT (routed, not published)
 *     returns untouched.
 */
export function firewallRules(input: FirewallInput): FirewallRules {
  const sshPorts = [...new Set(input.sshPorts)].sort((a, b) => a - b);
  const members = dedupe(input.members.map(canonicalSource), (s) => s.text);
  const allow = dedupe(
    input.allow.map((a) => ({
      port: a.port,
      proto: a.proto,
      from: a.from === undefined ? undefined : canonicalSource(a.from),
    })),
    (a) => `${a.port}/${a.proto}/${a.from?.text ?? ''}`,
  );
  const build = (family: Family): ChainRules => {
    const src = (s: Source) => `-s ${s.text} `;
    const ours = (s: Source | undefined) => s === undefined || s.family === family;
    const input: string[] = [
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-i lo -j ACCEPT',
      ...DOCKER_BRIDGES.map((i) => `-i ${i} -j RETURN`),
      ...(family === 'ipv4'
        ? // DHCP replies to a client (a VPS renewing its lease), as ufw's defaults allow
          ['-p icmp -j ACCEPT', '-p udp -m udp --sport 67 --dport 68 -j ACCEPT']
        : [
            '-p ipv6-icmp -j ACCEPT',
            '-s fe80::/10 -d fe80::/10 -p udp -m udp --sport 547 --dport 546 -j ACCEPT',
          ]),
      ...sshPorts.map((p) => `-p tcp -m tcp --dport ${p} -j ACCEPT`),
      `-p tcp -m multiport --dports ${WEB_PORTS.join(',')} -j ACCEPT`,
      ...members
        .filter((m) => m.family === family)
        .flatMap((m) => [
          `${src(m)}-p tcp -m multiport --dports ${SWARM_TCP_PORTS.join(',')} -j ACCEPT`,
          `${src(m)}-p udp -m multiport --dports ${SWARM_UDP_PORTS.join(',')} -j ACCEPT`,
          `${src(m)}-p esp -j ACCEPT`,
        ]),
      ...allow
        .filter((a) => ours(a.from))
        .map(
          (a) =>
            `${a.from ? src(a.from) : ''}-p ${a.proto} -m ${a.proto} --dport ${a.port} -j ACCEPT`,
        ),
      '-j DROP',
    ];
    const docker: string[] = [
      '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
      ...DOCKER_BRIDGES.map((i) => `-i ${i} -j RETURN`),
      ...WEB_PORTS.map((p) => `-p tcp -m conntrack --ctorigdstport ${p} -j RETURN`),
      ...allow
        .filter((a) => ours(a.from))
        .map(
          (a) =>
            `${a.from ? src(a.from) : ''}-p ${a.proto} -m conntrack --ctorigdstport ${a.port} -j RETURN`,
        ),
      '-m conntrack --ctstate DNAT -j DROP',
    ];
    return { [INPUT_CHAIN]: input, [DOCKER_CHAIN]: docker };
  };
  return { ipv4: build('ipv4'), ipv6: build('ipv6') };
}

/**
 * One family's rules as `iptables-restore --noflush` input: one atomic load
 * that empties our chains (creating them when missing) and refills them, and
 * touches no other chain. The same text is saved on the node and replayed by
 * the boot script. The jumps into our chains are not in it: a restore without
 * flush would add them again each time, so they are checked and added apart
 * (plan.ts), after the chains are full.
 */
export function renderRestore(family: Family, rules: ChainRules): string {
  return [
    `# cluster-cli firewall (${familyName(family)}): load with ${iptablesBin(family)}-restore --noflush.`,
    `# It empties and refills ${OUR_CHAINS.join(' and ')} only; every other chain stays as it is.`,
    '# Written by `cluster-cli firewall apply`: edit cluster.yaml (firewall.allow) instead.',
    '*filter',
    ...OUR_CHAINS.map((c) => `:${c} - [0:0]`),
    ...OUR_CHAINS.flatMap((c) => rules[c].map((r) => `-A ${c} ${r}`)),
    'COMMIT',
    '',
  ].join('\n');
}

// ----------------------------------------------------------- membership --

/** The address the swarm sees a node at (`docker node ls`'s Status.Addr), by hostname. */
export interface SwarmNodeAddress {
  readonly hostname: string;
  readonly addr?: string;
}

/**
 * Each cluster.yaml host's addresses other nodes reach it from: advertiseAddr,
 * its SSH address when that is an IP, and the address the swarm reports for
 * the node of that name. A host with none of them (an ~/.ssh/config alias that
 * never joined) cannot be let in: a UserError says to set advertiseAddr.
 */
export function memberAddresses(
  config: Pick<Config, 'hosts'>,
  swarm: readonly SwarmNodeAddress[] = [],
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const missing: string[] = [];
  for (const h of config.hosts) {
    const found = [
      h.advertiseAddr,
      h.address !== undefined && isIP(h.address) ? h.address : undefined,
      ...swarm.filter((n) => n.hostname === h.name).map((n) => n.addr),
    ].filter(
      (a): a is string =>
        a !== undefined &&
        isIP(a) !== 0 &&
        // a zone (fe80::1%eth0) is no source; the swarm may report a manager at 0.0.0.0
        !a.includes('%') &&
        a !== '0.0.0.0' &&
        a !== '::',
    );
    const addrs = dedupe(found.map(canonicalSource), (s) => s.text).map((s) => s.address);
    if (!addrs.length) missing.push(h.name);
    out.set(h.name, addrs);
  }
  if (missing.length) {
    throw new UserError(
      `Cannot tell the address of ${missing.join(', ')}: the swarm ports are opened to members by address.`,
      `set hosts[].advertiseAddr for ${missing.join(', ')} in cluster.yaml (the IP other nodes reach it at)`,
    );
  }
  return out;
}

/**
 * The TCP ports to keep open for SSH on a host: its cluster.yaml port and the
 * port cluster-cli reached it on (an ~/.ssh/config Port), else 22.
 */
export function sshPortsOf(host: Pick<Host, 'port'>, connectedPort?: number): number[] {
  const ports = [host.port, connectedPort].filter((p): p is number => p !== undefined);
  return ports.length ? [...new Set(ports)].sort((a, b) => a - b) : [22];
}

/** Every node's rules input: the same members and allow list, each node's own SSH ports. */
export function firewallInputFor(
  config: Pick<Config, 'firewall'>,
  members: ReadonlyMap<string, readonly string[]>,
  sshPorts: readonly number[],
): FirewallInput {
  return {
    members: [...members.values()].flat(),
    sshPorts,
    allow: config.firewall.allow,
  };
}

// ------------------------------------------------------------ addresses --

interface Source {
  readonly family: Family;
  /** The address (or network address) in iptables-save's spelling. */
  readonly address: string;
  /** `address/prefix`, as iptables-save prints a source. */
  readonly text: string;
}

/**
 * An address or network as iptables-save prints it: the prefix always written
 * (/32, /128 for one address), host bits cleared, IPv6 compressed and
 * lower-case (the WHATWG URL serialiser compresses like inet_ntop).
 */
export function canonicalSource(value: string): Source {
  const [address = '', bits] = value.split('/');
  const kind = address.includes('%') ? 0 : isIP(address);
  if (kind === 0) throw new RangeError(`not an IP address or network: ${value}`);
  const family: Family = kind === 4 ? 'ipv4' : 'ipv6';
  const max = kind === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
    throw new RangeError(`not an IP address or network: ${value}`);
  let net: string;
  if (family === 'ipv4') {
    const n = ipv4ToInt(address.split('.').map(Number));
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    const m = (n & mask) >>> 0;
    net = [m >>> 24, (m >>> 16) & 255, (m >>> 8) & 255, m & 255].join('.');
  } else {
    const n = ipv6ToBigInt(address);
    const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
    net = bigIntToIpv6(n & mask);
  }
  return { family, address: net, text: `${net}/${prefix}` };
}

function ipv6ToBigInt(address: string): bigint {
  // The URL parser validates, and turns an embedded IPv4 tail into hex pieces.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const pieces =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return pieces.reduce((acc, p) => (acc << 16n) | BigInt(Number.parseInt(p, 16)), 0n);
}

function bigIntToIpv6(n: bigint): string {
  const pieces: string[] = [];
  for (let i = 7; i >= 0; i--) pieces.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return new URL(`http://[${pieces.join(':')}]/`).hostname.slice(1, -1);
}

function dedupe<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(item);
  }
  return out;
}
