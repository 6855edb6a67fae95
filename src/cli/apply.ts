import { defaultAdvertiseAddr } from '../cluster/advertise.js';
import { type ApplyHost, planApply } from '../cluster/plan-apply.js';
import { planJoin, quorum } from '../cluster/plan-join.js';
import { UserError } from '../core/errors.js';
import { changesOf, type Step } from '../core/plan.js';
import type { HostSession } from '../core/session.js';
import { parseTimeoutFlag } from './ask.js';
import { cfgFlag, hostTarget, openCluster, stackStepsFor } from './cluster.js';
import type { SshFlags } from './connect.js';
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
import { throwOnOverlayProblems } from './node-join.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

export interface ApplyOpts extends SshFlags, PipelineFlags {
  force?: boolean;
  forceLeave?: boolean;
  timeout?: string;
  config: string;
}

/**
 * `cluster-cli apply`: cluster.yaml is the source of truth for hosts, roles
 * and labels. Probe every host, plan joins, promotions, label changes,
 * demotions and the stack update as one plan, ask, apply, converge. A second
 * run plans nothing.
 */
export async function runApply(opts: ApplyOpts, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const out = (s: string) => {
    if (!opts.json) ctx.stdout.write(s);
  };
  const h = await openCluster(ctx, opts);
  const managerSession = h.manager.session;
  const sessions = new Map<string, HostSession>([[managerSession.exec.label, managerSession]]);
  try {
    const others = h.config.hosts.filter((x) => x !== h.manager.host);
    const opened = await connectAll(
      ctx,
      others.map((x) => ({ name: x.name, target: hostTarget(x, opts, h.config) })),
      sessions,
    );
    const hostSessions = [managerSession, ...opened];
    const hosts = [h.manager.host, ...others];
    const { facts, reports, tables } = await probeAndPreflight(
      h,
      hostSessions,
      Boolean(opts.force),
      out,
    );
    const swarmId = h.manager.swarm.clusterId as string;
    const applyHosts: ApplyHost[] = hosts.map((host, i) => {
      const f = facts[i] as (typeof facts)[number];
      const label = (hostSessions[i] as HostSession).exec.label;
      const advertiseAddr = host.advertiseAddr ?? defaultAdvertiseAddr(host.address, f);
      if (!advertiseAddr)
        throw new UserError(
          `Cannot tell which address ${label} advertises to the swarm.`,
          `set hosts[].advertiseAddr for ${host.name} in ${opts.config}`,
        );
      return { host, label, facts: f, advertiseAddr };
    });
    const decided = planApply(
      h.config,
      managerSession.exec.label,
      h.manager.cluster,
      swarmId,
      applyHosts,
    );

    // With cluster-cli's firewall on, every node's rules follow the file too.
    const fw = h.config.firewall.enabled
      ? await planJoinFirewall(
          ctx,
          h,
          h.config,
          decided.joins,
          sessions,
          opts,
          new Map(hosts.map((x, i) => [x.name, hostSessions[i] as HostSession])),
        )
      : undefined;
    let joinSteps: Step[] = [];
    let decisions: ReturnType<typeof planJoin>['decisions'] = [];
    if (decided.joins.length) {
      await checkJoinable(h, decided.joins, sessions, tables, out, fw?.opening);
      ({ steps: joinSteps, decisions } = planJoin({
        manager: managerSession.exec.label,
        cluster: h.manager.cluster,
        swarmId,
        remoteAddrs: managerAddrs(h),
        tokens: await readJoinTokens(managerSession),
        targets: decided.joins,
        forceLeave: Boolean(opts.forceLeave),
      }));
    }
    const stack = stackStepsFor(h, h.config, Boolean(opts.force));
    for (const w of stack.warnings) out(`warning: ${w}\n`);
    for (const s of decided.strays)
      out(
        `warning: node ${s.hostname} (${s.role}, ${s.state}) is in the swarm but not in ${opts.config}; apply leaves it (cluster-cli node remove ${s.hostname} removes it)\n`,
      );
    const plan = {
      title: `apply ${opts.config} to ${h.config.name}`,
      steps: [
        ...(fw?.before ?? []),
        ...joinSteps,
        ...(fw?.after ?? []),
        ...decided.steps,
        ...stack.steps,
      ],
    };

    const after = afterJoin(ctx, h, h.config, { decisions, deploys: stack.deploys, timeoutS });
    const outcome = await runPipeline(ctx, opts, {
      name: 'apply',
      plan,
      sessions,
      keepGoing: true,
      preamble: {
        text: [tables, ...firewallNoteLines(fw?.notes)].join('\n'),
        json: Object.fromEntries(applyHosts.map((a, i) => [a.label, reports[i]?.rows])),
      },
      beforeApply: after.beforeApply,
      converge: after.converge,
      summary(o) {
        const managers = h.config.hosts.filter((x) => x.role === 'manager').length;
        const q = quorum(managers);
        const changed = changesOf(plan)
          .filter((s) => !o.report.failed.has(s.about ?? s.host))
          .map((s) => s.title);
        const failed = [...o.report.failed.entries()].map(([host, f]) => ({
          host,
          step: f.step.title,
          error: f.error instanceof Error ? f.error.message : String(f.error),
        }));
        const cfg = cfgFlag(opts);
        const lines = [
          '',
          changed.length
            ? `Applied ${changed.length} change(s).`
            : `Nothing to change: the cluster matches ${opts.config}.`,
          ...failed.map((f) => `  FAILED on ${f.host}: ${f.step}: ${f.error.split('\n')[0]}`),
          `Quorum: ${q.text}`,
          ...decided.strays.map(
            (s) => `warning: ${s.hostname} is in the swarm but not in ${opts.config}`,
          ),
          '',
          'Next:',
          `  cluster-cli node ls${cfg}`,
          '',
        ];
        return {
          text: lines.join('\n'),
          json: {
            changed,
            failed,
            strays: decided.strays.map((s) => s.hostname),
            quorum: { managers, tolerates: q.tolerates, evenWarning: q.even },
            services: o.converged,
          },
        };
      },
    });
    if (outcome.dryRun) return;
    if (outcome.report.failed.size) {
      throw new UserError(
        `apply did not finish on ${[...outcome.report.failed.keys()].join(', ')} (the other changes were made).`,
        `fix the cause, then run: cluster-cli apply${cfgFlag(opts)} --yes`,
      );
    }
    throwOnOverlayProblems(after.state.netcheck);
  } finally {
    await closeAll(sessions.values());
  }
}
