import { type ApiRequest, formatApiRequest, isApiRequest } from './api.js';
import { type Cmd, formatCmd } from './cmd.js';
import { type CopyImages, formatCopyImages, isCopyImages } from './copy.js';

/**
 * What a step does: a command on the host, a Docker Engine API call to it, or
 * images streamed to it from another host.
 */
export type Action = Cmd | ApiRequest | CopyImages;

/** One unit of change on one host. `unchanged` steps are shown, never run. */
export interface Step {
  readonly id: string;
  readonly title: string;
  /** Where the step runs (an executor label). */
  readonly host: string;
  readonly cmds: readonly Action[];
  readonly action: 'change' | 'unchanged';
  /** Why nothing needs doing, for unchanged steps. */
  readonly reason?: string;
  /**
   * Consecutive steps with the same wave run at once, one chain per host
   * (each host's steps still in order): e.g. joining four nodes in parallel.
   */
  readonly wave?: string;
  /** The host this step is about when it runs elsewhere (a label set on a manager for a new node): skipped when that host failed. */
  readonly about?: string;
}

export interface Plan {
  readonly title: string;
  readonly steps: readonly Step[];
}

export function change(
  id: string,
  host: string,
  title: string,
  cmds: readonly Action[],
  extra: Pick<Step, 'wave' | 'about'> = {},
): Step {
  return { id, host, title, cmds, action: 'change', ...extra };
}

export function unchanged(
  id: string,
  host: string,
  title: string,
  reason: string,
  extra: Pick<Step, 'wave' | 'about'> = {},
): Step {
  return { id, host, title, cmds: [], action: 'unchanged', reason, ...extra };
}

export function changesOf(plan: Plan): Step[] {
  return plan.steps.filter((s) => s.action === 'change');
}

export function formatAction(a: Action): string {
  if (isApiRequest(a)) return formatApiRequest(a);
  return isCopyImages(a) ? formatCopyImages(a) : formatCmd(a);
}

/** Plain-text plan: `+` will change, `=` already as wanted; each command redacted and quoted. */
export function formatPlan(plan: Plan): string {
  const changes = changesOf(plan).length;
  const lines = [`${plan.title}: ${changes} to change, ${plan.steps.length - changes} unchanged`];
  for (const s of plan.steps) {
    if (s.action === 'unchanged') {
      lines.push(`  = [${s.host}] ${s.title} (${s.reason})`);
      continue;
    }
    lines.push(`  + [${s.host}] ${s.title}`);
    for (const c of s.cmds) lines.push(`      $ ${formatAction(c)}`);
  }
  return lines.join('\n');
}

/** The plan as data for --json: secrets already redacted, stdin never included. */
export function planToJson(plan: Plan) {
  return {
    title: plan.title,
    steps: plan.steps.map((s) => ({
      id: s.id,
      host: s.host,
      title: s.title,
      action: s.action,
      ...(s.reason ? { reason: s.reason } : {}),
      commands: s.cmds.map(formatAction),
    })),
  };
}
