import type { Config, Host } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { change, type Step, unchanged } from '../core/plan.js';
import { nodeDemote, nodeLabels, nodePromote } from '../docker/swarm.js';
import { isMemberOf, type JoinTarget } from './plan-join.js';
import type { ClusterFacts, HostFacts, NodeFacts } from './probe.js';

/** One host of cluster.yaml with what its probe found. */
export interface ApplyHost {
  readonly host: Host;
  /** Executor label of its session. */
  readonly label: string;
  readonly facts: HostFacts;
  readonly advertiseAddr: string;
}

export interface ApplyDecisions {
  /** Hosts to join (given to planJoin). */
  readonly joins: JoinTarget[];
  /** Role and label changes on the manager, in a safe order: promotions, labels, demotions. */
  readonly steps: Step[];
  /** Swarm nodes cluster.yaml does not list (reported, never removed by apply). */
  readonly strays: NodeFacts[];
}

const fmt = (labels: Readonly<Record<string, string>>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/**
 * cluster.yaml is the source of truth for hosts, roles and labels. Pure: the
 * file and the probed facts in; joins for hosts outside the swarm, then
 * promotions, label changes (also removals: the file lists every label) and
 * demotions out. Promotions come before demotions so quorum never dips.
 */
export function planApply(
  config: Config,
  manager: string,
  cluster: ClusterFacts,
  swarmId: string,
  hosts: readonly ApplyHost[],
): ApplyDecisions {
  const joins: JoinTarget[] = [];
  const promote: Step[] = [];
  const labels: Step[] = [];
  const demote: Step[] = [];
  for (const a of hosts) {
    const { host, facts } = a;
    if (facts.hostname !== host.name) {
      throw new UserError(
        `${config.hosts.indexOf(host) >= 0 ? `hosts[${config.hosts.indexOf(host)}].name` : 'a host'} is ${host.name}, but the host at ${a.label} is called ${facts.hostname}.`,
        `set its name to ${facts.hostname} in cluster.yaml (swarm nodes are named by hostname)`,
      );
    }
    if (!isMemberOf(facts, swarmId, cluster)) {
      joins.push({
        label: a.label,
        address: host.address ?? a.label,
        ...(host.user ? { user: host.user } : {}),
        ...(host.port ? { port: host.port } : {}),
        facts,
        advertiseAddr: a.advertiseAddr,
        role: host.role,
        labels: host.labels,
      });
      continue;
    }
    const node = cluster.nodes.find((n) => n.id === facts.swarm.nodeId);
    if (!node) continue;
    if (node.role !== host.role) {
      const s = change(
        `role-${node.hostname}`,
        manager,
        `${host.role === 'manager' ? 'Promote' : 'Demote'} ${node.hostname} to ${host.role}`,
        [host.role === 'manager' ? nodePromote(node.id) : nodeDemote(node.id)],
      );
      (host.role === 'manager' ? promote : demote).push(s);
    }
    const add = Object.fromEntries(
      Object.entries(host.labels).filter(([k, v]) => node.labels[k] !== v),
    );
    const remove = Object.keys(node.labels).filter((k) => !(k in host.labels));
    if (Object.keys(add).length || remove.length) {
      const what = [
        ...(Object.keys(add).length ? [`set ${fmt(add)}`] : []),
        ...(remove.length ? [`remove ${remove.join(', ')}`] : []),
      ].join('; ');
      labels.push(
        change(`labels-${node.hostname}`, manager, `Labels of ${node.hostname}: ${what}`, [
          nodeLabels(node.id, add, remove),
        ]),
      );
    } else {
      labels.push(
        unchanged(
          `labels-${node.hostname}`,
          manager,
          `${node.hostname}: ${host.role}${Object.keys(host.labels).length ? `, ${fmt(host.labels)}` : ''}`,
          'as in cluster.yaml',
        ),
      );
    }
  }
  const managersAfter = config.hosts.filter((h) => h.role === 'manager').length;
  if (managersAfter === 0)
    throw new UserError('cluster.yaml lists no manager; a swarm needs at least one.');
  const known = new Set(hosts.map((h) => h.facts.swarm.nodeId));
  const strays = cluster.nodes.filter((n) => !known.has(n.id));
  return { joins, steps: [...promote, ...labels, ...demote], strays };
}
