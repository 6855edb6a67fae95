import { isIP } from 'node:net';
import { z } from 'zod';
import {
  DOMAIN_RE,
  EMAIL_RE,
  isHostname,
  isIpAddress,
  isIpv4Cidr,
  MEMORY,
  NODE_LABEL_KEY,
  NODE_LABEL_VALUE,
} from './validators.js';

/**
 * cluster.yaml: the declarative description of one cluster. Never holds a
 * plaintext secret: passwords live only in Docker secrets on the managers.
 * Defaults follow the reference deployment (seed 001): its resource limits,
 * overlay subnets and placement rules.
 */

const domain = z
  .string()
  .regex(DOMAIN_RE, { error: 'must be a domain name such as app.example.com' });
const email = z
  .string()
  .regex(EMAIL_RE, { error: 'must be an email address such as admin@example.com' });
const ip = z.string().refine(isIpAddress, { error: 'must be an IPv4 or IPv6 address' });
const port = z
  .number({ error: 'must be a port number from 1 to 65535' })
  .int({ error: 'must be a port number from 1 to 65535' })
  .min(1, { error: 'must be a port number from 1 to 65535' })
  .max(65535, { error: 'must be a port number from 1 to 65535' });
const memory = z.string().regex(MEMORY, { error: 'must be a size such as 512M or 1G' });
const cpus = z
  .number({ error: 'must be a number of CPUs such as 0.5' })
  .positive({ error: 'must be a number of CPUs such as 0.5' })
  .max(1024, { error: 'must be a number of CPUs such as 0.5' });
const image = z.string().regex(/^[a-z0-9][a-z0-9._/:@-]*$/, {
  error: 'must be an image reference such as postgres:16-alpine',
});
const replicas = z.number().int({ error: 'must be a whole number' }).min(0).max(100);
/** An absolute path inside a container, not `/` itself, without `.` or `..` segments. */
const containerPath = z.string().regex(/^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._@+-]+)+$/, {
  error: 'must be an absolute path such as /tmp',
});

export const Resources = z.strictObject({
  limits: z.strictObject({ memory, cpus }),
  reservations: z.strictObject({ memory }),
});
export type Resources = z.infer<typeof Resources>;

const res = (limMem: string, limCpu: number, resMem: string) => ({
  limits: { memory: limMem, cpus: limCpu },
  reservations: { memory: resMem },
});

export const Host = z.strictObject({
  /** Swarm node hostname; filled from the host on first contact. */
  name: z.string().refine(isHostname, { error: 'must be a hostname such as node1' }),
  /** SSH target address or ~/.ssh/config alias; absent for the machine cluster-cli runs on. */
  address: z
    .string()
    .refine((v) => isHostname(v) || isIpAddress(v), { error: 'must be an IP address or hostname' })
    .optional(),
  /** Absent: ~/.ssh/config's User for the address, else root. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a user name such as root or deploy' })
    .optional(),
  /** Absent: ~/.ssh/config's Port for the address, else 22. */
  port: port.optional(),
  role: z.enum(['manager', 'worker'], { error: 'must be manager or worker' }).default('manager'),
  advertiseAddr: ip.optional(),
  labels: z
    .record(
      z
        .string()
        .regex(NODE_LABEL_KEY, { error: 'label key must be lower-case letters, digits, . _ -' }),
      z.string().regex(NODE_LABEL_VALUE, { error: 'label value must be letters, digits, . _ -' }),
    )
    .default({}),
});
export type Host = z.infer<typeof Host>;

const Network = (subnet: string) =>
  z.strictObject({
    subnet: z
      .string()
      .refine(isIpv4Cidr, {
        error: 'must be an IPv4 network such as 10.0.10.0/24 (prefix 8 to 30)',
      })
      .default(subnet),
  });

export const Networks = z.strictObject({
  /** vip needs IPVS in the kernel; dnsrr works everywhere (the lab uses it). */
  endpointMode: z.enum(['vip', 'dnsrr'], { error: 'must be vip or dnsrr' }).default('vip'),
  ingress: Network('10.0.10.0/24').prefault({}),
  app: Network('10.0.20.0/24').prefault({}),
  data: Network('10.0.30.0/24').prefault({}),
});

