import { isAbsolute, resolve } from 'node:path';
import { defaultAdvertiseAddr } from '../cluster/advertise.js';
import { daemonTime } from '../cluster/converge.js';
import { liveSecretsOfStack, planInit } from '../cluster/plan-init.js';
import { preflight, preflightError } from '../cluster/preflight.js';
import { probeHost, probeSwarm } from '../cluster/probe.js';
import { generateSecrets } from '../cluster/secrets.js';
import { oldestVersion } from '../cluster/versions.js';
import {
  DEFAULT_CONFIG_FILE,
  readConfigInput,
  saveConfig,
  validateConfig,
} from '../config/load.js';
import type { Config, ConfigInput, Host } from '../config/schema.js';
import { isDomain, isEmail, isIpAddress } from '../config/validators.js';
import { UserError } from '../core/errors.js';
import { changesOf } from '../core/plan.js';
import { quoteArg } from '../core/quote.js';
import type { HostSession } from '../core/session.js';
import { memberAddresses } from '../firewall/rules.js';
import { parseTarget } from '../remote/ssh-config.js';
import { buildStackModel, configServiceNames, secretNames } from '../stack/model.js';
import { renderStack } from '../stack/render.js';
import { formatPreflight } from '../ui/preflight.js';
import { askInput, askSelect, checked, parseTimeoutFlag } from './ask.js';
import { connectSession } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { firewallNoteLines, firewallStepsFor } from './firewall.js';
import { type Outcome, runPipeline } from './pipeline.js';

export interface InitOpts {
  host?: string;
  domain?: string;
  email?: string;
  advertiseAddr?: string;
  topology?: 'single' | 'three-node' | 'ha';
  proxy?: 'traefik' | 'caddy';
  tls?: 'acme' | 'internal' | 'off';
  force?: boolean;
  /** Turn cluster-cli's firewall on (recorded in cluster.yaml). */
  firewall?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  timeout?: string;
  identity?: string;
  knownHosts?: string;
  jump?: string;
  acceptNewHostKey?: boolean;
  config: string;
  json?: boolean;
}

const domainCheck = (v: string) => isDomain(v) || 'must be a domain name such as apps.example.com';
const emailCheck = (v: string) => isEmail(v) || 'must be an email address such as ops@example.com';
const ipCheck = (v: string) => isIpAddress(v) || 'must be an IPv4 or IPv6 address of the host';

/**
 * `cluster-cli init`: answers → config → probe → preflight → plan → apply →
 * converge → summary. Bad input fails before any host is contacted; a failing
 * preflight or a missing --yes fails before anything on the host changes.
 */
