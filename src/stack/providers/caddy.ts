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

type Block = readonly (string | Block)[];

function block(head: string, body: Block, depth = 0): string[] {
  const pad = '\t'.repeat(depth);
  const lines = [`${pad}${head} {`];
  for (const item of body) {
    if (typeof item === 'string') lines.push(`${pad}\t${item}`);
    else lines.push(...block(item[0] as string, item.slice(1), depth + 1));
  }
  lines.push(`${pad}}`);
  return lines;
}

/**
 * The Caddyfile for the model's TLS state (see `tlsState`): global options,
 * the app's sites, the ACME challenge route to cluster-cli's agent when the
 * cluster owns the certificate, and the dashboard (Caddy's metrics behind the
 * admins' basic auth) once HTTPS and the admins' file are there.
 */
export function renderCaddyfile(model: StackModel): string {
  const state = tlsState(model);
  const global: string[] = [`admin ${CADDY_ADMIN}`];
  if (state === 'proxy-acme' && model.acme) {
    global.push(`email ${word(model.acme.email)}`);
    if (model.acme.directory !== LETS_ENCRYPT) global.push(`acme_ca ${word(model.acme.directory)}`);
  }
  // Caddy's own CA: its root stays in /data. Installing it into the container's
  // trust store would write to the read-only root filesystem (Caddy only logs
  // the failure), and nothing in the container needs to trust it.
  if (state === 'internal') global.push('skip_install_trust');
  // The cluster's own sites spell out every redirect and certificate.
  if (state === 'off' || state === 'cluster' || state === 'cluster-pending') {
    global.push('auto_https off');
  }

  const app = model.appDomains.map(word);
  const dashboard = servesHttps(state) && model.live.dashboardUsers ? model.dashboard : undefined;
  const proxyApp = `reverse_proxy app:${model.app.port}`;
  const challenge = [`handle ${ACME_CHALLENGE_PATH}*`, `reverse_proxy ${AGENT_CHALLENGE_UPSTREAM}`];
  const sites: string[][] = [];
  const files = `${SECRET_DIR}/${LIVE_SECRET_FILES.tlsCert} ${SECRET_DIR}/${LIVE_SECRET_FILES.tlsKey}`;
  const tls = state === 'internal' ? ['tls internal'] : state === 'cluster' ? [`tls ${files}`] : [];

  if (state === 'off') {
    sites.push(block(app.map((d) => `http://${d}`).join(', '), [proxyApp]));
  } else if (state === 'cluster-pending' || state === 'cluster') {
    const names = [...app, ...(model.dashboard ? [word(model.dashboard)] : [])];
    const rest =
      state === 'cluster'
        ? ['redir https://{host}{uri} 308']
        : // No certificate yet: serve the app over HTTP meanwhile.
          [proxyApp];
    sites.push(block(names.map((d) => `http://${d}`).join(', '), [challenge, ['handle', ...rest]]));
    if (state === 'cluster') {
      sites.push(block(app.map((d) => `https://${d}`).join(', '), [...tls, proxyApp]));
    }
  } else {
    sites.push(block(app.join(', '), [...tls, proxyApp]));
  }
  if (dashboard) {
    sites.push(
      block(`https://${word(dashboard)}`, [
        ...tls,
        ['basicauth', `import ${SECRET_DIR}/${LIVE_SECRET_FILES.dashboardUsers}`],
        'metrics',
      ]),
    );
  }
  return [
    '# Rendered by cluster-cli — do not edit; change cluster.yaml and run `cluster-cli init` again',
    ...block('', global).map((l, i) => (i === 0 ? '{' : l)),
    ...sites.flatMap((s) => ['', ...s]),
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
};
