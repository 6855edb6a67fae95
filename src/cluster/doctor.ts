import { change, type Plan, unchanged } from '../core/plan.js';
import { configRm } from '../docker/commands.js';
import type { FirewallCheck } from '../firewall/plan.js';
import type { StackModel } from '../stack/model.js';
import { quorum } from './plan-join.js';
import type { PortResult } from './ports.js';
import type { NodeFacts } from './probe.js';
import { versionParts } from './versions.js';

/**
 * `cluster-cli doctor`: every check with a verdict and the command that fixes
 * it. Pure: the facts are gathered beforehand (src/cli/doctor.ts), each check
 * here turns some of them into rows. A node that could not be reached is one
 * `fail` row; its own checks are not run (not reported as passing either).
 */

export type DoctorVerdict = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  /** Stable for scripts: `quorum`, `clock:node2`, `memory:node1`, `stale-configs`… */
  readonly id: string;
  /** For people: the table's CHECK column. */
  readonly title: string;
  readonly verdict: DoctorVerdict;
  readonly detail: string;
  /** The command (or the action) that fixes it; only when not ok. */
  readonly next?: string;
}

/** A fact that could not be read (a tool missing, sudo wants a password): the reason, not a fact. */
export interface ProbeFailure {
  readonly error: string;
}
export type Probed<T> = T | ProbeFailure;

export function isFailure<T>(x: Probed<T>): x is ProbeFailure {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && 'error' in x;
}

export const DOCTOR_EXIT: Readonly<Record<DoctorVerdict, number>> = { ok: 0, warn: 1, fail: 2 };

/** The worst verdict of all checks (ok when there are none). */
export function doctorVerdict(checks: readonly DoctorCheck[]): DoctorVerdict {
  if (checks.some((c) => c.verdict === 'fail')) return 'fail';
  return checks.some((c) => c.verdict === 'warn') ? 'warn' : 'ok';
}

// ------------------------------------------------------------------ quorum --

/**
 * Raft needs a majority of the managers: n managers survive (n-1)/2 failures
 * (rounded down). One manager survives none; an even count survives no more
 * than one manager fewer would, and splits more easily.
 */
export function checkQuorum(nodes: readonly NodeFacts[], cfg = ''): DoctorCheck {
  const base = { id: 'quorum', title: 'quorum' } as const;
  const managers = nodes.filter((n) => n.role === 'manager');
  const up = managers.filter((m) => m.state === 'ready' && m.reachability === 'reachable');
  const n = managers.length;
  const need = Math.floor(n / 2) + 1;
  const q = quorum(n);
  if (n === 0)
    return {
      ...base,
      verdict: 'fail',
      detail: 'the swarm lists no manager',
      next: `cluster-cli node ls${cfg}`,
    };
  if (up.length < need) {
    return {
      ...base,
      verdict: 'fail',
      detail: `quorum lost: ${up.length} of ${n} managers reachable, ${need} needed (down: ${names(managers.filter((m) => !up.includes(m)))})`,
      next: `bring those managers back up (cluster-cli node ls${cfg} shows which), or recover with docker swarm init --force-new-cluster on a surviving one`,
    };
  }
  const workers = nodes.filter((x) => x.role === 'worker' && x.state === 'ready');
  if (up.length < n) {
    const spare = up.length - need;
    return {
      ...base,
      verdict: 'warn',
      detail: `${up.length} of ${n} managers reachable (down: ${names(managers.filter((m) => !up.includes(m)))}): ${spare === 0 ? 'one more failure loses quorum' : `survives ${spare} more failure${spare === 1 ? '' : 's'}`}`,
      next: `bring the manager back up, or replace it: cluster-cli node ls${cfg}`,
    };
  }
  if (n === 1) {
    return {
      ...base,
      verdict: 'warn',
      detail: `${q.text}: no high availability (the manager's failure stops scheduling and updates)`,
      next:
        workers.length >= 2
          ? `cluster-cli node promote ${workers
              .slice(0, 2)
              .map((w) => w.hostname)
              .join(' ')}${cfg}   # 3 managers survive one failure`
          : `cluster-cli node join <user@host>,manager <user@host>,manager${cfg}   # 3 managers survive one failure`,
    };
  }
  if (q.even) {
    return {
      ...base,
      verdict: 'warn',
      detail: q.text,
      next: workers.length
        ? `cluster-cli node promote ${workers[0]?.hostname}${cfg}   # ${n + 1} managers survive ${quorum(n + 1).tolerates} failure(s)`
        : n === 2
          ? `cluster-cli node join <user@host>,manager${cfg}   # 3 managers survive one failure`
          : `cluster-cli node demote ${managers.find((m) => !m.self && !m.leader)?.hostname ?? '<node>'}${cfg}   # ${n - 1} managers survive as many failures`,
    };
  }
  return { ...base, verdict: 'ok', detail: q.text };
}

