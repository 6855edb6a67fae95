import {
  DOCTOR_EXIT,
  type DoctorCheck,
  type DoctorFacts,
  type DoctorVerdict,
  diagnose,
  doctorVerdict,
  type HostDoctorFacts,
  isFailure,
  type Probed,
  planPrune,
  staleConfigs,
} from '../cluster/doctor.js';
import { probeClock, probeConfigUse, probeResources } from '../cluster/doctor-probe.js';
import { joinPortNeeds, probePorts } from '../cluster/ports.js';
import type { Host } from '../config/schema.js';
import { ExitCode, UserError } from '../core/errors.js';
import { changesOf } from '../core/plan.js';
import type { HostSession } from '../core/session.js';
import { checkFirewall, FIREWALL_FILES, UNIT_NAME } from '../firewall/plan.js';
import { probeFirewall } from '../firewall/probe.js';
import { memberAddresses } from '../firewall/rules.js';
import { formatTable } from '../ui/table.js';
import { type ClusterHandle, cfgFlag, hostTarget, openCluster, renderedFor } from './cluster.js';
import { connectSession } from './connect.js';
import type { Ctx } from './context.js';
import type { DoctorHaOpts } from './doctor-ha.js';
import { desiredRules, swarmAddresses } from './firewall.js';
import { closeAll, type Outcome, ReportedFailure, runPipeline } from './pipeline.js';

/** doctor's flags: its own, and --ha's (the HA checklist, run for real: src/cli/doctor-ha.ts). */
export interface DoctorOpts extends DoctorHaOpts {
  /** Remove the stale configs (through the shared pipeline: plan, confirm, apply). */
  prune?: boolean;
}

export interface DoctorReport {
  readonly cluster?: string;
  readonly manager?: string;
  readonly verdict: DoctorVerdict;
  readonly checks: readonly DoctorCheck[];
}

/**
 * `cluster-cli doctor`: connects to every host of cluster.yaml (all at once;
 * one that does not answer is a failed check, not the end), reads what the
 * checks need, and prints each check's verdict and the command that fixes
 * it. Read-only, except `--prune`, which removes the stale configs it found
 * through the shared pipeline. Exit 0 all ok, 1 a warning, 2 a failure.
 */
export async function runDoctor(opts: DoctorOpts, ctx: Ctx): Promise<void> {
  const cfg = cfgFlag(opts);
  if (opts.ha) {
    if (opts.prune)
      throw new UserError('--ha and --prune are separate runs.', `cluster-cli doctor --ha${cfg}`);
    const { runDoctorHa } = await import('./doctor-ha.js');
    return runDoctorHa(opts, ctx);
  }
  const haOnly = (
    [
      ['--report', opts.report],
      ['--down-seconds', opts.downSeconds],
      ['--reschedule-timeout', opts.rescheduleTimeout],
      ['--rps', opts.rps],
      ['--check', opts.check?.length ? opts.check : undefined],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (haOnly.length) {
    throw new UserError(
      `${haOnly.map(([f]) => f).join(', ')} go${haOnly.length === 1 ? 'es' : ''} with --ha.`,
      `cluster-cli doctor --ha --dry-run${cfg}`,
    );
  }
  if (!opts.prune && (opts.dryRun || opts.yes)) {
    throw new UserError(
      '--dry-run and --yes go with --prune: doctor on its own changes nothing.',
      `cluster-cli doctor --prune --dry-run${cfg}`,
    );
  }
  let h: ClusterHandle;
  try {
    h = await openCluster(ctx, opts);
  } catch (err) {
    // No manager answers: nothing else can be checked from here.
    if (!(err instanceof UserError) || !/No manager of/.test(err.message)) throw err;
    const checks: DoctorCheck[] = [
      {
        id: 'manager',
        title: 'manager',
        verdict: 'fail',
        detail: err.message.replace(/:?\n\s*/g, '; '),
        ...(err.next ? { next: err.next } : {}),
      },
    ];
    print(ctx, opts, { verdict: 'fail', checks });
    throw new ExitCode(DOCTOR_EXIT.fail);
  }
  const opened: HostSession[] = [h.manager.session];
  try {
    const facts = await gather(ctx, opts, h, opened);
    const checks = diagnose(facts);
    const report: DoctorReport = {
      cluster: h.config.name,
      manager: h.manager.session.exec.label,
      verdict: doctorVerdict(checks),
      checks,
    };
    if (!opts.prune) {
      print(ctx, opts, report);
      if (report.verdict !== 'ok') throw new ExitCode(DOCTOR_EXIT[report.verdict]);
      return;
    }
    await prune(ctx, opts, h, facts, report);
  } finally {
    await closeAll(opened);
  }
}

// ------------------------------------------------------------- the facts --

/** A probe's fact, or why it could not be read (a UserError: sudo, a missing tool, a dropped connection). */
async function settle<T>(read: () => Promise<T>): Promise<Probed<T>> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof UserError) return { error: err.message };
    throw err;
  }
}

