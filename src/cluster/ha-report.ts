import { formatCmd } from '../core/cmd.js';
import type { DoctorVerdict } from './doctor.js';
import {
  DEADMAN_MARGIN_S,
  deadManStart,
  deadManStop,
  deleteRule,
  type HaRule,
  isolateCmds,
} from './ha-isolate.js';
import type { LoadStats } from './ha-load.js';
import type { HaCheckId, HaPlan, HaSettings } from './ha-plan.js';

/**
 * What `doctor --ha` prints and writes, pure: the plan before anything is
 * touched, and the report after (Markdown for the file, the same data for
 * --json).
 */

export interface HaCheckResult {
  readonly id: HaCheckId;
  readonly title: string;
  readonly verdict: DoctorVerdict;
  /** One line with the measured numbers. */
  readonly detail: string;
  /** The command (or advice) when not ok. */
  readonly next?: string;
  /** What was done, in order, each with its time since the check started. */
  readonly steps: readonly string[];
  /** What was put back (rules removed, dead-man switch stopped, node Ready again). */
  readonly restored: readonly string[];
  /** The measured numbers, for scripts. */
  readonly numbers: Readonly<Record<string, number | string | boolean>>;
  readonly load?: LoadStats;
  readonly seconds?: number;
}

export interface HaReport {
  readonly cluster: string;
  readonly config: string;
  /** ISO time the checks started. */
  readonly date: string;
  /** The manager cluster-cli talked to. */
  readonly manager: string;
  readonly settings: HaSettings;
  readonly verdict: DoctorVerdict;
  readonly checks: readonly HaCheckResult[];
  /** cluster-cli-ha rules an earlier, interrupted run left, removed before the checks. */
  readonly leftovers: readonly { readonly node: string; readonly rules: number }[];
  /** Set when SIGINT/SIGTERM ended the run. */
  readonly interrupted?: string;
  /** Nodes cluster-cli could not restore (their dead-man switch heals them). */
  readonly unrestored?: readonly {
    readonly node: string;
    readonly error: string;
    readonly healsBy: string;
  }[];
}

export function haVerdict(checks: readonly Pick<HaCheckResult, 'verdict'>[]): DoctorVerdict {
  if (checks.some((c) => c.verdict === 'fail')) return 'fail';
  return checks.some((c) => c.verdict === 'warn') ? 'warn' : 'ok';
}

/** `12.3 s` */
export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function percent(rate: number): string {
  return `${(Math.floor(rate * 1000) / 10).toFixed(1)} %`;
}

/** One line of load numbers. */
export function loadLine(s: LoadStats): string {
  const errors = Object.entries(s.errors)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v}× ${k}`)
    .join(', ');
  return `${s.successes}/${s.requests} requests ok (${percent(s.successRate)}) at ${s.rate.toFixed(1)} req/s over ${secs(s.windowMs)}, worst gap ${secs(s.worstGapMs)}${s.notSent ? `, ${s.notSent} not sent (4 in flight)` : ''}${errors ? `; failures: ${errors}` : ''}`;
}

/** The commands that take a node out and put it back, as the plan prints them. */
export function isolationCommands(rules: readonly HaRule[], deadManSeconds: number): string[] {
  return [
    `$ ${formatCmd(deadManStart(rules, deadManSeconds))}`.replace(/\n/g, '\n    '),
    ...isolateCmds(rules).map((c) => `$ ${formatCmd(c)}`),
    '# restore: each until it fails, then stop the dead-man switch',
    ...rules.map((r) => `$ ${formatCmd(deleteRule(r))}`),
    `$ ${formatCmd(deadManStop())}`.replace(/\n/g, '\n    '),
  ];
}

export interface PlanPreamble {
  readonly manager: string;
  readonly leftovers: readonly { readonly node: string; readonly rules: number }[];
  /** Show the full commands (the dead-man scripts are long). */
  readonly commands?: boolean;
}

export function renderHaPlan(plan: HaPlan, p: PlanPreamble): string {
  const s = plan.settings;
  const out = [
    `doctor --ha on ${plan.cluster} (through ${p.manager}): nodes are taken out by dropping their incoming traffic in iptables' raw table (SSH stays open); down ${s.downSeconds} s, recovery bound ${s.rescheduleTimeout} s, load ${s.rps} req/s.`,
  ];
  if (p.leftovers.length) {
    out.push(
      '',
      `Leftovers of an interrupted run, removed first: ${p.leftovers.map((l) => `${l.node} (${l.rules} rule${l.rules === 1 ? '' : 's'})`).join(', ')}`,
    );
  }
  out.push('');
  plan.checks.forEach((c, i) => {
    const head = `${i + 1}. ${c.title}`;
    if (c.skip) {
      out.push(`${head}: SKIPPED (warn): ${c.skip.reason}`);
      if (c.skip.next) out.push(`     next: ${c.skip.next}`);
      return;
    }
    out.push(`${head}: ${c.does}`);
    if (c.nodes.length)
      out.push(
        `     takes out: ${c.nodes.join(', ')} (${c.nodes.length === 1 ? 'its' : "each one's"} dead-man switch puts it back ${c.boundSeconds + DEADMAN_MARGIN_S} s after it goes out, should cluster-cli not)`,
      );
    if (c.load) {
      out.push(
        `     load: ${c.load.rps} req/s, at most ${c.load.maxInFlight} in flight, to ${c.load.targets.join(', ')} port ${c.load.port} (SNI/Host ${c.load.host}), about ${c.load.estimatedSeconds} s, at most ${c.load.maxSeconds} s`,
      );
    }
    for (const x of c.notTaken ?? []) out.push(`     not taken out: ${x.node} (${x.why})`);
  });
  if (p.commands) {
    for (const [node, rules] of Object.entries(plan.isolation)) {
      out.push(
        '',
        `[${node}]`,
        ...isolationCommands(rules, plan.deadMan[node] ?? 60).map((l) => `  ${l}`),
      );
    }
  }
  return out.join('\n');
}

