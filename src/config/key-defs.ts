/**
 * The keys `cluster-cli config get|set|unset` know, as data. This file has no
 * runtime imports (no zod, no yaml), so `config set --help` can list the keys
 * without loading the schema; the logic that uses them is in keys.ts.
 *
 * A key is dotted, as the user types it. `<service>` stands for one of
 * RESOURCE_SERVICES, `<NAME>` for any rest of the key (an environment
 * variable's name; the schema checks it). `path` is where the value lives in
 * cluster.yaml, with the same placeholders.
 */

/**
 * Services of the platform stack a change affects (display only: the stack
 * renderer decides); `backup` is the scheduled backup job's cron entries.
 */
export type StackService = 'proxy' | 'app' | 'postgres' | 'redis' | 'agent' | 'backup';

/** The stack services whose resources `resources.<service>.*` sets. */
export const RESOURCE_SERVICES = ['proxy', 'app', 'postgres', 'redis'] as const;
export type ResourceService = (typeof RESOURCE_SERVICES)[number];

/**
 * How the command-line string becomes the value the schema checks:
 * string as typed; int and number as JS numbers; list as a comma-separated list.
 */
export type KeyKind = 'string' | 'int' | 'number' | 'list';

export interface KeyDef {
  /** `app.replicas`, or a pattern: `app.env.<NAME>`, `resources.<service>.memory`. */
  readonly key: string;
  /** Where it lives in cluster.yaml: `app.replicas`, `<service>.resources.limits.memory`. */
  readonly path: string;
  readonly kind: KeyKind;
  /** One line for `config list` and `config set --help`; `<service>` as in `key`. */
  readonly description: string;
  /** `<service>` is replaced by the key's service. */
  readonly services: readonly (StackService | '<service>')[];
  /** Allowed values, for help only (the schema enforces them). */
  readonly choices?: readonly string[];
  /** What the parser says of a value that is not of `kind` (int, number). */
  readonly typeError?: string;
  /** The file cannot do without it: `config unset` refuses. */
  readonly required?: boolean;
  /**
   * A block the schema wants whole once any of it is written (a service's
   * resources: limits.memory, limits.cpus and reservations.memory together).
   * Setting one field writes the block with the defaults for the others.
   */
  readonly block?: string;
}

