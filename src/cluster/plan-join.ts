import type { ConfigInput, Host } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { change, type Step, unchanged } from '../core/plan.js';
import type { Secret } from '../core/secret.js';
import {
  nodeDemote,
  nodeLabels,
  nodePromote,
  nodeRemove,
  type Role,
  swarmJoin,
  swarmLeave,
} from '../docker/swarm.js';
import { dockerInstallCmds, dockerStartCmds } from './docker-install.js';
import type { ClusterFacts, HostFacts, NodeFacts } from './probe.js';

/** One host to bring into the swarm, as probed. */
export interface JoinTarget {
  /** Executor label, where its own steps run. */
  readonly label: string;
  /** As the user named it: what cluster.yaml records. */
  readonly address: string;
  readonly user?: string;
  readonly port?: number;
  readonly facts: HostFacts;
  readonly advertiseAddr: string;
  readonly role: Role;
  readonly labels: Readonly<Record<string, string>>;
}

export interface JoinInputs {
  /** Executor label of the manager the swarm-side steps run on. */
  readonly manager: string;
  readonly cluster: ClusterFacts;
  readonly swarmId: string;
  /** Managers' `addr:2377`, for the join request. */
  readonly remoteAddrs: readonly string[];
  readonly tokens: Readonly<Record<Role, Secret>>;
  readonly targets: readonly JoinTarget[];
  readonly forceLeave: boolean;
}

export type JoinKind = 'join' | 'member' | 'rejoin';

/** What the plan does with one target (for the report). */
export interface JoinDecision {
  readonly label: string;
  readonly kind: JoinKind;
  readonly hostname: string;
}

