import type { DockerApi } from '../core/api.js';
import { apiRequest } from '../core/api.js';
import { type Cmd, cmd } from '../core/cmd.js';
import { UserError } from '../core/errors.js';

/**
 * How the CLI reaches the platform PostgreSQL without publishing its port:
 * on the node that runs the postgres task, a throwaway container joins that
 * task's network namespace and relays stdin/stdout to 127.0.0.1:5432 (the
 * deploy's check image has `nc`); the password is read from the task's own
 * secret file. Both over the node's SSH connection: nothing secret in argv.
 */
export interface PostgresTask {
  readonly service: string;
  readonly nodeId: string;
  readonly hostname: string;
  readonly containerId: string;
}

interface TaskJson {
  NodeID: string;
  Status: { State: string; ContainerStatus?: { ContainerID?: string } };
  DesiredState: string;
}

/** The running task of `<stack>_postgres` and its node, from a manager's API. */
export async function findPostgresTask(api: DockerApi, stack: string): Promise<PostgresTask> {
  const service = `${stack}_postgres`;
  const tasks = await api.request<TaskJson[]>(
    apiRequest('GET', '/tasks', {
      query: { filters: JSON.stringify({ service: [service], 'desired-state': ['running'] }) },
      readOnly: true,
    }),
  );
  const running = tasks.find(
    (t) => t.Status.State === 'running' && t.Status.ContainerStatus?.ContainerID,
  );
  if (!running) {
    throw new UserError(
      `${service} has no running task: the database is down or still starting.`,
      `see why on a manager: docker service ps --no-trunc ${service}`,
    );
  }
  const node = await api.request<{ Description: { Hostname: string } }>(
    apiRequest('GET', `/nodes/${running.NodeID}`, { readOnly: true }),
  );
  return {
    service,
    nodeId: running.NodeID,
    hostname: node.Description.Hostname,
    containerId: running.Status.ContainerStatus?.ContainerID as string,
  };
}

/** The value of one of the container's Docker secrets, on stdout (never an argument). */
export const readContainerSecret = (containerId: string, file: string): Cmd =>
  cmd(['docker', 'exec', containerId, 'cat', `/run/secrets/${file}`]);

/** A relay from stdin/stdout to PostgreSQL inside the task's network namespace. */
export const postgresRelay = (containerId: string, image: string): Cmd =>
  cmd([
    'docker',
    'run',
    '--rm',
    '-i',
    '--log-driver',
    'none',
    '--network',
    `container:${containerId}`,
    '--entrypoint',
    'nc',
    image,
    '127.0.0.1',
    '5432',
  ]);