const names = (nodes: readonly NodeFacts[]) => nodes.map((x) => x.hostname).join(', ') || '-';

// ------------------------------------------------------------- clock skew --

/**
 * Why the clocks matter, and the thresholds:
 * - Swarm's mutual TLS: each node judges a peer's certificate (and its own
 *   rotation, due at a random moment in the later half of its lifetime) by
 *   its own wall clock. swarmkit backdates certificates by an hour to absorb
 *   drift, so seconds do not break it, but an unsynchronised clock keeps
 *   drifting until it does, and then the node drops out of the swarm.
 * - Raft itself times elections with each manager's local ticks, not wall
 *   time, but what runs on top compares wall times from different nodes:
 *   task timestamps, `docker service logs --since`, the convergence wait of
 *   cluster-cli (the manager's clock marks where a deploy started), the backup
 *   schedule (every manager's cron fires the same tick by its own clock), and
 *   S3 (request signatures more than 15 minutes off are refused) and ACME.
 * NTP keeps nodes within milliseconds of each other, so more than 1 s means
 * the clock is not synchronised (warn); more than 10 s is drift that has been
 * going on for a while and will only grow (fail).
 */
export const CLOCK_WARN_MS = 1_000;
export const CLOCK_FAIL_MS = 10_000;

/** One reading of a node's clock, taken from the machine cluster-cli runs on. */
export interface ClockSample {
  /** This machine's clock (ms since the epoch) just before the command was sent … */
  readonly sentMs: number;
  /** … and right after its answer came back. */
  readonly receivedMs: number;
  /** The node's clock as it printed it. */
  readonly remoteMs: number;
  /** How finely the node printed it (1 ms, or 1000 ms without `date +%N`). */
  readonly resolutionMs: number;
}

/** A node's clock minus this machine's, and how far off that estimate can be. */
export interface ClockReading {
  readonly offsetMs: number;
  readonly uncertaintyMs: number;
}

/**
 * How the offset is measured: the node printed its time somewhere between
 * sending the command and receiving the answer; taking the midpoint (the
 * round trip halved, as NTP does) is off by at most half the round trip (when
 * the two directions took very different times), plus the resolution of what
 * the node printed. Comparing two nodes' offsets to this machine cancels this
 * machine's own clock out.
 */
export function clockReading(s: ClockSample): ClockReading {
  const rtt = Math.max(0, s.receivedMs - s.sentMs);
  return {
    offsetMs: s.remoteMs - (s.sentMs + rtt / 2),
    uncertaintyMs: rtt / 2 + s.resolutionMs,
  };
}

