import { Document, Scalar, visit } from 'yaml';
import { LETS_ENCRYPT } from '../../config/schema.js';
import { LIVE_SECRET_FILES, type StackModel } from '../model.js';
import {
  ACME_CHALLENGE_PATH,
  AGENT_CHALLENGE_UPSTREAM,
  type ProxyProvider,
  SECRET_DIR,
  servesHttps,
  tlsState,
  webPorts,
} from './types.js';

export const TRAEFIK_CONFIG_PATH = '/etc/traefik/traefik.yml';
export const TRAEFIK_DYNAMIC_PATH = '/etc/traefik/dynamic.yml';
const CERT_RESOLVER = 'letsencrypt';
const HEADER =
  ' Rendered by cluster-cli — do not edit; change cluster.yaml and run `cluster-cli init` again';

/** Router and service name of the app in Traefik's dynamic configuration. */
export function traefikAppName(model: StackModel): string {
  return `${model.name}-app`;
}

/**
 * Traefik v3 static configuration (the file Traefik starts with). Routing
 * comes from the file provider only: cluster-cli knows every route (the app's
 * host names, the ACME challenges, the dashboard), so Traefik needs no Docker
 * socket at all, and an internet-facing container holds no key to the swarm.
 * Ping on an internal entry point bound to loopback serves `traefik
 * healthcheck --ping`.
 */
export function traefikStaticConfig(model: StackModel): Record<string, unknown> {
  const state = tlsState(model);
  const web: Record<string, unknown> = { address: ':80' };
  // The cluster's own certificates redirect per router, so ACME challenges can still reach the agent.
  if (state === 'internal' || state === 'proxy-acme') {
    web.http = {
      redirections: { entryPoint: { to: 'websecure', scheme: 'https', permanent: true } },
    };
  }
  const entryPoints: Record<string, unknown> = { web };
  if (state !== 'off') {
    entryPoints.websecure = {
      address: ':443',
      http: { tls: state === 'proxy-acme' ? { certResolver: CERT_RESOLVER } : {} },
    };
  }
  // `traefik` is the internal entry point: routers never attach to it by default.
  entryPoints.traefik = { address: '127.0.0.1:8080' };

  const config: Record<string, unknown> = {
    global: { checkNewVersion: false, sendAnonymousUsage: false },
    log: { level: 'INFO' },
    api: { dashboard: dashboardOn(model) },
    ping: { entryPoint: 'traefik' },
    entryPoints,
    providers: { file: { filename: TRAEFIK_DYNAMIC_PATH, watch: false } },
  };
  if (state === 'proxy-acme' && model.acme) {
    config.certificatesResolvers = {
      [CERT_RESOLVER]: {
        acme: {
          email: model.acme.email,
          storage: '/data/acme.json',
          ...(model.acme.directory !== LETS_ENCRYPT ? { caServer: model.acme.directory } : {}),
          httpChallenge: { entryPoint: 'web' },
        },
      },
    };
  }
  return config;
}

function dashboardOn(model: StackModel): boolean {
  return Boolean(model.dashboard && model.live.dashboardUsers && servesHttps(tlsState(model)));
}

const hostRule = (names: readonly string[]) => names.map((d) => `Host(\`${d}\`)`).join(' || ');

/**
 * Traefik v3 dynamic configuration for the file provider: the app's router
 * and service (the app's service name resolves on the ingress network), the
 * ACME challenge route to cluster-cli's agent and the per-router HTTPS
 * redirect when the cluster owns the certificate, the certificate files from
 * Docker secrets, and the dashboard behind the admins' basic auth.
 */