async function gather(
  ctx: Ctx,
  opts: DoctorOpts,
  h: ClusterHandle,
  opened: HostSession[],
): Promise<DoctorFacts> {
  const config = h.config;
  const swarm = h.manager.cluster.nodes;
  const { model, rendered } = renderedFor(h, config);
  const needs = joinPortNeeds(swarm);
  const members = config.firewall.enabled ? memberAddresses(config, swarmAddresses(h)) : undefined;

  // The manager's clock is read before anything else runs on its connection (see below).
  let managerClockRead = () => {};
  const afterManagerClock = new Promise<void>((resolve) => {
    managerClockRead = resolve;
  });

  const node = async (host: Host): Promise<HostDoctorFacts> => {
    let session = host === h.manager.host ? h.manager.session : undefined;
    if (!session) {
      try {
        session = await connectSession(ctx, hostTarget(host, opts, config));
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        const target = `${host.user ? `${host.user}@` : ''}${host.address ?? 'local'}${host.port ? `:${host.port}` : ''}`;
        return { name: host.name, target, error: err.message };
      }
      opened.push(session);
    }
    const s = session;
    const exec = s.exec;
    // The clock first and alone: other commands on the same connection would lengthen its round trip.
    const clock = await settle(() => probeClock(exec));
    if (host === h.manager.host) managerClockRead();
    const [resources, ports, firewall] = await Promise.all([
      settle(() => probeResources(exec)),
      settle(() =>
        probePorts(
          exec,
          host.name,
          needs.filter((n) => n.to !== host.name),
        ),
      ),
      members
        ? settle(async () =>
            checkFirewall(
              desiredRules(config, members, { host, session: s }),
              await probeFirewall(exec, { files: FIREWALL_FILES, unit: UNIT_NAME }),
            ),
          )
        : undefined,
    ]);
    return {
      name: host.name,
      target: exec.label,
      clock,
      resources,
      ports,
      ...(firewall ? { firewall } : {}),
    };
  };

  const [hosts, stale] = await Promise.all([
    Promise.all(config.hosts.map(node)),
    settle(async () => {
      await afterManagerClock;
      const use = await probeConfigUse(h.manager.session.exec);
      return staleConfigs(
        config.name,
        use.managed,
        use.inUse,
        rendered.configs.map((c) => c.name),
      );
    }),
  ]);

  const running = new Map(h.manager.cluster.services.map((s) => [s.name, s.revision]));
  const drifted = (svc: string) => {
    const name = `${config.name}_${svc}`;
    return running.has(name) && running.get(name) !== rendered.revisions[svc];
  };
  return {
    stack: config.name,
    cfg: cfgFlag(opts),
    firewallEnabled: config.firewall.enabled,
    swarm,
    reference: h.manager.host.name,
    hosts,
    model,
    needs: {
      secrets: [...Object.values(model.secrets), ...Object.values(rendered.live)].filter(
        (s): s is string => typeof s === 'string',
      ),
      // The proxy is the one service that mounts configs.
      configs: rendered.configs.map((c) => ({
        name: c.name,
        service: `${config.name}_proxy`,
        drifted: drifted('proxy'),
      })),
    },
    have: { secrets: h.manager.cluster.secrets, configs: h.manager.cluster.configs },
    stale,
  };
}