export async function runInit(opts: InitOpts, ctx: Ctx): Promise<void> {
  const t0 = performance.now();
  const out = (s: string) => {
    if (!opts.json) ctx.stdout.write(s);
  };
  const file = isAbsolute(opts.config) ? opts.config : resolve(ctx.cwd, opts.config);

  // 1. Everything the user typed, checked before we touch anything.
  if (opts.domain !== undefined) checked('--domain', opts.domain, domainCheck);
  if (opts.email !== undefined) checked('--email', opts.email, emailCheck);
  if (opts.advertiseAddr !== undefined) checked('--advertise-addr', opts.advertiseAddr, ipCheck);
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const target = opts.host !== undefined ? parseTarget(opts.host) : undefined;

  const base = (await readConfigInput(file, opts.config)) ?? {};
  const existingHost = base.hosts?.[0];
  if (target && existingHost?.address && existingHost.address !== target.host) {
    throw new UserError(
      `${opts.config} describes a cluster whose first manager is ${existingHost.address}, not ${target.host}.`,
      `use another --config file for a new cluster, or run: cluster-cli init --config ${opts.config}`,
    );
  }

  const domain = await askInput(ctx, {
    flag: '--domain',
    value: opts.domain ?? base.domain,
    message: 'Domain the platform app answers on?',
    validate: domainCheck,
  });
  const email = await askInput(ctx, {
    flag: '--email',
    value: opts.email ?? base.email,
    message: "Email for Let's Encrypt notices?",
    validate: emailCheck,
  });
  const topology = await askSelect(ctx, {
    flag: '--topology',
    value: opts.topology ?? base.topology,
    message: 'Topology?',
    choices: [
      { value: 'single', name: 'single server (everything on this host)' },
      {
        value: 'three-node',
        name: '3 nodes (start with this manager; the others join later)',
      },
      { value: 'ha', name: 'high availability (3+ managers)' },
    ],
    default: 'single',
  });

  const hostIn = {
    ...existingHost,
    ...(target
      ? {
          address: target.host,
          ...(target.user ? { user: target.user } : {}),
          ...(target.port ? { port: target.port } : {}),
        }
      : {}),
  };

  // Validate the whole config once with a placeholder node name, so cluster.yaml
  // errors surface before we connect anywhere.
  const draft: ConfigInput = {
    ...base,
    domain,
    email,
    topology,
    proxy: {
      ...base.proxy,
      ...(opts.proxy ? { provider: opts.proxy } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
    },
    hosts: [{ ...hostIn, name: hostIn.name ?? 'pending' }, ...(base.hosts?.slice(1) ?? [])],
  };
  validateConfig(draft, opts.config);

  // 2. Connect (host key checked) and probe: read-only, also in --dry-run.
  const session = await connectSession(ctx, {
    ...(hostIn.address ? { address: hostIn.address } : {}),
    ...(hostIn.user ? { user: hostIn.user } : {}),
    ...(hostIn.port ? { port: hostIn.port } : {}),
    ...((opts.identity ?? base.ssh?.identityFile)
      ? { identityFile: opts.identity ?? base.ssh?.identityFile }
      : {}),
    ...((opts.knownHosts ?? base.ssh?.knownHostsFile)
      ? { knownHostsFile: opts.knownHosts ?? base.ssh?.knownHostsFile }
      : {}),
    ...(opts.jump ? { jump: opts.jump } : {}),
    acceptNewHostKey: Boolean(opts.acceptNewHostKey),
  });
  try {
    await initOn(session, { opts, ctx, draft, file, out, timeoutS, t0 });
  } finally {
    await session.close();
  }
}

interface InitRun {
  readonly opts: InitOpts;
  readonly ctx: Ctx;
  readonly draft: ConfigInput;
  readonly file: string;
  readonly out: (s: string) => void;
  readonly timeoutS: number | undefined;
  readonly t0: number;
}

async function initOn(session: HostSession, r: InitRun): Promise<Outcome> {
  const { opts, ctx, out } = r;
  const exec = session.exec;
  const timings: Record<string, number> = {};
  const name = r.draft.name ?? 'platform';

  const t = performance.now();
  out(`Checking ${exec.label} ...\n`);
  const facts = await probeHost(exec, name);
  const report = preflight(facts, { force: Boolean(opts.force), stack: name });
  timings.preflight = performance.now() - t;
  const table = formatPreflight(report);
  const refused = preflightError(report, exec.label);
  if (refused) {
    out(`${table}\n\n`);
    throw refused;
  }

  const hostIn = r.draft.hosts?.[0];
  const detected = defaultAdvertiseAddr(hostIn?.address, facts);
  const advertiseAddr = await askInput(ctx, {
    flag: '--advertise-addr',
    value: opts.advertiseAddr ?? hostIn?.advertiseAddr ?? facts.swarm.nodeAddr,
    message: 'Address other nodes reach this manager on?',
    ...(detected ? { default: detected } : {}),
    validate: ipCheck,
  });
  if (
    facts.addresses.length &&
    !facts.addresses.includes(advertiseAddr) &&
    facts.swarm.state !== 'active'
  ) {
    throw new UserError(
      `--advertise-addr ${advertiseAddr} is not an address of ${exec.label} (it has ${facts.addresses.join(', ')}).`,
      `pass --advertise-addr with one of ${facts.addresses.join(', ')}`,
    );
  }

  const input: ConfigInput = {
    ...r.draft,
    hosts: [
      {
        ...(hostIn ?? {}),
        name: hostIn?.name && hostIn.name !== 'pending' ? hostIn.name : facts.hostname,
        advertiseAddr,
      },
      ...(r.draft.hosts?.slice(1) ?? []),
    ],
    ...(opts.firewall ? { firewall: { ...(r.draft.firewall ?? {}), enabled: true } } : {}),
  };
  const { config, warnings } = validateConfig(input, opts.config);
  for (const w of warnings) out(`warning: ${w.path}: ${w.message}\n`);

  const model = buildStackModel(config, liveSecretsOfStack(config.name, facts.cluster));
  const engine = oldestVersion([
    facts.docker.serverVersion,
    facts.docker.clientVersion,
    ...(facts.cluster?.nodes.map((n) => n.engine) ?? []),
  ]);
  const rendered = renderStack(model, engine ? { engine } : {});
  const base = planInit({
    config,
    host: exec.label,
    advertiseAddr,
    facts,
    rendered,
    force: Boolean(opts.force),
    newSecrets: generateSecrets(config),
  });
  // With the firewall on, this host's rules come last: iptables arrives with Docker.
  const fw = config.firewall.enabled
    ? await firewallStepsFor(config, memberAddresses(config, []), [
        {
          host: config.hosts[0] as Host,
          session,
          beforeDocker: !facts.docker.installed,
        },
      ])
    : undefined;
  const plan = fw ? { ...base, steps: [...base.steps, ...fw.steps] } : base;
  const deploys = changesOf(plan).some((s) => s.id === 'deploy');

  let since: Date | undefined;
  let swarmId = config.swarmId;
  return runPipeline(ctx, opts, {
    name: 'init',
    plan,
    sessions: new Map([[exec.label, session]]),
    preamble: {
      text: [table, ...firewallNoteLines(fw?.notes)].join('\n'),
      json: report.rows,
    },
    async converge(mode) {
      const t0 = performance.now();
      const states = await converge(session.docker(), ctx.stdout, mode, {
        stack: config.name,
        services: configServiceNames(config),
        timeoutMs: (r.timeoutS ?? config.deploy.timeout) * 1000,
        ...(since ? { since } : {}),
      });
      timings.convergence = performance.now() - t0;
      return states;
    },
    async save() {
      // Remember which swarm this file describes, so a later run against a host
      // of another swarm is refused instead of deploying into it.
      if (!swarmId) {
        swarmId =
          facts.swarm.clusterId ?? (await probeSwarm(exec).catch(() => undefined))?.clusterId;
      }
      await saveConfig(r.file, swarmId ? { ...input, swarmId } : input);
    },
    summary(o) {
      for (const s of o.report.timings) timings[s.id] = s.ms;
      timings.total = performance.now() - r.t0;
      const scheme = config.proxy.tls === 'off' ? 'http' : 'https';
      const json = {
        host: exec.label,
        changed: changesOf(plan).map((s) => s.title),
        unchanged: plan.steps.filter((s) => s.action === 'unchanged').map((s) => s.title),
        services: o.converged,
        urls: [`${scheme}://${config.domain}/`],
        config: r.file,
        timingsMs: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])),
      };
      return { json, text: formatSummary(config, json, exec.label, opts.config) };
    },
    // The daemon's own clock marks the deploy: an update rolled back after it is ours.
    // A swarm this run creates has no earlier tasks (and, on a fresh host, no
    // daemon to ask yet): everything in it is ours.
    async beforeApply() {
      if (!deploys) return;
      since = changesOf(plan).some((s) => s.id === 'swarm')
        ? new Date(0)
        : await daemonTime(session.docker()).catch(() => undefined);
    },
  });
}

function formatSummary(
  config: Config,
  s: { changed: string[]; urls: string[] },
  host: string,
  configArg: string,
): string {
  const configFlag = configArg === DEFAULT_CONFIG_FILE ? '' : ` -c ${quoteArg(configArg)}`;
  const lines = [
    '',
    s.changed.length
      ? `Done: ${s.changed.length} change(s) on ${host}.`
      : `Nothing to change: ${host} already matches ${config.name}.`,
    `  App:      ${s.urls[0]}  (point DNS for ${config.domain} at ${config.hosts[0]?.advertiseAddr ?? host})`,
    `  Stack:    ${config.name} (proxy: ${config.proxy.provider}, tls: ${config.proxy.tls})`,
    `  Networks: ${config.name}-ingress, ${config.name}-app, ${config.name}-data (internal)`,
    `  Secrets:  ${Object.values(secretNames(config.name)).join(', ')} (Docker secrets; values never leave the swarm)`,
    '',
    'Next:',
    `  cluster-cli stack render${configFlag}   # the deployed stack file`,
    `  ssh ${host} docker service ls   # the services, as Docker sees them`,
    `  cluster-cli init${configFlag} --dry-run   # after editing cluster.yaml: what would change`,
    '',
  ];
  return lines.join('\n');
}