/** One node's clock against the reference manager's (the one cluster-cli reached). */
export function checkClock(
  node: string,
  reading: Probed<ClockReading>,
  reference: { readonly name: string; readonly reading: Probed<ClockReading> },
  target: string,
): DoctorCheck {
  const base = { id: `clock:${node}`, title: `clock ${node}` };
  if (isFailure(reading)) return couldNotCheck(base, reading);
  if (node === reference.name)
    return { ...base, verdict: 'ok', detail: 'the reference: the manager cluster-cli reached' };
  if (isFailure(reference.reading))
    return {
      ...base,
      verdict: 'warn',
      detail: `not compared: the clock of ${reference.name} (the reference) could not be read`,
      next: `ssh ${reference.name} date`,
    };
  const skew = reading.offsetMs - reference.reading.offsetMs;
  const within = reading.uncertaintyMs + reference.reading.uncertaintyMs;
  const abs = Math.abs(skew);
  const detail = `${seconds(abs)} ${skew >= 0 ? 'ahead of' : 'behind'} ${reference.name} (±${seconds(within)}, half the SSH round trips)`;
  const verdict: DoctorVerdict = abs > CLOCK_FAIL_MS ? 'fail' : abs > CLOCK_WARN_MS ? 'warn' : 'ok';
  if (verdict === 'ok') return { ...base, verdict, detail };
  return {
    ...base,
    verdict,
    detail: `${detail}; ${verdict === 'fail' ? `over ${CLOCK_FAIL_MS / 1000} s` : `over ${CLOCK_WARN_MS / 1000} s`}: the clock is not synchronised`,
    next: `${onNode(target, 'timedatectl set-ntp true')}   # or install chrony; then check: timedatectl`,
  };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// ------------------------------------------------------ memory and disk --

/** Under this share of a node's memory (or disk) left over: warn. */
export const HEADROOM_WARN = 0.2;
/** Under this share of the disk free: fail (image pulls and PostgreSQL's WAL need room). */
export const DISK_FAIL = 0.05;

export interface NodeResources {
  /** MemTotal: what swarm's scheduler subtracts reservations from. */
  readonly memKb: number;
  /** MemAvailable (absent on kernels before 3.14): shown, not judged. */
  readonly memAvailableKb?: number;
  /** The filesystem holding Docker's data (/var/lib). */
  readonly disk: { readonly path: string; readonly totalKb: number; readonly availKb: number };
}

/** A service's tasks a node is counted to run, and the memory they reserve. */
export interface PlacedTasks {
  /** Stack-local key: proxy, app, postgres, redis, agent. */
  readonly service: string;
  readonly tasks: number;
  readonly bytes: number;
}

const UNIT: Readonly<Record<string, number>> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** `256M`, `1.5G` (cluster.yaml's sizes; binary units, as Docker reads them) → bytes. */
export function memoryBytes(size: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG])$/.exec(size.trim());
  if (!m) throw new Error(`not a memory size: ${size}`);
  return Math.round(Number(m[1]) * (UNIT[m[2] as string] as number));
}

/**
 * Whether a node satisfies placement constraints (`node.role == manager`,
 * `node.labels.db == primary`, `node.hostname == node1`, and `!=`). A
 * constraint of another form is taken to match: counting a task where it may
 * not run errs on the safe side.
 */
export function matchesConstraints(
  node: Pick<NodeFacts, 'hostname' | 'role' | 'labels'>,
  constraints: readonly string[],
): boolean {
  return constraints.every((c) => {
    const m = /^\s*node\.(role|hostname|labels\.([^\s=!]+))\s*(==|!=)\s*(.+?)\s*$/.exec(c);
    if (!m) return true;
    const have =
      m[1] === 'role' ? node.role : m[1] === 'hostname' ? node.hostname : node.labels[m[2] ?? ''];
    return m[3] === '==' ? have === m[4] : have !== m[4];
  });
}

/**
 * Which node runs which tasks, from the rendered stack's placement, kept
 * simple: a node takes tasks when it is ready and not drained;
 * - the proxy (and the agent) are global: one task on every such node that
 *   matches their constraints (managers, or `public_ip=true` ones);
 * - PostgreSQL and Redis (one replica each) count on every node their
 *   constraint allows (the `db=primary` node, else the first manager);
 * - the app's replicas spread evenly over the nodes it may run on (no
 *   constraint: all), rounded up, as swarm's spread strategy places them.
 * A node is charged for every task it may get, so the sum is an upper bound.
 * Keyed by hostname.
 */
export function reservationsByNode(
  model: StackModel,
  nodes: readonly NodeFacts[],
): Map<string, PlacedTasks[]> {
  const eligible = nodes.filter((n) => n.state === 'ready' && n.availability !== 'drain');
  const services: {
    service: string;
    constraints: readonly string[];
    memory: string;
    replicas?: number;
  }[] = [
    {
      service: 'proxy',
      constraints: model.proxy.constraints,
      memory: model.proxy.resources.reservations.memory,
    },
    {
      service: 'app',
      constraints: model.app.constraints,
      memory: model.app.resources.reservations.memory,
      replicas: model.app.replicas,
    },
    {
      service: 'postgres',
      constraints: model.postgres.constraints,
      memory: model.postgres.resources.reservations.memory,
      replicas: 1,
    },
    {
      service: 'redis',
      constraints: model.redis.constraints,
      memory: model.redis.resources.reservations.memory,
      replicas: 1,
    },
    ...(model.agent
      ? [
          {
            service: 'agent',
            constraints: model.agent.constraints,
            memory: model.agent.resources.reservations.memory,
          },
        ]
      : []),
  ];
  const out = new Map<string, PlacedTasks[]>(nodes.map((n) => [n.hostname, []]));
  for (const s of services) {
    const where = eligible.filter((n) => matchesConstraints(n, s.constraints));
    if (!where.length || s.replicas === 0) continue;
    const tasks = s.replicas === undefined ? 1 : Math.ceil(s.replicas / where.length);
    for (const n of where)
      out
        .get(n.hostname)
        ?.push({ service: s.service, tasks, bytes: tasks * memoryBytes(s.memory) });
  }
  return out;
}

