import { daemonTime, type ServiceState } from '../cluster/converge.js';
import { parseLabelArgs, parseLabelKeys } from '../cluster/labels.js';
import { quorum } from '../cluster/plan-join.js';
import {
  type Availability,
  checkDataMove,
  checkManagers,
  dataHosts,
  labelHosts,
  NODE_OPS,
  nodeRows,
  nodesWithLabels,
  nodesWithRole,
  planAvailability,
  planLabel,
  planRemove,
  planRoles,
  type Reach,
  removeHosts,
  resolveNode,
  resolveNodes,
  setHostRoles,
  stepNode,
} from '../cluster/plan-node.js';
import { type NodeFacts, probeSwarm } from '../cluster/probe.js';
import { saveConfig, validateConfig } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import type { ApplyReport } from '../core/apply.js';
import { UserError } from '../core/errors.js';
import type { Step } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { HostSession } from '../core/session.js';
import type { Role } from '../docker/swarm.js';
import { memberAddresses } from '../firewall/rules.js';
import { configServiceNames } from '../stack/model.js';
import { formatTable } from '../ui/table.js';
import { parseTimeoutFlag } from './ask.js';
import { type ClusterHandle, cfgFlag, hostTarget, openCluster, stackStepsFor } from './cluster.js';
import { connectSession, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { connectHosts, firewallStepsFor, swarmAddresses } from './firewall.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

/**
 * The imperative node commands: `node ls` (read-only) and `node label`,
 * `promote`, `demote`, `drain`, `activate`, `remove`, each told by the shared
 * pipeline. Every change that cluster.yaml describes (labels, roles, hosts) is
 * written back to it, only for the nodes whose steps ran, so the file keeps
 * describing the cluster; availability is runtime state and is not recorded.
 *
 * Demoting or removing the manager cluster-cli is connected through: the
 * steps run on another manager of cluster.yaml instead (one is connected to),
 * so every step after the demotion still finds a manager. Docker would let a
 * manager demote itself, but the stack deploy and the `node rm` after it need
 * a manager to run on.
 */

export interface NodeLsOpts extends SshFlags {
  config: string;
  json?: boolean;
}

export interface NodeOpsOpts extends SshFlags, PipelineFlags {
  config: string;
  force?: boolean;
  timeout?: string;
}

export interface NodeLabelOpts extends NodeOpsOpts {
  remove?: string[];
}

/** `node ls`: every swarm node and every cluster.yaml host, flagging where they disagree. */
export async function runNodeLs(opts: NodeLsOpts, ctx: Ctx): Promise<void> {
  const h = await openCluster(ctx, opts);
  try {
    const rows = nodeRows(h.manager.cluster, h.config.hosts);
    if (opts.json) {
      ctx.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return;
    }
    const notes = rows.some((r) => r.notes.length);
    const table = formatTable(
      [
        'NAME',
        'ROLE',
        'AVAILABILITY',
        'STATUS',
        'MANAGER',
        'LABELS',
        'ENGINE',
        ...(notes ? ['NOTES'] : []),
      ],
      rows.map((r) => [
        r.self ? `${r.name} *` : r.name,
        r.role,
        r.availability,
        r.status,
        r.manager ?? '-',
        Object.entries(r.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '-',
        r.engine ?? '-',
        ...(notes ? [r.notes.join('; ') || '-'] : []),
      ]),
    );
    const managers = h.manager.cluster.nodes.filter((n) => n.role === 'manager');
    const up = managers.filter((m) => m.state === 'ready' && m.reachability === 'reachable');
    ctx.stdout.write(
      `${table}\n\n* listed by this manager (${h.manager.session.exec.label})\nQuorum: ${quorum(managers.length).text}; ${up.length} of ${managers.length} reachable\n`,
    );
  } finally {
    await h.manager.session.close();
  }
}

/** `node label <node> k=v… [--remove k]`. */
export async function runNodeLabel(
  node: string,
  pairs: readonly string[],
  opts: NodeLabelOpts,
  ctx: Ctx,
): Promise<void> {
  const add = parseLabelArgs(pairs, 'label');
  const remove = parseLabelKeys(opts.remove ?? []);
  if (!Object.keys(add).length && !remove.length)
    throw new UserError(
      'node label needs at least one key=value to set or --remove key',
      `cluster-cli node label ${quoteArg(node)} db=primary`,
    );
  const both = remove.filter((k) => k in add);
  if (both.length)
    throw new UserError(
      `label ${both.join(', ')} is both set and removed`,
      'set it (key=value) or remove it (--remove key), not both',
    );
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const h = await openCluster(ctx, opts);
  const sessions = sessionsOf(h);
  try {
    const target = resolveNode(h.manager.cluster, node);
    if (add.db === 'primary' && !h.config.hosts.some((x) => x.name === target.hostname))
      throw new UserError(
        `${target.hostname} is not in ${h.configArg}: db=primary places PostgreSQL and Redis, and only a node cluster.yaml lists can hold them`,
        'record the node first: cluster-cli node join <its address> (it is already a member: join only records it)',
      );
    const { steps, edits } = planLabel({
      manager: h.manager.session.exec.label,
      cluster: h.manager.cluster,
      node: target,
      add,
      remove,
    });
    const cfg = cfgFlag(opts);
    await runChange(ctx, opts, timeoutS, {
      name: 'node label',
      title: `node label ${target.hostname}`,
      handle: h,
      sessions,
      targets: [target],
      steps,
      warnings: notInFile(h, [target], 'its labels are set in the swarm only'),
      notes: [],
      nextInput: (done) =>
        labelHosts(
          h.input,
          edits.filter((e) => done.has(e.id)),
        ),
      nodesAfter: nodesWithLabels(h.manager.cluster.nodes, edits),
      dataHint:
        'move the data first (back up, then restore on the new node) and re-run with --force, or keep db=primary where it is',
      did: () => 'labelled',
      retry: `cluster-cli node label ${quoteArg(node)} ${pairs.map(quoteArg).join(' ')}${remove.map((k) => ` --remove ${k}`).join('')}${cfg}${opts.force ? ' --force' : ''}`,
    });
  } finally {
    await closeAll(sessions.values());
  }
}

/** `node promote|demote <node…>`. */
export async function runNodeRole(
  args: readonly string[],
  role: Role,
  opts: NodeOpsOpts,
  ctx: Ctx,
): Promise<void> {
  const verb = role === 'manager' ? 'promote' : 'demote';
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const h0 = await openCluster(ctx, opts);
  const sessions = sessionsOf(h0);
  try {
    const targets = resolveNodes(h0.manager.cluster, args);
    // Refusals first, before connecting anywhere else.
    if (role === 'worker')
      checkManagers(h0.manager.cluster, targets, { force: Boolean(opts.force), verb: 'demote' });
    const h =
      role === 'worker'
        ? await operatorAvoiding(
            h0,
            targets.filter((t) => t.role === 'manager'),
            'demoted',
            sessions,
            opts,
            ctx,
          )
        : h0;
    const plan = planRoles({
      manager: h.manager.session.exec.label,
      cluster: h.manager.cluster,
      nodes: targets,
      role,
      force: Boolean(opts.force),
    });
    const data = dataHosts(h.config.name, h.manager.cluster);
    await runChange(ctx, opts, timeoutS, {
      name: `node ${verb}`,
      title: `node ${verb} ${targets.map((t) => t.hostname).join(' ')}`,
      handle: h,
      sessions,
      targets,
      steps: plan.steps,
      warnings: [...plan.warnings, ...notInFile(h, targets, `its role changes in the swarm only`)],
      notes: [],
      nextInput: (done) =>
        setHostRoles(
          h.input,
          targets.filter((t) => done.has(t.id)).map((t) => t.hostname),
          role,
        ),
      nodesAfter: nodesWithRole(
        h.manager.cluster.nodes,
        targets.map((t) => t.id),
        role,
      ),
      dataHint: data?.hosts.length
        ? `keep it where it is by labelling that node first: cluster-cli node label ${data.hosts[0]} db=primary; then run this again (or re-run with --force to move it)`
        : 're-run with --force to move it',
      managersAfter: plan.managersAfter,
      did: () => (role === 'manager' ? 'promoted to manager' : 'demoted to worker'),
      retry: `cluster-cli node ${verb} ${args.map(quoteArg).join(' ')}${cfgFlag(opts)}${opts.force ? ' --force' : ''}`,
    });
  } finally {
    await closeAll(sessions.values());
  }
}

/** `node drain|activate <node…>`: runtime state, cluster.yaml stays as it is. */
export async function runNodeAvailability(
  args: readonly string[],
  availability: Availability,
  opts: NodeOpsOpts,
  ctx: Ctx,
): Promise<void> {
  const verb = availability === 'drain' ? 'drain' : 'activate';
  const h = await openCluster(ctx, opts);
  const sessions = sessionsOf(h);
  try {
    const targets = resolveNodes(h.manager.cluster, args);
    const data = dataHosts(h.config.name, h.manager.cluster);
    const plan = planAvailability({
      manager: h.manager.session.exec.label,
      cluster: h.manager.cluster,
      nodes: targets,
      availability,
      ...(data ? { dataHosts: data.hosts } : {}),
    });
    await runChange(ctx, opts, undefined, {
      name: `node ${verb}`,
      title: `node ${verb} ${targets.map((t) => t.hostname).join(' ')}`,
      handle: h,
      sessions,
      targets,
      steps: plan.steps,
      warnings: plan.warnings,
      notes: [],
      did: () => (availability === 'drain' ? 'drained' : 'active'),
      retry: `cluster-cli node ${verb} ${args.map(quoteArg).join(' ')}${cfgFlag(opts)}`,
    });
  } finally {
    await closeAll(sessions.values());
  }
}

/** `node remove <node…>`: drain, (demote), leave on the node, `node rm`, drop from cluster.yaml. */
export async function runNodeRemove(
  args: readonly string[],
  opts: NodeOpsOpts,
  ctx: Ctx,
): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const h0 = await openCluster(ctx, opts);
  const sessions = sessionsOf(h0);
  try {
    const targets = resolveNodes(h0.manager.cluster, args);
    checkManagers(h0.manager.cluster, targets, { force: Boolean(opts.force), verb: 'remove' });
    const h = await operatorAvoiding(h0, targets, 'removed', sessions, opts, ctx);
    const reach = await reachNodes(h0, targets, sessions, opts, ctx);
    const plan = planRemove({
      manager: h.manager.session.exec.label,
      cluster: h.manager.cluster,
      nodes: targets,
      reach,
      force: Boolean(opts.force),
    });
    const data = dataHosts(h.config.name, h.manager.cluster);
    const ids = targets.map((t) => t.id);
    // With cluster-cli's firewall on, the nodes that stay shut the removed ones out.
    const fw = h.config.firewall.enabled
      ? await firewallAfterRemove(ctx, h, targets, sessions, opts)
      : undefined;
    await runChange(ctx, opts, timeoutS, {
      name: 'node remove',
      title: `node remove ${targets.map((t) => t.hostname).join(' ')}`,
      handle: h,
      sessions,
      targets,
      steps: [...plan.steps, ...(fw?.steps ?? [])],
      warnings: plan.warnings,
      notes: [
        ...plan.notes,
        ...notInFile(h, targets, 'nothing to drop from the file'),
        ...(fw?.notes ?? []),
      ],
      nextInput: (done) =>
        removeHosts(
          h.input,
          targets.filter((t) => done.has(t.id)).map((t) => t.hostname),
        ),
      nodesAfter: h.manager.cluster.nodes.filter((n) => !ids.includes(n.id)),
      dataHint: `back up the database first, then re-run with --force (PostgreSQL and Redis start empty on their new node)${data?.hosts.length ? `, or keep ${data.hosts.join(', ')}` : ''}`,
      managersAfter:
        h.manager.cluster.nodes.filter((n) => n.role === 'manager').length -
        targets.filter((t) => t.role === 'manager').length,
      did: () => 'removed',
      retry: `cluster-cli node remove ${args.map(quoteArg).join(' ')}${cfgFlag(opts)}${opts.force ? ' --force' : ''}`,
    });
  } finally {
    await closeAll(sessions.values());
  }
}

// ---------------------------------------------------------------- shared

interface NodeChange {
  readonly name: string;
  readonly title: string;
  /** The manager the swarm-side steps run on. */
  readonly handle: ClusterHandle;
  readonly sessions: ReadonlyMap<string, HostSession>;
  readonly targets: readonly NodeFacts[];
  readonly steps: readonly Step[];
  readonly warnings: readonly string[];
  readonly notes: readonly string[];
  /** cluster.yaml once the nodes with these IDs are done; absent: the file is not touched. */
  readonly nextInput?: (done: ReadonlySet<string>) => ConfigInput;
  /** The swarm's nodes after the change, for the database placement check. */
  readonly nodesAfter?: readonly NodeFacts[];
  readonly dataHint?: string;
  readonly managersAfter?: number;
  /** What happened to a node that changed, e.g. `demoted to worker`. */
  did(n: NodeFacts): string;
  /** The command to run again after a failure. */
  readonly retry: string;
}

type NodeStatus = 'done' | 'unchanged' | 'failed' | 'not done';

/**
 * The node commands' common story: the stack re-planned from the new
 * cluster.yaml (placement follows labels and roles; a move of PostgreSQL and
 * Redis refused without --force), then the shared pipeline; cluster.yaml
 * records what ran.
 */
async function runChange(
  ctx: Ctx,
  opts: NodeOpsOpts,
  timeoutS: number | undefined,
  c: NodeChange,
): Promise<void> {
  const out = (s: string) => {
    if (!opts.json) ctx.stdout.write(s);
  };
  const h = c.handle;
  const manager = h.manager.session;
  const warnings = [...c.warnings];
  let stackSteps: Step[] = [];
  let deploys = false;
  let moved: boolean | undefined = false;
  let timeout = timeoutS;
  if (c.nextInput) {
    const next = validateConfig(c.nextInput(allIds(c.steps, c.targets)), opts.config).config;
    const check = checkDataMove({
      stack: h.config.name,
      cluster: h.manager.cluster,
      nodesAfter: c.nodesAfter ?? h.manager.cluster.nodes,
      next,
      force: Boolean(opts.force),
      hint: c.dataHint ?? 're-run with --force to move it',
    });
    moved = check.moved;
    // Where the data provably stays put, a constraint that only changes its
    // wording (hostname → label) is no move: planStack need not refuse it.
    const stack = stackStepsFor(h, next, Boolean(opts.force) || moved === false);
    deploys = stack.deploys;
    stackSteps = stack.steps
      .filter((s) => s.action === 'change' || s.id === 'deploy')
      .map((s) => ({ ...s, about: NODE_OPS }));
    if (check.warning) warnings.push(check.warning);
    else if (moved === undefined) warnings.push(...stack.warnings);
    timeout ??= next.deploy.timeout;
  }
  for (const w of warnings) out(`warning: ${w}\n`);
  const waits = deploys || moved === true;
  const plan = { title: c.title, steps: [...c.steps, ...stackSteps] };

  let since: Date | undefined;
  let saved: 'updated' | 'unchanged' | 'not recorded' = c.nextInput ? 'unchanged' : 'not recorded';
  const outcome = await runPipeline(ctx, opts, {
    name: c.name,
    plan,
    sessions: c.sessions,
    keepGoing: true,
    async beforeApply() {
      if (waits) since = await daemonTime(manager.docker()).catch(() => undefined);
    },
    async converge(mode, r) {
      if (!waits || r.failed.size) return undefined;
      return converge(manager.docker(), ctx.stdout, mode, {
        stack: h.config.name,
        services: configServiceNames(h.config),
        timeoutMs: (timeout ?? 300) * 1000,
        ...(since ? { since } : {}),
      });
    },
    async save(r) {
      if (!c.nextInput || !r) return; // apply stopped on an error: which steps ran is unknown
      const input = c.nextInput(doneIds(plan.steps, c.targets, r));
      if (canonical(input) === canonical(h.input)) return;
      await saveConfig(h.file, input);
      saved = 'updated';
    },
    summary(o) {
      return summarize(c, plan.steps, o.report, saved, warnings, o.converged, opts);
    },
  });
  if (outcome.dryRun) return;
  const [failure] = [...outcome.report.failed.values()];
  if (failure) {
    const why = failure.error instanceof Error ? failure.error.message : String(failure.error);
    throw new UserError(
      `${c.name} stopped at "${failure.step.title}" on ${failure.step.host}: ${why.split('\n')[0]}`,
      `fix the cause, then run again (steps already done plan nothing): ${c.retry}`,
    );
  }
}

/** IDs of every node the plan touches (for the cluster.yaml the plan leads to). */
function allIds(steps: readonly Step[], targets: readonly NodeFacts[]): Set<string> {
  const ids = new Set(targets.map((t) => t.id));
  for (const s of steps) {
    const id = stepNode(s);
    if (id) ids.add(id);
  }
  return ids;
}

/** Nodes none of whose steps failed or were skipped. */
function doneIds(
  steps: readonly Step[],
  targets: readonly NodeFacts[],
  r: ApplyReport,
): Set<string> {
  const bad = new Set<string>();
  for (const f of r.failed.values()) {
    const id = stepNode(f.step);
    if (id) bad.add(id);
  }
  for (const s of r.skipped) {
    const id = stepNode(s);
    if (id) bad.add(id);
  }
  return new Set([...allIds(steps, targets)].filter((id) => !bad.has(id)));
}

function statusOf(n: NodeFacts, steps: readonly Step[], r: ApplyReport): NodeStatus {
  const mine = (s: Step) => stepNode(s) === n.id;
  if ([...r.failed.values()].some((f) => mine(f.step))) return 'failed';
  if (r.skipped.some(mine)) return 'not done';
  return steps.some((s) => mine(s) && s.action === 'change') ? 'done' : 'unchanged';
}

function summarize(
  c: NodeChange,
  steps: readonly Step[],
  r: ApplyReport,
  saved: string,
  warnings: readonly string[],
  converged: unknown,
  opts: NodeOpsOpts,
): { text: string; json: unknown } {
  const rows = c.targets.map((n) => {
    const status = statusOf(n, steps, r);
    const f = [...r.failed.values()].find((x) => stepNode(x.step) === n.id);
    const error = f ? (f.error instanceof Error ? f.error.message : String(f.error)) : undefined;
    return { node: n.hostname, id: n.id, status, ...(error ? { error } : {}) };
  });
  const lines = ['', 'Nodes:'];
  const width = Math.max(...rows.map((x) => x.node.length), 8);
  for (const [i, x] of rows.entries()) {
    const n = c.targets[i] as NodeFacts;
    const what =
      x.status === 'done'
        ? c.did(n)
        : x.status === 'unchanged'
          ? 'unchanged (already so)'
          : x.status === 'failed'
            ? `FAILED: ${(x.error ?? '').split('\n')[0]}`
            : 'not done (an earlier step failed)';
    lines.push(`  ${x.node.padEnd(width)}  ${what}`);
  }
  const q = c.managersAfter === undefined ? undefined : quorum(c.managersAfter);
  if (q) lines.push(`Quorum: ${q.text}`);
  lines.push(
    `${opts.config}: ${saved === 'not recorded' ? 'unchanged (availability is runtime state, not recorded there)' : saved}`,
  );
  for (const note of c.notes) lines.push(`note: ${note}`);
  const cfg = cfgFlag(opts);
  lines.push('', 'Next:', `  cluster-cli node ls${cfg}   # every node, its role and labels`, '');
  return {
    text: lines.join('\n'),
    json: {
      nodes: rows,
      ...(q
        ? { quorum: { managers: c.managersAfter, tolerates: q.tolerates, evenWarning: q.even } }
        : {}),
      clusterYaml: saved,
      warnings,
      notes: c.notes,
      ...(converged ? { services: converged as ServiceState[] } : {}),
    },
  };
}

/** A warning for each target cluster.yaml does not list. */
function notInFile(h: ClusterHandle, nodes: readonly NodeFacts[], what: string): string[] {
  return nodes
    .filter((n) => !h.config.hosts.some((x) => x.name === n.hostname))
    .map(
      (n) =>
        `${n.hostname} is not in ${h.configArg} (${what}); record it with: cluster-cli node join <its address>`,
    );
}

/**
 * The firewall steps of a removal: every node of cluster.yaml that stays gets
 * the rules for the members without the removed ones (after the removal's own
 * steps, in a wave of their own).
 */
async function firewallAfterRemove(
  ctx: Ctx,
  h: ClusterHandle,
  targets: readonly NodeFacts[],
  sessions: Map<string, HostSession>,
  opts: NodeOpsOpts,
): Promise<{ steps: Step[]; notes: string[] }> {
  const gone = new Set(targets.map((t) => t.hostname));
  const next = validateConfig(removeHosts(h.input, [...gone]), opts.config).config;
  const staying = h.config.hosts.filter((x) => !gone.has(x.name));
  const nodes = await connectHosts(ctx, h, staying, opts, sessions);
  const members = memberAddresses(
    next,
    swarmAddresses(h).filter((a) => !gone.has(a.hostname)),
  );
  return firewallStepsFor(next, members, nodes);
}

function sessionsOf(h: ClusterHandle): Map<string, HostSession> {
  return new Map([[h.manager.session.exec.label, h.manager.session]]);
}

/**
 * The handle to run swarm-side steps through: the connected manager, unless
 * it is among `leaving` (demoted or removed); then another manager of
 * cluster.yaml that stays one, whose session joins `sessions`.
 */
async function operatorAvoiding(
  h: ClusterHandle,
  leaving: readonly NodeFacts[],
  what: string,
  sessions: Map<string, HostSession>,
  opts: SshFlags,
  ctx: Ctx,
): Promise<ClusterHandle> {
  const selfId = h.manager.swarm.nodeId;
  if (!selfId || !leaving.some((n) => n.id === selfId)) return h;
  const stays = (name: string) =>
    h.manager.cluster.nodes.some(
      (n) =>
        n.hostname === name &&
        n.role === 'manager' &&
        n.state === 'ready' &&
        !leaving.some((l) => l.id === n.id),
    );
  const errors: string[] = [];
  for (const host of h.config.hosts.filter((x) => x !== h.manager.host && stays(x.name))) {
    let session: HostSession;
    try {
      session = await connectSession(ctx, hostTarget(host, opts, h.config));
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      errors.push(`${host.name}: ${err.message}`);
      continue;
    }
    try {
      const swarm = await probeSwarm(session.exec);
      if (
        swarm.state === 'active' &&
        swarm.isManager &&
        swarm.clusterId === h.manager.swarm.clusterId
      ) {
        sessions.set(session.exec.label, session);
        return { ...h, manager: { ...h.manager, host, session, swarm } };
      }
      errors.push(`${host.name}: not an active manager of this swarm (${swarm.state})`);
    } catch (err) {
      if (!(err instanceof UserError)) {
        await session.close();
        throw err;
      }
      errors.push(`${host.name}: ${err.message}`);
    }
    await session.close();
  }
  throw new UserError(
    `${h.manager.host.name} (${h.manager.session.exec.label}) is the manager cluster-cli is connected through and would be ${what}, but no other manager of ${h.configArg} that stays one answered${errors.length ? `:\n${errors.map((e) => `  ${e}`).join('\n')}` : ' (it lists none)'}`,
    `make another manager reachable over SSH (and listed in ${h.configArg}), then run the command again`,
  );
}

/** Connect to each node to remove (the same SSH settings) and read its swarm state; failures are facts here. */
async function reachNodes(
  h: ClusterHandle,
  targets: readonly NodeFacts[],
  sessions: Map<string, HostSession>,
  opts: SshFlags,
  ctx: Ctx,
): Promise<Map<string, Reach>> {
  const reach = new Map<string, Reach>();
  await Promise.all(
    targets.map(async (n) => {
      if (n.id === h.manager.swarm.nodeId) {
        const s = h.manager.session;
        reach.set(n.id, { kind: 'ok', label: s.exec.label, swarm: h.manager.swarm });
        return;
      }
      const host = h.config.hosts.find((x) => x.name === n.hostname);
      if (!host) {
        reach.set(n.id, {
          kind: 'unreachable',
          why: `not in ${h.configArg}, so no address to reach it`,
        });
        return;
      }
      let session: HostSession;
      try {
        session = await connectSession(ctx, hostTarget(host, opts, h.config));
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        reach.set(n.id, { kind: 'unreachable', why: err.message.split('\n')[0] ?? 'no answer' });
        return;
      }
      sessions.set(session.exec.label, session);
      try {
        const swarm = await probeSwarm(session.exec);
        reach.set(n.id, { kind: 'ok', label: session.exec.label, swarm });
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        reach.set(n.id, { kind: 'unreachable', why: err.message.split('\n')[0] ?? 'no answer' });
      }
    }),
  );
  return reach;
}

/** JSON with sorted keys: equal data, equal text. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );
}
