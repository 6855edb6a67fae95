import type { Executor } from '../remote/executor.js';
import { changesOf, type Plan, type Step } from './plan.js';

export interface ApplyHooks {
  onStepStart?(step: Step): void;
  onStepDone?(step: Step, ms: number): void;
}

export interface StepTiming {
  readonly id: string;
  readonly title: string;
  readonly ms: number;
}

/**
 * The one place write steps run. Steps run in order; the first failure stops the
 * run (the CommandError names host, redacted argv, exit code, stderr tail). Safe
 * to re-run: planners only emit steps for what the probes found missing.
 */
export async function apply(
  plan: Plan,
  executors: ReadonlyMap<string, Executor>,
  hooks: ApplyHooks = {},
): Promise<StepTiming[]> {
  const timings: StepTiming[] = [];
  for (const step of changesOf(plan)) {
    const exec = executors.get(step.host);
    if (!exec) throw new Error(`no executor for host ${step.host}`);
    hooks.onStepStart?.(step);
    const t0 = performance.now();
    for (const c of step.cmds) await exec.run(c);
    const ms = performance.now() - t0;
    timings.push({ id: step.id, title: step.title, ms });
    hooks.onStepDone?.(step, ms);
  }
  return timings;
}
