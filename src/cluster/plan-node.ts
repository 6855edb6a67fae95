import type { Config, ConfigInput, Host } from '../config/schema.js';
import { type Cmd, shellScript } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import { change, type Step, unchanged } from '../core/plan.js';
import {
  nodeAvailability,
  nodeDemote,
  nodeLabels,
  nodePromote,
  nodeRemove,
  type Role,
  swarmLeave,
} from '../docker/swarm.js';
import { placement } from '../stack/model.js';
import { quorum } from './plan-join.js';
import type { ClusterFacts, NodeFacts, SwarmFacts } from './probe.js';

/**
 * Pure planners for the imperative node commands (label, promote, demote,
 * drain, activate, remove): swarm facts in, steps out. Refusals are
 * UserErrors thrown before anything runs. Every step of one command shares
 * one `about` key, so the first failure skips the rest (the report says which
 * nodes were done); a step's id ends in `@<node ID>` so the command can tell
 * which nodes' changes ran and record only those in cluster.yaml.
 */

/** The `about` key all steps of one node command share (see apply's keepGoing). */
export const NODE_OPS = 'node-ops';

/** Seconds each wait step of `node remove` allows. */
export const WAIT_S = 60;

const fmt = (labels: Readonly<Record<string, string>>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

const names = (nodes: readonly Pick<NodeFacts, 'hostname'>[]) =>
  nodes.map((n) => n.hostname).join(', ');

const majority = (n: number) => Math.floor(n / 2) + 1;

function nodeStep(
  what: string,
  node: NodeFacts,
  host: string,
  title: string,
  cmds: readonly Cmd[],
): Step {
  return change(`${what}@${node.id}`, host, title, cmds, { about: NODE_OPS });
}

function sameStep(what: string, node: NodeFacts, host: string, title: string, why: string): Step {
  return unchanged(`${what}@${node.id}`, host, title, why, { about: NODE_OPS });
}

/** The node ID a node step is about (its id's `@…` part); undefined for stack steps. */
export function stepNode(step: Pick<Step, 'id'>): string | undefined {
  const at = step.id.lastIndexOf('@');
  return at < 0 ? undefined : step.id.slice(at + 1);
}

/**
 * A swarm node by name (hostname) or ID, as the manager lists it: the exact
 * ID, else the hostname (a dead entry loses to a live one of the same name),
 * else a unique ID prefix.
 */
export function resolveNode(cluster: Pick<ClusterFacts, 'nodes'>, arg: string): NodeFacts {
  const nodes = cluster.nodes;
  const byId = nodes.find((n) => n.id === arg);
  if (byId) return byId;
  const named = nodes.filter((n) => n.hostname === arg);
  const live = named.filter((n) => n.state !== 'down');
  const pick = named.length === 1 ? named : live.length === 1 ? live : named;
  if (pick.length === 1) return pick[0] as NodeFacts;
  if (pick.length > 1)
    throw new UserError(
      `${JSON.stringify(arg)} names ${pick.length} swarm nodes (${pick.map((n) => `${n.id.slice(0, 12)} ${n.state}`).join(', ')})`,
      'name the node by its ID instead (cluster-cli node ls --json shows each ID)',
    );
  const prefixed = arg.length > 0 ? nodes.filter((n) => n.id.startsWith(arg)) : [];
  if (prefixed.length === 1) return prefixed[0] as NodeFacts;
  if (prefixed.length > 1)
    throw new UserError(
      `${JSON.stringify(arg)} is the start of ${prefixed.length} node IDs (${names(prefixed)})`,
      'give more of the ID, or the node name',
    );
  const all = [...new Set(nodes.map((n) => n.hostname))].sort();
  throw new UserError(
    `no node ${JSON.stringify(arg)} in the swarm (nodes: ${all.join(', ')})`,
    'cluster-cli node ls   # every node with its name and state',
  );
}

/** Each argument resolved; the same node named twice counts once. */
export function resolveNodes(
  cluster: Pick<ClusterFacts, 'nodes'>,
  args: readonly string[],
): NodeFacts[] {
  const out: NodeFacts[] = [];
  for (const a of args) {
    const n = resolveNode(cluster, a);
    if (!out.some((o) => o.id === n.id)) out.push(n);
  }
  return out;
}

// ---------------------------------------------------------------- labels

export interface LabelEdit {
  readonly hostname: string;
  readonly id: string;
  readonly add: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

export interface LabelInputs {
  /** Executor label of the manager the steps run on. */
  readonly manager: string;
  readonly cluster: Pick<ClusterFacts, 'nodes'>;
  readonly node: NodeFacts;
  readonly add: Readonly<Record<string, string>>;
  readonly remove: readonly string[];
}

/**
 * Label one node: only what differs from its labels in the swarm is sent, so
 * a second run plans nothing. `db=primary` belongs to one node: giving it to
 * this node takes it from any other first (the data placement check decides
 * whether that may happen).
 */
export function planLabel(i: LabelInputs): { steps: Step[]; edits: LabelEdit[] } {
  const both = i.remove.filter((k) => k in i.add);
  if (both.length)
    throw new UserError(
      `label ${both.join(', ')} is both set and removed (--remove ${both[0]})`,
      'set it (key=value) or remove it (--remove key), not both',
    );
  if (Object.keys(i.add).length === 0 && i.remove.length === 0)
    throw new UserError(
      'node label needs at least one key=value to set or --remove key',
      'cluster-cli node label node2 db=primary',
    );
  const steps: Step[] = [];
  const edits: LabelEdit[] = [];
  if (i.add.db === 'primary') {
    for (const o of i.cluster.nodes) {
      if (o.id === i.node.id || o.labels.db !== 'primary') continue;
      steps.push(
        nodeStep(
          'label',
          o,
          i.manager,
          `Remove label db=primary from node ${o.hostname} (one node holds the database)`,
          [nodeLabels(o.id, {}, ['db'])],
        ),
      );
      edits.push({ hostname: o.hostname, id: o.id, add: {}, remove: ['db'] });
    }
  }
  const n = i.node;
  const add = Object.fromEntries(Object.entries(i.add).filter(([k, v]) => n.labels[k] !== v));
  const remove = i.remove.filter((k) => k in n.labels);
  if (Object.keys(add).length || remove.length) {
    const what = [
      ...Object.entries(add).map(([k, v]) => `+${k}=${v}`),
      ...remove.map((k) => `-${k}`),
    ].join(', ');
    steps.push(
      nodeStep('label', n, i.manager, `Label node ${n.hostname}: ${what}`, [
        nodeLabels(n.id, add, remove),
      ]),
    );
  } else {
    const want = [
      ...(Object.keys(i.add).length ? [fmt(i.add)] : []),
      ...(i.remove.length ? [`without ${i.remove.join(', ')}`] : []),
    ].join(', ');
    steps.push(
      sameStep('label', n, i.manager, `Node labels of ${n.hostname} (${want})`, 'already so'),
    );
  }
  edits.push({ hostname: n.hostname, id: n.id, add: i.add, remove: i.remove });
  return { steps, edits };
}

/** Node facts after label edits (for the placement check). */
export function nodesWithLabels(
  nodes: readonly NodeFacts[],
  edits: readonly LabelEdit[],
): NodeFacts[] {
  return nodes.map((n) => {
    const mine = edits.filter((e) => e.id === n.id);
    if (!mine.length) return n;
    const labels: Record<string, string> = { ...n.labels };
    for (const e of mine) {
      Object.assign(labels, e.add);
      for (const k of e.remove) delete labels[k];
    }
    return { ...n, labels };
  });
}

type HostInput = ConfigInput['hosts'][number];

function withLabels(h: HostInput, labels: Record<string, string>): HostInput {
  const { labels: _old, ...rest } = h;
  return Object.keys(labels).length ? { ...rest, labels } : rest;
}

/**
 * cluster.yaml after label edits: each edited node's hosts[] entry (the one
 * whose name is its hostname) gets the same edit; setting db=primary takes it
 * from every other entry. Nodes without an entry are left out. Pure.
 */
export function labelHosts(input: ConfigInput, edits: readonly LabelEdit[]): ConfigInput {
  let hosts = [...(input.hosts ?? [])];
  for (const e of edits) {
    if (e.add.db === 'primary')
      hosts = hosts.map((h) =>
        h.name !== e.hostname && h.labels?.db === 'primary'
          ? withLabels(h, Object.fromEntries(Object.entries(h.labels).filter(([k]) => k !== 'db')))
          : h,
      );
    hosts = hosts.map((h) => {
      if (h.name !== e.hostname) return h;
      const labels: Record<string, string> = { ...h.labels, ...e.add };
      for (const k of e.remove) delete labels[k];
      return withLabels(h, labels);
    });
  }
  return { ...input, hosts };
}

// ---------------------------------------------------------------- roles

/**
 * Managers leaving (demoted or removed): never the last one; without --force
 * not so many that the rest lose quorum. For `remove`, the managers left must
 * also be a majority of today's (so a swarm never shrinks by half at once).
 */
export function checkManagers(
  cluster: Pick<ClusterFacts, 'nodes'>,
  leaving: readonly NodeFacts[],
  opts: { force: boolean; verb: 'demote' | 'remove' },
): { managersAfter: number } {
  const managers = cluster.nodes.filter((n) => n.role === 'manager');
  const out = managers.filter((m) => leaving.some((l) => l.id === m.id));
  const remaining = managers.filter((m) => !out.some((o) => o.id === m.id));
  if (!out.length) return { managersAfter: managers.length };
  const doing = opts.verb === 'demote' ? 'demoting' : 'removing';
  if (remaining.length === 0)
    throw new UserError(
      `${out.length === 1 ? `${names(out)} is the last manager` : `${names(out)} are the last managers`} of the swarm; a swarm needs at least one, so ${doing} ${out.length === 1 ? 'it' : 'them all'} is refused (also with --force)`,
      'promote another node first: cluster-cli node promote <node>',
    );
  if (opts.force) return { managersAfter: remaining.length };
  if (opts.verb === 'remove' && remaining.length < majority(managers.length))
    throw new UserError(
      `removing ${names(out)} leaves ${remaining.length} of ${managers.length} managers, fewer than a majority (${majority(managers.length)}) of today's`,
      'remove fewer managers at a time, or re-run with --force',
    );
  const reachable = remaining.filter((m) => m.state === 'ready' && m.reachability === 'reachable');
  if (reachable.length < majority(remaining.length)) {
    const down = remaining.filter((m) => !reachable.includes(m));
    throw new UserError(
      `after ${doing} ${names(out)}, only ${reachable.length} of the ${remaining.length} remaining managers answer (${names(down)} ${down.length === 1 ? 'does' : 'do'} not): the swarm would lose its quorum (${majority(remaining.length)} needed) and stop taking changes`,
      `bring ${names(down)} back first, or demote/remove ${down.length === 1 ? 'it' : 'them'} instead; --force goes on anyway`,
    );
  }
  return { managersAfter: remaining.length };
}

export interface RoleInputs {
  readonly manager: string;
  readonly cluster: Pick<ClusterFacts, 'nodes'>;
  readonly nodes: readonly NodeFacts[];
  readonly role: Role;
  readonly force: boolean;
}

/** Promote or demote nodes on the manager; a node already in the role is unchanged. */
export function planRoles(i: RoleInputs): {
  steps: Step[];
  warnings: string[];
  managersAfter: number;
} {
  const { managersAfter } =
    i.role === 'worker'
      ? checkManagers(
          i.cluster,
          i.nodes.filter((n) => n.role === 'manager'),
          { force: i.force, verb: 'demote' },
        )
      : {
          managersAfter:
            i.cluster.nodes.filter((n) => n.role === 'manager').length +
            i.nodes.filter((n) => n.role !== 'manager').length,
        };
  const warnings: string[] = [];
  const steps = i.nodes.map((n) => {
    if (n.role === i.role)
      return sameStep('role', n, i.manager, `Role of ${n.hostname}`, `already a ${i.role}`);
    if (i.role === 'manager' && n.state !== 'ready')
      warnings.push(
        `${n.hostname} is ${n.state}: it takes its place among the managers only once it is back`,
      );
    return i.role === 'manager'
      ? nodeStep('role', n, i.manager, `Promote ${n.hostname} to manager`, [nodePromote(n.id)])
      : nodeStep('role', n, i.manager, `Demote ${n.hostname} to worker`, [nodeDemote(n.id)]);
  });
  const q = quorum(managersAfter);
  if (q.even)
    warnings.push(
      `${managersAfter} managers tolerate no more failures than ${managersAfter - 1}; use an odd number`,
    );
  return { steps, warnings, managersAfter };
}

/** cluster.yaml with these nodes' hosts[] entries in a new role. Pure. */
export function setHostRoles(
  input: ConfigInput,
  hostnames: readonly string[],
  role: Role,
): ConfigInput {
  return {
    ...input,
    hosts: (input.hosts ?? []).map((h) => (hostnames.includes(h.name) ? { ...h, role } : h)),
  };
}

/** Node facts after role changes (for the placement check). */
export function nodesWithRole(
  nodes: readonly NodeFacts[],
  ids: readonly string[],
  role: Role,
): NodeFacts[] {
  return nodes.map((n) => (ids.includes(n.id) ? { ...n, role } : n));
}

// ---------------------------------------------------------------- availability

export type Availability = 'active' | 'drain';

export interface AvailabilityInputs {
  readonly manager: string;
  readonly cluster: Pick<ClusterFacts, 'nodes'>;
  readonly nodes: readonly NodeFacts[];
  readonly availability: Availability;
  /** Hostnames PostgreSQL and Redis may run on today (see dataHosts). */
  readonly dataHosts?: readonly string[];
}

/** Drain or activate nodes. Runtime state only: cluster.yaml does not record it. */
export function planAvailability(i: AvailabilityInputs): { steps: Step[]; warnings: string[] } {
  const warnings: string[] = [];
  const steps = i.nodes.map((n) => {
    if (n.availability === i.availability)
      return sameStep(
        'availability',
        n,
        i.manager,
        `Availability of ${n.hostname}`,
        `already ${i.availability}`,
      );
    const title =
      i.availability === 'drain'
        ? `Drain ${n.hostname} (its tasks move to other nodes)`
        : `Activate ${n.hostname} (it takes tasks again)`;
    return nodeStep('availability', n, i.manager, title, [nodeAvailability(n.id, i.availability)]);
  });
  if (i.availability === 'drain') {
    const ids = i.nodes.map((n) => n.id);
    const left = i.cluster.nodes.filter(
      (n) => !ids.includes(n.id) && n.availability === 'active' && n.state === 'ready',
    );
    if (!left.length) warnings.push('no active node would be left: no service can run anywhere');
    const data = i.dataHosts ?? [];
    const drained = i.nodes.filter((n) => data.includes(n.hostname));
    if (drained.length && data.every((h) => drained.some((n) => n.hostname === h)))
      warnings.push(
        `PostgreSQL and Redis may only run on ${data.join(', ')} (their volumes are there): draining stops them until: cluster-cli node activate ${names(drained)}`,
      );
  }
  return { steps, warnings };
}

// ---------------------------------------------------------------- remove

/** How a node to remove answered over SSH. */
export type Reach =
  | { readonly kind: 'ok'; readonly label: string; readonly swarm: SwarmFacts }
  | { readonly kind: 'unreachable'; readonly why: string };

export interface RemoveInputs {
  readonly manager: string;
  readonly cluster: Pick<ClusterFacts, 'nodes'>;
  readonly nodes: readonly NodeFacts[];
  /** Per node ID. */
  readonly reach: ReadonlyMap<string, Reach>;
  readonly force: boolean;
}

/**
 * Remove nodes, one after the other: drain (its tasks move first), demote a
 * manager, then on the node itself wait for its tasks to stop (up to 60 s;
 * leave stops what remains), for a demoted manager to see itself a worker,
 * and `docker swarm leave`; then wait until the managers see it down and
 * `docker node rm`. A node that cannot be reached skips the leave: it is
 * removed when the swarm already sees it down, else only with --force
 * (`docker node rm --force`). Never the last manager; see checkManagers.
 */
export function planRemove(i: RemoveInputs): {
  steps: Step[];
  warnings: string[];
  notes: string[];
} {
  checkManagers(i.cluster, i.nodes, { force: i.force, verb: 'remove' });
  const steps: Step[] = [];
  const warnings: string[] = [];
  const notes: string[] = [];
  for (const n of i.nodes) {
    const reach = i.reach.get(n.id) ?? { kind: 'unreachable', why: 'not tried' };
    // The host at that address is this node only if it says so.
    const here =
      reach.kind === 'ok' && reach.swarm.state !== 'inactive' && reach.swarm.nodeId === n.id
        ? reach
        : undefined;
    const why =
      reach.kind === 'unreachable'
        ? reach.why
        : reach.swarm.state === 'inactive'
          ? undefined // already left
          : `${reach.label} is node ${reach.swarm.nodeId?.slice(0, 12) ?? '(none)'}, not ${n.id.slice(0, 12)}`;
    const forceRm = !here && why !== undefined && n.state !== 'down';
    if (forceRm && !i.force)
      throw new UserError(
        `cannot make ${n.hostname} leave the swarm (${why}), and the swarm still sees it ${n.state}`,
        `bring it back and run this again, or re-run with --force to remove it anyway (docker node rm --force; if it ever returns, run docker swarm leave --force on it)`,
      );

    if (n.availability === 'drain')
      steps.push(sameStep('drain', n, i.manager, `Drain ${n.hostname}`, 'already drained'));
    else
      steps.push(
        nodeStep('drain', n, i.manager, `Drain ${n.hostname} (its tasks move to other nodes)`, [
          nodeAvailability(n.id, 'drain'),
        ]),
      );
    if (n.role === 'manager')
      steps.push(
        nodeStep('demote', n, i.manager, `Demote ${n.hostname} to worker`, [nodeDemote(n.id)]),
        nodeStep(
          'demoted',
          n,
          i.manager,
          `Wait until the managers no longer count ${n.hostname} as one (up to ${WAIT_S} s)`,
          [waitDemoted(n.id, WAIT_S)],
        ),
      );
    if (here) {
      steps.push(
        nodeStep(
          'tasks',
          n,
          here.label,
          `Wait until no swarm task runs on ${n.hostname} (up to ${WAIT_S} s; leaving stops what remains)`,
          [waitNoTasks(WAIT_S)],
        ),
      );
      if (n.role === 'manager')
        steps.push(
          nodeStep(
            'worker',
            n,
            here.label,
            `Wait until ${n.hostname} is a worker (up to ${WAIT_S} s)`,
            [waitWorker(WAIT_S)],
          ),
        );
      steps.push(
        nodeStep('leave', n, here.label, 'Leave the swarm', [swarmLeave({ force: false })]),
      );
    } else if (why === undefined) {
      steps.push(
        sameStep(
          'leave',
          n,
          reach.kind === 'ok' ? reach.label : n.hostname,
          `${n.hostname} leaves the swarm`,
          'already left',
        ),
      );
    } else {
      steps.push(
        sameStep('leave', n, n.hostname, `${n.hostname} leaves the swarm`, `skipped: ${why}`),
      );
      notes.push(
        `${n.hostname} could not leave the swarm itself (${why}); if it comes back, run on it: docker swarm leave --force`,
      );
    }
    if (!forceRm && n.state !== 'down')
      steps.push(
        nodeStep(
          'down',
          n,
          i.manager,
          `Wait until the managers see ${n.hostname} down (up to ${WAIT_S} s)`,
          [waitNodeDown(n.id, WAIT_S)],
        ),
      );
    steps.push(
      nodeStep('rm', n, i.manager, `Remove node ${n.hostname} from the swarm`, [
        nodeRemove(n.id, { force: forceRm }),
      ]),
    );
    if (forceRm)
      warnings.push(
        `${n.hostname} is ${n.state} but cannot leave (${why}): it is removed with docker node rm --force`,
      );
  }
  return { steps, warnings, notes };
}

/** cluster.yaml without these nodes' hosts[] entries. Pure. */
export function removeHosts(input: ConfigInput, hostnames: readonly string[]): ConfigInput {
  return { ...input, hosts: (input.hosts ?? []).filter((h) => !hostnames.includes(h.name)) };
}

// ---------------------------------------------------------------- waits (builders)

/**
 * The wait scripts are one line each, so the printed plan reads like a
 * command; values go in as "$1", "$2" (shellScript), never into the text.
 */

/** On a node: wait until no swarm task container runs there; after `t` seconds go on anyway. */
export function waitNoTasks(timeoutS: number): Cmd {
  return shellScript(
    't=$1; i=0; while [ -n "$(docker ps -q --filter label=com.docker.swarm.task.id)" ]; do i=$((i+1)); if [ "$i" -ge "$t" ]; then echo "tasks still running after $t s; leaving stops them" >&2; exit 0; fi; sleep 1; done',
    [String(timeoutS)],
  );
}

/** On a demoted manager: wait until its engine no longer acts as a manager (leave refuses before). */
export function waitWorker(timeoutS: number): Cmd {
  return shellScript(
    `t=$1; i=0; while [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" != false ]; do i=$((i+1)); if [ "$i" -ge "$t" ]; then echo "still a manager after $t s" >&2; exit 1; fi; sleep 1; done`,
    [String(timeoutS)],
  );
}

/**
 * On a manager: wait until a demoted node has left the managers' Raft group
 * (its ManagerStatus is gone); `docker node rm` refuses a Raft member.
 */
export function waitDemoted(id: string, timeoutS: number): Cmd {
  return shellScript(
    `n=$1; t=$2; i=0; while r=$(docker node inspect --format '{{if .ManagerStatus}}manager{{else}}worker{{end}}' "$n") && [ "$r" != worker ]; do i=$((i+1)); if [ "$i" -ge "$t" ]; then echo "node $n is still a manager after $t s" >&2; exit 1; fi; sleep 1; done; [ "$r" = worker ]`,
    [id, String(timeoutS)],
  );
}

/** On a manager: wait until the swarm sees node `id` down (`docker node rm` refuses before). */
export function waitNodeDown(id: string, timeoutS: number): Cmd {
  return shellScript(
    `n=$1; t=$2; i=0; while s=$(docker node inspect --format '{{.Status.State}}' "$n") && [ "$s" != down ]; do i=$((i+1)); if [ "$i" -ge "$t" ]; then echo "node $n is still $s after $t s" >&2; exit 1; fi; sleep 1; done; [ "$s" = down ]`,
    [id, String(timeoutS)],
  );
}

// ---------------------------------------------------------------- data placement

type NodeLike = Pick<NodeFacts, 'hostname' | 'role' | 'labels'>;

const CONSTRAINT = /^node\.(hostname|role|labels\.([a-z][a-z0-9_.-]*))\s*(==|!=)\s*(\S+)$/;

/** The nodes a set of placement constraints allows; undefined for a constraint this does not read. */
export function allowedHosts(
  constraints: readonly string[],
  nodes: readonly NodeLike[],
): string[] | undefined {
  const parsed = constraints.map((c) => CONSTRAINT.exec(c.trim()));
  if (parsed.some((p) => p === null)) return undefined;
  return nodes
    .filter((n) =>
      parsed.every((p) => {
        const [, field = '', label, op, value] = p as RegExpExecArray;
        const have =
          field === 'hostname' ? n.hostname : field === 'role' ? n.role : n.labels[label ?? ''];
        return op === '==' ? have === value : have !== value;
      }),
    )
    .map((n) => n.hostname)
    .sort();
}

/** Where PostgreSQL and Redis run today: the nodes their deployed placement allows. */
export function dataHosts(
  stack: string,
  cluster: Pick<ClusterFacts, 'nodes' | 'services'>,
): { constraints: readonly string[]; hosts: string[] } | undefined {
  const svc =
    cluster.services.find((s) => s.name === `${stack}_postgres`) ??
    cluster.services.find((s) => s.name === `${stack}_redis`);
  if (!svc) return undefined;
  const hosts = allowedHosts(svc.constraints, cluster.nodes);
  return hosts ? { constraints: svc.constraints, hosts } : undefined;
}

export interface DataMoveInputs {
  readonly stack: string;
  readonly cluster: Pick<ClusterFacts, 'nodes' | 'services'>;
  /** The swarm's nodes as they will be (labels, roles; removed ones gone). */
  readonly nodesAfter: readonly NodeLike[];
  /** cluster.yaml after the change. */
  readonly next: Config;
  readonly force: boolean;
  /** The `next:` line of the refusal. */
  readonly hint: string;
}

/**
 * PostgreSQL and Redis keep their data in volumes on their node: a change
 * that would let them run only on other nodes starts them EMPTY there.
 * Refused without --force; with it, a warning. `moved` is undefined when the
 * placement can't be read (planStack's own check still applies then).
 */
export function checkDataMove(i: DataMoveInputs): { moved: boolean | undefined; warning?: string } {
  const before = dataHosts(i.stack, i.cluster);
  if (!before) return { moved: i.cluster.services.length ? undefined : false };
  if (!before.hosts.length) return { moved: undefined };
  const want = placement(i.next).data;
  const after = allowedHosts(want, i.nodesAfter);
  if (!after) return { moved: undefined };
  if (after.join() === before.hosts.join()) return { moved: false };
  const text = `${i.stack}_postgres and ${i.stack}_redis run on ${before.hosts.join(', ')} ([${before.constraints.join(', ')}]); after this they would run on ${after.length ? after.join(', ') : 'no node'} ([${want.join(', ')}]). Their volumes are per node, so they start EMPTY there`;
  if (!i.force) throw new UserError(`${text}.`, i.hint);
  return {
    moved: true,
    warning: `${text}: move the data with a backup and restore`,
  };
}

// ---------------------------------------------------------------- node ls

export interface NodeRow {
  readonly name: string;
  readonly id?: string;
  readonly role: Role;
  readonly availability: string;
  /** ready, down, … or `not joined` for a host only cluster.yaml lists. */
  readonly status: string;
  /** leader, reachable, unreachable; undefined for workers. */
  readonly manager?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly engine?: string;
  readonly self: boolean;
  readonly inSwarm: boolean;
  readonly inClusterYaml: boolean;
  /** Where cluster.yaml and the swarm disagree. */
  readonly notes: readonly string[];
}

const sameLabels = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  fmt(Object.fromEntries(Object.entries(a).sort())) ===
  fmt(Object.fromEntries(Object.entries(b).sort()));

/**
 * One row per swarm node and per cluster.yaml host not in the swarm, in
 * cluster.yaml's order, then the swarm's other nodes by name; each flags
 * where the file and the swarm disagree. Pure.
 */
export function nodeRows(cluster: Pick<ClusterFacts, 'nodes'>, hosts: readonly Host[]): NodeRow[] {
  const rows: NodeRow[] = [];
  const row = (n: NodeFacts, host: Host | undefined): NodeRow => {
    const notes: string[] = [];
    if (!host) notes.push('not in cluster.yaml');
    else {
      if (host.role !== n.role) notes.push(`cluster.yaml says ${host.role}`);
      if (!sameLabels(host.labels, n.labels))
        notes.push(`cluster.yaml labels: ${fmt(host.labels) || 'none'}`);
    }
    const twin = cluster.nodes.find(
      (o) => o.id !== n.id && o.hostname === n.hostname && o.state !== 'down',
    );
    if (twin && n.state === 'down') notes.push(`stale entry (docker node rm ${n.id.slice(0, 12)})`);
    const manager = n.role === 'manager' ? (n.leader ? 'leader' : n.reachability) : undefined;
    return {
      name: n.hostname,
      id: n.id,
      role: n.role,
      availability: n.availability,
      status: n.state,
      ...(manager ? { manager } : {}),
      labels: n.labels,
      ...(n.engine ? { engine: n.engine } : {}),
      self: n.self,
      inSwarm: true,
      inClusterYaml: Boolean(host),
      notes,
    };
  };
  for (const h of hosts) {
    const nodes = cluster.nodes.filter((n) => n.hostname === h.name);
    if (!nodes.length) {
      rows.push({
        name: h.name,
        role: h.role,
        availability: '-',
        status: 'not joined',
        labels: h.labels,
        self: false,
        inSwarm: false,
        inClusterYaml: true,
        notes: ['in cluster.yaml only'],
      });
    }
    for (const n of nodes) rows.push(row(n, h));
  }
  const others = cluster.nodes
    .filter((n) => !hosts.some((h) => h.name === n.hostname))
    .sort((a, b) => a.hostname.localeCompare(b.hostname));
  for (const n of others) rows.push(row(n, undefined));
  return rows;
}
