import { UserError } from '../core/errors.js';
import type { Executor } from '../core/executor.js';
import { tcpReach } from '../docker/swarm.js';
import type { NodeFacts } from './probe.js';
import { ProbeError, probeText } from './probe.js';

/** One port another host must answer on, and why. */
export interface PortNeed {
  /** Node name (or address) of the host that must answer. */
  readonly to: string;
  readonly addr: string;
  readonly port: number;
  readonly what: string;
}

export interface PortResult extends PortNeed {
  readonly from: string;
  readonly result: 'ok' | 'refused' | 'timeout';
}

const hostOf = (hostPort: string) => hostPort.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');

/**
 * What a new node must reach before it joins: every manager's 2377/tcp (the
 * Raft and join API) and every node's 7946/tcp (gossip). Pure.
 */
export function joinPortNeeds(nodes: readonly NodeFacts[]): PortNeed[] {
  const needs: PortNeed[] = [];
  for (const n of nodes) {
    if (n.state === 'down') continue; // a dead node answers nothing; quorum care covers it
    if (n.role === 'manager' && n.managerAddr) {
      needs.push({
        to: n.hostname,
        addr: hostOf(n.managerAddr),
        port: 2377,
        what: 'swarm management',
      });
    }
    const addr = n.addr ?? (n.managerAddr ? hostOf(n.managerAddr) : undefined);
    if (addr && addr !== '0.0.0.0') {
      needs.push({ to: n.hostname, addr, port: 7946, what: 'node gossip' });
    }
  }
  return needs;
}

/**
 * Try every needed port from one host at once (bounded by timeoutS each). A
 * port that gave no answer is tried once more before it counts as filtered:
 * with many connects at once on a busy host, a SYN and its first retry can
 * both be lost (seen in the lab); a refused port is a real answer.
 */
export async function probePorts(
  exec: Executor,
  from: string,
  needs: readonly PortNeed[],
  timeoutS = 3,
): Promise<PortResult[]> {
  const first = await probePortsOnce(exec, from, needs, timeoutS);
  const silent = first.filter((r) => r.result === 'timeout');
  if (!silent.length) return first;
  const again = await probePortsOnce(exec, from, silent, timeoutS);
  return first.map((r) => (r.result === 'timeout' ? (again.shift() ?? r) : r));
}

async function probePortsOnce(
  exec: Executor,
  from: string,
  needs: readonly PortNeed[],
  timeoutS: number,
): Promise<PortResult[]> {
  if (needs.length === 0) return [];
  const key = (n: PortNeed) =>
    n.addr.includes(':') ? `[${n.addr}]:${n.port}` : `${n.addr}:${n.port}`;
  const out = await probeText(
    exec,
    'which swarm ports it can reach',
    tcpReach(needs.map(key), timeoutS),
  );
  const seen = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [k, r] = line.trim().split(' ');
    if (k && r) seen.set(k, r);
  }
  return needs.map((n) => {
    const r = seen.get(key(n));
    if (r === 'missing-tool' || r === undefined) {
      throw new ProbeError(
        exec.label,
        `whether ${key(n)} answers`,
        r === 'missing-tool'
          ? 'bash or timeout is missing on the host'
          : 'no answer from the check',
      );
    }
    return { ...n, from, result: r as PortResult['result'] };
  });
}

/** The error listing each blocked pair, or undefined when every port answered. */
export function blockedPortsError(
  results: readonly PortResult[],
  /** cluster.yaml has firewall.enabled: cluster-cli's own rules let members only in. */
  firewallOn = false,
): UserError | undefined {
  const bad = results.filter((r) => r.result !== 'ok');
  if (!bad.length) return undefined;
  const lines = bad.map(
    (b) =>
      `  ${b.from} -> ${b.to} (${b.addr}) ${b.port}/tcp ${b.what}: ${b.result === 'timeout' ? 'no answer (filtered?)' : 'connection refused'}`,
  );
  return new UserError(
    [
      `${bad.length === 1 ? 'A swarm port is' : `${bad.length} swarm ports are`} blocked; nothing was joined:`,
      ...lines,
    ].join('\n'),
    firewallOn
      ? `cluster-cli's firewall already lets the new host in there (cluster-cli firewall status shows each node's rules): open ${[...new Set(bad.map((b) => `${b.port}/tcp`))].join(', ')} in whatever else filters between the nodes (a security group, another firewall), then run the same command again`
      : `open ${[...new Set(bad.map((b) => `${b.port}/tcp`))].join(', ')} between the nodes (firewall, security group), then run the same command again`,
  );
}
