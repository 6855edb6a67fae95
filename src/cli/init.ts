import { randomBytes } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { planInit, stackRevision } from '../cluster/plan-init.js';
import { type PreflightReport, preflight } from '../cluster/preflight.js';
import { type HostFacts, probeHost, probeSwarm } from '../cluster/probe.js';
import {
  DEFAULT_CONFIG_FILE,
  readConfigInput,
  saveConfig,
  validateConfig,
} from '../config/load.js';
import type { Config, ConfigInput } from '../config/schema.js';
import { isDomain, isEmail, isIpAddress } from '../config/validators.js';
import { apply, type StepTiming } from '../core/apply.js';
import { UserError } from '../core/errors.js';
import { changesOf, formatPlan, planToJson } from '../core/plan.js';
import { Secret } from '../core/secret.js';
import type { Executor } from '../remote/executor.js';
import { quoteArg } from '../remote/quote.js';
import { parseTarget } from '../remote/ssh-config.js';
import { buildStackModel, secretNames, stackServiceNames } from '../stack/model.js';
import { renderStack } from '../stack/render.js';
import { runWithProgress } from '../ui/progress.js';
import { formatTable } from '../ui/table.js';
import { askInput, askSelect, checked, confirmOrFail } from './ask.js';
import { connectHost } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';

