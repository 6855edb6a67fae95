import { type ApplyReport, apply } from '../core/apply.js';
import type { CopyImages } from '../core/copy.js';
import { UserError } from '../core/errors.js';
import { changesOf, formatPlan, type Plan, planToJson } from '../core/plan.js';
import type { HostSession } from '../core/session.js';
import { type ProgressMode, runWithProgress } from '../ui/progress.js';
import { confirmOrFail } from './ask.js';
import type { Ctx } from './context.js';

/** The flags every command that changes hosts takes. */
export interface PipelineFlags {
  readonly dryRun?: boolean;
  readonly yes?: boolean;
  readonly json?: boolean;
}

export interface Outcome {
  readonly plan: Plan;
  readonly report: ApplyReport;
  /** What converge() returned (e.g. service states). */
  readonly converged?: unknown;
  readonly dryRun: boolean;
}

/**
 * What a command supplies; the pipeline tells the story: print the plan (or
 * JSON) → stop on --dry-run → confirm (--yes) → apply on every host (waves in
 * parallel) → converge → save → summary.
 */
export interface Operation {
  /** `init`, `node join`: names the command in prompts and errors. */
  readonly name: string;
  readonly plan: Plan;
  readonly sessions: ReadonlyMap<string, HostSession>;
  /** Printed before the plan (e.g. preflight tables); also in --json as `preflight`. */
  readonly preamble?: { readonly text: string; readonly json: unknown };
  /** A failed host stops only its own steps; the summary reports it. */
  readonly keepGoing?: boolean;
  /** At most this many hosts of a wave at once (default: all). */
  readonly maxParallel?: number;
  /**
   * Runs the plan's CopyImages actions (apply's `copy`); `status` replaces the
   * progress line (e.g. bytes sent so far).
   */
  copy?(
    action: CopyImages,
    from: HostSession,
    to: HostSession,
    status: (text: string) => void,
  ): Promise<void>;
  /** Runs after the confirmation, right before the first change (e.g. note the daemon's clock). */
  beforeApply?(): Promise<void>;
  /** Runs after apply (also when nothing changed): wait until the new revision runs. */
  converge?(mode: ProgressMode, report: ApplyReport): Promise<unknown>;
  /**
   * Record the result in cluster.yaml. After apply (also when converge fails)
   * with its report; with undefined when apply itself stopped on an error, so
   * a command that cannot tell which steps ran records only what is safe.
   */
  save?(report: ApplyReport | undefined): Promise<void>;
  /** Text and JSON of the end report. */
  summary(o: Outcome): { readonly text: string; readonly json: unknown };
}

export function progressMode(ctx: Pick<Ctx, 'tty'>, json: boolean | undefined): ProgressMode {
  return json ? 'silent' : ctx.tty ? 'tty' : 'plain';
}

/**
 * The shared runner for every command that changes hosts. Returns the outcome
 * (a command whose hosts partly failed throws after this, with its report
 * already printed); errors are thrown as usual.
 */
export async function runPipeline(ctx: Ctx, flags: PipelineFlags, op: Operation): Promise<Outcome> {
  const out = (s: string) => {
    if (!flags.json) ctx.stdout.write(s);
  };
  const changes = changesOf(op.plan);
  if (op.preamble) out(`${op.preamble.text}\n\n`);

  if (flags.dryRun) {
    if (flags.json) {
      ctx.stdout.write(
        `${JSON.stringify({ dryRun: true, ...(op.preamble ? { preflight: op.preamble.json } : {}), plan: planToJson(op.plan) }, null, 2)}\n`,
      );
    } else {
      out(
        `${formatPlan(op.plan)}\n\nDry run: nothing was changed${changes.length ? '' : ' (and nothing would be)'}.\n`,
      );
    }
    return { plan: op.plan, report: EMPTY_REPORT, dryRun: true };
  }

  out(`${formatPlan(op.plan)}\n\n`);
  if (changes.length) {
    const hosts = [...new Set(changes.map((s) => s.host))];
    const where = hosts.length === 1 ? hosts[0] : `${hosts.length} hosts`;
    await confirmOrFail(ctx, {
      yes: Boolean(flags.yes),
      what: `${op.name} would make ${changes.length} change(s) on ${where}`,
      message: `Apply ${changes.length} change(s) to ${where}?`,
    });
  }

  const mode = progressMode(ctx, flags.json);
  const copy = op.copy?.bind(op);
  let report: ApplyReport = EMPTY_REPORT;
  let applied = false;
  await op.beforeApply?.();
  try {
    if (changes.length) {
      await runWithProgress(ctx.stdout, mode, [
        {
          title: `Apply ${changes.length} change(s)`,
          run: async (status) => {
            report = await apply(
              op.plan,
              op.sessions,
              {
                onStepStart: (s) => status(`[${s.host}] ${s.title}`),
                onStepDone: (s, ms) =>
                  status(`[${s.host}] ${s.title}: done in ${(ms / 1000).toFixed(1)}s`),
                onStepFailed: (s, e) => status(`[${s.host}] FAILED: ${s.title}: ${firstLine(e)}`),
                onStepProgress: (s, line) => status(`[${s.host}] ${s.title}: ${line}`),
              },
              {
                keepGoing: Boolean(op.keepGoing),
                ...(op.maxParallel ? { maxParallel: op.maxParallel } : {}),
                ...(copy ? { copy: (a, from, to) => copy(a, from, to, status) } : {}),
              },
            );
          },
        },
      ]);
    }
    applied = true;
  } catch (err) {
    // Some steps may have run: record what the command knows (e.g. init's
    // answers), then fail with apply's own error.
    await op.save?.(undefined);
    throw err;
  }

  let converged: unknown;
  try {
    if (op.converge) converged = await op.converge(mode, report);
  } finally {
    // Hosts have changed: the file must say so even when convergence failed.
    if (applied) await op.save?.(report);
  }
  const outcome: Outcome = { plan: op.plan, report, converged, dryRun: false };
  const s = op.summary(outcome);
  if (flags.json) ctx.stdout.write(`${JSON.stringify(s.json, null, 2)}\n`);
  else out(s.text);
  return outcome;
}

const EMPTY_REPORT: ApplyReport = { timings: [], failed: new Map(), skipped: [], waveMs: {} };

/** An error's first line, for one-line progress and summaries. */
export function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** Close every session, whatever happened. */
export async function closeAll(sessions: Iterable<HostSession>): Promise<void> {
  await Promise.allSettled([...sessions].map((s) => s.close()));
}

/** A command's non-zero end after it printed its own report (no extra error line). */
export class ReportedFailure extends UserError {
  constructor(message: string, next?: string) {
    super(message, next, 1);
  }
}