// ----------------------------------------------------------------- prune --

async function prune(
  ctx: Ctx,
  opts: DoctorOpts,
  h: ClusterHandle,
  facts: DoctorFacts,
  report: DoctorReport,
): Promise<void> {
  if (isFailure(facts.stale)) {
    print(ctx, opts, report);
    throw new UserError(
      `Cannot tell which configs are stale: ${facts.stale.error}`,
      `fix that, then run cluster-cli doctor --prune${cfgFlag(opts)} again; nothing was removed`,
    );
  }
  const manager = h.manager.session;
  const plan = planPrune(h.config.name, manager.exec.label, facts.stale);
  /** The checks once the removed configs are gone. */
  const after = (o: Outcome) => {
    const skipped = new Set(o.report.skipped.map((s) => s.id));
    const failed = new Set([...o.report.failed.values()].map((f) => f.step.id));
    const steps = changesOf(o.plan);
    const name = (id: string) => id.replace(/^config-rm-/, '');
    const removed = steps
      .filter((s) => !failed.has(s.id) && !skipped.has(s.id))
      .map((s) => name(s.id));
    const left = steps.filter((s) => failed.has(s.id) || skipped.has(s.id)).map((s) => name(s.id));
    const checks = report.checks.map((c): DoctorCheck => {
      if (c.id !== 'stale-configs' || !removed.length) return c;
      return left.length
        ? { ...c, detail: `${left.length} not removed: ${left.join(', ')}` }
        : {
            id: c.id,
            title: c.title,
            verdict: 'ok',
            detail: `removed ${removed.length}: ${removed.join(', ')}`,
          };
    });
    return { removed, left, checks, verdict: doctorVerdict(checks) };
  };
  const outcome = await runPipeline(ctx, opts, {
    name: 'doctor --prune',
    plan,
    sessions: new Map([[manager.exec.label, manager]]),
    keepGoing: true,
    preamble: { text: formatReport(report), json: report },
    summary(o) {
      const a = after(o);
      return {
        text: `\n${a.removed.length ? `Removed ${a.removed.length} stale config(s).` : 'No stale config to remove.'}\n${summaryLine({ ...report, checks: a.checks, verdict: a.verdict })}\n`,
        json: {
          removed: a.removed,
          failed: [...o.report.failed.values()].map((f) => ({
            step: f.step.title,
            error: f.error instanceof Error ? f.error.message : String(f.error),
          })),
          verdict: a.verdict,
          checks: a.checks,
        },
      };
    },
  });
  if (outcome.dryRun) {
    if (report.verdict !== 'ok') throw new ExitCode(DOCTOR_EXIT[report.verdict]);
    return;
  }
  const a = after(outcome);
  if (a.left.length) {
    throw new ReportedFailure(
      `${a.left.length} stale config(s) were not removed: ${a.left.join(', ')}.`,
      `cluster-cli doctor --prune${cfgFlag(opts)}`,
    );
  }
  if (a.verdict !== 'ok') throw new ExitCode(DOCTOR_EXIT[a.verdict]);
}

// ---------------------------------------------------------------- output --

function print(ctx: Ctx, opts: DoctorOpts, r: DoctorReport): void {
  ctx.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatReport(r)}\n`);
}

export function formatReport(r: DoctorReport): string {
  const out = [
    formatTable(
      ['CHECK', 'VERDICT', 'DETAIL'],
      r.checks.map((c) => [c.title, c.verdict === 'fail' ? 'FAIL' : c.verdict, c.detail]),
    ),
  ];
  const next = r.checks.filter((c) => c.next);
  if (next.length) out.push('', 'Next:', ...next.map((c) => `  ${c.title}: ${c.next}`));
  out.push('', summaryLine(r));
  return out.join('\n');
}

function summaryLine(r: DoctorReport): string {
  const n = (v: DoctorVerdict) => r.checks.filter((c) => c.verdict === v).length;
  return `${r.cluster ? `${r.cluster}: ` : ''}${r.verdict.toUpperCase()} (${n('fail')} fail, ${n('warn')} warn, ${n('ok')} ok)`;
}
