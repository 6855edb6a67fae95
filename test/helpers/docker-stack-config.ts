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

/**
 * Debian 12's docker.io client (20.10, the lab's and `scripts/test`'s): it
 * has no `stack config`, but see `dockerStackLoad`.
 */
export const DOCKER_CLI_20_10 = process.env.CLUSTER_CLI_TEST_DOCKER_20_10 ?? '/usr/bin/docker';

export function docker2010Available(): boolean {
  if (!existsSync(DOCKER_CLI_20_10)) return false;
  const r = spawnSync(DOCKER_CLI_20_10, ['--version'], { encoding: 'utf8' });
  return r.status === 0 && /^Docker version 20\.10\./.test(r.stdout);
}

export interface StackLoadResult {
  /** The client read and validated the file and went on to contact the daemon. */
  readonly loaded: boolean;
  /** What it printed besides the failed connection (a schema error, "Ignoring unsupported options: …"). */
  readonly messages: string;
}

/**
 * `docker stack deploy -c <file>` against an address where no daemon
 * listens: the client loads and validates the file (schema, unsupported
 * options) before it contacts the daemon, so a file it accepts fails only at
 * the connection. For clients without `docker stack config` (20.10).
 */
export function dockerStackLoad(yaml: string, cli = DOCKER_CLI_20_10): StackLoadResult {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-stack-'));
  try {
    const file = join(dir, 'stack.yml');
    writeFileSync(file, yaml);
    const { DOCKER_HOST: _h, DOCKER_CONTEXT: _c, ...base } = process.env;
    const r = spawnSync(cli, ['stack', 'deploy', '-c', file, 'loadcheck'], {
      encoding: 'utf8',
      env: { ...base, DOCKER_CONFIG: dir, DOCKER_HOST: `unix://${join(dir, 'no-daemon.sock')}` },
      timeout: 30_000,
    });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const refused = /Cannot connect to the Docker daemon at unix:\/\/.*no-daemon\.sock/;
    return {
      loaded: refused.test(out),
      messages: out
        .split('\n')
        .filter((l) => l.trim() !== '' && !refused.test(l))
        .join('\n'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