const fmt = (labels: Readonly<Record<string, string>>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/**
 * Plan joining hosts: per host (all at once, wave `join`) Docker where missing,
 * leaving a foreign swarm with --force-leave, dropping a dead node entry of the
 * same name, the join itself (token in the API body), then role and labels set
 * from a manager. A host already in this swarm only gets its role and labels
 * reconciled. Pure; throws a UserError before anything runs for a host in
 * another swarm without --force-leave.
 */
export function planJoin(i: JoinInputs): { steps: Step[]; decisions: JoinDecision[] } {
  const steps: Step[] = [];
  const decisions: JoinDecision[] = [];
  const wave = 'join';
  for (const t of i.targets) {
    const f = t.facts;
    const about = { wave, about: t.label };
    const s = f.swarm;
    const member = isMemberOf(f, i.swarmId, i.cluster);
    const foreign = !member && s.state !== 'inactive' && s.state !== 'unknown';
    if (foreign && !i.forceLeave) {
      throw new UserError(
        `${t.label} is ${s.state === 'active' ? 'a member' : `${s.state}`} of another swarm (${s.clusterId ?? 'unknown ID'}${s.error ? `: ${s.error}` : ''}); nothing was joined.`,
        `re-run with --force-leave to make it leave that swarm first (whatever runs there in swarm mode stops), or leave it yourself: docker swarm leave --force`,
      );
    }

    if (member) {
      const node = i.cluster.nodes.find((n) => n.id === s.nodeId);
      decisions.push({ label: t.label, kind: 'member', hostname: f.hostname });
      steps.push(
        unchanged(
          `join-${t.label}`,
          t.label,
          `${t.label} in the swarm`,
          `already a ${node?.role ?? 'member'}`,
          about,
        ),
      );
      if (node) steps.push(...reconcile(i.manager, node, t, about));
      continue;
    }

    if (!f.docker.installed) {
      steps.push(
        change(
          `docker-${t.label}`,
          t.label,
          `Install Docker (${f.os.prettyName})`,
          dockerInstallCmds(f.os),
          about,
        ),
      );
    } else if (!f.docker.serverVersion) {
      steps.push(
        change(
          `docker-${t.label}`,
          t.label,
          'Start the Docker daemon',
          dockerStartCmds(f.os),
          about,
        ),
      );
    }
    if (foreign) {
      steps.push(
        change(
          `leave-${t.label}`,
          t.label,
          `Leave swarm ${s.clusterId?.slice(0, 12) ?? '(stale)'}`,
          [swarmLeave({ force: true })],
          about,
        ),
      );
    }
    // A dead entry with this hostname (an earlier life of the host) would make
    // the name ambiguous for the label step.
    for (const stale of i.cluster.nodes.filter(
      (n) => n.hostname === f.hostname && n.state === 'down',
    )) {
      steps.push(
        change(
          `stale-${t.label}-${stale.id}`,
          i.manager,
          `Remove the dead node entry ${stale.hostname} (${stale.id.slice(0, 12)})`,
          [nodeRemove(stale.id, { force: true })],
          about,
        ),
      );
    }
    decisions.push({ label: t.label, kind: foreign ? 'rejoin' : 'join', hostname: f.hostname });
    steps.push(
      change(
        `join-${t.label}`,
        t.label,
        `Join ${f.hostname} as ${t.role} (advertise ${t.advertiseAddr})`,
        [
          swarmJoin({
            advertiseAddr: t.advertiseAddr,
            remoteAddrs: i.remoteAddrs,
            token: i.tokens[t.role],
          }),
        ],
        about,
      ),
    );
    if (Object.keys(t.labels).length) {
      steps.push(
        change(
          `labels-${t.label}`,
          i.manager,
          `Label node ${f.hostname}: ${fmt(t.labels)}`,
          [nodeLabels(f.hostname, t.labels)],
          about,
        ),
      );
    }
  }
  return { steps, decisions };
}

/**
 * In this swarm? A manager knows the swarm ID; a worker's `docker info` has
 * none, so it counts as a member when the managers list its node ID.
 */
export function isMemberOf(f: HostFacts, swarmId: string, cluster: ClusterFacts): boolean {
  const s = f.swarm;
  if (s.state !== 'active') return false;
  if (s.clusterId) return s.clusterId === swarmId;
  return s.nodeId !== undefined && cluster.nodes.some((n) => n.id === s.nodeId);
}

function reconcile(
  manager: string,
  node: NodeFacts,
  t: JoinTarget,
  extra: Pick<Step, 'wave' | 'about'>,
): Step[] {
  const steps: Step[] = [];
  if (node.role !== t.role) {
    steps.push(
      change(
        `role-${t.label}`,
        manager,
        `${t.role === 'manager' ? 'Promote' : 'Demote'} ${node.hostname} to ${t.role}`,
        [t.role === 'manager' ? nodePromote(node.id) : nodeDemote(node.id)],
        extra,
      ),
    );
  }
  const missing = Object.fromEntries(
    Object.entries(t.labels).filter(([k, v]) => node.labels[k] !== v),
  );
  if (Object.keys(missing).length) {
    steps.push(
      change(
        `labels-${t.label}`,
        manager,
        `Label node ${node.hostname}: ${fmt(missing)}`,
        [nodeLabels(node.id, missing)],
        extra,
      ),
    );
  } else if (Object.keys(t.labels).length) {
    steps.push(
      unchanged(
        `labels-${t.label}`,
        manager,
        `Node labels of ${node.hostname} (${fmt(t.labels)})`,
        'already set',
        extra,
      ),
    );
  }
  return steps;
}

/**
 * cluster.yaml's hosts after the joins: a host already listed (same address
 * and port, or same name) is updated, a new one appended. Labels merge. Pure.
 */
export function mergeJoinedHosts(input: ConfigInput, joined: readonly JoinTarget[]): ConfigInput {
  const hosts: Partial<Host>[] = [...(input.hosts ?? [])].map((h) => ({ ...h }));
  for (const t of joined) {
    const at = hosts.findIndex(
      (h) =>
        (h.address === t.address && (h.port ?? 22) === (t.port ?? 22)) ||
        h.name === t.facts.hostname,
    );
    const entry: Partial<Host> = {
      ...(at >= 0 ? hosts[at] : {}),
      name: t.facts.hostname,
      address: t.address,
      ...(t.user ? { user: t.user } : {}),
      ...(t.port ? { port: t.port } : {}),
      role: t.role,
      advertiseAddr: t.advertiseAddr,
    };
    const labels = { ...(at >= 0 ? hosts[at]?.labels : {}), ...t.labels };
    if (Object.keys(labels).length) entry.labels = labels;
    if (at >= 0) hosts[at] = entry;
    else hosts.push(entry);
  }
  return { ...input, hosts: hosts as Host[] };
}

/** Raft: a majority of managers must be up. */
export function quorum(managers: number): { tolerates: number; even: boolean; text: string } {
  const tolerates = Math.max(0, Math.floor((managers - 1) / 2));
  const even = managers > 0 && managers % 2 === 0;
  const text = `${managers} manager${managers === 1 ? '' : 's'}: the cluster survives ${tolerates} manager failure${tolerates === 1 ? '' : 's'}${even ? ` (${managers - 1} would survive as many: use an odd number)` : ''}`;
  return { tolerates, even, text };
}
