import { isSecret, REDACTED, type Secret } from './secret.js';

/**
 * One Docker Engine API call, as data: planners put it in a Step like a Cmd,
 * printers show it redacted, and only the transport reveals the secrets in its
 * body. This is how a secret that the docker CLI only takes as a flag (the
 * swarm join token) reaches the engine without ever being a command-line word.
 */
export interface ApiRequest {
  readonly kind: 'api';
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Path without the version prefix, e.g. `/swarm/join`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | boolean>>;
  /** JSON body; Secret values anywhere inside are revealed only by the transport. */
  readonly body?: unknown;
  readonly readOnly?: boolean;
}

export function apiRequest(
  method: ApiRequest['method'],
  path: string,
  extra: Omit<ApiRequest, 'kind' | 'method' | 'path'> = {},
): ApiRequest {
  return { kind: 'api', method, path, ...extra };
}

export function isApiRequest(v: unknown): v is ApiRequest {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'api';
}

/** `POST /swarm/join {"JoinToken":"[REDACTED]",…}`: how a plan prints it. */
export function formatApiRequest(r: ApiRequest): string {
  const q = r.query
    ? `?${Object.entries(r.query)
        .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
        .join('&')}`
    : '';
  const body = r.body === undefined ? '' : ` ${JSON.stringify(r.body)}`;
  return `docker-api ${r.method} ${r.path}${q}${body}`;
}

/** A copy of the body with every Secret replaced by its value: for the transport only. */
export function revealBody(v: unknown): unknown {
  if (isSecret(v)) return v.reveal();
  if (Array.isArray(v)) return v.map(revealBody);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revealBody(x)]));
  }
  return v;
}

/** Every Secret in a body, to scrub error texts with. */
export function secretsInBody(v: unknown, out: Secret[] = []): Secret[] {
  if (isSecret(v)) out.push(v);
  else if (Array.isArray(v)) for (const x of v) secretsInBody(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) secretsInBody(x, out);
  return out;
}

export { REDACTED };

/** A Docker Engine API client for one host (over the host's executor). */
export interface DockerApi {
  /** Parsed JSON (or undefined for an empty body); throws DockerApiError on an error status. */
  request<T = unknown>(r: ApiRequest): Promise<T>;
  close(): Promise<void>;
}

export class DockerApiError extends Error {
  override readonly name = 'DockerApiError';
  constructor(
    readonly host: string,
    readonly request: string,
    readonly status: number | undefined,
    readonly reason: string,
  ) {
    super(`${host}: Docker API ${request} failed${status ? ` (HTTP ${status})` : ''}: ${reason}`);
  }
}
