import type { DockerApi } from './api.js';
import type { Executor } from './executor.js';

/**
 * Everything a command holds for one host during a run: its executor (one
 * SSH connection, or this machine) and, opened on first use over that same
 * executor, its Docker Engine API.
 */
export interface HostSession {
  readonly exec: Executor;
  docker(): DockerApi;
  close(): Promise<void>;
}

/** A session whose Docker API comes from `openApi` (injected: core knows no transport). */
export function hostSession(exec: Executor, openApi: (exec: Executor) => DockerApi): HostSession {
  let api: DockerApi | undefined;
  return {
    exec,
    docker() {
      api ??= openApi(exec);
      return api;
    },
    async close() {
      await api?.close();
      await exec.close();
    },
  };
}
