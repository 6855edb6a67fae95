import { type Cmd, cmd, probe } from '../core/cmd.js';
import type { Secret } from '../core/secret.js';

/**
 * Pure builders for the docker CLI: each returns argv, nothing runs here.
 * Probes are read-only (they run in --dry-run too); the rest change the host.
 */

export const LABEL_MANAGED = 'io.cluster-cli.managed=true';

export const dockerVersion = (): Cmd => probe(['docker', 'version', '--format', '{{json .}}']);
export const dockerInfo = (): Cmd => probe(['docker', 'info', '--format', '{{json .}}']);

export function swarmInit(opts: { advertiseAddr: string; listenAddr?: string }): Cmd {
  return cmd([
    'docker',
    'swarm',
    'init',
    '--advertise-addr',
    opts.advertiseAddr,
    ...(opts.listenAddr ? ['--listen-addr', opts.listenAddr] : []),
  ]);
}

export const nodeLs = (): Cmd => probe(['docker', 'node', 'ls', '--format', '{{json .}}']);
export const nodeInspect = (ids: readonly string[]): Cmd =>
  probe(['docker', 'node', 'inspect', '--format', '{{json .}}', ...ids]);

export function nodeLabelAdd(node: string, labels: Readonly<Record<string, string>>): Cmd {
  const flags = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([k, v]) => ['--label-add', `${k}=${v}`]);
  return cmd(['docker', 'node', 'update', ...flags, node]);
}

export const networkLs = (): Cmd =>
  probe(['docker', 'network', 'ls', '--filter', 'driver=overlay', '--format', '{{.Name}}']);
export const networkInspect = (names: readonly string[]): Cmd =>
  probe(['docker', 'network', 'inspect', '--format', '{{json .}}', ...names]);

export function networkCreate(opts: {
  name: string;
  subnet: string;
  internal: boolean;
  attachable: boolean;
}): Cmd {
  return cmd([
    'docker',
    'network',
    'create',
    '--driver',
    'overlay',
    '--subnet',
    opts.subnet,
    ...(opts.attachable ? ['--attachable'] : []),
    ...(opts.internal ? ['--internal'] : []),
    '--label',
    LABEL_MANAGED,
    opts.name,
  ]);
}

export const secretLs = (): Cmd => probe(['docker', 'secret', 'ls', '--format', '{{.Name}}']);

/** The value goes through stdin (`-`), never argv: it can't show in `ps` or shell history. */
export function secretCreate(name: string, value: Secret): Cmd {
  return cmd(['docker', 'secret', 'create', '--label', LABEL_MANAGED, name, '-'], { stdin: value });
}

export const configLs = (): Cmd => probe(['docker', 'config', 'ls', '--format', '{{.Name}}']);

export function configCreate(name: string, content: string): Cmd {
  return cmd(['docker', 'config', 'create', '--label', LABEL_MANAGED, name, '-'], {
    stdin: content,
  });
}

/** Remove a config no service uses (Docker refuses one that a service's spec references). */
export const configRm = (name: string): Cmd => cmd(['docker', 'config', 'rm', name]);

/**
 * `docker stack deploy` from stdin, so nothing is left on the host's disk. `prune` removes the stack's services the
 * file does not name: only for a full file (a partial one updates just the
 * services it names).
 */
export function stackDeploy(
  opts: { name: string; resolveImage: 'always' | 'changed' | 'never'; prune: boolean },
  yaml: string,
): Cmd {
  return cmd(
    [
      'docker',
      'stack',
      'deploy',
      '--compose-file',
      '-',
      '--resolve-image',
      opts.resolveImage,
      ...(opts.prune ? ['--prune'] : []),
      opts.name,
    ],
    { stdin: yaml },
  );
}

export const stackServices = (stack: string): Cmd =>
  probe([
    'docker',
    'service',
    'ls',
    '--filter',
    `label=com.docker.stack.namespace=${stack}`,
    '--format',
    '{{json .}}',
  ]);

export const serviceInspect = (names: readonly string[]): Cmd =>
  probe(['docker', 'service', 'inspect', '--format', '{{json .}}', ...names]);

export const servicePs = (service: string): Cmd =>
  probe(['docker', 'service', 'ps', '--no-trunc', '--format', '{{json .}}', service]);
