import { defaultAdvertiseAddr } from '../cluster/advertise.js';
import { daemonTime } from '../cluster/converge.js';
import { parseLabelArgs } from '../cluster/labels.js';
import { type NetcheckReport, netcheckProblems, runNetcheck } from '../cluster/netcheck.js';
import {
  isMemberOf,
  type JoinDecision,
  type JoinTarget,
  mergeJoinedHosts,
  planJoin,
  quorum,
} from '../cluster/plan-join.js';
import { blockedPortsError, joinPortNeeds, probePorts } from '../cluster/ports.js';
import { preflight, preflightError } from '../cluster/preflight.js';
import { type HostFacts, probeHost } from '../cluster/probe.js';
import { saveConfig, validateConfig } from '../config/load.js';
import { apiRequest } from '../core/api.js';
import type { ApplyReport } from '../core/apply.js';
import { UserError } from '../core/errors.js';
import { change, type Step } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import { Secret } from '../core/secret.js';
import type { HostSession } from '../core/session.js';
import { joinTokenRead, joinTokenRotate, type Role } from '../docker/swarm.js';
import { parseTarget } from '../remote/ssh-config.js';
import { stackServiceNames } from '../stack/model.js';
import { formatPreflight } from '../ui/preflight.js';
import { runWithProgress } from '../ui/progress.js';
import { type ClusterHandle, openCluster, stackStepsFor } from './cluster.js';
import { connectSession, connectTarget, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

export interface NodeJoinOpts extends SshFlags, PipelineFlags {
  role: Role;
  label?: string[];
  rotateToken?: boolean;
  forceLeave?: boolean;
  force?: boolean;
  timeout?: string;
  config: string;
}

interface Typed {
  readonly arg: string;
  readonly address: string;
  readonly user?: string;
  readonly port?: number;
  readonly role: Role;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * `user@host[:port][,manager|worker][,key=value…]`: a target may carry its own
 * role and labels, so one command can join managers and workers at once;
 * --role and --label are the defaults (a target's own label wins).
 */
export function parseJoinTarget(
  arg: string,
  defaultRole: Role,
  defaultLabels: Readonly<Record<string, string>>,
): Typed {
  const [where = '', ...extras] = arg.split(',');
  const t = parseTarget(where);
  let role = defaultRole;
  const own: string[] = [];
  for (const e of extras) {
    if (e === 'manager' || e === 'worker') role = e;
    else if (e.includes('=')) own.push(e);
    else
      throw new UserError(
        `${JSON.stringify(arg)}: ${JSON.stringify(e)} is neither a role (manager, worker) nor a label key=value`,
        'write a target as user@host[:port][,manager|worker][,key=value…]',
      );
  }
  return {
    arg,
    address: t.host,
    ...(t.user ? { user: t.user } : {}),
    ...(t.port ? { port: t.port } : {}),
    role,
    labels: { ...defaultLabels, ...parseLabelArgs(own, `${where}:`) },
  };
}

/**
 * `cluster-cli node join <target…>`: connect to a manager and every target
 * (one SSH connection each), probe and preflight them, check the swarm ports
 * from each new host, then join them all at once through the shared pipeline;
 * afterwards check the overlay data path between every pair of nodes.
 */
export async function runNodeJoin(args: string[], opts: NodeJoinOpts, ctx: Ctx): Promise<void> {
  // Bad input fails here, before any host is contacted.
  if (args.length === 0)
    throw new UserError(
      'node join needs at least one target',
      'cluster-cli node join root@203.0.113.11 --role worker',
    );
  const labels = parseLabelArgs(opts.label ?? []);
  const typed: Typed[] = args.map((arg) => parseJoinTarget(arg, opts.role, labels));
  const dup = typed.find(
    (t, i) => typed.findIndex((u) => u.address === t.address && u.port === t.port) !== i,
  );
  if (dup) throw new UserError(`${dup.arg} is given twice`);
  const timeoutS = opts.timeout === undefined ? undefined : Number(opts.timeout);
  if (timeoutS !== undefined && (!Number.isInteger(timeoutS) || timeoutS < 10 || timeoutS > 3600))
    throw new UserError(
      `--timeout ${JSON.stringify(opts.timeout)}: must be a whole number of seconds from 10 to 3600`,
    );

  const out = (s: string) => {
    if (!opts.json) ctx.stdout.write(s);
  };
  const h = await openCluster(ctx, opts);
  const sessions = new Map<string, HostSession>([
    [h.manager.session.exec.label, h.manager.session],
  ]);
  try {
    // One connection per target, all at once; an unreachable one stops everything (nothing changed yet).
    const connected = await Promise.allSettled(
      typed.map((t) => connectSession(ctx, connectTarget(t, opts, h.config.ssh))),
    );
    const bad = connected.flatMap((r, i) =>
      r.status === 'rejected' ? [`${typed[i]?.arg}: ${(r.reason as Error).message}`] : [],
    );
    for (const r of connected)
      if (r.status === 'fulfilled') sessions.set(r.value.exec.label, r.value);
    if (bad.length) {
      const unexpected = connected.find(
        (r) => r.status === 'rejected' && !(r.reason instanceof UserError),
      );
      if (unexpected?.status === 'rejected') throw unexpected.reason;
      throw new UserError(
        bad.length === 1
          ? `Cannot reach ${bad[0]} Nothing was joined.`
          : `Cannot reach ${bad.length} targets; nothing was joined:\n${bad.map((b) => `  ${b}`).join('\n')}`,
        'check the address, the SSH key and that sshd runs, then run the same command again',
      );
    }
    const targetSessions = connected.map((r) => (r as PromiseFulfilledResult<HostSession>).value);
    await joinOn(h, typed, targetSessions, sessions, opts, ctx, out, timeoutS);
  } finally {
    await closeAll(sessions.values());
  }
}

async function joinOn(
  h: ClusterHandle,
  typed: readonly Typed[],
  targetSessions: readonly HostSession[],
  sessions: Map<string, HostSession>,
  opts: NodeJoinOpts,
  ctx: Ctx,
  out: (s: string) => void,
  timeoutS: number | undefined,
): Promise<void> {
  const config = h.config;
  const swarmId = h.manager.swarm.clusterId;
  if (!swarmId) throw new Error('manager reported no swarm ID');
  out(`Checking ${targetSessions.map((s) => s.exec.label).join(', ')} ...\n`);
  const facts: HostFacts[] = await Promise.all(
    targetSessions.map((s) => probeHost(s.exec, config.name)),
  );

  // The same preflight as init, for every target; one failing host stops all.
  const reports = facts.map((f) =>
    preflight(f, {
      force: Boolean(opts.force),
      stack: config.name,
      joining: { swarmId, member: isMemberOf(f, swarmId, h.manager.cluster) },
    }),
  );
  const tables = targetSessions
    .map(
      (s, i) => `${s.exec.label}\n${formatPreflight(reports[i] as ReturnType<typeof preflight>)}`,
    )
    .join('\n\n');
  const refused = reports
    .map((r, i) => preflightError(r, targetSessions[i]?.exec.label ?? ''))
    .filter((e) => e !== undefined);
  if (refused.length) {
    out(`${tables}\n\n`);
    throw refused.length === 1
      ? refused[0]
      : new UserError(refused.map((e) => e.message).join('\n'), refused[0]?.next);
  }

  const targets: JoinTarget[] = targetSessions.map((s, i) => {
    const t = typed[i] as Typed;
    const f = facts[i] as HostFacts;
    const advertiseAddr = defaultAdvertiseAddr(t.address, f);
    if (!advertiseAddr)
      throw new UserError(
        `Cannot tell which address ${s.exec.label} advertises to the swarm (it has none).`,
        'give the host a global IPv4 address',
      );
    return {
      label: s.exec.label,
      address: t.address,
      ...(t.user ? { user: t.user } : {}),
      ...(t.port ? { port: t.port } : {}),
      facts: f,
      advertiseAddr,
      role: t.role,
      labels: t.labels,
    };
  });
  const names = new Map<string, string>();
  for (const t of targets) {
    const other = names.get(t.facts.hostname);
    if (other)
      throw new UserError(
        `${other} and ${t.label} have the same hostname ${t.facts.hostname}; swarm nodes need distinct names.`,
        'give each host its own hostname (hostnamectl set-hostname …)',
      );
    names.set(t.facts.hostname, t.label);
  }

  // Every swarm port a new node needs must answer from it, before anything joins.
  const joining = targets.filter((t) => !isMemberOf(t.facts, swarmId, h.manager.cluster));
  const needs = joinPortNeeds(h.manager.cluster.nodes);
  const portResults = (
    await Promise.all(
      joining.map((t) =>
        probePorts((sessions.get(t.label) as HostSession).exec, t.facts.hostname, needs),
      ),
    )
  ).flat();
  const blocked = blockedPortsError(portResults);
  if (blocked) {
    out(`${tables}\n\n`);
    throw blocked;
  }

  // Join tokens: read on the manager, kept as Secrets, sent only in API bodies.
  const manager = h.manager.session;
  const tokens = {} as Record<Role, Secret>;
  for (const role of ['manager', 'worker'] as const) {
    const r = await manager.exec.run(joinTokenRead(role));
    tokens[role] = new Secret(r.stdout.trim(), `${role} join token`);
  }
  const remoteAddrs = h.manager.cluster.nodes
    .filter((n) => n.role === 'manager' && n.state !== 'down' && n.managerAddr)
    .map((n) => n.managerAddr as string);
  const { steps, decisions } = planJoin({
    manager: manager.exec.label,
    cluster: h.manager.cluster,
    swarmId,
    remoteAddrs,
    tokens,
    targets,
    forceLeave: Boolean(opts.forceLeave),
  });

  // cluster.yaml after the joins shapes the stack (placement follows labels).
  const nextInput = mergeJoinedHosts(h.input, targets);
  const next = validateConfig(nextInput, opts.config).config;
  const stack = stackStepsFor(h, next, Boolean(opts.force));
  for (const w of stack.warnings) out(`warning: ${w}\n`);
  const allSteps: Step[] = [...steps, ...stack.steps];
  if (opts.rotateToken) {
    allSteps.push(
      change(
        'rotate-token',
        manager.exec.label,
        'Rotate the join tokens (the ones used here stop working)',
        [joinTokenRotate('worker'), joinTokenRotate('manager')],
      ),
    );
  }
  const plan = {
    title: `node join: ${targets.length} host(s) into ${config.name}`,
    steps: allSteps,
  };

  let since: Date | undefined;
  let netcheck: NetcheckReport | undefined;
  let report: ApplyReport | undefined;
  const outcome = await runPipeline(ctx, opts, {
    name: 'node join',
    plan,
    sessions,
    keepGoing: true,
    preamble: {
      text: tables,
      json: Object.fromEntries(targets.map((t, i) => [t.label, reports[i]?.rows])),
    },
    async beforeApply() {
      if (stack.deploys) since = await daemonTime(manager.docker()).catch(() => undefined);
    },
    async converge(mode, r) {
      report = r;
      const joined = decisions.filter((d) => d.kind !== 'member' && !r.failed.has(d.label));
      let states: unknown;
      if (joined.length) {
        await runWithProgress(ctx.stdout, mode, [
          {
            title: 'Check the overlay data path between every pair of nodes',
            run: async (status) => {
              const nodes = await readyNodes(
                manager,
                joined.map((d) => d.hostname),
              );
              status(`${nodes.size} nodes`);
              netcheck = await runNetcheck(manager, {
                stack: config.name,
                image: next.deploy.checkImage,
                nodes,
              });
            },
          },
        ]);
      }
      if (stack.deploys && !r.failed.has(manager.exec.label)) {
        states = await converge(manager.docker(), ctx.stdout, mode, {
          stack: config.name,
          services: stackServiceNames(config.name),
          timeoutMs: (timeoutS ?? next.deploy.timeout) * 1000,
          ...(since ? { since } : {}),
        });
      }
      return states;
    },
    async save(r) {
      const ok = targets.filter((t) => !r?.failed.has(t.label));
      if (ok.length) await saveConfig(h.file, mergeJoinedHosts(h.input, ok));
    },
    summary(o) {
      return joinSummary(targets, decisions, o.report, netcheck, next, opts);
    },
  });
  if (outcome.dryRun) return;
  const failed = [...(report ?? outcome.report).failed.keys()];
  if (failed.length) {
    const retry = targets.filter((t) => failed.includes(t.label));
    throw new UserError(
      `${failed.length} of ${targets.length} host(s) did not join: ${failed.join(', ')} (the others did).`,
      retryCommand(retry, opts),
    );
  }
  const problems = netcheck ? netcheckProblems(netcheck) : [];
  if (problems.length) {
    throw new UserError(
      `The nodes joined, but the overlay network does not pass traffic between every pair:\n${problems.map((p) => `  ${p}`).join('\n')}`,
      'open 4789/udp and 7946/udp between those nodes, then check again with: cluster-cli node join <same targets> (it changes nothing and re-runs the check)',
    );
  }
}

/** Wait until the joined nodes are `ready` on the manager; returns node ID → hostname of every ready node. */
async function readyNodes(
  manager: HostSession,
  want: readonly string[],
): Promise<Map<string, string>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const nodes = await manager
      .docker()
      .request<{ ID: string; Description: { Hostname: string }; Status: { State: string } }[]>(
        apiRequest('GET', '/nodes', { readOnly: true }),
      );
    const ready = nodes.filter((n) => n.Status.State === 'ready');
    if (
      want.every((w) => ready.some((n) => n.Description.Hostname === w)) ||
      Date.now() > deadline
    ) {
      return new Map(ready.map((n) => [n.ID, n.Description.Hostname]));
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

function retryCommand(targets: readonly JoinTarget[], opts: NodeJoinOpts): string {
  const cfg = opts.config === 'cluster.yaml' ? '' : ` -c ${quoteArg(opts.config)}`;
  const who = targets
    .map((t) => {
      const where = t.user ? `${t.user}@${t.address}${t.port ? `:${t.port}` : ''}` : t.address;
      return quoteArg(
        [where, t.role, ...Object.entries(t.labels).map(([k, v]) => `${k}=${v}`)].join(','),
      );
    })
    .join(' ');
  return `fix the cause, then run: cluster-cli node join ${who}${cfg}${opts.force ? ' --force' : ''} --yes`;
}

function joinSummary(
  targets: readonly JoinTarget[],
  decisions: readonly JoinDecision[],
  report: ApplyReport,
  netcheck: NetcheckReport | undefined,
  next: { hosts: { role: string }[] },
  opts: NodeJoinOpts,
): { text: string; json: unknown } {
  const rows = targets.map((t) => {
    const d = decisions.find((x) => x.label === t.label);
    const f = report.failed.get(t.label);
    const error = f ? (f.error instanceof Error ? f.error.message : String(f.error)) : undefined;
    const status = f ? 'failed' : d?.kind === 'member' ? 'member' : 'joined';
    return {
      target: t.label,
      node: t.facts.hostname,
      role: t.role,
      labels: t.labels,
      status,
      ...(error ? { error, retry: retryCommand([t], opts) } : {}),
    };
  });
  const managers = next.hosts.filter((h) => h.role === 'manager').length;
  const q = quorum(managers);
  const problems = netcheck ? netcheckProblems(netcheck) : [];
  const lines = ['', 'Hosts:'];
  for (const r of rows) {
    const what =
      r.status === 'failed'
        ? `FAILED: ${(r.error ?? '').split('\n')[0]}\n      retry: ${r.retry}`
        : r.status === 'member'
          ? `already a ${r.role} of this swarm${Object.keys(r.labels).length ? ' (labels reconciled)' : ''}`
          : `joined as ${r.role}`;
    lines.push(`  ${r.node.padEnd(12)} ${r.target.padEnd(24)} ${what}`);
  }
  if (netcheck) {
    lines.push(
      problems.length
        ? `Overlay check: ${problems.length} problem(s):\n${problems.map((p) => `  ${p}`).join('\n')}`
        : `Overlay check: traffic passes between all ${netcheck.pairs.length} pair(s) of nodes (4789/udp, 7946)`,
    );
  }
  lines.push(`Quorum: ${q.text}`);
  if (q.even)
    lines.push(
      `warning: an even number of managers (${managers}) tolerates no more failures than ${managers - 1}`,
    );
  const cfg = opts.config === 'cluster.yaml' ? '' : ` -c ${quoteArg(opts.config)}`;
  lines.push('', 'Next:', `  cluster-cli node ls${cfg}   # every node, its role and labels`, '');
  return {
    text: lines.join('\n'),
    json: {
      hosts: rows,
      ...(netcheck
        ? { overlay: { pairs: netcheck.pairs, silent: netcheck.silent, problems } }
        : {}),
      quorum: { managers, tolerates: q.tolerates, evenWarning: q.even },
    },
  };
}