/** Services whose reservation cluster.yaml sets (`resources.<service>.reservation`). */
const RESERVATION_KEYS = new Set(['proxy', 'app', 'postgres', 'redis']);

/**
 * Memory: the reservations of the tasks placed on the node against its total
 * memory, which is what swarm's scheduler subtracts them from (a task whose
 * reservation no longer fits stays pending). Under 20 % left: warn; more
 * reserved than the node has: fail. MemAvailable is shown for context; it
 * already has the running tasks' use taken out, so it is not judged.
 */
export function checkMemory(
  node: string,
  resources: Probed<NodeResources>,
  placed: readonly PlacedTasks[],
  cfg = '',
): DoctorCheck {
  const base = { id: `memory:${node}`, title: `memory ${node}` };
  if (isFailure(resources)) return couldNotCheck(base, resources);
  const total = resources.memKb * 1024;
  const reserved = placed.reduce((a, p) => a + p.bytes, 0);
  const left = total - reserved;
  const parts = placed.map((p) => `${p.service}${p.tasks > 1 ? ` ×${p.tasks}` : ''}`).join(', ');
  const available =
    resources.memAvailableKb === undefined
      ? ''
      : `; ${bytes(resources.memAvailableKb * 1024)} available now`;
  const detail = `reserved ${bytes(reserved)} of ${bytes(total)}${parts ? ` (${parts})` : ''}: ${percent(left, total)} headroom${available}`;
  const verdict: DoctorVerdict =
    reserved > total ? 'fail' : left < total * HEADROOM_WARN ? 'warn' : 'ok';
  if (verdict === 'ok') return { ...base, verdict, detail };
  const biggest = [...placed]
    .filter((p) => RESERVATION_KEYS.has(p.service))
    .sort((a, b) => b.bytes - a.bytes)[0];
  return {
    ...base,
    verdict,
    detail:
      verdict === 'fail'
        ? `${detail}: the reservations exceed the node's memory, swarm cannot place every task`
        : detail,
    next: biggest
      ? `cluster-cli config set resources.${biggest.service}.reservation <smaller size>${cfg}   # or give ${node} more memory`
      : `give ${node} more memory`,
  };
}

/**
 * Disk: the stack reserves none, so the filesystem holding Docker's images
 * and volumes (PostgreSQL's data among them) is judged by its free share:
 * under 20 % warn, under 5 % fail.
 */
export function checkDisk(node: string, resources: Probed<NodeResources>, target: string) {
  const base = { id: `disk:${node}`, title: `disk ${node}` };
  if (isFailure(resources)) return couldNotCheck(base, resources);
  const d = resources.disk;
  const detail = `${d.path}: ${bytes(d.availKb * 1024)} free of ${bytes(d.totalKb * 1024)} (${percent(d.availKb, d.totalKb)})`;
  const verdict: DoctorVerdict =
    d.availKb < d.totalKb * DISK_FAIL
      ? 'fail'
      : d.availKb < d.totalKb * HEADROOM_WARN
        ? 'warn'
        : 'ok';
  if (verdict === 'ok') return { ...base, verdict, detail } satisfies DoctorCheck;
  return {
    ...base,
    verdict,
    detail,
    next: `${onNode(target, 'docker system df')}   # then docker image prune (unused images), or grow the disk`,
  } satisfies DoctorCheck;
}

// ------------------------------------------------------------------ ports --

