import { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import {
  type ApiRequest,
  type DockerApi,
  DockerApiError,
  formatApiRequest,
  revealBody,
  secretsInBody,
} from '../core/api.js';
import { cmd } from '../core/cmd.js';
import type { Executor } from '../core/executor.js';
import { scrub } from '../core/secret.js';
import { StreamSocket } from './stream-socket.js';

/** `docker system dial-stdio`: the docker CLI turns its stdin/stdout into the daemon's API socket. */
export const dialStdio = () => cmd(['docker', 'system', 'dial-stdio']);

const STATUS_OK: Record<number, boolean | string> = {
  200: true,
  201: true,
  204: true,
  304: true,
  400: 'bad parameter',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'no such object',
  406: 'node is not part of a swarm',
  409: 'conflict',
  500: 'server error',
  503: 'node is not part of a swarm',
};

/**
 * The Docker Engine API of a host, over that host's executor: locally a
 * `docker system dial-stdio` process, over SSH the same command on a channel
 * of the one connection (with `sudo -n` for a sudo user). Request bodies may
 * hold secrets: they travel inside the stream, never on a command line.
 */
export function connectDockerApi(exec: Executor): DockerApi {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  // Node calls createConnection(options, callback) and takes the callback's socket.
  (agent as unknown as { createConnection: unknown }).createConnection = (
    _opts: unknown,
    cb: (err: Error | null, socket?: Duplex) => void,
  ) => {
    exec.stream(dialStdio()).then(
      (s) => cb(null, new StreamSocket(s)),
      (err: Error) => cb(err),
    );
    return undefined;
  };
  const docker = new Docker({ protocol: 'http', host: 'docker', port: 80, agent } as never);
  return apiOver(docker, exec.label, async () => {
    agent.destroy();
  });
}

/**
 * The Docker Engine API on a unix socket of this machine: what cluster-cli's
 * agent uses inside the cluster, with the manager's socket mounted.
 */
export function connectDockerSocket(socketPath: string, label = 'local'): DockerApi {
  const docker = new Docker({ socketPath });
  return apiOver(docker, label, async () => {});
}

function apiOver(docker: Docker, label: string, close: () => Promise<void>): DockerApi {
  return {
    request<T>(r: ApiRequest): Promise<T> {
      const hasQuery = r.query !== undefined && Object.keys(r.query).length > 0;
      const secrets = secretsInBody(r.body);
      const options: Record<string, unknown> = {};
      if (hasQuery) options._query = r.query;
      if (r.body !== undefined) options._body = revealBody(r.body);
      return new Promise<T>((resolve, reject) => {
        docker.modem.dial(
          {
            path: `${r.path}${hasQuery ? '?' : ''}`,
            method: r.method,
            options,
            statusCodes: STATUS_OK,
            allowEmpty: r.method === 'POST',
          } as never,
          (err: unknown, data: unknown) => {
            if (err) {
              const e = err as {
                statusCode?: number;
                json?: { message?: string };
                message?: string;
              };
              const reason = e.json?.message ?? e.message ?? String(err);
              reject(
                new DockerApiError(
                  label,
                  formatApiRequest({ ...r, body: undefined }),
                  e.statusCode,
                  scrub(reason, secrets),
                ),
              );
            } else resolve(parsed(data) as T);
          },
        );
      });
    },
    close,
  };
}

function parsed(data: unknown): unknown {
  if (Buffer.isBuffer(data)) {
    const text = data.toString('utf8').trim();
    if (text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return data;
}

/** A command running inside a container, with its output as a stream. */
export interface ContainerExec {
  readonly stdout: NodeJS.ReadableStream;
  /** Present when asked for: what the command reads. */
  readonly stdin?: NodeJS.WritableStream;
  /** Settles once the command ended: its exit code (stderr's tail on failure in `stderr()`). */
  readonly done: Promise<number>;
  stderr(): string;
}

/**
 * `docker exec` through a local daemon socket (cluster-cli's jobs inside the
 * cluster: pg_dump in the postgres task, a Redis snapshot), streaming, so a
 * dump of any size passes through without being held in memory.
 */
export async function execInContainer(
  socketPath: string,
  containerId: string,
  cmd: readonly string[],
  opts: { stdin?: boolean } = {},
): Promise<ContainerExec> {
  const docker = new Docker({ socketPath });
  const exec = await docker.getContainer(containerId).exec({
    Cmd: [...cmd],
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: Boolean(opts.stdin),
  });
  const stream = (await exec.start({ hijack: true, stdin: Boolean(opts.stdin) })) as Duplex;
  const { PassThrough } = await import('node:stream');
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let errText = '';
  stderr.on('data', (b: Buffer) => {
    errText = (errText + b.toString('utf8')).slice(-4000);
  });
  docker.modem.demuxStream(stream, stdout, stderr);
  const done = new Promise<number>((resolve, reject) => {
    stream.on('end', () => {
      stdout.end();
      stderr.end();
      exec.inspect().then((i) => resolve(i.ExitCode ?? -1), reject);
    });
    stream.on('error', (e) => {
      stdout.destroy(e);
      reject(e);
    });
  });
  return {
    stdout,
    ...(opts.stdin ? { stdin: stream } : {}),
    done,
    stderr: () => errText,
  };
}
