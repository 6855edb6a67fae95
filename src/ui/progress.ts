import type { Output } from './output.js';

export interface ProgressTask {
  readonly title: string;
  /** `report` updates the task's one-line status (e.g. `2/4 services running`). */
  run(report: (status: string) => void): Promise<void>;
}

export type ProgressMode = 'tty' | 'plain' | 'silent';

/**
 * Runs tasks in order with a progress display: listr2's live renderer on a TTY,
 * one line per event otherwise (logs, CI), nothing with --json.
 */
export async function runWithProgress(
  out: Output,
  mode: ProgressMode,
  tasks: readonly ProgressTask[],
): Promise<void> {
  if (mode === 'tty') return runListr(tasks);
  for (const t of tasks) {
    const t0 = performance.now();
    let last = '';
    if (mode === 'plain') out.write(`... ${t.title}\n`);
    await t.run((status) => {
      if (mode === 'plain' && status !== last) out.write(`    ${status}\n`);
      last = status;
    });
    if (mode === 'plain')
      out.write(`ok  ${t.title} (${((performance.now() - t0) / 1000).toFixed(1)}s)\n`);
  }
}

async function runListr(tasks: readonly ProgressTask[]): Promise<void> {
  const { Listr } = await import('listr2');
  const list = new Listr(
    tasks.map((t) => ({
      title: t.title,
      task: async (_ctx: unknown, task: { output: string; title: string }) => {
        const t0 = performance.now();
        await t.run((status) => {
          task.output = status;
        });
        task.title = `${t.title} (${((performance.now() - t0) / 1000).toFixed(1)}s)`;
      },
    })),
    { concurrent: false, exitOnError: true, rendererOptions: { collapseErrors: false } },
  );
  await list.run();
}