/** From one node: every manager's 2377/tcp and every node's 7946/tcp (probePorts' results). */
export function checkPorts(
  node: string,
  results: Probed<readonly PortResult[]>,
  firewallOn: boolean,
  cfg = '',
): DoctorCheck {
  const base = { id: `ports:${node}`, title: `ports ${node}` };
  if (isFailure(results)) return couldNotCheck(base, results);
  if (!results.length) return { ...base, verdict: 'ok', detail: 'no other node to reach' };
  const bad = results.filter((r) => r.result !== 'ok');
  if (!bad.length) {
    const count = (port: number) => results.filter((r) => r.port === port).length;
    return {
      ...base,
      verdict: 'ok',
      detail: `reaches 2377/tcp on ${count(2377)} manager(s), 7946/tcp on ${count(7946)} node(s)`,
    };
  }
  return {
    ...base,
    verdict: 'fail',
    detail: bad
      .map(
        (b) =>
          `${b.to} (${b.addr}) ${b.port}/tcp ${b.what}: ${b.result === 'timeout' ? 'no answer (filtered?)' : 'refused'}`,
      )
      .join('; '),
    next: firewallOn
      ? `cluster-cli firewall apply${cfg}   # the cluster's firewall lets members only in`
      : `open ${[...new Set(bad.map((b) => `${b.port}/tcp`))].join(', ')} from ${node} to ${[...new Set(bad.map((b) => b.to))].join(', ')} (host firewall, cloud security group)`,
  };
}

// ---------------------------------------------------------------- engines --

/**
 * Docker versions in step: every engine the swarm lists on the same
 * major.minor. The stack is rendered for the oldest one, and a mixed swarm
 * is only meant to last through an upgrade.
 */
export function checkEngines(nodes: readonly NodeFacts[]): DoctorCheck {
  const base = { id: 'engines', title: 'docker versions' } as const;
  const known = nodes.filter((n) => n.engine && versionParts(n.engine));
  const unknown = nodes.filter((n) => !known.includes(n));
  const minor = (v: string) => (versionParts(v) as number[]).slice(0, 2).join('.');
  const groups = new Map<string, NodeFacts[]>();
  for (const n of known) {
    const k = minor(n.engine as string);
    groups.set(k, [...(groups.get(k) ?? []), n]);
  }
  const unknownText = unknown.length ? `; unknown on ${names(unknown)}` : '';
  if (groups.size <= 1) {
    const [k] = [...groups.keys()];
    const exact = [...new Set(known.map((n) => n.engine))].join(', ');
    return {
      ...base,
      verdict: 'ok',
      detail: k
        ? `${known.length} engine(s) on ${k} (${exact})${unknownText}`
        : `no engine version known${unknownText}`,
    };
  }
  const sorted = [...groups.keys()].sort((a, b) => {
    const [pa, pb] = [a.split('.').map(Number), b.split('.').map(Number)];
    return (pa[0] ?? 0) - (pb[0] ?? 0) || (pa[1] ?? 0) - (pb[1] ?? 0);
  });
  const newest = sorted[sorted.length - 1] as string;
  const behind = known.filter((n) => minor(n.engine as string) !== newest);
  return {
    ...base,
    verdict: 'warn',
    detail: `not in step: ${known.map((n) => `${n.hostname} ${n.engine}`).join(', ')}${unknownText}`,
    next: `upgrade Docker on ${names(behind)} to ${newest}, one node at a time (cluster-cli node drain <node> first)`,
  };
}

// ------------------------------------------------- secrets and configs --

export interface StackNeeds {
  /** External secrets the rendered stack references. */
  readonly secrets: readonly string[];
  /** External configs, with the service that mounts them and whether it runs another revision. */
  readonly configs: readonly {
    readonly name: string;
    readonly service: string;
    readonly drifted: boolean;
  }[];
}

/**
 * Every external secret and config the stack that cluster.yaml renders
 * references must exist, or a deploy (or a task restarted elsewhere) fails.
 * A missing config of a service that runs another revision is a pending
 * change (configs are named by their content, so a changed cluster.yaml asks
 * for a new one): warn; anything else missing: fail.
 */
export function checkStackObjects(
  needs: StackNeeds,
  have: { readonly secrets: readonly string[]; readonly configs: readonly string[] },
  cfg = '',
): DoctorCheck {
  const base = { id: 'stack-objects', title: 'secrets and configs' } as const;
  const secrets = needs.secrets.filter((s) => !have.secrets.includes(s));
  const configs = needs.configs.filter((c) => !have.configs.includes(c.name));
  if (!secrets.length && !configs.length)
    return {
      ...base,
      verdict: 'ok',
      detail: `the stack's ${needs.secrets.length} secret(s) and ${needs.configs.length} config(s) exist`,
    };
  const missing = [
    ...secrets.map((s) => `secret ${s}`),
    ...configs.map(
      (c) => `config ${c.name} (${c.service}${c.drifted ? ', cluster.yaml changed' : ''})`,
    ),
  ];
  return {
    ...base,
    verdict: secrets.length || configs.some((c) => !c.drifted) ? 'fail' : 'warn',
    detail: `missing: ${missing.join(', ')}`,
    next: `cluster-cli apply${cfg}`,
  };
}

