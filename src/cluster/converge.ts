import { apiRequest, type DockerApi } from '../core/api.js';
import { UserError } from '../core/errors.js';
import { quoteArg } from '../core/quote.js';
import { type ConstraintNode, meetsConstraint } from './constraints.js';

/**
 * Convergence means the new revision runs: every service's update finished
 * (its UpdateStatus) and the desired number of its tasks run the service's
 * current task spec. A rolled-back or paused update is a failure.
 */

export interface ServiceState {
  readonly name: string;
  /** Tasks running the current spec. */
  readonly running: number;
  readonly desired: number;
  /** UpdateStatus.State when an update is under way or ended badly. */
  readonly update?: string;
}

export interface TaskProblem {
  readonly service: string;
  readonly task: string;
  readonly node: string;
  readonly state: string;
  readonly error: string;
}

export interface ApiService {
  ID: string;
  Spec: {
    Name: string;
    TaskTemplate: unknown;
    Mode?: { Replicated?: { Replicas?: number }; Global?: object };
  };
  UpdateStatus?: { State?: string; StartedAt?: string; CompletedAt?: string; Message?: string };
}

export interface ApiTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  Spec: unknown;
  DesiredState: string;
  CreatedAt?: string;
  UpdatedAt?: string;
  Status: { State: string; Err?: string; Message?: string; Timestamp?: string };
}

const FAILED_UPDATE = new Set([
  'rollback_started',
  'rollback_completed',
  'rollback_paused',
  'paused',
]);

export const listStackServices = (api: DockerApi, stack: string) =>
  api.request<ApiService[]>(
    apiRequest('GET', '/services', {
      query: { filters: JSON.stringify({ label: [`com.docker.stack.namespace=${stack}`] }) },
      readOnly: true,
    }),
  );

const listTasks = (api: DockerApi, filters: Record<string, string[]>) =>
  api.request<ApiTask[]>(
    apiRequest('GET', '/tasks', { query: { filters: JSON.stringify(filters) }, readOnly: true }),
  );

/**
 * A task spec as the engine's JSON shows it, without zero values: the service's
 * TaskTemplate and a task's copy of it differ only in fields the engine omits
 * when empty (`DNSConfig: {}`) or fills with a default (`Runtime: container`).
 */
export function normalizeSpec(v: unknown): unknown {
  if (Array.isArray(v)) {
    const items = v.map(normalizeSpec).filter((x) => x !== undefined);
    return items.length ? items : undefined;
  }
  if (v && typeof v === 'object') {
    const entries = Object.entries(v)
      .filter(([k, x]) => !(k === 'Runtime' && x === 'container'))
      .map(([k, x]) => [k, normalizeSpec(x)] as const)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return entries.length ? Object.fromEntries(entries) : undefined;
  }
  if (v === null || v === '' || v === 0 || v === false) return undefined;
  return v;
}

/** Does a task run this spec? (Same JSON once zero values are dropped, key order aside.) */
export function sameSpec(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalizeSpec(a)) === JSON.stringify(normalizeSpec(b));
}

/** A node as the convergence check needs it (from GET /nodes). */
export interface NodeView extends ConstraintNode {
  /** ready, down, unknown, disconnected */
  readonly state: string;
  /** active, pause, drain */
  readonly availability: string;
}

/**
 * Pure: one service's state from its spec and tasks. A global service wants
 * a task on every node that is up, active and meets its constraints: one
 * that joined a moment ago counts before Swarm has even placed a task there
 * (a new manager's proxy). A node that is down cannot run one until it is
 * back (Swarm then starts the current spec there): not waited for.
 */
