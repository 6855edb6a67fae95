import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The docker client validates stack files offline: no daemon needed. */
export const DOCKER_CLI = process.env.CLUSTER_CLI_TEST_DOCKER ?? '/usr/local/bin/docker';

export function dockerCliAvailable(): boolean {
  if (!existsSync(DOCKER_CLI)) return false;
  return spawnSync(DOCKER_CLI, ['--version'], { encoding: 'utf8' }).status === 0;
}

export interface StackConfigResult {
  readonly status: number | null;
  /** The normalised stack as `docker stack deploy` would read it (interpolated, sizes in bytes). */
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `docker stack config -c <file>`: validates a stack file exactly as
 * `docker stack deploy` would. `env` is the environment compose interpolation
 * sees; DOCKER_HOST/DOCKER_CONTEXT are dropped so nothing can reach a daemon.
 */
export function dockerStackConfig(
  yaml: string,
  env: Readonly<Record<string, string>> = {},
): StackConfigResult {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-stack-'));
  try {
    const file = join(dir, 'stack.yml');
    writeFileSync(file, yaml);
    const { DOCKER_HOST: _h, DOCKER_CONTEXT: _c, ...base } = process.env;
    const r = spawnSync(DOCKER_CLI, ['stack', 'config', '-c', file], {
      encoding: 'utf8',
      env: { ...base, DOCKER_CONFIG: dir, ...env },
      timeout: 30_000,
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
