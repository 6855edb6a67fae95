import { meetsAll, meetsConstraint } from './constraints.js';
import { DEADMAN_MARGIN_S, type HaRule, isolationRules } from './ha-isolate.js';

/**
 * `doctor --ha`'s plan, pure: from what the swarm and the nodes told us,
 * which of the four HA checks run, which node each takes out and for how
 * long, and why a check cannot run on this cluster (a warn, with what would
 * make it possible). Nothing here touches a host.
 */

export type HaCheckId = 'manager-loss' | 'worker-loss' | 'proxy-failover' | 'node-rejoin';

export const HA_CHECK_TITLES: Readonly<Record<HaCheckId, string>> = {
  'manager-loss': 'manager loss',
  'worker-loss': 'worker loss',
  'proxy-failover': 'proxy failover',
  'node-rejoin': 'node rejoin',
};

/** A node that can be taken out: cluster-cli holds an SSH session and knows what to cut. */
export interface HaNodeAccess {
  /** Interfaces the node's traffic comes in on (its swarm address's, its default route's). */
  readonly ifaces: readonly string[];
  /** The ports sshd answers cluster-cli on: kept open. */
  readonly sshPorts: readonly number[];
  /** systemd runs Docker (`systemctl is-active docker` says active). */
  readonly dockerUnit: boolean;
}

export interface HaNodeFacts {
  /** Swarm hostname, the name in cluster.yaml. */
  readonly name: string;
  readonly id: string;
  readonly role: 'manager' | 'worker';
  readonly leader?: boolean;
  /** ready, down, unknown… */
  readonly state: string;
  /** active, pause, drain */
  readonly availability: string;
  /** Managers: reachable or not. */
  readonly reachability?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Listed in cluster.yaml. */
  readonly inConfig: boolean;
  /** Its SSH address in cluster.yaml; absent for the machine cluster-cli runs on. */
  readonly address?: string;
  /** Set when cluster-cli reached it and read what isolating it needs. */
  readonly access?: HaNodeAccess;
  /** Why it cannot be taken out (no session, no interface found). */
  readonly accessError?: string;
}

export interface HaServiceFacts {
  /** Full name, `platform_app`. */
  readonly name: string;
  readonly mode: 'replicated' | 'global';
  /** Replicated: the desired count. */
  readonly replicas: number;
  readonly constraints: readonly string[];
  /** Node names with a running task of it (once per task). */
  readonly runningOn: readonly string[];
}

export interface HaAppTarget {
  /** SNI and Host: the app's domain. */
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly path: string;
}

export interface HaFacts {
  readonly cluster: string;
  /** ` -c <file>` for the next commands, empty for cluster.yaml. */
  readonly cfg: string;
  /** The manager cluster-cli talks to (its name). */
  readonly operator: string;
  readonly nodes: readonly HaNodeFacts[];
  readonly services: readonly HaServiceFacts[];
  /** The proxy service's full name. */
  readonly proxyService: string;
  readonly app: HaAppTarget;
}

export interface HaSettings {
  /** How long a node stays out (proxy-failover, node-rejoin without systemd; the least for the others). */
  readonly downSeconds: number;
  /** How long the cluster may take to recover (reschedule, election, Ready again). */
  readonly rescheduleTimeout: number;
  /** The HTTP load's rate. */
  readonly rps: number;
  /** Only these checks (default: all four, in their order). */
  readonly only?: readonly HaCheckId[];
}

export const HA_CHECK_IDS: readonly HaCheckId[] = [
  'manager-loss',
  'worker-loss',
  'proxy-failover',
  'node-rejoin',
];

export const MAX_IN_FLIGHT = 4;
/** Load before the first node goes out and after the last is back. */
export const LOAD_EDGE_S = 3;

export interface HaLoadPlan {
  readonly rps: number;
  readonly maxInFlight: number;
  /** Proxy nodes' addresses from cluster.yaml, tried round-robin. */
  readonly targets: readonly string[];
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly path: string;
  /** Expected and longest duration of the load window. */
  readonly estimatedSeconds: number;
  readonly maxSeconds: number;
}

