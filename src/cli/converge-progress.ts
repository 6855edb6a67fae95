import { type ServiceState, type WaitOptions, waitForConvergence } from '../cluster/converge.js';
import type { Executor } from '../remote/executor.js';
import { type ProgressMode, runWithProgress } from '../ui/progress.js';
import type { Output } from './context.js';

/** Wait for convergence behind a progress line: `3/4 services running: platform_app 0/1`. */
export async function converge(
  exec: Executor,
  out: Output,
  mode: ProgressMode,
  o: WaitOptions,
): Promise<ServiceState[]> {
  let result: ServiceState[] = [];
  await runWithProgress(out, mode, [
    {
      title: `Wait for ${o.services.length} services to run`,
      run: async (report) => {
        result = await waitForConvergence(exec, {
          ...o,
          onUpdate: (states) => {
            const ready = o.services.filter((n) =>
              states.some((s) => s.name === n && s.desired > 0 && s.running === s.desired),
            );
            const waiting = states.filter(
              (s) => o.services.includes(s.name) && s.running !== s.desired,
            );
            report(
              `${ready.length}/${o.services.length} services running${waiting.length ? `: waiting for ${waiting.map((s) => `${s.name} ${s.running}/${s.desired}`).join(', ')}` : ''}`,
            );
          },
        });
      },
    },
  ]);
  return result;
}
