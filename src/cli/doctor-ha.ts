import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type ApiService, listStackServices, waitForConvergence } from '../cluster/converge.js';
import { DOCTOR_EXIT, type DoctorVerdict } from '../cluster/doctor.js';
import {
  DEADMAN_MARGIN_S,
  deadManStart,
  deadManStop,
  deleteRule,
  dockerRestart,
  dockerUnitState,
  type HaRule,
  isolateCmds,
  listRawPrerouting,
  MAX_DELETES,
  parseHaRules,
  parseRouteDev,
  parseUnitActive,
  routeTo,
} from '../cluster/ha-isolate.js';
import { type LoadStats, type LoadTarget, requestOnce, startLoad } from '../cluster/ha-load.js';
import {
  HA_CHECK_IDS,
  type HaCheckId,
  type HaFacts,
  type HaNodeAccess,
  type HaNodeFacts,
  type HaPlan,
  type HaServiceFacts,
  type HaSettings,
  LOAD_EDGE_S,
  type PlannedCheck,
  planHa,
} from '../cluster/ha-plan.js';
import {
  type HaCheckResult,
  type HaReport,
  haVerdict,
  loadLine,
  percent,
  planJson,
  renderHaMarkdown,
  renderHaPlan,
  renderHaSummary,
  reportFileName,
  secs,
} from '../cluster/ha-report.js';
import { type NodeInspect, nodeFacts, probeSwarm } from '../cluster/probe.js';
import { apiRequest, type DockerApi } from '../core/api.js';
import { ExitCode, UserError } from '../core/errors.js';
import type { Executor } from '../core/executor.js';
import type { HostSession } from '../core/session.js';
import { sshPortsOf } from '../firewall/rules.js';
import { confirmOrFail, parseIntFlag } from './ask.js';
import { type ClusterHandle, cfgFlag, hostTarget, openCluster } from './cluster.js';
import { connectSession, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { connectedPort } from './firewall.js';
import { closeAll, firstLine, type PipelineFlags } from './pipeline.js';

/**
 * `cluster-cli doctor --ha`: the HA checklist run for real. It takes nodes
 * out (src/cluster/ha-isolate.ts), measures how the cluster copes, puts
 * them back, and writes a report. The story: connect to every host → read
 * the facts → plan (src/cluster/ha-plan.ts) → print it (or --json) → stop on
 * --dry-run → confirm (--yes) → remove leftovers of an interrupted run → run
 * the checks in order, restoring every node in a finally, on SIGINT/SIGTERM
 * too → summary → report file. Exit 0 all ok, 1 a warning, 2 a failure, 130
 * interrupted.
 */

export interface DoctorHaOpts extends SshFlags, PipelineFlags {
  config: string;
  ha?: boolean;
  report?: string;
  downSeconds?: string;
  rescheduleTimeout?: string;
  rps?: string;
  /** Only these checks, comma-separated or repeated. */
  check?: string[];
}

/** What the run touches outside the hosts, injectable for tests. */
export interface HaDeps {
  readonly signals?: {
    on(signal: NodeJS.Signals, fn: (s: NodeJS.Signals) => void): unknown;
    off(signal: NodeJS.Signals, fn: (s: NodeJS.Signals) => void): unknown;
  };
  readonly now?: () => Date;
}

const API_TIMEOUT_MS = 5000;
const POLL_MS = 1000;

const intFlag = (flag: string, v: string | undefined, def: number, min: number, max: number) =>
  parseIntFlag(flag, v, min, max) ?? def;

export function haSettings(opts: DoctorHaOpts): HaSettings {
  return {
    downSeconds: intFlag('--down-seconds', opts.downSeconds, 20, 5, 600),
    rescheduleTimeout: intFlag('--reschedule-timeout', opts.rescheduleTimeout, 60, 10, 1800),
    rps: intFlag('--rps', opts.rps, 20, 1, 200),
    ...(opts.check?.length ? { only: checkIds(opts.check) } : {}),
  };
}

/** --check names, comma-separated or repeated; an unknown one is refused, naming the known ones. */
export function checkIds(values: readonly string[]): HaCheckId[] {
  const names = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !(HA_CHECK_IDS as readonly string[]).includes(n));
  if (unknown.length || !names.length)
    throw new UserError(
      `Unknown HA check ${unknown.map((u) => JSON.stringify(u)).join(', ') || '(none given)'}: the checks are ${HA_CHECK_IDS.join(', ')}.`,
      `cluster-cli doctor --ha --check ${HA_CHECK_IDS[0]} --dry-run`,
    );
  return HA_CHECK_IDS.filter((id) => names.includes(id));
}

export async function runDoctorHa(opts: DoctorHaOpts, ctx: Ctx, deps: HaDeps = {}): Promise<void> {
  const settings = haSettings(opts);
  const h = await openCluster(ctx, opts);
  const opened: HostSession[] = [h.manager.session];
  try {
    const sessions = await connectAll(ctx, opts, h, opened);
    const gathered = await gather(h, opts, sessions.sessions, sessions.errors);
    const plan = planHa(gathered.facts, settings);
    const preamble = {
      manager: h.manager.session.exec.label,
      leftovers: gathered.leftovers.map((l) => ({ node: l.node, rules: l.rules.length })),
    };
    if (opts.dryRun) {
      ctx.stdout.write(
        opts.json
          ? `${JSON.stringify({ dryRun: true, plan: planJson(plan, preamble) }, null, 2)}\n`
          : `${renderHaPlan(plan, { ...preamble, commands: true })}\n\nDry run: no node was touched.\n`,
      );
      return;
    }
    if (!opts.json) ctx.stdout.write(`${renderHaPlan(plan, preamble)}\n\n`);
    const running = plan.checks.filter((c) => !c.skip);
    if (running.length || gathered.leftovers.length) {
      const taken = [...new Set(running.flatMap((c) => c.restarted ?? c.nodes))];
      await confirmOrFail(ctx, {
        yes: Boolean(opts.yes),
        what: `doctor --ha would take out ${taken.length ? taken.join(', ') : 'no node'} for a while (${running.length} check(s))`,
        message: `Run ${running.length} HA check(s), taking out ${taken.join(', ') || 'no node'} in turn?`,
      });
    }
    await new HaRun(ctx, opts, deps, h, sessions.sessions, gathered, plan).run();
  } finally {
    await closeAll(opened);
  }
}