// --------------------------------------------------------- stale configs --

/**
 * Configs of this stack that nothing needs: cluster-cli names them
 * `<stack>_<key>_<12 hex of the content>` (stack names have no `_`, so the
 * prefix is this stack's alone) and labels them io.cluster-cli.managed; one
 * is stale when no service references it, neither in its spec nor in its
 * previous spec (what `docker service rollback` and a failed update go back
 * to: Docker would let that one be removed), and the stack cluster.yaml
 * renders now does not want it.
 */
export function staleConfigs(
  stack: string,
  managed: readonly string[],
  inUse: readonly string[],
  wanted: readonly string[],
): string[] {
  const ours = new RegExp(
    `^${stack.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}_[a-z0-9_]+_[0-9a-f]{12}$`,
  );
  return [...new Set(managed)]
    .filter((c) => ours.test(c) && !inUse.includes(c) && !wanted.includes(c))
    .sort();
}

export function checkStaleConfigs(stale: readonly string[], cfg = ''): DoctorCheck {
  const base = { id: 'stale-configs', title: 'stale configs' } as const;
  if (!stale.length)
    return { ...base, verdict: 'ok', detail: 'none: every config of the stack is in use' };
  return {
    ...base,
    verdict: 'warn',
    detail: `${stale.length} config(s) of earlier revisions no service uses or keeps for rollback: ${stale.join(', ')}`,
    next: `cluster-cli doctor --prune${cfg}   # or on a manager: docker config rm ${stale.join(' ')}`,
  };
}

/** `doctor --prune`: remove the stale configs on the manager, one step each. */
export function planPrune(stack: string, host: string, stale: readonly string[]): Plan {
  return {
    title: `doctor --prune on ${stack}`,
    steps: stale.length
      ? stale.map((name) =>
          change(`config-rm-${name}`, host, `Remove the stale Docker config ${name}`, [
            configRm(name),
          ]),
        )
      : [unchanged('stale-configs', host, 'Stale Docker configs', 'none')],
  };
}

// ---------------------------------------------------------------- firewall --

/**
 * With firewall.enabled, a node whose rules, saved files and unit are as
 * `firewall apply` leaves them is ok; one that drifted is a warn (what
 * differs is named); one with none of it at all is a fail: cluster.yaml says
 * the node is closed, and it is open.
 */
export function checkFirewallNode(
  node: string,
  check: Probed<FirewallCheck>,
  cfg = '',
): DoctorCheck {
  const base = { id: `firewall:${node}`, title: `firewall ${node}` };
  if (isFailure(check)) return couldNotCheck(base, check);
  if (check.state === 'in step')
    return {
      ...base,
      verdict: 'ok',
      detail: `in step${check.notes.length ? ` (${check.notes.join('; ')})` : ''}`,
    };
  return {
    ...base,
    verdict: check.state === 'absent' ? 'fail' : 'warn',
    detail:
      check.state === 'absent'
        ? 'no rules, files or unit of cluster-cli, although cluster.yaml enables the firewall'
        : `drifted: ${check.differences.join('; ')}`,
    next: `cluster-cli firewall apply --dry-run${cfg}`,
  };
}

export function firewallDisabled(cfg = ''): DoctorCheck {
  return {
    id: 'firewall',
    title: 'firewall',
    verdict: 'warn',
    detail: 'not enabled: every port a container publishes is open to everyone',
    next: `cluster-cli firewall apply --dry-run${cfg}`,
  };
}

// -------------------------------------------------------------- the lot --

/** What one host of cluster.yaml told us (or why it could not). */
export interface HostDoctorFacts {
  /** Its name in cluster.yaml (the swarm node's hostname). */
  readonly name: string;
  /** How cluster-cli reaches it (executor label, or the address when it could not connect). */
  readonly target: string;
  /** Set when it could not be reached: nothing else was read. */
  readonly error?: string;
  readonly clock?: Probed<ClockReading>;
  readonly resources?: Probed<NodeResources>;
  readonly ports?: Probed<readonly PortResult[]>;
  /** Only with firewall.enabled. */
  readonly firewall?: Probed<FirewallCheck>;
}

