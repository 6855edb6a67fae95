import { daemonTime } from '../cluster/converge.js';
import { type NetcheckReport, netcheckProblems, runNetcheck } from '../cluster/netcheck.js';
import { isMemberOf, type JoinDecision, type JoinTarget } from '../cluster/plan-join.js';
import { blockedPortsError, joinPortNeeds, type PortResult, probePorts } from '../cluster/ports.js';
import { type PreflightReport, preflight, preflightError } from '../cluster/preflight.js';
import { type HostFacts, probeHost } from '../cluster/probe.js';
import type { Config } from '../config/schema.js';
import { apiRequest } from '../core/api.js';
import type { ApplyReport } from '../core/apply.js';
import { UserError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import type { HostSession } from '../core/session.js';
import { joinTokenRead, type Role } from '../docker/swarm.js';
import { configServiceNames } from '../stack/model.js';
import { formatPreflight } from '../ui/preflight.js';
import { type ProgressMode, runWithProgress } from '../ui/progress.js';
import type { ClusterHandle } from './cluster.js';
import { connectSession, type SshFlags } from './connect.js';
import type { ConnectTarget, Ctx } from './context.js';
import { converge } from './converge-progress.js';

/**
 * The parts `node join` and `apply` share: connect to many hosts at once,
 * probe and preflight them, check the swarm ports from each new one, read the
 * join tokens, and after the joins check the overlay and wait for the stack.
 */

/** One session per target, opened at once. Any unreachable target is an error (nothing changed). */
export async function connectAll(
  ctx: Ctx,
  targets: readonly { readonly name: string; readonly target: ConnectTarget }[],
  sessions: Map<string, HostSession>,
): Promise<HostSession[]> {
  const connected = await Promise.allSettled(targets.map((t) => connectSession(ctx, t.target)));
  for (const r of connected)
    if (r.status === 'fulfilled') sessions.set(r.value.exec.label, r.value);
  const unexpected = connected.find(
    (r) => r.status === 'rejected' && !(r.reason instanceof UserError),
  );
  if (unexpected?.status === 'rejected') throw unexpected.reason;
  const bad = connected.flatMap((r, i) =>
    r.status === 'rejected' ? [`${targets[i]?.name}: ${(r.reason as Error).message}`] : [],
  );
  if (bad.length) {
    throw new UserError(
      bad.length === 1
        ? `Cannot reach ${bad[0]} Nothing was changed.`
        : `Cannot reach ${bad.length} hosts; nothing was changed:\n${bad.map((b) => `  ${b}`).join('\n')}`,
      'check the address, the SSH key and that sshd runs, then run the same command again',
    );
  }
  return connected.map((r) => (r as PromiseFulfilledResult<HostSession>).value);
}

export interface Checked {
  readonly facts: HostFacts[];
  readonly reports: PreflightReport[];
  /** The preflight tables, one per host, for the plan's preamble. */
  readonly tables: string;
}

/** Probe every host and run init's preflight on it; one failing host stops all. */
export async function probeAndPreflight(
  h: ClusterHandle,
  hosts: readonly HostSession[],
  force: boolean,
  out: (s: string) => void,
): Promise<Checked> {
  const swarmId = h.manager.swarm.clusterId as string;
  out(`Checking ${hosts.map((s) => s.exec.label).join(', ')} ...\n`);
  const facts = await Promise.all(hosts.map((s) => probeHost(s.exec, h.config.name)));
  const reports = facts.map((f) =>
    preflight(f, {
      force,
      stack: h.config.name,
      joining: { swarmId, member: isMemberOf(f, swarmId, h.manager.cluster) },
    }),
  );
  // A member whose checks all pass is one line; a new host (or a problem) gets its table.
  const tables = hosts
    .map((s, i) => {
      const r = reports[i] as PreflightReport;
      const f = facts[i] as HostFacts;
      if (isMemberOf(f, swarmId, h.manager.cluster) && r.rows.every((x) => x.status === 'ok'))
        return `${s.exec.label}: preflight OK (${f.hostname}, already a ${f.swarm.isManager ? 'manager' : 'worker'} of this swarm)`;
      return `${s.exec.label}\n${formatPreflight(r)}`;
    })
    .join('\n');
  const refused = reports
    .map((r, i) => preflightError(r, hosts[i]?.exec.label ?? ''))
    .filter((e) => e !== undefined);
  if (refused.length) {
    out(`${tables}\n\n`);
    throw refused.length === 1
      ? refused[0]
      : new UserError(refused.map((e) => e.message).join('\n'), refused[0]?.next);
  }
  return { facts, reports, tables };
}

/** Distinct hostnames, and every swarm port answering from each host that will join. */
export async function checkJoinable(
  h: ClusterHandle,
  targets: readonly JoinTarget[],
  sessions: ReadonlyMap<string, HostSession>,
  tables: string,
  out: (s: string) => void,
  /**
   * Members whose firewall (cluster-cli's) this same plan opens to the new
   * hosts: a port there that does not answer yet is expected, not blocked.
   */
  opening: ReadonlySet<string> = new Set(),
): Promise<PortResult[]> {
  const names = new Map<string, string>();
  for (const t of targets) {
    const other = names.get(t.facts.hostname);
    if (other)
      throw new UserError(
        `${other} and ${t.label} have the same hostname ${t.facts.hostname}; swarm nodes need distinct names.`,
        'give each host its own hostname (hostnamectl set-hostname …)',
      );
    names.set(t.facts.hostname, t.label);
  }
  const swarmId = h.manager.swarm.clusterId as string;
  const joining = targets.filter((t) => !isMemberOf(t.facts, swarmId, h.manager.cluster));
  const needs = joinPortNeeds(h.manager.cluster.nodes);
  const results = (
    await Promise.all(
      joining.map((t) =>
        probePorts((sessions.get(t.label) as HostSession).exec, t.facts.hostname, needs),
      ),
    )
  ).flat();
  const expected = (r: PortResult) => r.result === 'timeout' && opening.has(r.to);
  const blocked = blockedPortsError(
    results.filter((r) => !expected(r)),
    h.config.firewall.enabled,
  );
  if (blocked) {
    out(`${tables}\n\n`);
    throw blocked;
  }
  return results.filter(expected);
}

/** The join tokens, read on a manager into Secrets: they only ever travel in API bodies. */
export async function readJoinTokens(manager: HostSession): Promise<Record<Role, Secret>> {
  const tokens = {} as Record<Role, Secret>;
  for (const role of ['manager', 'worker'] as const) {
    const r = await manager.exec.run(joinTokenRead(role));
    tokens[role] = new Secret(r.stdout.trim(), `${role} join token`);
  }
  return tokens;
}

/** The managers' `addr:2377` a joining node contacts. */
export function managerAddrs(h: ClusterHandle): string[] {
  return h.manager.cluster.nodes
    .filter((n) => n.role === 'manager' && n.state !== 'down' && n.managerAddr)
    .map((n) => n.managerAddr as string);
}

/** Wait until the joined nodes are `ready` on the manager; node ID → hostname of every ready node. */
async function readyNodes(
  manager: HostSession,
  want: readonly string[],
): Promise<Map<string, string>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const nodes = await manager
      .docker()
      .request<{ ID: string; Description: { Hostname: string }; Status: { State: string } }[]>(
        apiRequest('GET', '/nodes', { readOnly: true }),
      );
    const ready = nodes.filter((n) => n.Status.State === 'ready');
    if (
      want.every((w) => ready.some((n) => n.Description.Hostname === w)) ||
      Date.now() > deadline
    ) {
      return new Map(ready.map((n) => [n.ID, n.Description.Hostname]));
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The converge phase after joins: the overlay check when anything joined, then
 * the stack's convergence when it was redeployed. `since` marks the deploy.
 */
export function afterJoin(
  ctx: Ctx,
  h: ClusterHandle,
  next: Config,
  o: {
    decisions: readonly JoinDecision[];
    deploys: boolean;
    timeoutS: number | undefined;
    /** Check the overlay also when every host was already a member (a re-run checks again). */
    checkMembers?: boolean;
  },
) {
  const manager = h.manager.session;
  let since: Date | undefined;
  const state: { netcheck?: NetcheckReport; netcheckMs?: number; convergeMs?: number } = {};
  return {
    state,
    async beforeApply() {
      if (o.deploys) since = await daemonTime(manager.docker()).catch(() => undefined);
    },
    async converge(mode: ProgressMode, r: ApplyReport): Promise<unknown> {
      const joined = o.decisions.filter((d) => d.kind !== 'member' && !r.failed.has(d.label));
      const involved = o.checkMembers ? o.decisions.filter((d) => !r.failed.has(d.label)) : joined;
      if (involved.length) {
        const t0 = performance.now();
        await runWithProgress(ctx.stdout, mode, [
          {
            title: 'Check the overlay data path between every pair of nodes',
            run: async (status) => {
              const nodes = await readyNodes(
                manager,
                joined.map((d) => d.hostname),
              );
              status(`${nodes.size} nodes`);
              const check = () =>
                runNetcheck(manager, { stack: next.name, image: next.deploy.checkImage, nodes });
              state.netcheck = await check();
              // Nodes that joined a moment ago can still be learning each
              // other's overlay peers (gossip) on a busy host: a pair counts
              // as blocked only when a second, fresh check fails it too.
              if (netcheckProblems(state.netcheck).length) {
                status(`${nodes.size} nodes, a pair did not answer: checking again`);
                state.netcheck = await check();
              }
            },
          },
        ]);
        state.netcheckMs = performance.now() - t0;
      }
      if (!o.deploys || r.failed.has(manager.exec.label)) return undefined;
      const t1 = performance.now();
      const states = await converge(manager.docker(), ctx.stdout, mode, {
        stack: next.name,
        services: configServiceNames(next),
        timeoutMs: (o.timeoutS ?? next.deploy.timeout) * 1000,
        ...(since ? { since } : {}),
      });
      state.convergeMs = performance.now() - t1;
      return states;
    },
  };
}

export type { SshFlags };