export interface AffectedService {
  readonly name: string;
  readonly replicas: number;
  /** Its tasks running on the node taken out. */
  readonly there: number;
}

export interface PinnedService extends AffectedService {
  /** The constraints no other node meets. */
  readonly constraints: readonly string[];
}

export interface PlannedCheck {
  readonly id: HaCheckId;
  readonly title: string;
  /** Set when the check does not run: a warn with this reason. */
  readonly skip?: { readonly reason: string; readonly next?: string };
  /** What it does, one sentence. */
  readonly does?: string;
  /** Nodes taken out, in order. */
  readonly nodes: readonly string[];
  /** Each node stays out at least this long. */
  readonly holdSeconds: number;
  /** The longest a node stays out (the dead-man switch heals it DEADMAN_MARGIN_S after). */
  readonly boundSeconds: number;
  /** manager-loss: whether the node taken out is the leader (an election happens). */
  readonly leader?: boolean;
  /** manager-loss: proxy nodes that stay up (an HTTPS GET through them must answer). */
  readonly probeTargets?: readonly string[];
  /** worker-loss: services with a task there that can move / cannot. */
  readonly services?: readonly AffectedService[];
  readonly pinned?: readonly PinnedService[];
  /** proxy-failover: the load. */
  readonly load?: HaLoadPlan;
  /** proxy-failover: proxy nodes not taken out, with why. */
  readonly notTaken?: readonly { readonly node: string; readonly why: string }[];
  /** node-rejoin: how the node is restarted, and which. */
  readonly method?: 'systemd' | 'isolate';
  readonly restarted?: string;
}

export interface HaPlan {
  readonly cluster: string;
  readonly settings: HaSettings;
  readonly checks: readonly PlannedCheck[];
  /** The rules that take each node out (the nodes some check takes out). */
  readonly isolation: Readonly<Record<string, readonly HaRule[]>>;
  /** Seconds each node's dead-man switch waits (the longest bound of its checks plus the margin). */
  readonly deadMan: Readonly<Record<string, number>>;
}

// ------------------------------------------------------------ placement --

export { meetsAll, meetsConstraint };

// --------------------------------------------------------------- helpers --

const ready = (n: HaNodeFacts) => n.state === 'ready';
const managerUp = (n: HaNodeFacts) =>
  n.role === 'manager' && ready(n) && (n.reachability ?? 'reachable') === 'reachable';

/** Managers whose loss the quorum survives: one more down still leaves a majority. */
export function quorumSurvivesLoss(nodes: readonly HaNodeFacts[]): boolean {
  const managers = nodes.filter((n) => n.role === 'manager');
  const up = managers.filter(managerUp).length;
  return up - 1 >= Math.floor(managers.length / 2) + 1;
}

/** Why this node cannot be taken out at all; undefined when it can. */
function cannotTake(n: HaNodeFacts): string | undefined {
  if (!n.inConfig) return 'not in cluster.yaml';
  if (n.address === undefined) return 'it is the machine cluster-cli runs on';
  if (!n.access) return n.accessError ?? 'not reached over SSH';
  if (!n.access.ifaces.length) return 'no network interface found to cut';
  return undefined;
}

/** Why it cannot be taken out now, this check's other needs aside. */
function whyNot(n: HaNodeFacts, nodes: readonly HaNodeFacts[]): string | undefined {
  return (
    cannotTake(n) ??
    (n.role === 'manager' && !quorumSurvivesLoss(nodes) ? 'taking it out loses quorum' : undefined)
  );
}

const byName = (a: HaNodeFacts, b: HaNodeFacts) => a.name.localeCompare(b.name);
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function skipped(id: HaCheckId, reason: string, next?: string): PlannedCheck {
  return {
    id,
    title: HA_CHECK_TITLES[id],
    skip: { reason, ...(next ? { next } : {}) },
    nodes: [],
    holdSeconds: 0,
    boundSeconds: 0,
  };
}

function addressOf(nodes: readonly HaNodeFacts[], name: string): string | undefined {
  return nodes.find((n) => n.name === name)?.address;
}

