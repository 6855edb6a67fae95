import { Document, Scalar, visit } from 'yaml';
import type { StackModel } from '../model.js';
import { type ProxyProvider, webPorts } from './types.js';

export const TRAEFIK_CONFIG_PATH = '/etc/traefik/traefik.yml';
const CERT_RESOLVER = 'letsencrypt';
const DOCKER_SOCKET = '/var/run/docker.sock';

/** Router and service name of the app in Traefik's dynamic configuration. */
export function traefikAppName(model: StackModel): string {
  return `${model.name}-app`;
}

/**
 * Traefik v3 static configuration (the file Traefik starts with). Routing comes
 * from the swarm provider reading the app's service labels; ping on an internal
 * entry point bound to loopback serves `traefik healthcheck --ping`.
 */
export function traefikStaticConfig(model: StackModel): Record<string, unknown> {
  const web: Record<string, unknown> = { address: ':80' };
  if (model.tls !== 'off') {
    web.http = {
      redirections: { entryPoint: { to: 'websecure', scheme: 'https', permanent: true } },
    };
  }
  const entryPoints: Record<string, unknown> = { web };
  if (model.tls !== 'off') {
    entryPoints.websecure = {
      address: ':443',
      http: { tls: model.tls === 'acme' ? { certResolver: CERT_RESOLVER } : {} },
    };
  }
  // `traefik` is the internal entry point: routers never attach to it by default.
  entryPoints.traefik = { address: '127.0.0.1:8080' };

  const config: Record<string, unknown> = {
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    log: { level: 'INFO' },
    api: { dashboard: false },
    ping: { entryPoint: 'traefik' },
    entryPoints,
    providers: {
      swarm: {
        endpoint: `unix://${DOCKER_SOCKET}`,
        exposedByDefault: false,
        network: model.networks.ingress,
      },
    },
  };
  if (model.tls === 'acme') {
    config.certificatesResolvers = {
      [CERT_RESOLVER]: {
        acme: {
          email: model.email,
          storage: '/data/acme.json',
          ...(model.acmeServer ? { caServer: model.acmeServer } : {}),
          httpChallenge: { entryPoint: 'web' },
        },
      },
    };
  }
  return config;
}

/**
 * The static configuration as YAML. Addresses such as `:80` are double-quoted
 * as in Traefik's documentation: a plain scalar starting with `:` is valid YAML
 * 1.2 but trips stricter parsers.
 */
export function traefikStaticYaml(model: StackModel): string {
  const doc = new Document(traefikStaticConfig(model));
  visit(doc, {
    Scalar(key, node) {
      if (key === 'value' && typeof node.value === 'string' && node.value.startsWith(':')) {
        node.type = Scalar.QUOTE_DOUBLE;
      }
    },
  });
  doc.commentBefore =
    ' Rendered by cluster-cli — do not edit; change cluster.yaml and run `cluster-cli init` again';
  return doc.toString({ lineWidth: 0 });
}

export const traefik: ProxyProvider = {
  id: 'traefik',
  volumes: () => ['proxy_data'],
  service: (model) => ({
    command: [`--configFile=${TRAEFIK_CONFIG_PATH}`],
    ports: webPorts(model),
    mounts: [
      { type: 'volume', source: 'proxy_data', target: '/data' },
      { type: 'bind', source: DOCKER_SOCKET, target: DOCKER_SOCKET, read_only: true },
    ],
    healthcheck: {
      test: ['CMD', 'traefik', 'healthcheck', '--ping'],
      retries: 3,
      startPeriod: '10s',
    },
  }),
  configs: (model) => [
    {
      key: 'traefik_yml',
      target: TRAEFIK_CONFIG_PATH,
      content: traefikStaticYaml(model),
    },
  ],
  appLabels: (model) => {
    const n = traefikAppName(model);
    const router = `traefik.http.routers.${n}`;
    const labels: Record<string, string> = {
      'traefik.enable': 'true',
      'traefik.swarm.network': model.networks.ingress,
      [`${router}.rule`]: `Host(\`${model.domain}\`)`,
      [`${router}.entrypoints`]: model.tls === 'off' ? 'web' : 'websecure',
      [`${router}.service`]: n,
    };
    if (model.tls === 'acme') labels[`${router}.tls.certresolver`] = CERT_RESOLVER;
    if (model.tls === 'internal') labels[`${router}.tls`] = 'true';
    labels[`traefik.http.services.${n}.loadbalancer.server.port`] = String(model.app.port);
    return labels;
  },
};

