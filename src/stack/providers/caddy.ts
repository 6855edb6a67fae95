import type { StackModel } from '../model.js';
import { type ProxyProvider, webPorts } from './types.js';

export const CADDYFILE_PATH = '/etc/caddy/Caddyfile';
/** Caddy's admin API, kept on loopback: only the healthcheck inside the container uses it. */
export const CADDY_ADMIN = '127.0.0.1:2019';

/**
 * A value written as one bare Caddyfile token. Config validation already
 * restricts domains, emails and URLs; this guards the file's syntax anyway.
 */
function word(value: string): string {
  if (!/^[^\s"'`{}\\#]+$/.test(value)) {
    throw new Error(`cannot write ${JSON.stringify(value)} into a Caddyfile`);
  }
  return value;
}

/** The Caddyfile: global options, then one site that proxies the domain to the app. */
export function renderCaddyfile(model: StackModel): string {
  const global = [`admin ${CADDY_ADMIN}`];
  if (model.tls === 'acme') {
    global.push(`email ${word(model.email)}`);
    if (model.acmeServer) global.push(`acme_ca ${word(model.acmeServer)}`);
  }
  if (model.tls === 'off') global.push('auto_https off');

  const site = model.tls === 'off' ? `http://${word(model.domain)}` : word(model.domain);
  const directives = [
    ...(model.tls === 'internal' ? ['tls internal'] : []),
    // The app's service name resolves on the shared ingress network.
    `reverse_proxy app:${model.app.port}`,
  ];
  return [
    '# Rendered by cluster-cli — do not edit; change cluster.yaml and run `cluster-cli init` again',
    '{',
    ...global.map((l) => `\t${l}`),
    '}',
    '',
    `${site} {`,
    ...directives.map((l) => `\t${l}`),
    '}',
    '',
  ].join('\n');
}

export const caddy: ProxyProvider = {
  id: 'caddy',
  // Caddy keeps certificates and ACME accounts in /data, its autosaved config in /config.
  volumes: () => ['proxy_data', 'proxy_config'],
  service: (model) => ({
    command: ['caddy', 'run', '--config', CADDYFILE_PATH, '--adapter', 'caddyfile'],
    ports: webPorts(model),
    mounts: [
      { type: 'volume', source: 'proxy_data', target: '/data' },
      { type: 'volume', source: 'proxy_config', target: '/config' },
    ],
    healthcheck: {
      test: ['CMD', 'wget', '-q', '-O', '/dev/null', `http://${CADDY_ADMIN}/config/`],
      retries: 3,
      startPeriod: '10s',
    },
  }),
  configs: (model) => [
    { key: 'caddyfile', target: CADDYFILE_PATH, content: renderCaddyfile(model) },
  ],
  appLabels: () => ({}),
};