export const KEY_DEFS: readonly KeyDef[] = [
  {
    key: 'domain',
    path: 'domain',
    kind: 'string',
    description: 'domain the platform app answers on, e.g. apps.example.com',
    services: ['proxy', 'app'],
    required: true,
  },
  {
    key: 'email',
    path: 'email',
    kind: 'string',
    description: 'contact address of the cluster (the ACME account unless ssl.email is set)',
    services: ['proxy'],
    required: true,
  },
  {
    key: 'app.image',
    path: 'app.image',
    kind: 'string',
    description: 'image of the app service, e.g. ghcr.io/acme/web:1.4',
    services: ['app'],
  },
  {
    key: 'app.replicas',
    path: 'app.replicas',
    kind: 'int',
    description: 'number of app containers (0 to 100)',
    services: ['app'],
    typeError: 'must be a whole number',
  },
  {
    key: 'app.domains',
    path: 'app.domains',
    kind: 'list',
    description: 'more host names routed to the app, comma-separated (covered by the certificate)',
    services: ['proxy', 'app'],
  },
  {
    key: 'app.env.<NAME>',
    path: 'app.env.<NAME>',
    kind: 'string',
    description: 'environment variable of the app (keep secrets in Docker secrets instead)',
    services: ['app'],
  },
  {
    key: 'resources.<service>.memory',
    path: '<service>.resources.limits.memory',
    kind: 'string',
    description: 'memory limit of the <service> service, e.g. 512M or 1G',
    services: ['<service>'],
    block: '<service>.resources',
  },
  {
    key: 'resources.<service>.cpus',
    path: '<service>.resources.limits.cpus',
    kind: 'number',
    description: 'CPU limit of the <service> service, e.g. 0.5',
    services: ['<service>'],
    typeError: 'must be a number of CPUs such as 0.5',
    block: '<service>.resources',
  },
  {
    key: 'resources.<service>.reservation',
    path: '<service>.resources.reservations.memory',
    kind: 'string',
    description: 'memory reserved for the <service> service, e.g. 256M',
    services: ['<service>'],
    block: '<service>.resources',
  },
  {
    key: 'proxy.provider',
    path: 'proxy.provider',
    kind: 'string',
    description: 'ingress proxy',
    services: ['proxy', 'app'],
    choices: ['traefik', 'caddy'],
  },
  {
    key: 'proxy.tls',
    path: 'proxy.tls',
    kind: 'string',
    description: "certificates: acme (ssl.*), internal (the proxy's own CA) or off (plain HTTP)",
    services: ['proxy', 'app'],
    choices: ['acme', 'internal', 'off'],
  },
  {
    key: 'proxy.dashboard',
    path: 'proxy.dashboard',
    kind: 'string',
    description: "host name of the proxy's dashboard; unset: no dashboard",
    services: ['proxy'],
  },
  {
    key: 'ssl.acme',
    path: 'ssl.acme',
    kind: 'string',
    description:
      'who talks to the ACME CA: cluster (one shared certificate) or proxy (each replica)',
    services: ['proxy', 'agent'],
    choices: ['cluster', 'proxy'],
  },
  {
    key: 'ssl.directory',
    path: 'ssl.directory',
    kind: 'string',
    description: "ACME directory URL (https); unset: Let's Encrypt",
    services: ['proxy', 'agent'],
  },
  {
    key: 'ssl.email',
    path: 'ssl.email',
    kind: 'string',
    description: 'ACME account email; unset: the top-level email',
    services: ['proxy', 'agent'],
  },
  {
    key: 'ssl.caRoot',
    path: 'ssl.caRoot',
    kind: 'string',
    description:
      "PEM file (relative to cluster.yaml) of a private CA signing the ACME directory's HTTPS",
    services: ['proxy', 'agent'],
  },
  {
    key: 'ssl.renewDays',
    path: 'ssl.renewDays',
    kind: 'int',
    description: 'renew a certificate with fewer days left than this (1 to 89)',
    services: ['agent'],
    typeError: 'must be a whole number of days',
  },
  {
    key: 'backup.schedule',
    path: 'backup.schedule',
    kind: 'string',
    description: 'when scheduled backups run: a five-field cron expression, UTC',
    services: ['backup'],
  },
  ...(['daily', 'weekly', 'monthly', 'yearly'] as const).map(
    (period): KeyDef => ({
      key: `backup.retention.${period}`,
      path: `backup.retention.${period}`,
      kind: 'int',
      description: `${period} backups kept (grandfather-father-son)`,
      services: ['backup'],
      typeError: 'must be a whole number',
    }),
  ),
  {
    key: 'agent.image',
    path: 'agent.image',
    kind: 'string',
    description: "cluster-cli's own image, run in the cluster for certificate renewal",
    services: ['agent'],
  },
];

/** The `Keys:` section of `config set --help`, generated from KEY_DEFS. */
export function keysHelp(): string {
  const names = KEY_DEFS.map((d) => d.key);
  const width = Math.max(...names.map((n) => n.length));
  const lines = KEY_DEFS.map((d) => {
    // the choices, unless the description names them all already
    const named = d.choices?.every((c) => d.description.includes(c)) ?? true;
    const choices = named ? '' : ` (${d.choices?.join(', ')})`;
    const what = d.description.replaceAll('<service>', RESOURCE_SERVICES.join('|'));
    return `  ${d.key.padEnd(width)}  ${what}${choices}`;
  });
  return `Keys:\n${lines.join('\n')}`;
}
