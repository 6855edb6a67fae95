import { isMemberOf, type JoinTarget } from '../cluster/plan-join.js';
import type { Config, Host } from '../config/schema.js';
import type { Step } from '../core/plan.js';
import type { HostSession } from '../core/session.js';
import { memberAddresses } from '../firewall/rules.js';
import { type ClusterHandle, hostTarget } from './cluster.js';
import type { SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { type FirewallTarget, firewallStepsFor, swarmAddresses } from './firewall.js';
import { connectAll } from './join-flow.js';

/**
 * A join with cluster-cli's firewall on: the members' rules must let the new
 * hosts in before they join (`before`, the first wave), and the new hosts get
 * the same rules once Docker, and with it iptables, is there (`after`, behind
 * the join wave). Every rule names the members of `next`, the cluster.yaml the
 * join leads to.
 */
export interface JoinFirewall {
  readonly before: Step[];
  readonly after: Step[];
  readonly notes: string[];
  /** Members whose rules the `before` steps change: their ports may not answer the new hosts yet. */
  readonly opening: ReadonlySet<string>;
}

export async function planJoinFirewall(
  ctx: Ctx,
  h: ClusterHandle,
  next: Config,
  targets: readonly JoinTarget[],
  sessions: Map<string, HostSession>,
  opts: SshFlags,
  /** Hosts of cluster.yaml already connected, by name (apply connects them all). */
  connected: ReadonlyMap<string, HostSession> = new Map(),
): Promise<JoinFirewall> {
  const swarmId = h.manager.swarm.clusterId as string;
  // A target's entry in the file: by hostname (node join records it so), else by address.
  const entryOf = (t: JoinTarget): Host => {
    const e =
      next.hosts.find((x) => x.name === t.facts.hostname) ??
      next.hosts.find((x) => x.address === t.address && (x.port ?? 22) === (t.port ?? 22));
    if (!e) throw new Error(`${t.label} is not among the hosts of the cluster.yaml being applied`);
    return e;
  };
  const fresh = targets.filter((t) => !isMemberOf(t.facts, swarmId, h.manager.cluster));
  const freshHosts = new Set(fresh.map(entryOf));
  const targetOf = new Map(targets.map((t) => [entryOf(t), t]));

  // Members already in the swarm: the manager, targets that are members, and the rest of the file.
  const members = next.hosts.filter((x) => !freshHosts.has(x));
  const unconnected = members.filter(
    (x) => x.name !== h.manager.host.name && !targetOf.has(x) && !connected.has(x.name),
  );
  const opened = await connectAll(
    ctx,
    unconnected.map((x) => ({ name: x.name, target: hostTarget(x, opts, h.config) })),
    sessions,
  );
  const sessionOf = (x: Host): HostSession => {
    if (x.name === h.manager.host.name) return h.manager.session;
    const t = targetOf.get(x);
    if (t) return sessions.get(t.label) as HostSession;
    const known = connected.get(x.name);
    if (known) return known;
    return opened[unconnected.indexOf(x)] as HostSession;
  };
  const addresses = memberAddresses(next, swarmAddresses(h));
  const old: FirewallTarget[] = members.map((host) => ({ host, session: sessionOf(host) }));
  const joining: FirewallTarget[] = fresh.map((t) => ({
    host: entryOf(t),
    session: sessions.get(t.label) as HostSession,
    beforeDocker: !t.facts.docker.installed,
  }));
  const [before, after] = await Promise.all([
    firewallStepsFor(next, addresses, old, 'firewall'),
    firewallStepsFor(next, addresses, joining, 'firewall-new'),
  ]);
  const opening = new Set(
    old
      .filter((n) =>
        before.steps.some((s) => s.id === `firewall-rules-${n.host.name}` && s.action === 'change'),
      )
      .map((n) => n.host.name),
  );
  return {
    before: before.steps,
    after: after.steps,
    notes: [...new Set([...before.notes, ...after.notes])],
    opening,
  };
}