/** Label segments Traefik matches case-insensitively, in the file provider's spelling. */
const CANONICAL: Readonly<Record<string, string>> = {
  entrypoints: 'entryPoints',
  certresolver: 'certResolver',
  loadbalancer: 'loadBalancer',
  passhostheader: 'passHostHeader',
  rulesyntax: 'ruleSyntax',
  healthcheck: 'healthCheck',
  serverstransport: 'serversTransport',
  responseforwarding: 'responseForwarding',
  flushinterval: 'flushInterval',
  httponly: 'httpOnly',
  samesite: 'sameSite',
};
const LIST_FIELDS = new Set(['entryPoints', 'middlewares']);
const INT_FIELDS = new Set(['priority', 'port']);

type Tree = Record<string, unknown>;

/**
 * Turn Traefik routing labels (`traefik.http.routers.x.rule=…`) into the nested
 * dynamic configuration the file provider reads, the way Traefik decodes them:
 * field names match case-insensitively, lists are comma-separated, `tls=true`
 * is an empty TLS section, and `loadbalancer.server.{port,scheme}` (which the
 * swarm provider completes with each task's address) becomes `servers[].url`
 * on `serverHost`. Provider labels (`traefik.enable`, `traefik.swarm.*`) are
 * not dynamic configuration and are left out. Unknown fields are kept as
 * written, so a schema that forbids additional properties catches typos.
 */
export function traefikDynamicFromLabels(
  labels: Readonly<Record<string, string>>,
  opts: { serverHost?: string } = {},
): Tree {
  const root: Tree = {};
  for (const [key, value] of Object.entries(labels)) {
    const parts = key.split('.');
    if (parts[0] !== 'traefik' || !['http', 'tcp', 'udp', 'tls'].includes(parts[1] ?? '')) continue;
    // traefik.<proto>.<kind>.<name>.<field…>: the user-chosen name keeps its case.
    const path = parts
      .slice(1)
      .map((p, i) => (i === 2 ? p : (CANONICAL[p.toLowerCase()] ?? p.toLowerCase())));
    const field = path[path.length - 1] ?? '';
    let leaf: unknown = value;
    if (field === 'tls') {
      if (value !== 'true') continue;
      leaf = {};
    } else if (LIST_FIELDS.has(field)) {
      leaf = value.split(',').map((s) => s.trim());
    } else if (INT_FIELDS.has(field) && /^\d+$/.test(value)) {
      leaf = Number(value);
    } else if (value === 'true' || value === 'false') {
      leaf = value === 'true';
    }
    setPath(root, path, leaf);
  }
  serversFromShorthand(root, opts.serverHost ?? '127.0.0.1');
  return root;
}

function setPath(root: Tree, path: readonly string[], leaf: unknown): void {
  let node = root;
  for (const p of path.slice(0, -1)) {
    const next = node[p];
    if (next && typeof next === 'object' && !Array.isArray(next)) node = next as Tree;
    else {
      const created: Tree = {};
      node[p] = created;
      node = created;
    }
  }
  const last = path[path.length - 1];
  if (last === undefined) return;
  const existing = node[last];
  // `tls=true` next to `tls.certresolver=…`: keep the richer section.
  if (existing && typeof existing === 'object' && leaf && typeof leaf === 'object') {
    node[last] = { ...(leaf as Tree), ...(existing as Tree) };
  } else {
    node[last] = leaf;
  }
}

function serversFromShorthand(root: Tree, host: string): void {
  const services = (root.http as Tree | undefined)?.services as Tree | undefined;
  for (const svc of Object.values(services ?? {})) {
    const lb = (svc as Tree).loadBalancer as Tree | undefined;
    const server = lb?.server as Tree | undefined;
    if (!lb || !server) continue;
    const { port, scheme, url, ...rest } = server;
    delete lb.server;
    const target =
      typeof url === 'string' ? url : `${String(scheme ?? 'http')}://${host}:${String(port ?? 80)}`;
    lb.servers = [{ url: target, ...rest }];
  }
}