export function serviceState(
  svc: ApiService,
  tasks: readonly ApiTask[],
  nodes?: readonly NodeView[],
): ServiceState {
  const global = Boolean(svc.Spec.Mode?.Global);
  const down = new Set((nodes ?? []).filter((n) => n.state !== 'ready').map((n) => n.id));
  const wanted = tasks.filter(
    (t) =>
      t.DesiredState === 'running' && !(global && t.NodeID !== undefined && down.has(t.NodeID)),
  );
  const current = wanted.filter(
    (t) => t.Status.State === 'running' && sameSpec(t.Spec, svc.Spec.TaskTemplate),
  );
  let desired = svc.Spec.Mode?.Replicated?.Replicas ?? 1;
  let running = current.length;
  if (global) {
    desired = wanted.length;
    const eligible = eligibleNodes(svc, nodes);
    if (eligible) {
      // one running task per eligible node, whatever else is still around
      desired = eligible.size;
      running = new Set(
        current.flatMap((t) => (t.NodeID && eligible.has(t.NodeID) ? [t.NodeID] : [])),
      ).size;
    }
  }
  let u = svc.UpdateStatus?.State;
  // Swarm's updater can wait forever on the slot of a node that went down
  // while it was the leader (the new leader saw it "unknown", not down, when
  // the update began): every node that is up already runs the new spec, and
  // the one that is down gets it when it is back. That is done.
  if (
    global &&
    u === 'updating' &&
    desired > 0 &&
    running === desired &&
    (nodes ?? []).some((n) => n.state !== 'ready' && n.availability === 'active')
  )
    u = undefined;
  return {
    name: svc.Spec.Name,
    running,
    desired,
    ...(u && u !== 'completed' && u !== 'rollback_completed' ? { update: u } : {}),
    ...(u === 'rollback_completed' ? { update: u } : {}),
  };
}

/**
 * The IDs of the nodes a global service must run on: up, active, meeting its
 * constraints. undefined when the nodes are unknown or a constraint asks
 * about something a node listing does not tell (engine labels, platform).
 */
function eligibleNodes(svc: ApiService, nodes?: readonly NodeView[]): Set<string> | undefined {
  if (!nodes) return undefined;
  const constraints =
    (svc.Spec.TaskTemplate as { Placement?: { Constraints?: string[] } } | undefined)?.Placement
      ?.Constraints ?? [];
  const ids = new Set<string>();
  for (const n of nodes) {
    if (n.state !== 'ready' || n.availability !== 'active') continue;
    const met = constraints.map((c) => meetsConstraint(n, c));
    if (met.includes(undefined)) return undefined;
    if (met.every(Boolean)) ids.add(n.id);
  }
  return ids;
}

/** Swarm's constraint enforcer's words when it takes a task off a node. */
const ENFORCER_REJECT = /no longer meets constraints/i;

/**
 * Pure: the tasks of a global service that Swarm's constraint enforcer
 * rejected on nodes that do meet the service's constraints, with nothing live
 * on that node to replace them. Swarm usually places such a task again
 * itself (a manager that has just joined is judged by its old role for a
 * moment), but users report global tasks it never placed again: the node
 * stays without the service until the service is updated again.
 */
export function strandedGlobalTasks(
  svc: ApiService,
  tasks: readonly ApiTask[],
  nodes?: readonly NodeView[],
): ApiTask[] {
  if (!svc.Spec.Mode?.Global) return [];
  const eligible = eligibleNodes(svc, nodes);
  if (!eligible) return [];
  const stranded: ApiTask[] = [];
  for (const id of eligible) {
    const own = tasks.filter((t) => t.NodeID === id);
    const live = own.some(
      (t) => t.DesiredState === 'running' && !TERMINAL_STATES.has(t.Status.State),
    );
    if (live) continue;
    const newest = [...own].sort((a, b) =>
      (b.UpdatedAt ?? b.CreatedAt ?? '').localeCompare(a.UpdatedAt ?? a.CreatedAt ?? ''),
    )[0];
    if (
      newest?.Status.State === 'rejected' &&
      ENFORCER_REJECT.test(`${newest.Status.Err ?? ''} ${newest.Status.Message ?? ''}`)
    )
      stranded.push(newest);
  }
  return stranded;
}

const TERMINAL_STATES = new Set([
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'orphaned',
  'remove',
]);

/**
 * How far a manager's clock may lag the one `since` was read from: the leader
 * stamps update and task times, `since` comes from the manager we talk to.
 */
const CLOCK_SLACK_MS = 1000;