export interface DoctorFacts {
  readonly stack: string;
  /** ` -c <file>` for the next commands, empty for cluster.yaml. */
  readonly cfg: string;
  readonly firewallEnabled: boolean;
  /** The swarm as the manager cluster-cli reached lists it. */
  readonly swarm: readonly NodeFacts[];
  /** The reached manager's name in cluster.yaml: its clock is the reference. */
  readonly reference: string;
  /** Every host of cluster.yaml, in the file's order. */
  readonly hosts: readonly HostDoctorFacts[];
  /** The stack cluster.yaml renders now (placement, reservations). */
  readonly model: StackModel;
  readonly needs: StackNeeds;
  readonly have: { readonly secrets: readonly string[]; readonly configs: readonly string[] };
  /** Configs of this stack nothing uses (see staleConfigs). */
  readonly stale: Probed<readonly string[]>;
}

/** Every check over the facts, in a fixed order: the cluster first, then per node. */
export function diagnose(f: DoctorFacts): DoctorCheck[] {
  const checks: DoctorCheck[] = [checkQuorum(f.swarm, f.cfg), checkEngines(f.swarm)];
  checks.push(checkStackObjects(f.needs, f.have, f.cfg));
  checks.push(
    isFailure(f.stale)
      ? couldNotCheck({ id: 'stale-configs', title: 'stale configs' }, f.stale)
      : checkStaleConfigs(f.stale, f.cfg),
  );
  if (!f.firewallEnabled) checks.push(firewallDisabled(f.cfg));
  const placed = reservationsByNode(f.model, f.swarm);
  const ref = f.hosts.find((h) => h.name === f.reference);
  const reference = {
    name: f.reference,
    reading: ref?.clock ?? { error: 'not read' },
  };
  for (const h of f.hosts) {
    if (h.error !== undefined) {
      checks.push({
        id: `ssh:${h.name}`,
        title: `ssh ${h.name}`,
        verdict: 'fail',
        detail: `unreachable, its checks were skipped: ${h.error.split('\n')[0]}`,
        next: `check the address, the SSH key and that sshd runs: ssh ${sshWords(h.target)}`,
      });
      continue;
    }
    if (h.clock) checks.push(checkClock(h.name, h.clock, reference, h.target));
    if (h.resources) {
      checks.push(checkMemory(h.name, h.resources, placed.get(h.name) ?? [], f.cfg));
      checks.push(checkDisk(h.name, h.resources, h.target));
    }
    if (h.ports) checks.push(checkPorts(h.name, h.ports, f.firewallEnabled, f.cfg));
    if (f.firewallEnabled && h.firewall) checks.push(checkFirewallNode(h.name, h.firewall, f.cfg));
  }
  return checks;
}

// ---------------------------------------------------------------- helpers --

function couldNotCheck(base: { id: string; title: string }, f: ProbeFailure): DoctorCheck {
  return {
    ...base,
    verdict: 'warn',
    detail: `could not check: ${f.error.split('\n')[0]}`,
    next: 'fix that on the host (or the connection), then run cluster-cli doctor again',
  };
}

/** `ssh …` words for an executor label or target: `root@10.0.0.1:2222` → `-p 2222 root@10.0.0.1`. */
function sshWords(target: string): string {
  const m = /^((?:[^@\s]+@)?(?:\[[^\]]+\]|[^:[\]\s]+)):(\d+)$/.exec(target);
  return m ? `-p ${m[2]} ${m[1]}` : target;
}

/** A command to run on a node: as is on this machine, else through ssh. */
function onNode(target: string, command: string): string {
  return target === 'local' ? command : `ssh ${sshWords(target)} ${command}`;
}

/** Whole percent, rounded down (a hair under 20 % shows as 19 %, as it is judged). */
function percent(part: number, whole: number): string {
  return `${whole > 0 ? Math.max(0, Math.floor((part * 100) / whole + 1e-9)) : 0} %`;
}

function bytes(n: number): string {
  const gib = n / 1024 ** 3;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(n / 1024 ** 2)} MiB`;
}