export interface InitOpts {
  host?: string;
  domain?: string;
  email?: string;
  advertiseAddr?: string;
  topology?: 'single' | 'three-node' | 'ha';
  proxy?: 'traefik' | 'caddy';
  tls?: 'acme' | 'internal' | 'off';
  force?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  timeout?: string;
  identity?: string;
  knownHosts?: string;
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
  const timeoutS = opts.timeout === undefined ? undefined : parseTimeout(opts.timeout);
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
  const exec = await connectHost(ctx, {
    ...(hostIn.address ? { address: hostIn.address } : {}),
    ...(hostIn.user ? { user: hostIn.user } : {}),
    ...(hostIn.port ? { port: hostIn.port } : {}),
    ...((opts.identity ?? base.ssh?.identityFile)
      ? { identityFile: opts.identity ?? base.ssh?.identityFile }
      : {}),
    ...((opts.knownHosts ?? base.ssh?.knownHostsFile)
      ? { knownHostsFile: opts.knownHosts ?? base.ssh?.knownHostsFile }
      : {}),
    acceptNewHostKey: Boolean(opts.acceptNewHostKey),
  });
  try {
    await initOn(exec, { opts, ctx, draft, file, out, timeoutS, t0 });
  } finally {
    await exec.close();
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

async function initOn(exec: Executor, r: InitRun): Promise<void> {
  const { opts, ctx, out } = r;
  const timings: Record<string, number> = {};
  const name = r.draft.name ?? 'platform';

  let t = performance.now();
  out(`Checking ${exec.label} ...\n`);
  const facts = await probeHost(exec, name);
  const report = preflight(facts, { force: Boolean(opts.force), stack: name });
  timings.preflight = performance.now() - t;
  out(`${formatPreflight(report)}\n\n`);
  if (report.blocking.length) {
    const forcible = report.blocking.every((b) => b.forcible);
    throw new UserError(
      `Preflight failed on ${exec.label}: ${report.blocking.map((b) => `${b.check}: ${b.value}`).join('; ')}. Nothing was changed.`,
      forcible
        ? 'fix the host, or re-run with --force to go on anyway'
        : 'fix the host and run init again',
    );
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
  };
  const { config, warnings } = validateConfig(input, opts.config);
  for (const w of warnings) out(`warning: ${w.path}: ${w.message}\n`);

  const model = buildStackModel(config);
  const revision = stackRevision(model);
  const rendered = renderStack(model, { revision });
  const plan = planInit({
    config,
    host: exec.label,
    advertiseAddr,
    facts,
    rendered,
    revision,
    force: Boolean(opts.force),
    newSecrets: generateSecrets(config),
  });
  const changes = changesOf(plan);

  if (opts.dryRun) {
    if (opts.json) {
      ctx.stdout.write(
        `${JSON.stringify({ dryRun: true, host: exec.label, preflight: report.rows, plan: planToJson(plan) }, null, 2)}\n`,
      );
    } else {
      out(
        `${formatPlan(plan)}\n\nDry run: nothing was changed${changes.length ? '' : ' (and nothing would be)'}; ${r.file} was not written.\n`,
      );
    }
    return;
  }

  out(`${formatPlan(plan)}\n\n`);
  if (changes.length) {
    await confirmOrFail(ctx, {
      yes: Boolean(opts.yes),
      what: `init would make ${changes.length} change(s) on ${exec.label}`,
      message: `Apply ${changes.length} change(s) to ${exec.label}?`,
    });
  }
  await saveConfig(r.file, input);

  const mode = opts.json ? 'silent' : ctx.tty ? 'tty' : 'plain';
  let stepTimings: StepTiming[] = [];
  if (changes.length) {
    t = performance.now();
    const executors = new Map([[exec.label, exec]]);
    await runWithProgress(ctx.stdout, mode, [
      {
        title: `Apply ${changes.length} change(s) on ${exec.label}`,
        run: async (report) => {
          stepTimings = await apply(plan, executors, { onStepStart: (s) => report(s.title) });
        },
      },
    ]);
    for (const s of stepTimings) timings[s.id] = s.ms;
  }

  if (!config.swarmId) {
    // Remember which swarm this file describes, so a later run against a host
    // of another swarm is refused instead of deploying into it.
    // Known from the probe when the swarm already existed; else ask after `swarm init`.
    const swarmId = facts.swarm.clusterId ?? (await probeSwarm(exec)).clusterId;
    if (swarmId) await saveConfig(r.file, { ...input, swarmId });
  }

  t = performance.now();
  const services = stackServiceNames(config.name);
  const states = await converge(exec, ctx.stdout, mode, {
    stack: config.name,
    services,
    timeoutMs: (r.timeoutS ?? config.deploy.timeout) * 1000,
  });
  timings.convergence = performance.now() - t;
  timings.total = performance.now() - r.t0;

  const scheme = config.proxy.tls === 'off' ? 'http' : 'https';
  const summary = {
    host: exec.label,
    changed: changes.map((s) => s.title),
    unchanged: plan.steps.filter((s) => s.action === 'unchanged').map((s) => s.title),
    services: states,
    urls: [`${scheme}://${config.domain}/`],
    config: r.file,
    timingsMs: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])),
  };
  if (opts.json) {
    ctx.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  out(formatSummary(config, summary, exec.label, opts.config));
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

export function formatPreflight(report: PreflightReport): string {
  return formatTable(
    ['check', 'found', 'wanted', 'result'],
    report.rows.map((r) => [r.check, r.value, r.want, r.status.toUpperCase()]),
  );
}

/** The SSH address when it is an IP of the host, else the kernel's route source, else the first global address. */
export function defaultAdvertiseAddr(
  sshAddress: string | undefined,
  facts: HostFacts,
): string | undefined {
  if (
    sshAddress &&
    isIpAddress(sshAddress) &&
    (facts.addresses.length === 0 || facts.addresses.includes(sshAddress))
  ) {
    return sshAddress;
  }
  return facts.swarm.nodeAddr ?? facts.routeSrc ?? facts.addresses[0];
}

function generateSecrets(config: Config): Record<string, Secret> {
  return Object.fromEntries(
    Object.values(secretNames(config.name)).map((n) => [
      n,
      new Secret(randomBytes(24).toString('base64url'), n),
    ]),
  );
}

function parseTimeout(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 10 || n > 3600)
    throw new UserError(
      `--timeout ${JSON.stringify(v)}: must be a whole number of seconds from 10 to 3600`,
    );
  return n;
}
