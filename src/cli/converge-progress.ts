import { type ServiceState, type WaitOptions, waitForConvergence } from '../cluster/converge.js';
import type { DockerApi } from '../core/api.js';
import type { Output } from '../ui/output.js';
import { type ProgressMode, runWithProgress } from '../ui/progress.js';

/** Wait for convergence behind a progress line: `3/4 services running: platform_app 0/1`. */
export async function converge(
  api: DockerApi,
  out: Output,
  mode: ProgressMode,
  o: WaitOptions,
): Promise<ServiceState[]> {
  let result: ServiceState[] = [];
  await runWithProgress(out, mode, [
    {
      title: `Wait for ${o.services.length} services to run their new revision`,
      run: async (report) => {
        result = await waitForConvergence(api, {
          ...o,
          onNotice: (line) => {
            o.onNotice?.(line);
            report(line);
          },
          onUpdate: (states) => {
            const ready = o.services.filter((n) =>
              states.some((s) => s.name === n && s.desired > 0 && s.running === s.desired),
            );
            const waiting = states.filter(
              (s) => o.services.includes(s.name) && (s.running !== s.desired || s.update),
            );
            report(
              `${ready.length}/${o.services.length} services running${waiting.length ? `: waiting for ${waiting.map((s) => `${s.name} ${s.running}/${s.desired}${s.update ? ` (${s.update})` : ''}`).join(', ')}` : ''}`,
            );
          },
        });
      },
    },
  ]);
  return result;
}
