import { type Cmd, formatCmd } from './cmd.js';

/** One unit of change on one host. `unchanged` steps are shown, never run. */
export interface Step {
  readonly id: string;
  readonly title: string;
  readonly host: string;
  readonly cmds: readonly Cmd[];
  readonly action: 'change' | 'unchanged';
  /** Why nothing needs doing, for unchanged steps. */
  readonly reason?: string;
}

export interface Plan {
  readonly title: string;
  readonly steps: readonly Step[];
}

export function change(id: string, host: string, title: string, cmds: readonly Cmd[]): Step {
  return { id, host, title, cmds, action: 'change' };
}

export function unchanged(id: string, host: string, title: string, reason: string): Step {
  return { id, host, title, cmds: [], action: 'unchanged', reason };
}

export function changesOf(plan: Plan): Step[] {
  return plan.steps.filter((s) => s.action === 'change');
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
    for (const c of s.cmds) lines.push(`      $ ${formatCmd(c)}`);
  }
  return lines.join('\n');
}

/** The plan as data for --json: argv already redacted, stdin never included. */
export function planToJson(plan: Plan) {
  return {
    title: plan.title,
    steps: plan.steps.map((s) => ({
      id: s.id,
      host: s.host,
      title: s.title,
      action: s.action,
      ...(s.reason ? { reason: s.reason } : {}),
      commands: s.cmds.map(formatCmd),
    })),
  };
}
