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
  /** Labels the app service needs under `deploy.labels` to be routed (none for file-configured proxies). */
  appLabels(model: StackModel): Readonly<Record<string, string>>;
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
