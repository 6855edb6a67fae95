import type { StackModel } from '../model.js';

/** Compose `healthcheck` (durations as Go duration strings). */
export interface ComposeHealthcheck {
  readonly test: readonly string[];
  readonly interval: string;
  readonly timeout: string;
  readonly retries: number;
  readonly start_period: string;
  /** Cadence during `start_period`; compose file format 3.12+, Docker Engine 25.0.1+. */
  readonly start_interval?: string;
}

/**
 * What a service asks of its healthcheck. The renderer turns it into a
 * `ComposeHealthcheck` with a cadence that fits the engine (`healthCadence`).
 */
export interface HealthcheckSpec {
  readonly test: readonly string[];
  /** Consecutive failed checks tolerated at the steady 10 s cadence (scaled for a shorter one). */
  readonly retries: number;
  /** Grace after the container starts: failures don't count, the first success ends it. */
  readonly startPeriod: string;
}

/** Compose long-syntax port. */
export interface ComposePort {
  readonly target: number;
  readonly published: number;
  readonly protocol: 'tcp' | 'udp';
  readonly mode: 'host' | 'ingress';
}

/** Compose long-syntax mount: a named volume of the stack or a bind mount of a host path. */
export type ComposeMount =
  | { readonly type: 'volume'; readonly source: string; readonly target: string }
  | {
      readonly type: 'bind';
      readonly source: string;
      readonly target: string;
      readonly read_only: boolean;
    };

/**
 * A file the proxy reads, shipped as a Docker config. The renderer names it
 * `<stack>_<key>_<sha256 of content>` because Docker configs are immutable.
 */
export interface ProviderConfigFile {
  /** Key in the stack file's `configs:` section, e.g. `caddyfile`. */
  readonly key: string;
  /** Path inside the proxy container. */
  readonly target: string;
  readonly content: string;
}

/** The provider-specific part of the proxy service. */
export interface ProxyServiceParts {
  /** Replaces the image's CMD; absent keeps the image's own. */
  readonly command?: readonly string[];
  readonly ports: readonly ComposePort[];
  readonly mounts: readonly ComposeMount[];
  readonly healthcheck: HealthcheckSpec;
}

/** A pluggable reverse proxy: everything the renderer needs that differs between proxies. */
export interface ProxyProvider {
  readonly id: StackModel['proxy']['provider'];
  /** Named volumes (stack-local keys) the proxy's mounts use; the renderer declares them. */
  volumes(model: StackModel): readonly string[];
  service(model: StackModel): ProxyServiceParts;
  /** Files the proxy reads (static config, Caddyfile…). */
  configs(model: StackModel): readonly ProviderConfigFile[];
}

/** Container ports every proxy listens on: 80 always, 443 unless TLS is off. */
export function webPorts(model: StackModel): ComposePort[] {
  const ports = model.tls === 'off' ? [80] : [80, 443];
  return ports.map((p) => ({
    target: p,
    published: p,
    protocol: 'tcp',
    mode: model.proxy.publishMode,
  }));
}

/**
 * How the proxy serves TLS for a model:
 * - off: plain HTTP;
 * - internal: the proxy's own CA;
 * - proxy-acme: the proxy's own ACME client (one replica);
 * - cluster-pending: cluster-cli's agent will obtain the certificate; until it
 *   is delivered, HTTP only, with ACME challenges routed to the agent;
 * - cluster: the delivered certificate from Docker secrets, challenges still
 *   routed to the agent (renewal), everything else redirected to HTTPS.
 */
export type TlsState = 'off' | 'internal' | 'proxy-acme' | 'cluster-pending' | 'cluster';

export function tlsState(model: StackModel): TlsState {
  if (model.tls === 'off') return 'off';
  if (model.tls === 'internal') return 'internal';
  if (model.acme?.mode !== 'cluster') return 'proxy-acme';
  return model.live.tlsCert && model.live.tlsKey ? 'cluster' : 'cluster-pending';
}

/** HTTPS is being served (the dashboard needs it). */
export function servesHttps(state: TlsState): boolean {
  return state !== 'off' && state !== 'cluster-pending';
}

/** Where the proxies send ACME HTTP-01 challenges: the agent's service name on the ingress network. */
export const AGENT_CHALLENGE_UPSTREAM = 'agent:8080';
export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';

/** Paths under /run/secrets where the proxy finds its live secrets. */
export const SECRET_DIR = '/run/secrets';