export const ProxySettings = z.strictObject({
  provider: z.enum(['traefik', 'caddy'], { error: 'must be traefik or caddy' }).default('traefik'),
  image: image.optional(),
  /** acme: certificates from an ACME CA (see `ssl`); internal: the proxy's own CA; off: plain HTTP. */
  tls: z
    .enum(['acme', 'internal', 'off'], { error: 'must be acme, internal or off' })
    .default('acme'),
  /** Host name of the proxy's dashboard (HTTPS, basic auth by the cluster's admins); absent: no dashboard. */
  dashboard: domain.optional(),
  /** host: bind 80/443 on each proxy node (keeps client IPs); ingress: the routing mesh. */
  publishMode: z.enum(['host', 'ingress'], { error: 'must be host or ingress' }).default('host'),
  resources: Resources.default(res('128M', 0.2, '64M')),
});

export const App = z.strictObject({
  image: image.default('nginxdemos/hello:plain-text'),
  /** More host names routed to the app besides `domain` (all covered by the certificate). */
  domains: z.array(domain).default([]),
  port: port.default(80),
  replicas: replicas.default(1),
  env: z
    .record(
      z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' }),
      z.string(),
    )
    .default({}),
  /**
   * The first admin's email, set by `cluster-cli user create`: the app gets it
   * as ADMIN_EMAIL and the initial password as the Docker secret
   * ADMIN_PASSWORD_FILE points at, for first-run bootstrap.
   */
  adminEmail: email.optional(),
  /** Command run inside the container (exec form); omit for images without a shell. */
  healthcheck: z.array(z.string()).min(1).optional(),
  /**
   * A read-only root filesystem for the app (CIS Docker 5.13), with a private
   * tmpfs (nosuid, nodev, noexec) at each `tmpfs` path. Off by default: an
   * arbitrary image may write anywhere (nginx writes /var/cache/nginx and
   * /var/run), so turn it on once the image's writable paths are known.
   */
  readOnly: z.boolean({ error: 'must be true or false' }).default(false),
  /** Writable paths of a read-only app (ignored unless `readOnly`). */
  tmpfs: z
    .array(containerPath)
    .refine((paths) => new Set(paths).size === paths.length, {
      error: 'must not list a path twice',
    })
    .default(['/tmp']),
  resources: Resources.default(res('512M', 0.5, '256M')),
});

export const Postgres = z.strictObject({
  image: image.default('postgres:16-alpine'),
  database: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'must be a lower-case identifier' })
    .default('app'),
  /** Absent: ~/.ssh/config's User for the address, else root. */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, { error: 'must be a lower-case identifier' })
    .default('app'),
  resources: Resources.default(res('512M', 0.5, '256M')),
});

/** The ACME directory `ssl.directory` means when absent, and `--staging`'s. */
export const LETS_ENCRYPT = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';

/** TLS certificates when proxy.tls is acme. */
export const Ssl = z.strictObject({
  /**
   * Who talks to the ACME CA. cluster: cluster-cli's agent obtains one
   * certificate, every proxy replica serves it (from Docker secrets), renewal
   * runs once across the cluster. proxy: each proxy replica runs its own ACME
   * (only sound with a single replica).
   */
  acme: z.enum(['cluster', 'proxy'], { error: 'must be cluster or proxy' }).default('proxy'),
  /** ACME directory URL; absent: Let's Encrypt. */
  directory: z
    .url({ protocol: /^https$/, error: 'must be an https URL of an ACME directory' })
    .optional(),
  /** ACME account email; absent: the top-level `email`. */
  email: email.optional(),
  /** PEM file (relative to cluster.yaml) of a private CA that signs the ACME directory's HTTPS. */
  caRoot: z.string().min(1).optional(),
  /** Renew when the certificate has fewer days left than this. */
  renewDays: z.number().int().min(1).max(89).default(30),
});
export type Ssl = z.infer<typeof Ssl>;

const count = z.number().int({ error: 'must be a whole number' }).min(0).max(1000);

/** Backups to an S3-compatible store (see `cluster-cli backup setup`); credentials live in Docker secrets only. */
export const Backup = z.strictObject({
  s3: z.strictObject({
    endpoint: z.url({
      protocol: /^https?$/,
      error: 'must be an http(s) URL such as https://s3.example.com',
    }),
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name' }),
    region: z.string().min(1).default('us-east-1'),
    /** Key prefix inside the bucket; the cluster's name is added below it. */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9!_.*'()/-]*$/, { error: 'must be a key prefix such as backups' })
      .default('cluster-cli'),
    pathStyle: z.boolean().default(false),
  }),
  /** Five-field cron expression, UTC. */
  schedule: z.string().default('0 3 * * *'),
  retention: z
    .strictObject({
      daily: count.default(7),
      weekly: count.default(4),
      monthly: count.default(6),
      yearly: count.default(0),
    })
    .prefault({}),
  /** age recipient (public key) the artifacts are encrypted to; the identity is a Docker secret. */
  recipient: z
    .string()
    .regex(/^age1[0-9a-z]{58}$/, { error: 'must be an age recipient (age1…)' })
    .optional(),
});
export type Backup = z.infer<typeof Backup>;