// ---------------------------------------------------------------- checks --

function planManagerLoss(f: HaFacts, s: HaSettings): PlannedCheck {
  const id = 'manager-loss';
  const managers = f.nodes.filter((n) => n.role === 'manager');
  if (managers.length < 3) {
    const workers = f.nodes.filter((n) => n.role === 'worker' && ready(n)).sort(byName);
    const promote = workers.slice(0, 3 - managers.length).map((w) => w.name);
    return skipped(
      id,
      `with ${plural(managers.length, 'manager')}, losing one loses quorum`,
      promote.length === 3 - managers.length
        ? `cluster-cli node promote ${promote.join(' ')}${f.cfg}   # 3 managers survive one failure`
        : `add nodes (cluster-cli node join <host>${f.cfg}), then cluster-cli node promote <node>${f.cfg} until 3 are managers`,
    );
  }
  const others = managers.filter((m) => m.name !== f.operator);
  const reasons = others.map((m) => ({ m, why: whyNot(m, f.nodes) }));
  const takeable = reasons.filter((r) => r.why === undefined).map((r) => r.m);
  const pick = takeable.find((m) => m.leader) ?? [...takeable].sort(byName)[0];
  if (!pick) {
    return skipped(
      id,
      `no manager besides ${f.operator} can be taken out: ${reasons.map((r) => `${r.m.name}: ${r.why}`).join('; ')}`,
      `check SSH to the managers: cluster-cli doctor${f.cfg}`,
    );
  }
  const proxy = f.services.find((x) => x.name === f.proxyService);
  const probeTargets = [...new Set(proxy?.runningOn ?? [])]
    .filter((n) => n !== pick.name)
    .map((n) => addressOf(f.nodes, n))
    .filter((a): a is string => a !== undefined);
  return {
    id,
    title: HA_CHECK_TITLES[id],
    does: `take out manager ${pick.name}${pick.leader ? ' (the leader: an election happens)' : ''}; ${f.operator}'s API must list the nodes again and the stack answer over HTTP${f.app.tls ? 'S' : ''} through ${probeTargets.length ? probeTargets.join(', ') : '(no surviving proxy node)'} within ${s.rescheduleTimeout} s`,
    nodes: [pick.name],
    holdSeconds: s.downSeconds,
    boundSeconds: Math.max(s.downSeconds, s.rescheduleTimeout),
    leader: Boolean(pick.leader),
    probeTargets,
  };
}

function planWorkerLoss(f: HaFacts, s: HaSettings): PlannedCheck {
  const id = 'worker-loss';
  const replicated = f.services.filter((x) => x.mode === 'replicated' && x.replicas > 0);
  const workers = f.nodes.filter((n) => n.role === 'worker').sort(byName);
  const candidates = workers.flatMap((w) => {
    const affected: AffectedService[] = replicated
      .map((x) => ({
        name: x.name,
        replicas: x.replicas,
        there: x.runningOn.filter((n) => n === w.name).length,
      }))
      .filter((x) => x.there > 0);
    if (!affected.length) return [];
    const elsewhere = f.nodes.filter(
      (n) => n.name !== w.name && ready(n) && n.availability === 'active',
    );
    const pinned: PinnedService[] = [];
    const movable: AffectedService[] = [];
    for (const a of affected) {
      const svc = replicated.find((x) => x.name === a.name) as HaServiceFacts;
      if (elsewhere.some((n) => meetsAll(n, svc.constraints))) movable.push(a);
      else pinned.push({ ...a, constraints: svc.constraints });
    }
    return [{ w, movable, pinned, why: whyNot(w, f.nodes) }];
  });
  if (!candidates.length) {
    return skipped(
      id,
      'no worker runs a replicated task',
      workers.length
        ? undefined
        : `add a worker: cluster-cli node join <user@host> --role worker${f.cfg}`,
    );
  }
  const usable = candidates
    .filter((c) => c.why === undefined && c.movable.length)
    .sort((a, b) => b.movable.length - a.movable.length || byName(a.w, b.w));
  const pick = usable[0];
  if (!pick) {
    const why = candidates.map((c) =>
      c.why
        ? `${c.w.name}: ${c.why}`
        : `${c.w.name}: every replicated task there is pinned to it (${c.pinned.map((p) => p.name).join(', ')})`,
    );
    return skipped(
      id,
      `no worker can be taken out: ${why.join('; ')}`,
      candidates.some((c) => c.why === undefined)
        ? 'relax the placement constraints of the pinned services (or give another node the label they ask for)'
        : `check SSH to the workers: cluster-cli doctor${f.cfg}`,
    );
  }
  return {
    id,
    title: HA_CHECK_TITLES[id],
    does: `take out worker ${pick.w.name}; ${pick.movable.map((m) => m.name).join(', ')} must run their desired tasks elsewhere within ${s.rescheduleTimeout} s${pick.pinned.length ? ` (pinned there, cannot move: ${pick.pinned.map((p) => p.name).join(', ')})` : ''}`,
    nodes: [pick.w.name],
    holdSeconds: 0,
    boundSeconds: s.rescheduleTimeout,
    services: pick.movable,
    pinned: pick.pinned,
  };
}

