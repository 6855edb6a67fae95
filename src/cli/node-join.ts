import { defaultAdvertiseAddr } from '../cluster/advertise.js';
import { missingImageRef } from '../cluster/converge.js';
import { parseLabelArgs } from '../cluster/labels.js';
import { type NetcheckReport, netcheckProblems } from '../cluster/netcheck.js';
import {
  type JoinDecision,
  type JoinTarget,
  mergeJoinedHosts,
  planJoin,
  quorum,
} from '../cluster/plan-join.js';
import type { HostFacts } from '../cluster/probe.js';
import { saveConfig, validateConfig } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import type { ApplyReport } from '../core/apply.js';
import { UserError } from '../core/errors.js';
import { change, type Step } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { HostSession } from '../core/session.js';
import { joinTokenRotate, type Role } from '../docker/swarm.js';
import { parseTarget } from '../remote/ssh-config.js';
import { parseTimeoutFlag } from './ask.js';
import { type ClusterHandle, cfgFlag, openCluster, stackStepsFor } from './cluster.js';
import { connectTarget, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { firewallNoteLines } from './firewall.js';
import { planJoinFirewall } from './join-firewall.js';
import {
  afterJoin,
  checkJoinable,
  connectAll,
  managerAddrs,
  probeAndPreflight,
  readJoinTokens,
} from './join-flow.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

interface Marks {
  t0: number;
  connected?: number;
  checked?: number;
  ports?: number;
}

export interface NodeJoinOpts extends SshFlags, PipelineFlags {
  role: Role;
  label?: string[];
  rotateToken?: boolean;
  forceLeave?: boolean;
  force?: boolean;
  timeout?: string;
  config: string;
  /** Turn cluster-cli's firewall on with this join (recorded in cluster.yaml). */
  firewall?: boolean;
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
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const marks: Marks = { t0: performance.now() };

  const out = (s: string) => {
    if (!opts.json) ctx.stdout.write(s);
  };
  const h = await openCluster(ctx, opts);
  const sessions = new Map<string, HostSession>([
    [h.manager.session.exec.label, h.manager.session],
  ]);
  try {
    const hosts = await connectAll(
      ctx,
      typed.map((t) => ({ name: t.arg, target: connectTarget(t, opts, h.config.ssh) })),
      sessions,
    );
    marks.connected = performance.now();
    await joinOn(h, typed, hosts, sessions, opts, ctx, out, timeoutS, marks);
  } finally {
    await closeAll(sessions.values());
  }
}

async function joinOn(
  h: ClusterHandle,
  typed: readonly Typed[],
  hosts: readonly HostSession[],
  sessions: Map<string, HostSession>,
  opts: NodeJoinOpts,
  ctx: Ctx,
  out: (s: string) => void,
  timeoutS: number | undefined,
  marks: Marks,
): Promise<void> {
  const config = h.config;
  const swarmId = h.manager.swarm.clusterId;
  if (!swarmId) throw new Error('manager reported no swarm ID');
  const { facts, reports, tables } = await probeAndPreflight(h, hosts, Boolean(opts.force), out);
  marks.checked = performance.now();

  const targets: JoinTarget[] = hosts.map((s, i) => {
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
  // cluster.yaml after the joins shapes the stack (placement follows labels)
  // and, with the firewall on, every node's rules.
  const nextInput = withFirewall(mergeJoinedHosts(h.input, targets), Boolean(opts.firewall));
  const next = validateConfig(nextInput, opts.config).config;
  const fw = next.firewall.enabled
    ? await planJoinFirewall(ctx, h, next, targets, sessions, opts)
    : undefined;
  // Every swarm port a new node needs must answer from it, before anything
  // joins (or be one the members' firewall opens to it in this plan).
  const waiting = await checkJoinable(h, targets, sessions, tables, out, fw?.opening);
  marks.ports = performance.now();

  const manager = h.manager.session;
  const { steps, decisions } = planJoin({
    manager: manager.exec.label,
    cluster: h.manager.cluster,
    swarmId,
    remoteAddrs: managerAddrs(h),
    tokens: await readJoinTokens(manager),
    targets,
    forceLeave: Boolean(opts.forceLeave),
  });

  const stack = stackStepsFor(h, next, Boolean(opts.force));
  for (const w of stack.warnings) out(`warning: ${w}\n`);
  const allSteps: Step[] = [...(fw?.before ?? []), ...steps, ...(fw?.after ?? []), ...stack.steps];
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

  const after = afterJoin(ctx, h, next, {
    decisions,
    deploys: stack.deploys,
    timeoutS,
    checkMembers: true,
  });
  const outcome = await runPipeline(ctx, opts, {
    name: 'node join',
    plan,
    sessions,
    keepGoing: true,
    preamble: {
      text: [
        tables,
        ...(waiting.length
          ? [
              '',
              `Not answering yet, opened by the firewall steps below: ${waiting.map((r) => `${r.from} -> ${r.to} ${r.port}/tcp`).join(', ')}`,
            ]
          : []),
        ...firewallNoteLines(fw?.notes),
      ].join('\n'),
      json: Object.fromEntries(targets.map((t, i) => [t.label, reports[i]?.rows])),
    },
    beforeApply: after.beforeApply,
    converge: after.converge,
    async save(r) {
      if (!r) return; // apply stopped on an error: which hosts joined is unknown
      const ok = targets.filter((t) => !r.failed.has(t.label));
      if (ok.length)
        await saveConfig(
          h.file,
          withFirewall(mergeJoinedHosts(h.input, ok), Boolean(opts.firewall)),
        );
    },
    summary(o) {
      const s = joinSummary(targets, decisions, o.report, after.state.netcheck, next, opts);
      const ms = (a?: number, b?: number) =>
        a !== undefined && b !== undefined ? Math.round(b - a) : undefined;
      const timingsMs = {
        connect: ms(marks.t0, marks.connected),
        probeAndPreflight: ms(marks.connected, marks.checked),
        portCheck: ms(marks.checked, marks.ports),
        joinWave: o.report.waveMs.join === undefined ? undefined : Math.round(o.report.waveMs.join),
        overlayCheck:
          after.state.netcheckMs === undefined ? undefined : Math.round(after.state.netcheckMs),
        convergence:
          after.state.convergeMs === undefined ? undefined : Math.round(after.state.convergeMs),
        total: Math.round(performance.now() - marks.t0),
      };
      return { text: s.text, json: { ...(s.json as object), timingsMs } };
    },
  });
  if (outcome.dryRun) return;
  const failed = [...outcome.report.failed.keys()];
  const retry = targets.filter((t) => failed.includes(t.label));
  if (retry.length) {
    throw new UserError(
      `${retry.length} of ${targets.length} host(s) did not join: ${retry.map((t) => t.label).join(', ')} (the others did).`,
      retryCommand(retry, opts),
    );
  }
  // A step of a member failed (its firewall rules, the stack): the joins went through.
  if (failed.length) {
    const [first] = outcome.report.failed.values();
    throw new UserError(
      `The hosts joined, but a step on ${failed.join(', ')} failed: ${first?.step.title}: ${String(first?.error instanceof Error ? first.error.message : first?.error).split('\n')[0]}`,
      first?.step.id.startsWith('firewall-')
        ? `fix the cause, then run: cluster-cli firewall apply${cfgFlag(opts)} --yes`
        : `fix the cause, then run: cluster-cli apply${cfgFlag(opts)} --yes`,
    );
  }
  throwOnOverlayProblems(after.state.netcheck);
}

/**
 * After joins: a pair of nodes without overlay traffic fails the command,
 * naming the pair. A node where the check's image is missing could not take
 * part at all: that calls for copying the image, not for opening ports.
 */
export function throwOnOverlayProblems(netcheck: NetcheckReport | undefined): void {
  const problems = netcheck ? netcheckProblems(netcheck) : [];
  if (!problems.length) return;
  const lines = problems.map((p) => `  ${p}`).join('\n');
  const noImage = (netcheck?.silent ?? []).filter((s) => /No such image/i.test(s.why));
  const again = 'cluster-cli node join <the same targets> re-runs the check and changes nothing';
  if (noImage.length) {
    const images = [...new Set(noImage.flatMap((s) => missingImageRef(s.why) ?? []))];
    const blocked = netcheck?.pairs.some((p) => !p.ok);
    throw new UserError(
      `The nodes joined, but the overlay check could not run on ${noImage.map((s) => s.node).join(', ')}: its image is not there and no registry gave it${images.length ? ` (${images.join(', ')})` : ''}:\n${lines}`,
      `copy the image to the nodes: cluster-cli images push ${images.map((i) => `${quoteArg(i)} `).join('')}--yes (add -c <file> if your cluster.yaml is elsewhere)${blocked ? ', open 4789/udp and 7946/udp between the pairs above' : ''}, then check again: ${again}`,
    );
  }
  throw new UserError(
    `The nodes joined, but the overlay network does not pass traffic between every pair:\n${lines}`,
    `open 4789/udp and 7946/udp between those nodes, then check again: ${again}`,
  );
}

function retryCommand(targets: readonly JoinTarget[], opts: NodeJoinOpts): string {
  const cfg = cfgFlag(opts);
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
  const cfg = cfgFlag(opts);
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

/** `--firewall`: cluster.yaml records firewall.enabled: true (the input, comments kept by saveConfig). */
function withFirewall(input: ConfigInput, on: boolean): ConfigInput {
  return on ? { ...input, firewall: { ...(input.firewall ?? {}), enabled: true } } : input;
}