/** An address or a network, IPv4 or IPv6: 203.0.113.7, 10.0.0.0/8, 2001:db8::/32. */
function isAddressOrNetwork(value: string): boolean {
  const [address = '', bits, ...rest] = value.split('/');
  const family = address.includes('%') ? 0 : isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** A port the nodes' firewall opens besides SSH, 80/443 and (to members only) the swarm's. */
export const FirewallAllow = z.strictObject({
  port,
  proto: z.enum(['tcp', 'udp'], { error: 'must be tcp or udp' }).default('tcp'),
  /** Only from this address or network; absent: from anywhere. */
  from: z
    .string()
    .refine(isAddressOrNetwork, {
      error: 'must be an IP address or network such as 203.0.113.7 or 10.0.0.0/8',
    })
    .optional(),
});
export type FirewallAllow = z.infer<typeof FirewallAllow>;

/**
 * The nodes' firewall (`cluster-cli firewall apply`): SSH and 80/443 open, the
 * swarm ports open between the cluster's nodes only, every other port (a
 * container's published ones too) closed unless listed in `allow`. Nothing
 * but `firewall apply` touches a node's firewall, so an existing file is
 * unaffected by this section's defaults.
 */
export const Firewall = z.strictObject({
  /** Recorded by `cluster-cli firewall apply`: the nodes carry its rules. */
  enabled: z.boolean().default(false),
  allow: z.array(FirewallAllow).default([]),
});
export type Firewall = z.infer<typeof Firewall>;

export const Redis = z.strictObject({
  image: image.default('redis:7-alpine'),
  resources: Resources.default(res('128M', 0.2, '64M')),
});

export const Config = z.strictObject({
  $schema: z.string().optional(),
  version: z.literal(1, { error: 'must be 1' }).default(1),
  /** Stack name; prefixes networks, secrets and volumes. */
  name: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,29}$/, {
      error: 'must be lower-case letters, digits and dashes, starting with a letter',
    })
    .default('platform'),
  domain,
  email,
  topology: z
    .enum(['single', 'three-node', 'ha'], { error: 'must be single, three-node or ha' })
    .default('single'),
  /** Written by init: the swarm this file describes. A host in another swarm is refused. */
  swarmId: z
    .string()
    .regex(/^[a-z0-9]{25}$/, { error: 'must be a swarm ID as `docker info` prints it' })
    .optional(),
  ssh: z
    .strictObject({
      knownHostsFile: z.string().optional(),
      identityFile: z.string().optional(),
    })
    .default({}),
  hosts: z.array(Host).min(1, { error: 'must list at least one host' }),
  proxy: ProxySettings.prefault({}),
  networks: Networks.prefault({}),
  app: App.prefault({}),
  postgres: Postgres.prefault({}),
  redis: Redis.prefault({}),
  ssl: Ssl.prefault({}),
  backup: Backup.optional(),
  firewall: Firewall.prefault({}),
  /** cluster-cli's own image, run in the cluster for certificate renewal (and backups). */
  agent: z
    .strictObject({ image: image.default('ghcr.io/cluster-cli/cluster-cli:0.1.0') })
    .prefault({}),
  deploy: z
    .strictObject({
      /** never: use images already on the nodes (air-gapped hosts, the lab). */
      resolveImage: z
        .enum(['always', 'changed', 'never'], { error: 'must be always, changed or never' })
        .default('always'),
      /** Seconds to wait for every service to reach its replicas. */
      timeout: z.number().int().min(10).max(3600).default(300),
      /** Image for the short-lived overlay check after a join (needs sh, nslookup, ping). */
      checkImage: image.default('busybox:1.36'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;

export const DEFAULT_PROXY_IMAGES = { traefik: 'traefik:v3.6', caddy: 'caddy:2' } as const;

export function proxyImage(c: Config): string {
  return c.proxy.image ?? DEFAULT_PROXY_IMAGES[c.proxy.provider];
}
