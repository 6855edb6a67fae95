import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { daemonTime } from '../cluster/converge.js';
import { liveSecretsOfStack } from '../cluster/plan-init.js';
import { probeCluster } from '../cluster/probe.js';
import { editConfigText } from '../config/edit.js';
import { validateConfig } from '../config/load.js';
import {
  type Config,
  type ConfigInput,
  LETS_ENCRYPT,
  LETS_ENCRYPT_STAGING,
} from '../config/schema.js';
import { isEmail } from '../config/validators.js';
import { UserError } from '../core/errors.js';
import { change, changesOf, type Plan, type Step } from '../core/plan.js';
import type { Queryable } from '../db/queryable.js';
import { buildStackModel, certificateDomains, configServiceNames } from '../stack/model.js';
import { checkDirectory } from '../tls/acme.js';
import { daysLeft } from '../tls/cert-info.js';
import { ensureCertSecrets, pruneCertSecrets } from '../tls/deliver.js';
import { precheckDomains } from '../tls/precheck.js';
import { servedCertificate } from '../tls/serving.js';
import {
  challengeStore,
  readTls,
  type StoredCertificate,
  type TlsSettings,
  writeTls,
} from '../tls/store.js';
import type { ProgressMode } from '../ui/progress.js';
import { runWithProgress } from '../ui/progress.js';
import { formatTable } from '../ui/table.js';
import { parseTimeoutFlag } from './ask.js';
import { type ClusterHandle, cfgFlag, openCluster, stackStepsFor } from './cluster.js';
import type { SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { withDatabase } from './db.js';
import { type PipelineFlags, runPipeline } from './pipeline.js';
import { updateProxyLive } from './proxy-live.js';
import { dashboardLive } from './user.js';

export interface SslFlags extends SshFlags, PipelineFlags {
  config: string;
  timeout?: string;
  /** host[:port] of the DNS server the pre-check asks (default: the system's). */
  dnsServer?: string;
}

export interface SslEnableOpts extends SslFlags {
  email?: string;
  staging?: boolean;
  acmeCa?: string;
  acmeCaRoot?: string;
  /** cluster (default): the agent owns the certificate; proxy: the proxy's own ACME. */
  managedBy?: 'cluster' | 'proxy';
}

/** How long to wait for the agent to obtain a certificate. */
const ORDER_TIMEOUT_MS = 180_000;

/**
 * `ssl enable`: HTTPS for the platform's host names. With the cluster owning
 * the certificate (the default) the plan deploys cluster-cli's agent and
 * routes ACME challenges to it; then, before anything is asked of the CA,
 * each host name must resolve to proxy nodes and port 80 must reach the
 * agent through the proxy; the agent orders one certificate (exactly one
 * replica takes the request) and the proxy is updated to serve it from
 * Docker secrets on every replica.
 */
export async function runSslEnable(opts: SslEnableOpts, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  if (opts.email !== undefined && !isEmail(opts.email)) {
    throw new UserError(
      `--email ${opts.email} is not an email address.`,
      'pass one such as --email admin@example.com',
    );
  }
  if (opts.staging && opts.acmeCa) {
    throw new UserError('--staging and --acme-ca name two CAs.', 'pass one of them');
  }
  const directory = opts.staging ? LETS_ENCRYPT_STAGING : opts.acmeCa;
  if (directory !== undefined && !/^https:\/\/[^\s/]+/.test(directory)) {
    throw new UserError(
      `--acme-ca ${directory} is not an https URL of an ACME directory.`,
      'pass the directory URL, e.g. --acme-ca https://acme.example.com/directory',
    );
  }
  const caRootPem = opts.acmeCaRoot ? await readCaRoot(ctx, opts.acmeCaRoot) : undefined;

  const h = await openCluster(ctx, opts);
  try {
    const managedBy = opts.managedBy ?? 'cluster';
    const next = withSsl(h, {
      managedBy,
      ...(directory ? { directory } : {}),
      ...(opts.email ? { email: opts.email } : {}),
      ...(opts.acmeCaRoot ? { caRoot: caRootFor(h.file, ctx, opts.acmeCaRoot) } : {}),
    });
    const model = buildStackModel(next.config);
    const dir = model.acme?.directory ?? LETS_ENCRYPT;
    // A refusal that needs no CA comes first.
    if (managedBy === 'proxy') {
      const replicas = proxyNodes(h, true).size;
      if (replicas > 1) {
        throw new UserError(
          `The proxy runs ${replicas} replicas; with its own ACME each would hold a different certificate, lost with its node.`,
          `let the cluster own it: cluster-cli ssl enable${cfgFlag(opts)} (without --managed-by proxy)`,
        );
      }
    }
    // Before anything changes: an unreachable CA is one line, nothing done.
    await checkDirectory(dir, caRootPem ?? (await storedCaRoot(h, next.config)));
    const stack = stackStepsFor(h, next.config, false);
    const domains = certificateDomains(model);
    const issue: Step[] =
      managedBy === 'cluster'
        ? [
            change(
              'certificate',
              h.manager.session.exec.label,
              `Obtain one certificate for ${domains.join(', ')} from ${dir} (cluster-cli's agent, HTTP-01), then serve it from every proxy replica`,
              [],
            ),
          ]
        : [];
    const plan: Plan = {
      title: `ssl enable on ${h.config.name}`,
      steps: [...stack.steps, ...issue],
    };
    const result: { cert?: StoredCertificate; served?: ServedRow[] } = {};
    let since: Date | undefined;
    const manager = h.manager.session;
    const outcome = await runPipeline(ctx, opts, {
      name: 'ssl enable',
      plan,
      sessions: new Map([[manager.exec.label, manager]]),
      async beforeApply() {
        since = await daemonTime(manager.docker()).catch(() => undefined);
      },
      async converge(mode) {
        if (stack.deploys) {
          await converge(manager.docker(), ctx.stdout, mode, {
            stack: next.config.name,
            services: configServiceNames(next.config),
            timeoutMs: (timeoutS ?? next.config.deploy.timeout) * 1000,
            ...(since ? { since } : {}),
          });
        }
        if (managedBy !== 'cluster') return undefined;
        const hNext = { ...h, config: next.config };
        await withDatabase(ctx, hNext, opts, async (db) => {
          await writeTls(
            db,
            'settings',
            tlsSettings(next.config, domains, caRootPem ?? (await storedCaRoot(h, next.config))),
          );
          await runWithProgress(ctx.stdout, mode, [
            {
              title: `Check that ${domains.join(', ')} reach the proxy on port 80`,
              run: async () => precheck(db, hNext, domains, opts.dnsServer),
            },
          ]);
          result.cert = await requestCertificate(ctx, db, mode, { force: false });
          result.served = await deliver(ctx, hNext, db, result.cert, mode, timeoutS);
        });
        return result;
      },
      async save(report) {
        if (!report || report.failed.size) return;
        await writeFile(h.file, next.text);
      },
      summary() {
        const cfg = cfgFlag(opts);
        const lines = ['', `HTTPS is on for ${domains.join(', ')}.`];
        if (result.cert) lines.push(...certLines(result.cert), ...servedLines(result.served ?? []));
        else lines.push(`The proxy obtains its certificate itself (${dir}).`);
        lines.push(
          '',
          'Next:',
          `  cluster-cli ssl status${cfg}`,
          `  curl -I https://${domains[0]}/`,
          '',
        );
        return {
          text: lines.join('\n'),
          json: {
            domains,
            directory: dir,
            managedBy,
            certificate: result.cert ? certJson(result.cert) : undefined,
            served: result.served,
            changed: changesOf(plan).map((s) => s.title),
          },
        };
      },
    });
    if (!outcome.dryRun) failUnlessServed(result.served, opts);
  } finally {
    await h.manager.session.close();
  }
}

/** `ssl renew [--force]`: ask the agents for a renewal (once), then check every replica serves it. */
export async function runSslRenew(opts: SslFlags & { force?: boolean }, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const h = await openCluster(ctx, opts);
  try {
    requireClusterTls(h, opts);
    const domains = certificateDomains(buildStackModel(h.config));
    const manager = h.manager.session;
    const plan: Plan = {
      title: `ssl renew on ${h.config.name}`,
      steps: [
        change(
          'certificate',
          manager.exec.label,
          `${opts.force ? 'Renew' : 'Renew if due'} the certificate for ${domains.join(', ')} (one agent replica takes the request), then serve it from every proxy replica`,
          [],
        ),
      ],
    };
    const result: { cert?: StoredCertificate; served?: ServedRow[]; renewed?: boolean } = {};
    const outcome = await runPipeline(ctx, opts, {
      name: 'ssl renew',
      plan,
      sessions: new Map([[manager.exec.label, manager]]),
      async converge(mode) {
        await withDatabase(ctx, h, opts, async (db) => {
          const before = await readTls(db, 'certificate');
          const settings = await readTls(db, 'settings');
          await writeTls(
            db,
            'settings',
            tlsSettings(h.config, domains, settings?.caRoot ?? (await storedCaRoot(h, h.config))),
          );
          result.cert = await requestCertificate(ctx, db, mode, {
            force: Boolean(opts.force),
          });
          result.renewed = result.cert.fingerprint !== before?.fingerprint;
          result.served = await deliver(ctx, h, db, result.cert, mode, timeoutS);
        });
        return result;
      },
      summary() {
        const lines = [
          '',
          result.renewed
            ? 'Renewed the certificate.'
            : 'The certificate is still fresh: not renewed (--force renews anyway).',
          ...(result.cert ? certLines(result.cert) : []),
          ...servedLines(result.served ?? []),
          '',
        ];
        return {
          text: lines.join('\n'),
          json: {
            renewed: result.renewed,
            certificate: result.cert ? certJson(result.cert) : undefined,
            served: result.served,
          },
        };
      },
    });
    if (!outcome.dryRun) failUnlessServed(result.served, opts);
  } finally {
    await h.manager.session.close();
  }
}

/** `ssl disable`: back to plain HTTP; the agent is removed, the stored certificate kept. */
export async function runSslDisable(opts: SslFlags, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const h = await openCluster(ctx, opts);
  try {
    const next = editFile(h, (input) => ({
      ...input,
      proxy: { ...(input.proxy ?? {}), tls: 'off' },
    }));
    const stack = stackStepsFor(h, next.config, false);
    const manager = h.manager.session;
    let since: Date | undefined;
    const plan: Plan = { title: `ssl disable on ${h.config.name}`, steps: stack.steps };
    await runPipeline(ctx, opts, {
      name: 'ssl disable',
      plan,
      sessions: new Map([[manager.exec.label, manager]]),
      async beforeApply() {
        since = await daemonTime(manager.docker()).catch(() => undefined);
      },
      async converge(mode) {
        if (!stack.deploys) return undefined;
        return converge(manager.docker(), ctx.stdout, mode, {
          stack: next.config.name,
          services: configServiceNames(next.config),
          timeoutMs: (timeoutS ?? next.config.deploy.timeout) * 1000,
          ...(since ? { since } : {}),
        });
      },
      async save(report) {
        if (!report || report.failed.size) return;
        await writeFile(h.file, next.text);
      },
      summary() {
        return {
          text: `\nHTTPS is off: the proxy serves plain HTTP.\n\nNext:\n  cluster-cli ssl enable${cfgFlag(opts)}\n`,
          json: { tls: 'off', changed: changesOf(plan).map((s) => s.title) },
        };
      },
    });
  } finally {
    await h.manager.session.close();
  }
}

export interface SslStatus {
  readonly tls: Config['proxy']['tls'];
  readonly managedBy: Config['ssl']['acme'];
  readonly domains: string[];
  readonly directory?: string;
  readonly certificate?: ReturnType<typeof certJson>;
  readonly lastRenewal?: { at?: string; by?: string };
  readonly lastAttempt?: { at?: string; by?: string };
  readonly lastError?: string;
  readonly served: ServedRow[];
}

/** `ssl status`: per host name, the certificate, who serves it, the last renewal and error. */
export async function runSslStatus(opts: SslFlags, ctx: Ctx): Promise<void> {
  const h = await openCluster(ctx, opts);
  try {
    const model = buildStackModel(h.config);
    const domains = certificateDomains(model);
    const status: {
      -readonly [K in keyof SslStatus]: SslStatus[K];
    } = {
      tls: h.config.proxy.tls,
      managedBy: h.config.ssl.acme,
      domains,
      ...(model.acme ? { directory: model.acme.directory } : {}),
      served: [],
    };
    let cert: StoredCertificate | undefined;
    if (h.config.proxy.tls === 'acme' && h.config.ssl.acme === 'cluster') {
      await withDatabase(ctx, h, opts, async (db) => {
        cert = await readTls(db, 'certificate');
        const s = await readTls(db, 'status');
        if (cert) status.certificate = certJson(cert);
        if (s?.lastRenewalAt) status.lastRenewal = { at: s.lastRenewalAt, by: s.lastRenewalBy };
        if (s?.lastAttemptAt) status.lastAttempt = { at: s.lastAttemptAt, by: s.lastAttemptBy };
        if (s?.lastError) status.lastError = s.lastError;
      });
    }
    if (h.config.proxy.tls !== 'off') status.served = await servedBy(h, domains, cert);
    if (opts.json) {
      ctx.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      return;
    }
    const lines = [
      `TLS: ${status.tls}${status.tls === 'acme' ? ` (certificate owned by ${status.managedBy === 'cluster' ? 'the cluster: one for every proxy replica' : 'each proxy replica'}; CA ${status.directory})` : ''}`,
    ];
    if (cert) lines.push(...certLines(cert));
    else if (status.tls === 'acme' && status.managedBy === 'cluster')
      lines.push(`No certificate yet: cluster-cli ssl enable${cfgFlag(opts)}`);
    if (status.lastRenewal)
      lines.push(`Last renewal: ${status.lastRenewal.at} by ${status.lastRenewal.by}`);
    if (status.lastError) lines.push(`Last ACME error: ${status.lastError}`);
    if (status.served.length) {
      lines.push(
        '',
        formatTable(
          ['DOMAIN', 'NODE', 'ADDRESS', 'SERVES'],
          status.served.map((r) => [r.domain, r.node, r.address, r.serves]),
        ),
      );
    }
    ctx.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await h.manager.session.close();
  }
}

// --------------------------------------------------------------- helpers --

function requireClusterTls(h: ClusterHandle, opts: { config: string }): void {
  if (h.config.proxy.tls !== 'acme' || h.config.ssl.acme !== 'cluster') {
    throw new UserError(
      `${opts.config} does not have the cluster own its certificate (proxy.tls ${h.config.proxy.tls}, ssl.acme ${h.config.ssl.acme}).`,
      `turn it on first: cluster-cli ssl enable${cfgFlag(opts)}`,
    );
  }
}

async function readCaRoot(ctx: Pick<Ctx, 'cwd'>, file: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(resolve(ctx.cwd, file), 'utf8');
  } catch (err) {
    throw new UserError(
      `Cannot read --acme-ca-root ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      'pass the PEM file of the CA that signs the ACME directory',
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UserError(
      `--acme-ca-root ${file} holds no PEM certificate.`,
      'pass the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)',
    );
  }
  return pem;
}

/** The CA root as cluster.yaml records it: relative to cluster.yaml's folder. */
function caRootFor(configFile: string, ctx: Pick<Ctx, 'cwd'>, given: string): string {
  const abs = resolve(ctx.cwd, given);
  const rel = relative(dirname(configFile), abs);
  return rel.startsWith('..') || isAbsolute(rel) ? abs : rel;
}

/** ssl.caRoot's PEM (relative to cluster.yaml); unreadable counts as none. */
async function storedCaRoot(h: ClusterHandle, config: Config): Promise<string | undefined> {
  if (!config.ssl.caRoot) return undefined;
  return readCaRoot({ cwd: dirname(h.file) }, config.ssl.caRoot).catch(() => undefined);
}

interface Edited {
  readonly config: Config;
  readonly text: string;
}

function editFile(h: ClusterHandle, f: (input: ConfigInput) => ConfigInput): Edited {
  const input = f(structuredClone(h.input));
  const { config } = validateConfig(input, h.configArg);
  return { config, text: editConfigText(h.text, input) };
}

function withSsl(
  h: ClusterHandle,
  o: { managedBy: 'cluster' | 'proxy'; directory?: string; email?: string; caRoot?: string },
): Edited {
  return editFile(h, (input) => ({
    ...input,
    proxy: { ...(input.proxy ?? {}), tls: 'acme' },
    ssl: {
      ...(input.ssl ?? {}),
      acme: o.managedBy,
      ...(o.directory ? { directory: o.directory } : {}),
      ...(o.email ? { email: o.email } : {}),
      ...(o.caRoot ? { caRoot: o.caRoot } : {}),
    },
  }));
}

function tlsSettings(config: Config, domains: string[], caRoot: string | undefined): TlsSettings {
  const model = buildStackModel(config);
  return {
    stack: config.name,
    domains,
    directory: model.acme?.directory ?? LETS_ENCRYPT,
    email: model.acme?.email ?? config.email,
    ...(caRoot ? { caRoot } : {}),
    renewDays: config.ssl.renewDays,
  };
}

/**
 * Address → node name of the nodes that run the proxy (managers, or the
 * public ones); only the ready ones unless `evenDown` (a node that is down
 * runs its replica again when it is back).
 */
function proxyNodes(h: ClusterHandle, evenDown = false): Map<string, string> {
  const nodes = h.manager.cluster.nodes;
  const anyPublic = nodes.some((n) => n.labels.public_ip === 'true');
  const out = new Map<string, string>();
  for (const n of nodes) {
    if (n.role !== 'manager' || (!evenDown && n.state !== 'ready')) continue;
    if (anyPublic && n.labels.public_ip !== 'true') continue;
    if (n.addr) out.set(n.addr, n.hostname);
  }
  return out;
}

async function precheck(
  db: Queryable,
  h: ClusterHandle,
  domains: string[],
  dnsServer: string | undefined,
): Promise<void> {
  const token = `cluster-cli-check-${randomBytes(12).toString('hex')}`;
  const keyAuthorization = `${token}.${randomBytes(16).toString('hex')}`;
  const store = challengeStore(db, 5);
  await store.set(token, keyAuthorization);
  try {
    // The agent may just have started: give it a few tries.
    let problems: string[] = [];
    for (let i = 0; i < 10; i++) {
      problems = await precheckDomains({
        domains,
        proxyNodes: proxyNodes(h),
        token,
        keyAuthorization,
        ...(dnsServer ? { dnsServer } : {}),
      });
      if (!problems.length || problems.some((p) => /resolve/.test(p))) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (problems.length) {
      throw new UserError(
        `Not asking the CA: ${problems.length === 1 ? problems[0] : `\n  ${problems.join('\n  ')}`}`,
        'fix DNS or the firewall (port 80 from the internet to every proxy node), then run the same command again',
      );
    }
  } finally {
    await store.remove(token);
  }
}

/** Ask the agents for a certificate (one replica takes the request) and wait for the answer. */
async function requestCertificate(
  ctx: Ctx,
  db: Queryable,
  mode: ProgressMode,
  o: { force: boolean },
): Promise<StoredCertificate> {
  const id = randomUUID();
  let cert: StoredCertificate | undefined;
  await runWithProgress(ctx.stdout, mode, [
    {
      title: o.force ? 'Renew the certificate (agent)' : 'Obtain the certificate (agent)',
      run: async (report) => {
        await writeTls(db, 'request', {
          id,
          force: o.force,
          requestedAt: new Date().toISOString(),
        });
        const t0 = Date.now();
        for (;;) {
          const s = await readTls(db, 'status');
          if (s?.handled?.id === id) {
            if (!s.handled.ok) {
              throw new UserError(
                `The agent could not obtain the certificate: ${s.handled.detail}`,
                'fix the cause, then run: cluster-cli ssl renew (cluster-cli ssl status shows the last error)',
              );
            }
            report(s.handled.detail);
            break;
          }
          if (Date.now() - t0 > ORDER_TIMEOUT_MS) {
            throw new UserError(
              `No agent answered within ${ORDER_TIMEOUT_MS / 1000}s.`,
              'check the agent: docker service ps <stack>_agent (its image must be on the managers: cluster-cli images push)',
            );
          }
          report(`waiting ${Math.round((Date.now() - t0) / 1000)}s`);
          await new Promise((r) => setTimeout(r, 500));
        }
        cert = await readTls(db, 'certificate');
      },
    },
  ]);
  if (!cert) throw new Error('the agent reported success but stored no certificate');
  return cert;
}

export interface ServedRow {
  readonly domain: string;
  readonly node: string;
  readonly address: string;
  /** `current`, `other <fingerprint…>`, or the error. */
  readonly serves: string;
  readonly current: boolean;
}

async function servedBy(
  h: ClusterHandle,
  domains: string[],
  cert: StoredCertificate | undefined,
): Promise<ServedRow[]> {
  const rows: ServedRow[] = [];
  for (const [address, node] of proxyNodes(h)) {
    for (const domain of domains) {
      const s = await servedCertificate(address, domain);
      const current = s.ok && cert !== undefined && s.fingerprint256 === cert.fingerprint;
      rows.push({
        domain,
        node,
        address,
        current,
        serves: !s.ok
          ? `error: ${s.error}`
          : current
            ? 'current certificate'
            : `another certificate (${s.fingerprint256.slice(0, 17)}…, until ${s.validTo})`,
      });
    }
  }
  return rows;
}

/** Secrets, proxy update (if the agent did not swap it already), then wait until every replica serves it. */
async function deliver(
  ctx: Ctx,
  h: ClusterHandle,
  db: Queryable,
  cert: StoredCertificate,
  mode: ProgressMode,
  timeoutS: number | undefined,
): Promise<ServedRow[]> {
  const api = h.manager.session.docker();
  const names = await ensureCertSecrets(api, h.config.name, cert);
  // The dashboard appears with HTTPS: it needs the admins' file then.
  const users = h.config.proxy.dashboard ? await dashboardLive(api, h.config, db) : {};
  const updated = await updateProxyLive(
    ctx,
    h,
    { ...names, ...users },
    { mode, ...(timeoutS ? { timeoutS } : {}) },
  );
  if (!updated) {
    // The agent swapped it in already: wait for that rolling update instead.
    await converge(api, ctx.stdout, mode, {
      stack: h.config.name,
      services: [`${h.config.name}_proxy`],
      timeoutMs: (timeoutS ?? h.config.deploy.timeout) * 1000,
    });
  }
  const fresh = {
    ...h,
    manager: { ...h.manager, cluster: await probeCluster(h.manager.session.exec, h.config.name) },
  };
  let rows: ServedRow[] = [];
  await runWithProgress(ctx.stdout, mode, [
    {
      title: 'Check that every proxy replica serves the certificate',
      run: async (report) => {
        const domains = certificateDomains(buildStackModel(h.config));
        for (let i = 0; i < 60; i++) {
          rows = await servedBy(fresh, domains, cert);
          const bad = rows.filter((r) => !r.current);
          report(`${rows.length - bad.length}/${rows.length} serve it`);
          if (!bad.length) break;
          await new Promise((r) => setTimeout(r, 1000));
        }
      },
    },
  ]);
  // Keep the pair now mounted and the one mounted before it (a rollback may need
  // it): the handle's facts were read before the request, so they name that one.
  const before = liveSecretsOfStack(h.config.name, h.manager.cluster);
  const keep = [names.tlsCert, names.tlsKey, before.tlsCert, before.tlsKey].filter(
    (x): x is string => Boolean(x),
  );
  await pruneCertSecrets(api, h.config.name, keep);
  return rows;
}

function failUnlessServed(rows: ServedRow[] | undefined, opts: { config: string }): void {
  const bad = (rows ?? []).filter((r) => !r.current);
  if (bad.length) {
    throw new UserError(
      `Not every proxy replica serves the new certificate: ${bad.map((r) => `${r.node} (${r.domain}): ${r.serves}`).join('; ')}`,
      `check the proxy: cluster-cli ssl status${cfgFlag(opts)}`,
    );
  }
}

function certJson(c: StoredCertificate) {
  return {
    domains: c.domains,
    issuer: c.issuer,
    serial: c.serial,
    fingerprint: c.fingerprint,
    notAfter: c.notAfter,
    daysLeft: Math.floor(daysLeft({ notAfter: new Date(c.notAfter) }, new Date())),
    obtainedAt: c.obtainedAt,
    obtainedBy: c.obtainedBy,
  };
}

function certLines(c: StoredCertificate): string[] {
  const j = certJson(c);
  return [
    `Certificate: ${j.domains.join(', ')}`,
    `  issuer ${j.issuer}, expires ${j.notAfter} (${j.daysLeft} days), obtained ${j.obtainedAt} by ${j.obtainedBy}`,
  ];
}

function servedLines(rows: ServedRow[]): string[] {
  if (!rows.length) return [];
  const nodes = [...new Set(rows.filter((r) => r.current).map((r) => r.node))];
  return [`Served by: ${nodes.join(', ') || 'no node yet'}`];
}
