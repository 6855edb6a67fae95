import { Agent } from 'node:http';
import { Duplex } from 'node:stream';
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
import type { Executor, Stream } from '../core/executor.js';
import { scrub } from '../core/secret.js';

/** `docker system dial-stdio`: the docker CLI turns its stdin/stdout into the daemon's API socket. */
export const dialStdio = () => cmd(['docker', 'system', 'dial-stdio']);

/**
 * An http socket made of a command's stdin and stdout. Node's http agent also
 * calls the socket methods of a TCP socket on it; those are no-ops here.
 */
class StreamSocket extends Duplex {
  readonly #s: Stream;
  constructor(s: Stream) {
    super();
    this.#s = s;
    s.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) s.stdout.pause();
    });
    s.stdout.on('end', () => this.push(null));
    s.stdout.on('error', (e) => this.destroy(e));
    s.stdin.on('error', (e) => this.destroy(e));
    // stdout's end ends the socket; a failed command destroys it with its error.
    s.done.catch((e: unknown) => this.destroy(e instanceof Error ? e : new Error(String(e))));
  }
  override _read(): void {
    this.#s.stdout.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.#s.stdin.write(chunk, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.#s.stdin.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.#s.kill();
    cb(err);
  }
  setKeepAlive(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

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
                  exec.label,
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
    async close() {
      agent.destroy();
    },
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