/** An update that started at or after `since` and ended (or is ending) in a rollback or pause. */
export function failedUpdate(svc: ApiService, since: Date | undefined): string | undefined {
  const u = svc.UpdateStatus;
  if (!u?.State || !FAILED_UPDATE.has(u.State)) return undefined;
  if (since && u.StartedAt && new Date(u.StartedAt).getTime() < since.getTime() - CLOCK_SLACK_MS)
    return undefined;
  return `${u.State.replace('_', ' ')}${u.Message ? `: ${u.Message}` : ''}`;
}

export function isConverged(states: readonly ServiceState[], expected: readonly string[]): boolean {
  return expected.every((name) => {
    const s = states.find((x) => x.name === name);
    return (
      s !== undefined &&
      s.desired > 0 &&
      s.running === s.desired &&
      (s.update === undefined || s.update === 'completed')
    );
  });
}

/** The newest tasks of a service that failed or are not running, errors first. */
export async function readTaskProblems(
  api: DockerApi,
  service: string,
  nodeNames: ReadonlyMap<string, string> = new Map(),
): Promise<TaskProblem[]> {
  const tasks = await listTasks(api, { service: [service] });
  const newest = [...tasks].sort((a, b) =>
    (b.UpdatedAt ?? b.CreatedAt ?? '').localeCompare(a.UpdatedAt ?? a.CreatedAt ?? ''),
  );
  const bad = newest.filter((t) => t.Status.State !== 'running' || t.Status.Err);
  const withErr = bad.filter((t) => t.Status.Err);
  const pick = (withErr.length ? withErr : bad).slice(0, 3);
  return pick.map((t) => ({
    service,
    task: `${service}.${t.Slot ?? t.NodeID?.slice(0, 12) ?? t.ID.slice(0, 12)}`,
    node: (t.NodeID && nodeNames.get(t.NodeID)) || t.NodeID?.slice(0, 12) || '-',
    state: t.Status.State,
    error: t.Status.Err || t.Status.Message || '(no error reported)',
  }));
}

export async function readServiceStates(
  api: DockerApi,
  stack: string,
  since?: Date,
): Promise<{
  states: ServiceState[];
  failed: { service: string; why: string }[];
  /** The raw services, their tasks and (with a global service) the nodes the states were read from. */
  services: ApiService[];
  tasks: ApiTask[];
  nodes: NodeView[] | undefined;
}> {
  const services = await listStackServices(api, stack);
  const [tasks, nodes] = services.length
    ? await Promise.all([
        listTasks(api, { service: services.map((s) => s.Spec.Name) }),
        services.some((s) => s.Spec.Mode?.Global) ? listNodeViews(api) : undefined,
      ])
    : [[], undefined];
  const states = services.map((s) =>
    serviceState(
      s,
      tasks.filter((t) => t.ServiceID === s.ID),
      nodes,
    ),
  );
  const failed = services.flatMap((s) => {
    const why = failedUpdate(s, since);
    return why ? [{ service: s.Spec.Name, why }] : [];
  });
  return { states, failed, services, tasks, nodes };
}