// ------------------------------------------------------------- the facts --

async function connectAll(
  ctx: Ctx,
  opts: DoctorHaOpts,
  h: ClusterHandle,
  opened: HostSession[],
): Promise<{ sessions: Map<string, HostSession>; errors: Map<string, string> }> {
  const sessions = new Map<string, HostSession>([[h.manager.host.name, h.manager.session]]);
  const errors = new Map<string, string>();
  await Promise.all(
    h.config.hosts
      .filter((x) => x !== h.manager.host)
      .map(async (host) => {
        try {
          const s = await connectSession(ctx, hostTarget(host, opts, h.config));
          opened.push(s);
          sessions.set(host.name, s);
        } catch (err) {
          if (!(err instanceof UserError)) throw err;
          errors.set(host.name, `not reached over SSH: ${err.message.split('\n')[0]}`);
        }
      }),
  );
  return { sessions, errors };
}

interface ApiTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string };
}

interface Gathered {
  readonly facts: HaFacts;
  readonly leftovers: readonly { readonly node: string; readonly rules: readonly HaRule[] }[];
  /** Node name → swarm node ID. */
  readonly ids: ReadonlyMap<string, string>;
  readonly services: readonly ApiService[];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${secs(ms)}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const listNodes = (api: DockerApi) =>
  withTimeout(
    api.request<NodeInspect[]>(apiRequest('GET', '/nodes', { readOnly: true })),
    API_TIMEOUT_MS,
    'GET /nodes',
  );

const listRunningTasks = (api: DockerApi, services: readonly string[]) =>
  withTimeout(
    api.request<ApiTask[]>(
      apiRequest('GET', '/tasks', {
        query: { filters: JSON.stringify({ service: services, 'desired-state': ['running'] }) },
        readOnly: true,
      }),
    ),
    API_TIMEOUT_MS,
    'GET /tasks',
  );

async function gather(
  h: ClusterHandle,
  opts: DoctorHaOpts,
  sessions: ReadonlyMap<string, HostSession>,
  errors: ReadonlyMap<string, string>,
): Promise<Gathered> {
  const config = h.config;
  const api = h.manager.session.docker();
  const swarmNodes = (await listNodes(api)).map((n) => nodeFacts(n, h.manager.swarm.nodeId));
  const services = await listStackServices(api, config.name);
  const tasks = services.length
    ? await listRunningTasks(
        api,
        services.map((s) => s.Spec.Name),
      )
    : [];
  const nameOf = new Map(swarmNodes.map((n) => [n.id, n.hostname]));
  const leftovers: { node: string; rules: HaRule[] }[] = [];

  const access = async (
    name: string,
    exec: Executor,
    port: number | undefined,
  ): Promise<HaNodeAccess> => {
    const self = swarmNodes.find((n) => n.hostname === name);
    const peer = swarmNodes.find((n) => n.hostname !== name && n.addr && n.state === 'ready')?.addr;
    const ifaces: string[] = [];
    if (peer) {
      const dev = parseRouteDev((await exec.run(routeTo(peer))).stdout);
      if (!dev) throw new Error(`no interface towards ${peer} (ip route get)`);
      ifaces.push(dev);
    } else if (self?.addr) {
      const dev = parseRouteDev((await exec.run(routeTo(self.addr))).stdout);
      if (dev) ifaces.push(dev);
    }
    // The default route's interface: a VPS's public one, where the proxy is reached.
    const def = await exec.run(routeTo('1.1.1.1'), { allowFailure: true });
    const defDev = def.exitCode === 0 ? parseRouteDev(def.stdout) : undefined;
    if (defDev) ifaces.push(defDev);
    if (!ifaces.length) throw new Error('no network interface found (ip route get)');
    const rules = parseHaRules((await exec.run(listRawPrerouting())).stdout);
    if (rules.length) leftovers.push({ node: name, rules });
    const unit = parseUnitActive((await exec.run(dockerUnitState())).stdout);
    return {
      ifaces: [...new Set(ifaces)],
      sshPorts: sshPortsOf({ ...(port ? { port } : {}) }, connectedPort(exec.label)),
      dockerUnit: unit,
    };
  };

  const accessOf = new Map<string, HaNodeAccess | { error: string }>();
  await Promise.all(
    config.hosts.map(async (host) => {
      const s = sessions.get(host.name);
      if (!s) {
        accessOf.set(host.name, { error: errors.get(host.name) ?? 'not reached over SSH' });
        return;
      }
      try {
        accessOf.set(host.name, await access(host.name, s.exec, host.port));
      } catch (err) {
        accessOf.set(host.name, { error: firstLine(err) });
      }
    }),
  );

  const inConfig = new Map(config.hosts.map((x, i) => [x.name, { host: x, i }]));
  const nodes: HaNodeFacts[] = [...swarmNodes]
    .sort(
      (a, b) =>
        (inConfig.get(a.hostname)?.i ?? Number.MAX_SAFE_INTEGER) -
        (inConfig.get(b.hostname)?.i ?? Number.MAX_SAFE_INTEGER),
    )
    .map((n) => {
      const c = inConfig.get(n.hostname);
      const a = accessOf.get(n.hostname);
      return {
        name: n.hostname,
        id: n.id,
        role: n.role,
        ...(n.leader ? { leader: true } : {}),
        state: n.state,
        availability: n.availability,
        ...(n.reachability ? { reachability: n.reachability } : {}),
        labels: n.labels,
        inConfig: Boolean(c),
        ...(c?.host.address ? { address: c.host.address } : {}),
        ...(a && !('error' in a) ? { access: a } : {}),
        ...(a && 'error' in a ? { accessError: a.error } : {}),
      };
    });

  const svcFacts: HaServiceFacts[] = services.map((s) => {
    const template = s.Spec.TaskTemplate as { Placement?: { Constraints?: string[] | null } };
    return {
      name: s.Spec.Name,
      mode: s.Spec.Mode?.Global ? 'global' : 'replicated',
      replicas: s.Spec.Mode?.Global ? 0 : (s.Spec.Mode?.Replicated?.Replicas ?? 1),
      constraints: template?.Placement?.Constraints ?? [],
      runningOn: tasks
        .filter((t) => t.ServiceID === s.ID && t.Status.State === 'running' && t.NodeID)
        .map((t) => nameOf.get(t.NodeID as string) ?? (t.NodeID as string)),
    };
  });
  const tls = config.proxy.tls !== 'off';
  return {
    facts: {
      cluster: config.name,
      cfg: cfgFlag(opts),
      operator: h.manager.host.name,
      nodes,
      services: svcFacts,
      proxyService: `${config.name}_proxy`,
      app: { host: config.domain, port: tls ? 443 : 80, tls, path: '/' },
    },
    leftovers,
    ids: new Map(swarmNodes.map((n) => [n.hostname, n.id])),
    services,
  };
}

// --------------------------------------------------------------- the run --

class Interrupted extends Error {
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res, rej) => {
    if (signal.aborted) {
      rej(signal.reason);
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      res();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      rej(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The nodes taken out right now, and how each is put back. */
class Isolator {
  readonly out = new Map<string, { rules: readonly HaRule[]; healsBy: Date }>();
  closed = false;

  constructor(
    private readonly sessions: ReadonlyMap<string, HostSession>,
    private readonly plan: HaPlan,
    private readonly now: () => Date,
  ) {}

  exec(name: string): Executor {
    const s = this.sessions.get(name);
    if (!s) throw new Error(`no session to ${name}`);
    return s.exec;
  }

  /** Dead-man switch first, then the rules; a failure half-way puts back what is in. */
  async isolate(name: string, boundSeconds: number): Promise<void> {
    if (this.closed) throw new Interrupted('the end of the run');
    const rules = this.plan.isolation[name];
    if (!rules) throw new Error(`no isolation planned for ${name}`);
    const seconds = boundSeconds + DEADMAN_MARGIN_S;
    const exec = this.exec(name);
    await exec.run(deadManStart(rules, seconds));
    this.out.set(name, { rules, healsBy: new Date(this.now().getTime() + seconds * 1000) });
    try {
      for (const c of isolateCmds(rules)) await exec.run(c);
    } catch (err) {
      await this.restore(name).catch(() => {});
      throw err;
    }
  }

  /** Delete each rule until none is left, stop the dead-man switch. Idempotent. */
  async restore(name: string): Promise<string | undefined> {
    const entry = this.out.get(name);
    if (!entry) return undefined;
    const removed = await deleteAll(this.exec(name), entry.rules);
    await this.exec(name).run(deadManStop());
    this.out.delete(name);
    return `${name}: removed ${removed} cluster-cli-ha rule(s), stopped its dead-man switch`;
  }

  async restoreAll(): Promise<{
    restored: string[];
    failed: { node: string; error: string; healsBy: string }[];
  }> {
    const restored: string[] = [];
    const failed: { node: string; error: string; healsBy: string }[] = [];
    await Promise.all(
      [...this.out].map(async ([name, e]) => {
        try {
          const r = await this.restore(name);
          if (r) restored.push(r);
        } catch (err) {
          failed.push({ node: name, error: firstLine(err), healsBy: e.healsBy.toISOString() });
        }
      }),
    );
    return { restored, failed };
  }
}

/** Each rule deleted until iptables says none is left; the count removed. */
async function deleteAll(exec: Executor, rules: readonly HaRule[]): Promise<number> {
  let removed = 0;
  for (const r of [...rules].reverse()) {
    for (let i = 0; i < MAX_DELETES; i++) {
      const res = await exec.run(deleteRule(r), { allowFailure: true });
      if (res.exitCode !== 0) break;
      removed++;
    }
  }
  return removed;
}

/** A check's log: steps with their time since the check started. */
class Log {
  readonly steps: string[] = [];
  readonly restored: string[] = [];
  readonly t0 = performance.now();
  constructor(
    private readonly print: (s: string) => void,
    private readonly id: string,
  ) {}
  elapsed(): number {
    return performance.now() - this.t0;
  }
  step(text: string): void {
    const line = `+${secs(this.elapsed())}: ${text}`;
    this.steps.push(line);
    this.print(`[${this.id}] ${line}\n`);
  }
}

class HaRun {
  private readonly abort = new AbortController();
  private readonly iso: Isolator;
  private readonly now: () => Date;
  private readonly print: (s: string) => void;
  private interruptedBy: string | undefined;

  constructor(
    private readonly ctx: Ctx,
    private readonly opts: DoctorHaOpts,
    private readonly deps: HaDeps,
    private readonly h: ClusterHandle,
    private readonly sessions: ReadonlyMap<string, HostSession>,
    private readonly g: Gathered,
    private readonly plan: HaPlan,
  ) {
    this.now = deps.now ?? (() => new Date());
    this.iso = new Isolator(sessions, plan, this.now);
    this.print = (s) => (opts.json ? ctx.stderr : ctx.stdout).write(s);
    // Awaited only while a check runs: a signal at another time is no unhandled rejection.
    this.aborted.catch(() => {});
  }

  private get signal() {
    return this.abort.signal;
  }

  /** Rejects when a signal arrives. */
  private readonly aborted: Promise<never> = new Promise<never>((_, reject) => {
    this.abort.signal.addEventListener('abort', () => reject(this.abort.signal.reason), {
      once: true,
    });
  });

  private node(name: string): HaNodeFacts {
    const n = this.g.facts.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`unknown node ${name}`);
    return n;
  }

  /** A manager's API that is not taken out: the operator's first. */
  private api(except: readonly string[] = []): DockerApi {
    const out = new Set([...this.iso.out.keys(), ...except]);
    const managers = [
      this.h.manager.host.name,
      ...this.g.facts.nodes.filter((n) => n.role === 'manager').map((n) => n.name),
    ];
    for (const m of managers) {
      const s = this.sessions.get(m);
      if (s && !out.has(m)) return s.docker();
    }
    throw new Error('no manager left to ask');
  }

  private async nodeState(name: string): Promise<{ state: string; reachability?: string }> {
    const id = this.g.ids.get(name);
    const n = await withTimeout(
      this.api([name]).request<NodeInspect>(apiRequest('GET', `/nodes/${id}`, { readOnly: true })),
      API_TIMEOUT_MS,
      `GET /nodes/${name}`,
    );
    const f = nodeFacts(n);
    return { state: f.state, ...(f.reachability ? { reachability: f.reachability } : {}) };
  }

  /**
   * Until every node of the plan is Ready (managers reachable), within
   * --reschedule-timeout: undefined when they are, else what was not.
   */
  private async untilAllReady(): Promise<string | undefined> {
    const names = this.g.facts.nodes.filter((n) => n.inConfig).map((n) => n.name);
    let last = '';
    const deadline = performance.now() + this.plan.settings.rescheduleTimeout * 1000;
    for (;;) {
      const states = await Promise.all(
        names.map(async (n) => {
          try {
            const st = await this.nodeState(n);
            const manager = this.node(n).role === 'manager';
            return st.state === 'ready' && (!manager || st.reachability === 'reachable')
              ? undefined
              : `${n} ${st.state}${st.reachability ? `, ${st.reachability}` : ''}`;
          } catch (err) {
            return `${n}: ${firstLine(err)}`;
          }
        }),
      );
      const notReady = states.filter((x): x is string => x !== undefined);
      if (!notReady.length) return undefined;
      last = notReady.join('; ');
      if (performance.now() > deadline) return last;
      try {
        await sleep(POLL_MS, this.signal);
      } catch {
        return `interrupted by ${this.interruptedBy ?? 'a signal'}`;
      }
    }
  }

  /** Until the swarm lists the node Ready (a manager also reachable), bounded; ms it took, or undefined. */
  private async waitReady(
    name: string,
    boundMs: number,
    also?: () => Promise<boolean>,
  ): Promise<{ ms?: number; last: string }> {
    const start = performance.now();
    const manager = this.node(name).role === 'manager';
    let last = 'not asked yet';
    for (;;) {
      try {
        const s = await this.nodeState(name);
        last = `${s.state}${s.reachability ? `, ${s.reachability}` : ''}`;
        if (s.state === 'ready' && (!manager || s.reachability === 'reachable')) {
          if (!also || (await also())) return { ms: performance.now() - start, last };
          last += ', not yet all back';
        }
      } catch (err) {
        last = firstLine(err);
      }
      if (performance.now() - start > boundMs) return { last };
      await sleep(POLL_MS, this.signal);
    }
  }

  private nextFor(name: string): string {
    const n = this.node(name);
    return `cluster-cli node ls${this.g.facts.cfg}; on ${n.address ?? name}: docker info (and iptables -t raw -S PREROUTING: no cluster-cli-ha rule may be left)`;
  }

  private loadTarget(addresses: readonly string[]): LoadTarget {
    const a = this.g.facts.app;
    return { addresses, port: a.port, host: a.host, path: a.path, tls: a.tls };
  }

  async run(): Promise<void> {
    const started = this.now();
    const leftovers = await this.cleanLeftovers();
    const results: HaCheckResult[] = [];
    const onSignal = (sig: NodeJS.Signals) => {
      if (this.interruptedBy) {
        this.ctx.stderr.write(`${sig}: still restoring the nodes taken out; please wait\n`);
        return;
      }
      this.interruptedBy = sig;
      this.ctx.stderr.write(`\n${sig}: restoring every node taken out, then exiting\n`);
      this.abort.abort(new Interrupted(sig));
    };
    const signals = this.deps.signals ?? process;
    const names: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    for (const s of names) signals.on(s, onSignal);
    let unrestored: { node: string; error: string; healsBy: string }[] = [];
    try {
      for (const c of this.plan.checks) {
        if (this.interruptedBy) break;
        if (c.skip) {
          results.push({
            id: c.id,
            title: c.title,
            verdict: 'warn',
            detail: `skipped: ${c.skip.reason}`,
            ...(c.skip.next ? { next: c.skip.next } : {}),
            steps: [],
            restored: [],
            numbers: {},
          });
          continue;
        }
        // The previous check's node is back, but the nodes it disturbed on
        // the way (workers whose manager went away) may still be rejoining:
        // each check starts from a cluster with every node Ready again.
        const settled = await this.untilAllReady();
        if (this.interruptedBy) break;
        if (settled) {
          results.push({
            id: c.id,
            title: c.title,
            verdict: 'fail',
            detail: `not run: the cluster did not settle after the previous check (${settled})`,
            next: `cluster-cli status${this.g.facts.cfg}`,
            steps: [],
            restored: [],
            numbers: {},
          });
          continue;
        }
        results.push(await this.runCheck(c));
      }
    } finally {
      this.iso.closed = true;
      const r = await this.iso.restoreAll();
      unrestored = r.failed;
      if (r.restored.length) this.print(`${r.restored.map((x) => `restored ${x}`).join('\n')}\n`);
      for (const s of names) signals.off(s, onSignal);
    }
    const checks = results;
    const verdict: DoctorVerdict =
      unrestored.length || this.interruptedBy ? 'fail' : haVerdict(checks);
    const report: HaReport = {
      cluster: this.g.facts.cluster,
      config: this.h.file,
      date: started.toISOString(),
      manager: this.h.manager.session.exec.label,
      settings: this.plan.settings,
      verdict,
      checks,
      leftovers,
      ...(this.interruptedBy ? { interrupted: this.interruptedBy } : {}),
      ...(unrestored.length ? { unrestored } : {}),
    };
    const file = this.opts.report
      ? resolve(this.ctx.cwd, this.opts.report)
      : join(dirname(this.h.file), reportFileName(this.g.facts.cluster, started));
    await writeFile(file, renderHaMarkdown(report));
    if (this.opts.json) {
      this.ctx.stdout.write(`${JSON.stringify({ ...report, report: file }, null, 2)}\n`);
    } else {
      this.ctx.stdout.write(`\n${renderHaSummary(report)}\nReport: ${file}\n`);
    }
    if (this.interruptedBy) throw new ExitCode(130);
    if (verdict !== 'ok') throw new ExitCode(DOCTOR_EXIT[verdict]);
  }

  /** Rules and dead-man switches an interrupted run left: removed on every node reached. */
  private async cleanLeftovers(): Promise<{ node: string; rules: number }[]> {
    const found = new Map(this.g.leftovers.map((l) => [l.node, l.rules]));
    const out: { node: string; rules: number }[] = [];
    await Promise.all(
      [...this.sessions].map(async ([name, s]) => {
        const rules = found.get(name) ?? [];
        const removed = rules.length ? await deleteAll(s.exec, rules) : 0;
        await s.exec.run(deadManStop(), { allowFailure: true });
        if (rules.length) {
          out.push({ node: name, rules: removed });
          this.print(
            `${name}: removed ${removed} cluster-cli-ha rule(s) an earlier, interrupted doctor --ha left\n`,
          );
        }
      }),
    );
    return out;
  }

  private async runCheck(c: PlannedCheck): Promise<HaCheckResult> {
    const log = new Log(this.print, c.id);
    const base = { id: c.id, title: c.title };
    try {
      const check =
        c.id === 'manager-loss'
          ? this.managerLoss(c, log)
          : c.id === 'worker-loss'
            ? this.workerLoss(c, log)
            : c.id === 'proxy-failover'
              ? this.proxyFailover(c, log)
              : this.nodeRejoin(c, log);
      // A signal ends the wait at once, even on a command that hangs: the
      // check left behind cannot take another node out (the isolator is closed).
      const r = await Promise.race([check, this.aborted]);
      return {
        ...base,
        ...r,
        steps: log.steps,
        restored: log.restored,
        seconds: log.elapsed() / 1000,
      };
    } catch (err) {
      // Put back what this check took out before the next one (or the end) runs.
      for (const n of c.nodes) {
        try {
          const r = await this.iso.restore(n);
          if (r) log.restored.push(r);
        } catch (e) {
          log.restored.push(`${n}: NOT restored: ${firstLine(e)}`);
        }
      }
      const interrupted = err instanceof Interrupted || this.interruptedBy;
      if (!interrupted) log.step(`error: ${firstLine(err)}`);
      return {
        ...base,
        verdict: 'fail',
        detail: interrupted
          ? `interrupted by ${this.interruptedBy ?? 'a signal'}`
          : `the check itself failed: ${firstLine(err)}`,
        next: this.nextFor(c.restarted ?? c.nodes[0] ?? this.g.facts.operator),
        steps: log.steps,
        restored: log.restored,
        numbers: {},
        seconds: log.elapsed() / 1000,
      };
    }
  }

  /** Take the node out, run `during`, and put it back whatever happens. */
  private async takenOut<T>(
    name: string,
    c: PlannedCheck,
    log: Log,
    during: () => Promise<T>,
  ): Promise<T> {
    await this.iso.isolate(name, c.boundSeconds);
    log.step(`took out ${name} (incoming traffic dropped, SSH kept)`);
    try {
      return await during();
    } finally {
      const r = await this.iso.restore(name);
      if (r) {
        log.restored.push(r);
        log.step(`restored ${name}`);
      }
    }
  }

  // -------------------------------------------------------- the checks --

  private async managerLoss(c: PlannedCheck, log: Log) {
    const m = c.nodes[0] as string;
    const operator = this.h.manager.session.docker();
    const targets = c.probeTargets ?? [];
    const hold = c.holdSeconds * 1000;
    const bound = c.boundSeconds * 1000;
    let apiOkSince: number | undefined;
    let httpOkSince: number | undefined;
    let apiFails = 0;
    let httpFails = 0;
    let apiError = '';
    let httpError = '';
    let leader: string | undefined;
    let sawDown: number | undefined;
    let polls = 0;
    let t0 = 0;
    await this.takenOut(m, c, log, async () => {
      t0 = log.elapsed();
      for (;;) {
        const at = log.elapsed() - t0;
        const [api, http] = await Promise.all([
          listNodes(operator).then(
            (nodes) => ({ nodes }),
            (err: unknown) => ({ error: firstLine(err) }),
          ),
          targets.length
            ? requestOnce(this.loadTarget(targets), polls)
            : Promise.resolve(undefined),
        ]);
        polls++;
        if ('nodes' in api) {
          apiOkSince ??= at;
          const facts = api.nodes.map((n) => nodeFacts(n));
          leader = facts.find((n) => n.leader)?.hostname;
          const me = facts.find((n) => n.hostname === m);
          if (
            sawDown === undefined &&
            me &&
            (me.state !== 'ready' || me.reachability !== 'reachable')
          ) {
            sawDown = at;
            log.step(`the swarm lists ${m} as ${me.state}, ${me.reachability ?? '?'}`);
          }
        } else {
          if (apiOkSince !== undefined || apiFails === 0)
            log.step(`${this.g.facts.operator}'s API does not list the nodes: ${api.error}`);
          apiOkSince = undefined;
          apiFails++;
          apiError = api.error;
        }
        if (http) {
          if (http.ok) httpOkSince ??= at;
          else {
            if (httpOkSince !== undefined || httpFails === 0)
              log.step(`HTTP through ${targets.join(', ')} fails: ${http.error}`);
            httpOkSince = undefined;
            httpFails++;
            httpError = http.error ?? 'failed';
          }
        }
        const elapsed = log.elapsed() - t0;
        const settled =
          apiOkSince !== undefined &&
          (!targets.length || httpOkSince !== undefined) &&
          sawDown !== undefined;
        if ((elapsed >= hold && settled) || elapsed >= bound) break;
        await sleep(POLL_MS, this.signal);
      }
    });
    const out = log.elapsed() - t0;
    const back = await this.waitReady(m, this.plan.settings.rescheduleTimeout * 1000);
    if (back.ms !== undefined) log.step(`${m} is Ready and reachable again (${secs(back.ms)})`);
    const numbers = {
      node: m,
      wasLeader: Boolean(c.leader),
      newLeader: leader ?? 'unknown',
      outSeconds: round(out / 1000),
      apiFailedPolls: apiFails,
      apiAnswersAfterSeconds: apiOkSince === undefined ? -1 : round(apiOkSince / 1000),
      httpFailedPolls: httpFails,
      httpAnswersAfterSeconds: httpOkSince === undefined ? -1 : round(httpOkSince / 1000),
      swarmSawDownAfterSeconds: sawDown === undefined ? -1 : round(sawDown / 1000),
      backReadySeconds: back.ms === undefined ? -1 : round(back.ms / 1000),
    };
    const took = `took out ${m}${c.leader ? ' (the leader)' : ''} for ${secs(out)}`;
    if (apiOkSince === undefined) {
      return {
        verdict: 'fail' as const,
        detail: `${took}: ${this.g.facts.operator}'s API still did not list the nodes after ${secs(out)} (${apiError})`,
        next: `docker node ls on ${this.g.facts.operator}; check that the managers reach each other on 2377/tcp: cluster-cli doctor${this.g.facts.cfg}`,
        numbers,
      };
    }
    if (targets.length && httpOkSince === undefined) {
      return {
        verdict: 'fail' as const,
        detail: `${took}: the stack did not answer through ${targets.join(', ')} (${httpError})`,
        next: `cluster-cli status${this.g.facts.cfg}`,
        numbers,
      };
    }
    if (back.ms === undefined) {
      return {
        verdict: 'fail' as const,
        detail: `${took}: ${m} was not Ready and reachable again within ${this.plan.settings.rescheduleTimeout} s of being restored (${back.last})`,
        next: this.nextFor(m),
        numbers,
      };
    }
    const detail = `${took}: the API listed the nodes again after ${secs(apiOkSince)} (${apiFails} failed poll(s)), leader now ${leader ?? 'unknown'}${targets.length ? `; HTTP${this.g.facts.app.tls ? 'S' : ''} ok after ${secs(httpOkSince ?? 0)}` : ''}; back Ready in ${secs(back.ms)}`;
    if (sawDown === undefined) {
      return {
        verdict: 'warn' as const,
        detail: `${detail}; but the swarm never listed ${m} as down: was it really cut off?`,
        next: `on ${this.node(m).address ?? m}: iptables -t raw -S PREROUTING while it runs; and try a longer --reschedule-timeout`,
        numbers,
      };
    }
    if (!targets.length) {
      return {
        verdict: 'warn' as const,
        detail: `${detail}; HTTP not checked: no other proxy node`,
        numbers,
      };
    }
    return { verdict: 'ok' as const, detail, numbers };
  }

  private async workerLoss(c: PlannedCheck, log: Log) {
    const w = c.nodes[0] as string;
    const wid = this.g.ids.get(w);
    const movable = c.services ?? [];
    const pinned = c.pinned ?? [];
    const idOf = new Map(this.g.services.map((s) => [s.Spec.Name, s.ID]));
    const doneAt = new Map<string, number>();
    const counts = new Map<string, number>();
    let sawDown: number | undefined;
    let t0 = 0;
    let lastError = '';
    await this.takenOut(w, c, log, async () => {
      t0 = log.elapsed();
      for (;;) {
        const at = log.elapsed() - t0;
        try {
          const tasks = await listRunningTasks(
            this.api([w]),
            movable.map((s) => s.name),
          );
          for (const s of movable) {
            const n = tasks.filter(
              (t) =>
                t.ServiceID === idOf.get(s.name) &&
                t.NodeID !== wid &&
                t.Status.State === 'running',
            ).length;
            counts.set(s.name, n);
            if (n >= s.replicas && !doneAt.has(s.name)) {
              doneAt.set(s.name, at);
              log.step(`${s.name}: ${n}/${s.replicas} running on other nodes`);
            }
          }
          if (sawDown === undefined) {
            const st = await this.nodeState(w);
            if (st.state !== 'ready') {
              sawDown = at;
              log.step(`the swarm lists ${w} as ${st.state}`);
            }
          }
        } catch (err) {
          lastError = firstLine(err);
        }
        if (doneAt.size === movable.length) break;
        if (log.elapsed() - t0 >= c.boundSeconds * 1000) break;
        await sleep(POLL_MS, this.signal);
      }
    });
    const back = await this.waitReady(w, this.plan.settings.rescheduleTimeout * 1000);
    if (back.ms !== undefined) log.step(`${w} is Ready again (${secs(back.ms)})`);
    const moved = movable.map(
      (s) =>
        `${s.name} ${counts.get(s.name) ?? 0}/${s.replicas}${doneAt.has(s.name) ? ` after ${secs(doneAt.get(s.name) as number)}` : ''}`,
    );
    const numbers: Record<string, number | string | boolean> = {
      node: w,
      swarmSawDownAfterSeconds: sawDown === undefined ? -1 : round(sawDown / 1000),
      backReadySeconds: back.ms === undefined ? -1 : round(back.ms / 1000),
      ...Object.fromEntries(
        movable.map((s) => [
          `rescheduledSeconds:${s.name}`,
          doneAt.has(s.name) ? round((doneAt.get(s.name) as number) / 1000) : -1,
        ]),
      ),
    };
    const late = movable.filter((s) => !doneAt.has(s.name));
    const pinText = pinned.length
      ? `; pinned to ${w}, cannot move: ${pinned.map((p) => `${p.name} (${p.constraints.join(', ') || 'no constraint'})`).join(', ')}`
      : '';
    if (late.length) {
      return {
        verdict: 'fail' as const,
        detail: `took out ${w}: not all running elsewhere within ${c.boundSeconds} s: ${moved.join(', ')}${lastError ? ` (last error: ${lastError})` : ''}${pinText}`,
        next: `docker service ps --no-trunc ${late[0]?.name} (on a manager): the tasks' errors say why they do not start elsewhere (resources, constraints, images)`,
        numbers,
      };
    }
    if (back.ms === undefined) {
      return {
        verdict: 'fail' as const,
        detail: `took out ${w}: rescheduled (${moved.join(', ')}), but ${w} was not Ready again within ${this.plan.settings.rescheduleTimeout} s (${back.last})`,
        next: this.nextFor(w),
        numbers,
      };
    }
    const detail = `took out ${w}: running elsewhere ${moved.join(', ')}${sawDown !== undefined ? `; swarm saw it down after ${secs(sawDown)}` : ''}; back Ready in ${secs(back.ms)}${pinText}`;
    if (pinned.length) {
      return {
        verdict: 'warn' as const,
        detail,
        next: `relax the placement of ${pinned.map((p) => p.name).join(', ')} (or label another node the same) so they can run elsewhere`,
        numbers,
      };
    }
    return { verdict: 'ok' as const, detail, numbers };
  }

  private async proxyFailover(c: PlannedCheck, log: Log) {
    const l = c.load;
    if (!l) throw new Error('proxy-failover without a load plan');
    const proxy = this.g.facts.proxyService;
    const proxyId = this.g.services.find((s) => s.Spec.Name === proxy)?.ID;
    const load = startLoad(this.loadTarget(l.targets), { rps: l.rps, maxInFlight: l.maxInFlight });
    log.step(`load started: ${l.rps} req/s to ${l.targets.join(', ')}`);
    const backs: { node: string; ms?: number; last: string }[] = [];
    let stats: LoadStats | undefined;
    try {
      await sleep(LOAD_EDGE_S * 1000, this.signal);
      for (const p of c.nodes) {
        await this.takenOut(p, c, log, () => sleep(c.holdSeconds * 1000, this.signal));
        const pid = this.g.ids.get(p);
        const back = await this.waitReady(
          p,
          this.plan.settings.rescheduleTimeout * 1000,
          async () => {
            const tasks = await listRunningTasks(this.api([]), [proxy]);
            return tasks.some(
              (t) => t.NodeID === pid && t.ServiceID === proxyId && t.Status.State === 'running',
            );
          },
        );
        backs.push({ node: p, ...back });
        if (back.ms === undefined) {
          log.step(
            `${p} or its proxy task did not come back within ${this.plan.settings.rescheduleTimeout} s (${back.last}): the next proxy node stays in`,
          );
          break;
        }
        log.step(`${p} is Ready and runs its proxy task again (${secs(back.ms)})`);
      }
      await sleep(LOAD_EDGE_S * 1000, this.signal);
    } finally {
      stats = await load.stop();
      log.step(`load stopped: ${loadLine(stats)}`);
    }
    const numbers = {
      requests: stats.requests,
      successes: stats.successes,
      successRate: round(stats.successRate * 100),
      rate: round(stats.rate),
      worstGapSeconds: round(stats.worstGapMs / 1000),
      notSent: stats.notSent,
      ...Object.fromEntries(
        backs.map((b) => [`backSeconds:${b.node}`, b.ms === undefined ? -1 : round(b.ms / 1000)]),
      ),
    };
    const nodes = backs.map(
      (b) =>
        `${b.node} out ${c.holdSeconds} s${b.ms === undefined ? ' (NOT back)' : `, back in ${secs(b.ms)}`}`,
    );
    const notBack = backs.filter((b) => b.ms === undefined);
    const detail = `${loadLine(stats)}; ${nodes.join('; ')}`;
    if (notBack.length) {
      return {
        verdict: 'fail' as const,
        detail,
        next: this.nextFor(notBack[0]?.node as string),
        numbers,
        load: stats,
      };
    }
    if (!stats.requests || stats.successRate < 0.99) {
      return {
        verdict: 'fail' as const,
        detail: `${percent(stats.successRate)} < 99 %: ${detail}`,
        next: `check that clients can reach every proxy node (DNS lists them all) and that cluster-cli status${this.g.facts.cfg} is healthy; then run cluster-cli doctor --ha again`,
        numbers,
        load: stats,
      };
    }
    return { verdict: 'ok' as const, detail, numbers, load: stats };
  }

  private async nodeRejoin(c: PlannedCheck, log: Log) {
    const n = c.restarted as string;
    const node = this.node(n);
    const bound = this.plan.settings.rescheduleTimeout * 1000;
    let how: string;
    let sawDown: number | undefined;
    if (c.method === 'systemd') {
      how = 'systemctl restart docker';
      log.step(`systemctl restart docker on ${n}`);
      await this.iso.exec(n).run(dockerRestart());
      log.step(`Docker restarted on ${n}`);
    } else {
      how = `taken out (Docker is not a systemd unit there)`;
      await this.takenOut(n, c, log, async () => {
        const t0 = log.elapsed();
        // Out for holdSeconds, and until the swarm has seen it gone (a node
        // back before its heartbeat expired never left), within the bound.
        const hold = () => {
          const t = log.elapsed() - t0;
          return t < c.holdSeconds * 1000 || (sawDown === undefined && t < bound);
        };
        while (hold()) {
          if (sawDown === undefined) {
            try {
              const st = await this.nodeState(n);
              if (
                st.state !== 'ready' ||
                (node.role === 'manager' && st.reachability !== 'reachable')
              ) {
                sawDown = log.elapsed() - t0;
                log.step(
                  `the swarm lists ${n} as ${st.state}${st.reachability ? `, ${st.reachability}` : ''}`,
                );
              }
            } catch {
              // asked again next second
            }
          }
          await sleep(POLL_MS, this.signal);
        }
        how = `taken out for ${secs(log.elapsed() - t0)} (Docker is not a systemd unit there)`;
      });
    }
    const exec = this.iso.exec(n);
    const back = await this.waitReady(n, bound, async () => {
      try {
        const s = await probeSwarm(exec);
        return s.state === 'active' && (node.role !== 'manager' || s.isManager);
      } catch {
        return false;
      }
    });
    const numbers: Record<string, number | string | boolean> = {
      node: n,
      role: node.role,
      method: c.method ?? 'isolate',
      swarmSawDownAfterSeconds: sawDown === undefined ? -1 : round(sawDown / 1000),
      backReadySeconds: back.ms === undefined ? -1 : round(back.ms / 1000),
    };
    if (back.ms === undefined) {
      return {
        verdict: 'fail' as const,
        detail: `${n} (${node.role}, ${how}) did not rejoin within ${this.plan.settings.rescheduleTimeout} s (${back.last})`,
        next: this.nextFor(n),
        numbers,
      };
    }
    log.step(
      `${n} rejoined: Ready${node.role === 'manager' ? ' and reachable' : ''} (${secs(back.ms)})`,
    );
    const started = performance.now();
    try {
      await waitForConvergence(this.api([]), {
        stack: this.g.facts.cluster,
        services: this.g.services.map((s) => s.Spec.Name),
        timeoutMs: bound,
      });
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      return {
        verdict: 'fail' as const,
        detail: `${n} (${node.role}, ${how}) rejoined in ${secs(back.ms)}, but the stack did not converge: ${firstLine(err)}`,
        next: err.next ?? `cluster-cli status${this.g.facts.cfg}`,
        numbers,
      };
    }
    const conv = performance.now() - started;
    numbers.convergedSeconds = round(conv / 1000);
    log.step(`the stack converged (${secs(conv)})`);
    const unseen = c.method !== 'systemd' && sawDown === undefined;
    return {
      verdict: unseen ? ('warn' as const) : ('ok' as const),
      ...(unseen
        ? {
            next: `the swarm never listed ${n} as down within ${this.plan.settings.rescheduleTimeout} s: run again with a larger --reschedule-timeout`,
          }
        : {}),
      detail: `${n} (${node.role}, ${how}): Ready${node.role === 'manager' ? ' and reachable' : ''} again after ${secs(back.ms)}${sawDown !== undefined ? ` (swarm saw it down after ${secs(sawDown)})` : ''}; stack converged ${secs(conv)} later`,
      numbers,
    };
  }
}

const round = (x: number) => Math.round(x * 10) / 10;