function planProxyFailover(f: HaFacts, s: HaSettings): PlannedCheck {
  const id = 'proxy-failover';
  const proxy = f.services.find((x) => x.name === f.proxyService);
  const on = f.nodes
    .filter((n) => proxy?.runningOn.includes(n.name))
    .sort((a, b) => {
      // cluster.yaml's order (the nodes list keeps it), the CLI's own manager last
      const ia = a.name === f.operator ? 1 : 0;
      const ib = b.name === f.operator ? 1 : 0;
      return ia - ib;
    });
  if (!on.length) {
    return skipped(
      id,
      `no node runs ${f.proxyService}`,
      `cluster-cli status${f.cfg}; then cluster-cli apply${f.cfg}`,
    );
  }
  const next =
    'run the proxy on more nodes: it runs on every manager (cluster-cli node promote <node>) and on nodes labelled public_ip=true (cluster-cli node label <node> public_ip=true)';
  if (on.length < 2) {
    return skipped(
      id,
      `only ${on[0]?.name} runs the proxy: taking it out stops the stack`,
      `${next}${f.cfg}`,
    );
  }
  const targets = on.map((n) => n.address).filter((a): a is string => a !== undefined);
  if (targets.length < 2) {
    return skipped(
      id,
      `fewer than two proxy nodes have an address in cluster.yaml to send the load to (${on.map((n) => n.name).join(', ')})`,
    );
  }
  const taken: HaNodeFacts[] = [];
  const notTaken: { node: string; why: string }[] = [];
  for (const n of on) {
    const why = whyNot(n, f.nodes);
    if (why) notTaken.push({ node: n.name, why });
    else taken.push(n);
  }
  if (!taken.length) {
    return skipped(
      id,
      `no proxy node can be taken out: ${notTaken.map((x) => `${x.node}: ${x.why}`).join('; ')}`,
    );
  }
  // Expected: a node is Ready again within seconds of being restored.
  const expectedBack = 10;
  const scheme = f.app.tls ? 'https' : 'http';
  return {
    id,
    title: HA_CHECK_TITLES[id],
    does: `${s.rps} req/s (at most ${MAX_IN_FLIGHT} in flight) to ${scheme}://${f.app.host}${f.app.port === (f.app.tls ? 443 : 80) ? '' : `:${f.app.port}`}${f.app.path} through ${targets.join(', ')} while ${taken.map((n) => n.name).join(', then ')} ${taken.length === 1 ? 'is' : 'are each'} out for ${s.downSeconds} s; at least 99 % must succeed`,
    nodes: taken.map((n) => n.name),
    holdSeconds: s.downSeconds,
    boundSeconds: s.downSeconds,
    load: {
      rps: s.rps,
      maxInFlight: MAX_IN_FLIGHT,
      targets,
      host: f.app.host,
      port: f.app.port,
      tls: f.app.tls,
      path: f.app.path,
      estimatedSeconds: 2 * LOAD_EDGE_S + taken.length * (s.downSeconds + expectedBack),
      maxSeconds: 2 * LOAD_EDGE_S + taken.length * (s.downSeconds + s.rescheduleTimeout),
    },
    notTaken,
  };
}