/** The image reference in Docker's `No such image: <ref>[@sha256:…]`, without the digest. */
export function missingImageRef(text: string): string | undefined {
  const m = /No such image:\s*([^\s@,;"'`]+)/i.exec(text);
  const ref = m?.[1]?.replace(/[.:]+$/, '');
  return ref || undefined;
}

export interface MissingImage {
  readonly service: string;
  /** From Swarm's error (or else the spec), without a digest; undefined when neither names it. */
  readonly image: string | undefined;
  /** Node IDs whose tasks were rejected for it. */
  readonly nodes: readonly string[];
}

/**
 * Rejections it takes before the image counts as missing: a single one could
 * still be placed again elsewhere.
 */
const MISSING_IMAGE_REJECTIONS = 2;

/**
 * Pure: lagging services whose image is not on the nodes Swarm picked. A
 * service counts when, since the deploy (`since`, without it never), at least
 * two of its tasks were rejected with `No such image` and none of its tasks
 * runs its current spec. A registry that has the image would have given it
 * (Swarm pulls before it rejects), so waiting longer changes nothing.
 */
export function missingImages(
  lagging: readonly ApiService[],
  tasks: readonly ApiTask[],
  since: Date | undefined,
): MissingImage[] {
  if (!since) return [];
  const from = since.getTime() - CLOCK_SLACK_MS;
  return lagging.flatMap((svc) => {
    const own = tasks.filter((t) => t.ServiceID === svc.ID);
    if (own.some((t) => t.Status.State === 'running' && sameSpec(t.Spec, svc.Spec.TaskTemplate)))
      return [];
    const rejected = own
      .filter(
        (t) =>
          t.CreatedAt !== undefined &&
          new Date(t.CreatedAt).getTime() >= from &&
          t.Status.State === 'rejected' &&
          /No such image/i.test(t.Status.Err ?? ''),
      )
      .sort((a, b) => (b.CreatedAt ?? '').localeCompare(a.CreatedAt ?? ''));
    if (rejected.length < MISSING_IMAGE_REJECTIONS) return [];
    const image =
      rejected.map((t) => missingImageRef(t.Status.Err ?? '')).find((r) => r !== undefined) ??
      specImage(svc.Spec.TaskTemplate);
    const nodes = [...new Set(rejected.flatMap((t) => (t.NodeID ? [t.NodeID] : [])))];
    return [{ service: svc.Spec.Name, image, nodes }];
  });
}

function specImage(template: unknown): string | undefined {
  const image = (template as { ContainerSpec?: { Image?: unknown } } | undefined)?.ContainerSpec
    ?.Image;
  return typeof image === 'string' ? image.split('@')[0] : undefined;
}

async function listNodeViews(api: DockerApi): Promise<NodeView[]> {
  const nodes = await api.request<
    {
      ID: string;
      Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> | null };
      Description?: { Hostname?: string };
      Status?: { State?: string };
    }[]
  >(apiRequest('GET', '/nodes', { readOnly: true }));
  return nodes.map((n) => ({
    id: n.ID,
    name: n.Description?.Hostname ?? '',
    role: n.Spec?.Role === 'manager' ? 'manager' : 'worker',
    labels: n.Spec?.Labels ?? {},
    state: n.Status?.State ?? 'unknown',
    availability: n.Spec?.Availability ?? 'active',
  }));
}

async function nodeNames(api: DockerApi): Promise<Map<string, string>> {
  try {
    const nodes = await listNodeViews(api);
    return new Map(nodes.map((n) => [n.id, n.name || n.id.slice(0, 12)]));
  } catch {
    return new Map(); // names are a nicety in an error report
  }
}

export interface WaitOptions {
  readonly stack: string;
  readonly services: readonly string[];
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** When the deploy was sent: an update rolled back after this is a failure. */
  readonly since?: Date;
  readonly onUpdate?: (states: readonly ServiceState[]) => void;
  /** A line on something convergence did besides waiting (a stranded task restarted). */
  readonly onNotice?: (line: string) => void;
  /** How long a stranded global task is left before its service is restarted (default 60 s). */
  readonly strandedGraceMs?: number;
  /** How long a global update may stall while a node is down before it is started again (default 45 s). */
  readonly stallMs?: number;
}

/**
 * How long a stranded global task is left before its service is restarted,
 * and how often at most: well beyond Swarm's own retry (the restart delay,
 * and the node update that follows a manager's join), so this is only ever
 * the last resort for a task Swarm has given up on.
 */
const STRANDED_GRACE_MS = 60_000;
const STRANDED_RESTARTS = 2;

/** How long a global update may make no progress while a node is down before it is started again. */
const STALL_MS = 45_000;

/**
 * Pure: the nodes that are not up when a global service's update is under way
 * and not every eligible node runs the new spec yet; empty otherwise.
 */
export function stalledOn(
  svc: ApiService,
  state: ServiceState,
  nodes: readonly NodeView[] | undefined,
): string[] {
  if (!svc.Spec.Mode?.Global || state.update !== 'updating' || state.running >= state.desired)
    return [];
  return (nodes ?? [])
    .filter((n) => n.state !== 'ready' && n.availability === 'active')
    .map((n) => n.name || n.id.slice(0, 12));
}

/**
 * Have Swarm place a global service's tasks again (`docker service update
 * --force`): the only way to get a task the constraint enforcer rejected back
 * onto its node.
 */
async function forceUpdate(api: DockerApi, id: string): Promise<void> {
  const svc = await api.request<{
    Version: { Index: number };
    Spec: { TaskTemplate: { ForceUpdate?: number } };
  }>(apiRequest('GET', `/services/${id}`, { readOnly: true }));
  const spec = structuredClone(svc.Spec);
  spec.TaskTemplate.ForceUpdate = (spec.TaskTemplate.ForceUpdate ?? 0) + 1;
  await api.request(
    apiRequest('POST', `/services/${id}/update`, {
      query: { version: svc.Version.Index, registryAuthFrom: 'spec' },
      body: spec,
    }),
  );
}

/**
 * Poll the manager's API until every service runs its current spec with the
 * desired replicas (healthchecks included: Swarm counts a task as running only
 * once it is healthy). A rollback ends the wait at once; a timeout lists each
 * failing task's own error.
 */
export async function waitForConvergence(api: DockerApi, o: WaitOptions): Promise<ServiceState[]> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 500;
  const strandedSeen = new Map<string, number>();
  const restarts = new Map<string, number>();
  const stalls = new Map<string, { mark: string; since: number }>();
  const restarted = new Set<string>();
  for (;;) {
    const { states, failed, services, tasks, nodes } = await readServiceStates(
      api,
      o.stack,
      o.since,
    );
    o.onUpdate?.(states);
    if (failed.length) {
      const names = await nodeNames(api);
      const problems = (
        await Promise.all(failed.map((f) => readTaskProblems(api, f.service, names)))
      ).flat();
      throw new RolledBackError(failed, problems);
    }
    if (isConverged(states, o.services)) return states;
    const lagging = o.services.filter((name) => !isConverged(states, [name]));
    const missing = missingImages(
      services.filter((s) => lagging.includes(s.Spec.Name)),
      tasks,
      o.since,
    );
    if (missing.length) throw new MissingImageError(missing, await nodeNames(api));
    for (const svc of services.filter((x) => lagging.includes(x.Spec.Name))) {
      // A global update that makes no progress while a node is down: Swarm's
      // updater waits on that node's slot (it began while the node was only
      // "unknown", after a leader change). Started again, it skips the node.
      const state = states.find((x) => x.name === svc.Spec.Name);
      const away = state ? stalledOn(svc, state, nodes) : [];
      const mark = `${svc.ID}:${state?.running}`;
      if (!away.length) stalls.delete(svc.ID);
      else if (stalls.get(svc.ID)?.mark !== mark) stalls.set(svc.ID, { mark, since: Date.now() });
      else if (
        Date.now() - (stalls.get(svc.ID)?.since ?? Date.now()) >= (o.stallMs ?? STALL_MS) &&
        !restarted.has(svc.ID)
      ) {
        restarted.add(svc.ID);
        o.onNotice?.(
          `${svc.Spec.Name}: Swarm's rolling update waits on ${away.join(', ')}, which is not up; starting it again (--force) so it goes on without ${away.length === 1 ? 'it' : 'them'}`,
        );
        await forceUpdate(api, svc.ID);
        stalls.delete(svc.ID);
      }
      const stranded = strandedGlobalTasks(
        svc,
        tasks.filter((t) => t.ServiceID === svc.ID),
        nodes,
      );
      const now = Date.now();
      for (const t of stranded) if (!strandedSeen.has(t.ID)) strandedSeen.set(t.ID, now);
      const due = stranded.filter(
        (t) => now - (strandedSeen.get(t.ID) ?? now) >= (o.strandedGraceMs ?? STRANDED_GRACE_MS),
      );
      const done = restarts.get(svc.ID) ?? 0;
      if (!due.length || done >= STRANDED_RESTARTS) continue;
      restarts.set(svc.ID, done + 1);
      const names = nodes ? new Map(nodes.map((n) => [n.id, n.name])) : new Map();
      const where = due.map((t) => names.get(t.NodeID ?? '') || t.NodeID?.slice(0, 12)).join(', ');
      o.onNotice?.(
        `${svc.Spec.Name}: Swarm rejected its task on ${where} (assigned node no longer meets constraints) and does not retry; updating ${svc.Spec.Name} with --force to place it again`,
      );
      await forceUpdate(api, svc.ID);
    }
    if (Date.now() > deadline) {
      const names = await nodeNames(api);
      const problems = (
        await Promise.all(lagging.map((s) => readTaskProblems(api, s, names)))
      ).flat();
      throw new ConvergenceError(lagging, problems, o.timeoutMs, states);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

const problemLines = (problems: readonly TaskProblem[]) =>
  problems.map((p) => `  ${p.task} on ${p.node}: ${p.state}: ${p.error}`);

export class ConvergenceError extends UserError {
  constructor(
    readonly services: readonly string[],
    readonly problems: readonly TaskProblem[],
    timeoutMs: number,
    /** Where each lagging service stood at the end. */
    states: readonly ServiceState[] = [],
  ) {
    super(
      [
        `Not every service was running its new revision after ${Math.round(timeoutMs / 1000)}s: ${services.join(', ')}`,
        ...states
          .filter((x) => services.includes(x.name))
          .map(
            (x) =>
              `  ${x.name}: ${x.running} of ${x.desired} running the new revision${x.update ? ` (update ${x.update.replace('_', ' ')})` : ''}`,
          ),
        ...problemLines(problems),
      ].join('\n'),
      `inspect with: docker service ps --no-trunc ${services[0] ?? ''}; fix the cause, then run the same command again`,
      1,
    );
  }
}

export class RolledBackError extends UserError {
  constructor(
    readonly failed: readonly { service: string; why: string }[],
    readonly problems: readonly TaskProblem[],
  ) {
    super(
      [
        `The update of ${failed.map((f) => f.service).join(', ')} failed and Swarm rolled it back: the previous revision is still running.`,
        ...failed.map((f) => `  ${f.service}: ${f.why}`),
        ...problemLines(problems),
      ].join('\n'),
      `inspect with: docker service ps --no-trunc ${failed[0]?.service ?? ''}; fix cluster.yaml, then run the same command again`,
      1,
    );
  }
}

/**
 * Without image names, `images push` copies every image of the platform
 * services (the ones not yet seen rejected most likely lack theirs too); the
 * agent's image is not among those, so it is named.
 */
function pushCommand(missing: readonly MissingImage[], images: readonly string[]): string {
  const platform = missing.every((m) => /_(proxy|app|postgres|redis)$/.test(m.service));
  const named = platform ? '' : images.map((i) => `${quoteArg(i)} `).join('');
  return `cluster-cli images push ${named}--yes (add -c <file> if your cluster.yaml is elsewhere)`;
}

/** A deploy's tasks are rejected because their image is on neither the node nor a registry. */
export class MissingImageError extends UserError {
  constructor(
    readonly missing: readonly MissingImage[],
    nodeNames: ReadonlyMap<string, string> = new Map(),
  ) {
    const images = [...new Set(missing.flatMap((m) => (m.image ? [m.image] : [])))];
    super(
      missing
        .map(
          (m) =>
            `The image of ${m.service} is not on ${m.nodes.map((n) => nodeNames.get(n) ?? n.slice(0, 12)).join(', ') || 'its nodes'} and no registry gave it${m.image ? `: ${m.image}` : ''}`,
        )
        .join('\n'),
      `copy the images to the nodes (no registry serves them): ${pushCommand(missing, images)}, then run the same command again`,
      1,
    );
  }
}

/** The manager daemon's own clock (GET /info SystemTime): marks when a deploy was sent. */
export async function daemonTime(api: DockerApi): Promise<Date> {
  const info = await api.request<{ SystemTime?: string }>(
    apiRequest('GET', '/info', { readOnly: true }),
  );
  const t = info.SystemTime ? new Date(info.SystemTime) : new Date(Number.NaN);
  if (Number.isNaN(t.getTime())) throw new Error('no SystemTime in /info');
  return t;
}
