import { UserError } from '../core/errors.js';
import { servicePs, stackServices } from '../docker/commands.js';
import type { Executor } from '../remote/executor.js';
import { parseJsonLines } from './parse.js';

export interface ServiceState {
  readonly name: string;
  readonly running: number;
  readonly desired: number;
}

export interface TaskProblem {
  readonly service: string;
  readonly task: string;
  readonly node: string;
  readonly state: string;
  readonly error: string;
}

/** `1/1`, `0/1 (max 1 per node)` → numbers. */
export function parseReplicas(text: string): { running: number; desired: number } {
  const m = /^(\d+)\/(\d+)/.exec(text.trim());
  return m ? { running: Number(m[1]), desired: Number(m[2]) } : { running: 0, desired: 0 };
}

export function isConverged(states: readonly ServiceState[], expected: readonly string[]): boolean {
  return expected.every((name) => {
    const s = states.find((x) => x.name === name);
    return s !== undefined && s.desired > 0 && s.running === s.desired;
  });
}

export async function readServiceStates(exec: Executor, stack: string): Promise<ServiceState[]> {
  const rows = parseJsonLines<{ Name: string; Replicas: string }>(
    (await exec.run(stackServices(stack))).stdout,
  );
  return rows.map((r) => ({ name: r.Name, ...parseReplicas(r.Replicas) }));
}

/** The latest tasks of a service that are not running, with Docker's error text. */
export async function readTaskProblems(exec: Executor, service: string): Promise<TaskProblem[]> {
  const r = await exec.run(servicePs(service), { allowFailure: true });
  if (r.exitCode !== 0)
    return [{ service, task: '-', node: '-', state: 'missing', error: r.stderr.trim() }];
  const tasks = parseJsonLines<{
    Name: string;
    Node: string;
    CurrentState: string;
    DesiredState: string;
    Error: string;
  }>(r.stdout);
  return tasks
    .filter((t) => !t.CurrentState.startsWith('Running') || t.Error)
    .slice(0, 3)
    .map((t) => ({
      service,
      task: t.Name,
      node: t.Node || '-',
      state: t.CurrentState,
      error: t.Error || '(no error reported)',
    }));
}

export interface WaitOptions {
  readonly stack: string;
  readonly services: readonly string[];
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  readonly onUpdate?: (states: readonly ServiceState[]) => void;
}

/**
 * Poll until every service has its desired replicas running (healthchecks
 * included: Swarm counts a task only once it is healthy). On timeout, throw an
 * error listing each failing task's own error.
 */
export async function waitForConvergence(exec: Executor, o: WaitOptions): Promise<ServiceState[]> {
  const deadline = Date.now() + o.timeoutMs;
  const interval = o.intervalMs ?? 2000;
  for (;;) {
    const states = await readServiceStates(exec, o.stack);
    o.onUpdate?.(states);
    if (isConverged(states, o.services)) return states;
    if (Date.now() > deadline) {
      const lagging = o.services.filter((name) => !isConverged(states, [name]));
      const problems = (await Promise.all(lagging.map((s) => readTaskProblems(exec, s)))).flat();
      throw new ConvergenceError(lagging, problems, o.timeoutMs);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

export class ConvergenceError extends UserError {
  constructor(
    readonly services: readonly string[],
    readonly problems: readonly TaskProblem[],
    timeoutMs: number,
  ) {
    super(
      [
        `Not every service was running after ${Math.round(timeoutMs / 1000)}s: ${services.join(', ')}`,
        ...problems.map((p) => `  ${p.task} on ${p.node}: ${p.state}: ${p.error}`),
      ].join('\n'),
      `inspect with: docker service ps --no-trunc ${services[0] ?? ''}; fix the cause, then run the same command again`,
      1,
    );
  }
}