export function traefikDynamicConfig(model: StackModel): Record<string, unknown> {
  const state = tlsState(model);
  const n = traefikAppName(model);
  const routers: Record<string, unknown> = {};
  const middlewares: Record<string, unknown> = {};
  const services: Record<string, unknown> = {
    [n]: { loadBalancer: { servers: [{ url: `http://app:${model.app.port}` }] } },
  };
  const https = servesHttps(state);
  const appTls = state === 'proxy-acme' ? { certResolver: CERT_RESOLVER } : https ? {} : undefined;
  routers[n] = {
    rule: hostRule(model.appDomains),
    entryPoints: [https ? 'websecure' : 'web'],
    service: n,
    ...(appTls ? { tls: appTls } : {}),
  };
  if (state === 'cluster' || state === 'cluster-pending') {
    const agent = `${model.name}-agent`;
    services[agent] = {
      loadBalancer: { servers: [{ url: `http://${AGENT_CHALLENGE_UPSTREAM}` }] },
    };
    routers[`${model.name}-acme-challenge`] = {
      rule: `PathPrefix(\`${ACME_CHALLENGE_PATH}\`)`,
      entryPoints: ['web'],
      service: agent,
      priority: 10000,
    };
  }
  if (state === 'cluster') {
    const redirect = `${model.name}-https-redirect`;
    middlewares[redirect] = { redirectScheme: { scheme: 'https', permanent: true } };
    routers[redirect] = {
      rule: 'PathPrefix(`/`)',
      entryPoints: ['web'],
      middlewares: [redirect],
      service: 'noop@internal',
      priority: 1,
    };
  }
  if (dashboardOn(model) && model.dashboard) {
    const auth = `${model.name}-dashboard-auth`;
    middlewares[auth] = {
      basicAuth: { usersFile: `${SECRET_DIR}/${LIVE_SECRET_FILES.dashboardUsers}` },
    };
    routers[`${model.name}-dashboard`] = {
      rule: hostRule([model.dashboard]),
      entryPoints: ['websecure'],
      service: 'api@internal',
      middlewares: [auth],
      tls: state === 'proxy-acme' ? { certResolver: CERT_RESOLVER } : {},
    };
  }
  const config: Record<string, unknown> = {
    http: {
      routers,
      ...(Object.keys(middlewares).length ? { middlewares } : {}),
      services,
    },
  };
  if (state === 'cluster') {
    const files = {
      certFile: `${SECRET_DIR}/${LIVE_SECRET_FILES.tlsCert}`,
      keyFile: `${SECRET_DIR}/${LIVE_SECRET_FILES.tlsKey}`,
    };
    config.tls = {
      certificates: [{ ...files }],
      stores: { default: { defaultCertificate: { ...files } } },
    };
  }
  return config;
}

/**
 * A Traefik config as YAML. Addresses such as `:80` are double-quoted as in
 * Traefik's documentation: a plain scalar starting with `:` is valid YAML 1.2
 * but trips stricter parsers.
 */
function traefikYaml(config: Record<string, unknown>): string {
  const doc = new Document(config);
  visit(doc, {
    Scalar(key, node) {
      if (key === 'value' && typeof node.value === 'string' && node.value.startsWith(':')) {
        node.type = Scalar.QUOTE_DOUBLE;
      }
    },
  });
  doc.commentBefore = HEADER;
  return doc.toString({ lineWidth: 0 });
}

export function traefikStaticYaml(model: StackModel): string {
  return traefikYaml(traefikStaticConfig(model));
}

export function traefikDynamicYaml(model: StackModel): string {
  return traefikYaml(traefikDynamicConfig(model));
}

export const traefik: ProxyProvider = {
  id: 'traefik',
  volumes: () => ['proxy_data'],
  service: (model) => ({
    command: [`--configFile=${TRAEFIK_CONFIG_PATH}`],
    ports: webPorts(model),
    mounts: [{ type: 'volume', source: 'proxy_data', target: '/data' }],
    healthcheck: {
      test: ['CMD', 'traefik', 'healthcheck', '--ping'],
      retries: 3,
      startPeriod: '10s',
    },
  }),
  configs: (model) => [
    { key: 'traefik_yml', target: TRAEFIK_CONFIG_PATH, content: traefikStaticYaml(model) },
    { key: 'traefik_dynamic', target: TRAEFIK_DYNAMIC_PATH, content: traefikDynamicYaml(model) },
  ],
};