function planNodeRejoin(f: HaFacts, s: HaSettings): PlannedCheck {
  const id = 'node-rejoin';
  if (f.nodes.length < 2) {
    return skipped(
      id,
      'a single node: restarting it is a full outage',
      `add nodes: cluster-cli node join <user@host>${f.cfg}`,
    );
  }
  const others = f.nodes.filter((n) => n.name !== f.operator);
  const reasons = others.map((n) => ({ n, why: whyNot(n, f.nodes) }));
  const ok = reasons.filter((r) => r.why === undefined).map((r) => r.n);
  const pick =
    ok.filter((n) => n.role === 'worker').sort(byName)[0] ??
    ok.filter((n) => n.role === 'manager').sort(byName)[0];
  if (!pick) {
    return skipped(
      id,
      `no node besides ${f.operator} can be restarted safely: ${reasons.map((r) => `${r.n.name}: ${r.why}`).join('; ')}`,
    );
  }
  const method = pick.access?.dockerUnit ? 'systemd' : 'isolate';
  return {
    id,
    title: HA_CHECK_TITLES[id],
    does:
      method === 'systemd'
        ? `systemctl restart docker on ${pick.name} (${pick.role}); it must be Ready${pick.role === 'manager' ? ' and reachable' : ''} within ${s.rescheduleTimeout} s and the stack converge again`
        : `take out ${pick.name} (${pick.role}) for ${s.downSeconds} s and until the swarm lists it down (at most ${s.rescheduleTimeout} s; Docker is not a systemd unit there), then restore it; it must be Ready${pick.role === 'manager' ? ' and reachable' : ''} within ${s.rescheduleTimeout} s and the stack converge again`,
    nodes: method === 'isolate' ? [pick.name] : [],
    holdSeconds: method === 'isolate' ? s.downSeconds : 0,
    boundSeconds: method === 'isolate' ? Math.max(s.downSeconds, s.rescheduleTimeout) : 0,
    method,
    restarted: pick.name,
  };
}

/** Every node that is not Ready, or a manager the others cannot reach: the cluster is already degraded. */
export function degradedNodes(nodes: readonly HaNodeFacts[]): HaNodeFacts[] {
  return nodes.filter(
    (n) =>
      (n.role === 'manager' && !managerUp(n)) || (n.inConfig && n.role === 'worker' && !ready(n)),
  );
}

export function planHa(f: HaFacts, s: HaSettings): HaPlan {
  const degraded = degradedNodes(f.nodes);
  const ids = HA_CHECK_IDS.filter((id) => !s.only || s.only.includes(id));
  const planners: Record<HaCheckId, (f: HaFacts, s: HaSettings) => PlannedCheck> = {
    'manager-loss': planManagerLoss,
    'worker-loss': planWorkerLoss,
    'proxy-failover': planProxyFailover,
    'node-rejoin': planNodeRejoin,
  };
  const checks: PlannedCheck[] = degraded.length
    ? ids.map((id) =>
        skipped(
          id,
          `the cluster is already degraded (${degraded.map((n) => `${n.name} ${n.state}${n.reachability && n.reachability !== 'reachable' ? `, ${n.reachability}` : ''}`).join('; ')}): taking out another node could stop it`,
          `bring it back first: cluster-cli doctor${f.cfg}`,
        ),
      )
    : ids.map((id) => planners[id](f, s));
  const isolation: Record<string, HaRule[]> = {};
  const deadMan: Record<string, number> = {};
  for (const c of checks) {
    for (const name of c.nodes) {
      const n = f.nodes.find((x) => x.name === name);
      if (!n?.access) continue;
      isolation[name] ??= isolationRules(n.access.ifaces, n.access.sshPorts);
      deadMan[name] = Math.max(deadMan[name] ?? 0, c.boundSeconds + DEADMAN_MARGIN_S);
    }
  }
  return { cluster: f.cluster, settings: s, checks, isolation, deadMan };
}
