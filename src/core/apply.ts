import { isApiRequest } from './api.js';
import { type CopyImagesFn, isCopyImages } from './copy.js';
import type { Plan, Step } from './plan.js';
import type { HostSession } from './session.js';

export interface ApplyHooks {
  onStepStart?(step: Step): void;
  onStepDone?(step: Step, ms: number): void;
  onStepFailed?(step: Step, err: unknown): void;
  /** A progress line from a running command of the step (Cmd.progress). */
  onStepProgress?(step: Step, line: string): void;
}

export interface StepTiming {
  readonly id: string;
  readonly host: string;
  readonly title: string;
  readonly ms: number;
}

export interface ApplyReport {
  readonly timings: StepTiming[];
  /** Hosts whose step failed (keepGoing), with the error; their later steps were skipped. */
  readonly failed: ReadonlyMap<string, { readonly step: Step; readonly error: unknown }>;
  /** Steps not run because their host (or the host they are about) had failed. */
  readonly skipped: Step[];
  /** Wall time of each wave (its steps ran at once). */
  readonly waveMs: Record<string, number>;
}

export interface ApplyOptions {
  /** A failed host stops only its own steps (and those about it); the others go on. */
  readonly keepGoing?: boolean;
  /** At most this many host chains of a wave run at once (default: all of them). */
  readonly maxParallel?: number;
  /** Runs the plan's CopyImages actions (core has no streams); required when the plan has any. */
  readonly copy?: CopyImagesFn;
}

/**
 * The one place write steps run. Steps run in order, except that consecutive
 * steps sharing a `wave` run at once, one chain per host (at most
 * `maxParallel` chains at a time; the next starts when one ends). Without keepGoing
 * the first failure stops the run (its CommandError names host, argv, exit
 * code and stderr tail). Safe to re-run: planners only emit steps for what the
 * probes found missing.
 */
export async function apply(
  plan: Plan,
  sessions: ReadonlyMap<string, HostSession>,
  hooks: ApplyHooks = {},
  opts: ApplyOptions = {},
): Promise<ApplyReport> {
  const timings: StepTiming[] = [];
  const failed = new Map<string, { step: Step; error: unknown }>();
  const skipped: Step[] = [];
  const waveMs: Record<string, number> = {};
  const changes = plan.steps.filter((s) => s.action === 'change');
  const maxParallel = opts.maxParallel ?? Number.POSITIVE_INFINITY;
  if (!(maxParallel >= 1))
    throw new RangeError(`maxParallel must be at least 1, not ${maxParallel}`);
  // Everything a step needs is checked before the first one runs.
  for (const s of changes) {
    if (!sessions.has(s.host)) throw new Error(`no session for host ${s.host}`);
    for (const a of s.cmds) {
      if (!isCopyImages(a)) continue;
      if (!opts.copy) throw new Error(`step ${s.id} copies images, but apply() was given no copy`);
      if (!sessions.has(a.from))
        throw new Error(`no session for host ${a.from} (source of ${s.id})`);
    }
  }

  const runOne = async (step: Step): Promise<void> => {
    if (failed.has(step.host) || (step.about !== undefined && failed.has(step.about))) {
      skipped.push(step);
      return;
    }
    const session = sessions.get(step.host) as HostSession;
    hooks.onStepStart?.(step);
    const t0 = performance.now();
    try {
      for (const a of step.cmds) {
        if (isApiRequest(a)) await session.docker().request(a);
        else if (isCopyImages(a))
          await opts.copy?.(a, sessions.get(a.from) as HostSession, session);
        else
          await session.exec.run(a, {
            ...(a.timeoutMs ? { timeoutMs: a.timeoutMs } : {}),
            ...(a.progress && hooks.onStepProgress
              ? { onStderrLine: (line: string) => hooks.onStepProgress?.(step, line) }
              : {}),
          });
      }
    } catch (error) {
      hooks.onStepFailed?.(step, error);
      if (!opts.keepGoing) throw error;
      failed.set(step.about ?? step.host, { step, error });
      return;
    }
    const ms = performance.now() - t0;
    timings.push({ id: step.id, host: step.host, title: step.title, ms });
    hooks.onStepDone?.(step, ms);
  };

  for (let i = 0; i < changes.length; ) {
    const wave = changes[i]?.wave;
    let j = i + 1;
    if (wave !== undefined) while (j < changes.length && changes[j]?.wave === wave) j++;
    const group = changes.slice(i, j);
    i = j;
    // One chain per host, the chains at once.
    const chains = new Map<string, Step[]>();
    for (const s of group) {
      const key = s.about ?? s.host;
      chains.set(key, [...(chains.get(key) ?? []), s]);
    }
    const w0 = performance.now();
    const errors = await eachLimited([...chains.values()], maxParallel, async (chain) => {
      for (const s of chain) await runOne(s);
    });
    if (wave !== undefined) waveMs[wave] = (waveMs[wave] ?? 0) + performance.now() - w0;
    if (errors.length) throw errors[0];
  }
  return { timings, failed, skipped, waveMs };
}

/**
 * fn over items, at most `limit` at once, each started as soon as a slot is
 * free. Returns the errors in the order they happened; after the first one no
 * further item is started (the ones running are let finish).
 */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<unknown[]> {
  const errors: unknown[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length && errors.length === 0) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return errors;
}