export function planJson(plan: HaPlan, p: PlanPreamble) {
  return {
    cluster: plan.cluster,
    manager: p.manager,
    settings: plan.settings,
    leftovers: p.leftovers,
    checks: plan.checks,
    isolation: Object.fromEntries(
      Object.entries(plan.isolation).map(([node, rules]) => [
        node,
        {
          deadManSeconds: plan.deadMan[node],
          commands: isolationCommands(rules, plan.deadMan[node] ?? 60).filter((l) =>
            l.startsWith('$'),
          ),
        },
      ]),
    ),
  };
}

/** The summary printed at the end: one row per check. */
export function renderHaSummary(r: HaReport): string {
  const rows = r.checks.map(
    (c) => `  ${c.verdict === 'fail' ? 'FAIL' : c.verdict.padEnd(4)}  ${c.title}: ${c.detail}`,
  );
  const next = r.checks.filter((c) => c.next).map((c) => `  ${c.title}: ${c.next}`);
  const n = (v: DoctorVerdict) => r.checks.filter((c) => c.verdict === v).length;
  return [
    ...rows,
    ...(next.length ? ['', 'Next:', ...next] : []),
    ...(r.unrestored?.length
      ? [
          '',
          ...r.unrestored.map(
            (u) =>
              `NOT RESTORED: ${u.node}: ${u.error}; its dead-man switch removes the rules by ${u.healsBy}`,
          ),
        ]
      : []),
    '',
    `${r.cluster}: ${r.verdict.toUpperCase()} (${n('fail')} fail, ${n('warn')} warn, ${n('ok')} ok)${r.interrupted ? `, interrupted by ${r.interrupted}` : ''}`,
  ].join('\n');
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|');

/** The report file. */
export function renderHaMarkdown(r: HaReport): string {
  const s = r.settings;
  const out = [
    `# HA validation: ${r.cluster}`,
    '',
    `- Date: ${r.date}`,
    `- Cluster file: ${r.config}`,
    `- Through manager: ${r.manager}`,
    `- Settings: down ${s.downSeconds} s, recovery bound ${s.rescheduleTimeout} s, load ${s.rps} req/s`,
    `- Verdict: **${r.verdict.toUpperCase()}**`,
  ];
  if (r.interrupted) out.push(`- Interrupted by ${r.interrupted}: the checks after it did not run`);
  if (r.leftovers.length) {
    out.push(
      `- Leftovers of an interrupted earlier run, removed first: ${r.leftovers.map((l) => `${l.node} (${l.rules} rules)`).join(', ')}`,
    );
  }
  out.push(
    '',
    '| Check | Verdict | Detail |',
    '| --- | --- | --- |',
    ...r.checks.map(
      (c) =>
        `| ${c.title} | ${c.verdict === 'fail' ? '**FAIL**' : c.verdict} | ${mdEscape(c.detail)} |`,
    ),
  );
  for (const c of r.checks) {
    out.push('', `## ${c.title}: ${c.verdict.toUpperCase()}`, '', c.detail);
    if (c.next) out.push('', `Next: \`${c.next}\``);
    if (c.steps.length) out.push('', 'What was done:', '', ...c.steps.map((x) => `- ${x}`));
    const numbers = Object.entries(c.numbers);
    if (numbers.length) out.push('', 'Numbers:', '', ...numbers.map(([k, v]) => `- ${k}: ${v}`));
    if (c.load) out.push('', `Load: ${loadLine(c.load)}`);
    if (c.restored.length) out.push('', 'Restored:', '', ...c.restored.map((x) => `- ${x}`));
  }
  if (r.unrestored?.length) {
    out.push(
      '',
      '## Not restored',
      '',
      ...r.unrestored.map(
        (u) => `- ${u.node}: ${u.error}; its dead-man switch removes the rules by ${u.healsBy}`,
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

/** `doctor-ha-<cluster>-<UTC timestamp>.md` */
export function reportFileName(cluster: string, date: Date): string {
  const t = date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `doctor-ha-${cluster}-${t}.md`;
}
