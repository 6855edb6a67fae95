import { type Cmd, probe, shellScript } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import type { Executor } from '../core/executor.js';
import {
  configLs,
  dockerInfo,
  dockerVersion,
  networkInspect,
  networkLs,
  nodeInspect,
  nodeLs,
  secretLs,
  serviceInspect,
  stackServices,
} from '../docker/commands.js';
import {
  type OsInfo,
  parseDf,
  parseIpAddrs,
  parseJsonLines,
  parseMemTotalKb,
  parseOsRelease,
  parseProcNet,
  parseRouteSrc,
} from './parse.js';

export type SwarmState = 'inactive' | 'pending' | 'active' | 'error' | 'locked' | 'unknown';

export interface DockerFacts {
  readonly installed: boolean;
  readonly clientVersion?: string;
  readonly serverVersion?: string;
  /** Set when the client exists but the daemon did not answer. */
  readonly daemonError?: string;
}

export interface SwarmFacts {
  readonly state: SwarmState;
  readonly isManager: boolean;
  readonly nodeId?: string;
  readonly clusterId?: string;
  readonly nodeAddr?: string;
  /** Managers this node knows of (`host:2377`), from `docker info`. */
  readonly remoteManagers?: readonly string[];
  /** Swarm's own error text, e.g. for a node stuck in a dead swarm. */
  readonly error?: string;
}

export interface NodeFacts {
  readonly id: string;
  readonly hostname: string;
  readonly role: 'manager' | 'worker';
  readonly labels: Readonly<Record<string, string>>;
  readonly self: boolean;
  /** ready, down, unknown, disconnected */
  readonly state: string;
  /** active, pause, drain */
  readonly availability: string;
  /** The address the node is seen at (Status.Addr). */
  readonly addr?: string;
  /** A manager's `ip:2377`. */
  readonly managerAddr?: string;
  readonly leader?: boolean;
  /** reachable, unreachable (managers only) */
  readonly reachability?: string;
  readonly engine?: string;
}

export interface NetworkFacts {
  readonly name: string;
  readonly subnet?: string;
  readonly internal: boolean;
  readonly attachable: boolean;
}

export interface ServiceFacts {
  readonly name: string;
  readonly revision?: string;
  readonly constraints: readonly string[];
  /** Docker secrets the service mounts: name and file name under /run/secrets. */
  readonly secrets?: readonly { readonly name: string; readonly target: string }[];
}

/** What a manager knows about the swarm; only probed on an active manager. */
export interface ClusterFacts {
  readonly nodes: readonly NodeFacts[];
  readonly networks: readonly NetworkFacts[];
  readonly secrets: readonly string[];
  readonly configs: readonly string[];
  readonly services: readonly ServiceFacts[];
}

export interface HostFacts {
  readonly hostname: string;
  readonly os: OsInfo;
  readonly cpus: number;
  readonly memKb: number;
  readonly disk: { readonly path: string; readonly totalKb: number; readonly availKb: number };
  readonly listening: { readonly tcp: readonly number[]; readonly udp: readonly number[] };
  readonly addresses: readonly string[];
  readonly routeSrc?: string;
  readonly docker: DockerFacts;
  readonly swarm: SwarmFacts;
  readonly cluster?: ClusterFacts;
}

const DISK_PATH = '/var/lib';

/**
 * A probe that failed for another reason than the fact it looks for (a tool is
 * missing, the daemon refused us, the connection dropped): never a fact.
 */
export class ProbeError extends UserError {
  constructor(host: string, what: string, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(
      `Could not check ${what} on ${host}: ${why.split('\n').slice(0, 4).join(' | ')}`,
      'fix that on the host (or the connection) and run the command again; nothing was changed',
    );
  }
}

/** stdout of a read-only command that must succeed; any failure is a ProbeError naming `what`. */
export async function probeText(exec: Executor, what: string, c: Cmd): Promise<string> {
  try {
    return (await exec.run(c)).stdout;
  } catch (err) {
    if (err instanceof UserError) throw err; // sudo wants a password, SSH closed: already clear
    throw new ProbeError(exec.label, what, err);
  }
}

/** Read-only facts about one host. Runs in --dry-run too. */
export async function probeHost(exec: Executor, stack: string): Promise<HostFacts> {
  const text = (what: string, argv: string[]) => probeText(exec, what, probe(argv));
  const [osRelease, hostname, nproc, meminfo, df, tcp, udp, addrs, route] = await Promise.all([
    text('the OS (/etc/os-release)', ['cat', '/etc/os-release']),
    text('the hostname', ['hostname']),
    text('the CPU count', ['nproc']),
    text('the memory', ['cat', '/proc/meminfo']),
    text(`the disk (${DISK_PATH})`, ['df', '-Pk', DISK_PATH]),
    probeText(exec, 'listening TCP ports', shellScript(PROC_NET, ['tcp'], { readOnly: true })),
    probeText(exec, 'listening UDP ports', shellScript(PROC_NET, ['udp'], { readOnly: true })),
    text('the IP addresses', ['ip', '-o', '-4', 'addr', 'show', 'scope', 'global']),
    routeProbe(exec),
  ]);
  const disk = parseDf(df);
  const cpus = Number(nproc.trim());
  if (!Number.isInteger(cpus) || cpus < 1)
    throw new ProbeError(
      exec.label,
      'the CPU count',
      `nproc printed ${JSON.stringify(nproc.trim())}`,
    );
  const docker = await probeDocker(exec);
  const swarm = docker.serverVersion
    ? await probeSwarm(exec)
    : { state: 'unknown' as const, isManager: false };
  const cluster =
    swarm.state === 'active' && swarm.isManager ? await probeCluster(exec, stack) : undefined;
  const routeSrc = parseRouteSrc(route);
  return {
    hostname: hostname.trim(),
    os: parseOsRelease(osRelease),
    cpus,
    memKb: parseMemTotalKb(meminfo),
    disk: { path: DISK_PATH, totalKb: disk.totalKb, availKb: disk.availKb },
    listening: { tcp: parseProcNet(tcp, 'tcp'), udp: parseProcNet(udp, 'udp') },
    addresses: parseIpAddrs(addrs),
    ...(routeSrc ? { routeSrc } : {}),
    docker,
    swarm,
    ...(cluster ? { cluster } : {}),
  };
}

/** /proc/net/tcp and, where IPv6 is on, tcp6 ("$1" is tcp or udp). */
const PROC_NET = 'cat "/proc/net/$1"; if [ -e "/proc/net/$1"6 ]; then cat "/proc/net/$1"6; fi';

/** The source address of the default route; a host without one (no route) is a fact, not an error. */
async function routeProbe(exec: Executor): Promise<string> {
  const r = await exec.run(probe(['ip', '-4', 'route', 'get', '1.1.1.1']), { allowFailure: true });
  if (r.exitCode === 0) return r.stdout;
  if (/unreachable|no route/i.test(r.stderr)) return '';
  throw new ProbeError(exec.label, 'the default route', r.stderr.trim() || `exit ${r.exitCode}`);
}

/** The daemon is down or not started: a fact. Anything else from `docker version` is not. */
const DAEMON_DOWN =
  /Cannot connect to the Docker daemon|Is the docker daemon running|connect: no such file or directory|connect: connection refused/i;

/**
 * Where the docker CLI is. `command -v` of a missing command exits 1 in bash
 * but 127 in dash (Debian's and Ubuntu's /bin/sh), where 127 also means "sh
 * itself not found": the script says "not installed" with an exit code of its own.
 */
export const DOCKER_MISSING_EXIT = 3;
export function dockerLookup(): Cmd {
  return shellScript(`command -v docker || exit ${DOCKER_MISSING_EXIT}`, [], { readOnly: true });
}

export async function probeDocker(exec: Executor): Promise<DockerFacts> {
  const which = await exec.run(dockerLookup(), { allowFailure: true });
  if (which.exitCode === DOCKER_MISSING_EXIT && which.stdout.trim() === '')
    return { installed: false };
  if (which.exitCode !== 0)
    throw new ProbeError(exec.label, 'whether Docker is installed', which.stderr.trim());
  const r = await exec.run(dockerVersion(), { allowFailure: true });
  let v: { Client?: { Version?: string }; Server?: { Version?: string } | null } = {};
  try {
    v = JSON.parse(r.stdout.trim().split('\n')[0] ?? '{}');
  } catch {
    // an old client prints nothing parseable when the daemon is down
  }
  const serverVersion = v.Server?.Version;
  if (!serverVersion && !DAEMON_DOWN.test(r.stderr))
    throw new ProbeError(exec.label, 'the Docker daemon', r.stderr.trim() || `exit ${r.exitCode}`);
  return {
    installed: true,
    ...(v.Client?.Version ? { clientVersion: v.Client.Version } : {}),
    ...(serverVersion
      ? { serverVersion }
      : { daemonError: r.stderr.trim().split('\n').pop() ?? 'no answer' }),
  };
}

export async function probeSwarm(exec: Executor): Promise<SwarmFacts> {
  const info = JSON.parse(await probeText(exec, 'the swarm state', dockerInfo())) as {
    Swarm?: {
      LocalNodeState?: string;
      ControlAvailable?: boolean;
      NodeID?: string;
      NodeAddr?: string;
      Cluster?: { ID?: string } | null;
      RemoteManagers?: { Addr?: string }[] | null;
      Error?: string;
    };
  };
  const s = info.Swarm ?? {};
  const state =
    (['inactive', 'pending', 'active', 'error', 'locked'] as const).find(
      (x) => x === s.LocalNodeState,
    ) ?? 'unknown';
  const managers = (s.RemoteManagers ?? []).map((m) => m.Addr).filter((a): a is string => !!a);
  return {
    state,
    isManager: Boolean(s.ControlAvailable),
    ...(s.NodeID ? { nodeId: s.NodeID } : {}),
    ...(s.Cluster?.ID ? { clusterId: s.Cluster.ID } : {}),
    ...(s.NodeAddr ? { nodeAddr: s.NodeAddr } : {}),
    ...(managers.length ? { remoteManagers: managers } : {}),
    ...(s.Error ? { error: s.Error } : {}),
  };
}

export interface NodeInspect {
  ID: string;
  Spec: {
    Role: 'manager' | 'worker';
    Availability?: string;
    Labels?: Record<string, string> | null;
  };
  Description: { Hostname: string; Engine?: { EngineVersion?: string } };
  Status?: { State?: string; Addr?: string; Message?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string } | null;
}

/** Node facts from the API's (or `docker node inspect`'s) JSON. Pure. */
export function nodeFacts(n: NodeInspect, selfId?: string): NodeFacts {
  const ms = n.ManagerStatus ?? undefined;
  return {
    id: n.ID,
    hostname: n.Description.Hostname,
    role: n.Spec.Role,
    labels: n.Spec.Labels ?? {},
    self: n.ID === selfId,
    state: n.Status?.State ?? 'unknown',
    availability: n.Spec.Availability ?? 'active',
    ...(n.Status?.Addr ? { addr: n.Status.Addr } : {}),
    ...(ms?.Addr ? { managerAddr: ms.Addr } : {}),
    ...(ms?.Leader ? { leader: true } : {}),
    ...(ms?.Reachability ? { reachability: ms.Reachability } : {}),
    ...(n.Description.Engine?.EngineVersion ? { engine: n.Description.Engine.EngineVersion } : {}),
  };
}

interface NetworkInspect {
  Name: string;
  Internal: boolean;
  Attachable: boolean;
  IPAM?: { Config?: { Subnet?: string }[] | null };
}

interface ServiceInspect {
  Spec: {
    Name: string;
    Labels?: Record<string, string> | null;
    TaskTemplate?: {
      Placement?: { Constraints?: string[] | null };
      ContainerSpec?: {
        Secrets?: { SecretName: string; File?: { Name?: string } }[] | null;
      };
    };
  };
}

/**
 * `docker … inspect` of names a `… ls` just listed: one removed in between
 * (a throwaway network going away) is gone, not an error; every other
 * failure is a ProbeError.
 */
async function inspectListed(exec: Executor, what: string, c: Cmd): Promise<string> {
  const r = await exec.run(c, { allowFailure: true });
  if (r.exitCode === 0) return r.stdout;
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  if (
    lines.length &&
    lines.every((l) => /^Error(: No such \w+| response from daemon: \w+ \S+ not found)/i.test(l))
  )
    return r.stdout;
  throw new ProbeError(exec.label, what, r.stderr.trim() || `exit ${r.exitCode}`);
}

export async function probeCluster(exec: Executor, stack: string): Promise<ClusterFacts> {
  const out = (c: Cmd) => probeText(exec, 'the swarm (as a manager)', c);
  const [nodeLines, netNames, secrets, configs, svcLines] = await Promise.all([
    out(nodeLs()),
    out(networkLs()),
    out(secretLs()),
    out(configLs()),
    out(stackServices(stack)),
  ]);
  const nodeIds = parseJsonLines<{ ID: string; Self?: boolean }>(nodeLines);
  const selfId = nodeIds.find((n) => n.Self)?.ID;
  const nodes = nodeIds.length
    ? parseJsonLines<NodeInspect>(await out(nodeInspect(nodeIds.map((n) => n.ID))))
    : [];
  const names = netNames
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  const nets = names.length
    ? parseJsonLines<NetworkInspect>(
        await inspectListed(exec, 'the overlay networks', networkInspect(names)),
      )
    : [];
  const svcNames = parseJsonLines<{ Name: string }>(svcLines).map((s) => s.Name);
  const svcs = svcNames.length
    ? parseJsonLines<ServiceInspect>(await out(serviceInspect(svcNames)))
    : [];
  const lines = (t: string) =>
    t
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  return {
    nodes: nodes.map((n) => nodeFacts(n, selfId)),
    networks: nets.map((n) => {
      const subnet = n.IPAM?.Config?.[0]?.Subnet;
      return {
        name: n.Name,
        internal: n.Internal,
        attachable: n.Attachable,
        ...(subnet ? { subnet } : {}),
      };
    }),
    secrets: lines(secrets),
    configs: lines(configs),
    services: svcs.map((s) => {
      const revision = s.Spec.Labels?.['io.cluster-cli.revision'];
      const constraints = s.Spec.TaskTemplate?.Placement?.Constraints ?? [];
      const secrets = (s.Spec.TaskTemplate?.ContainerSpec?.Secrets ?? []).map((x) => ({
        name: x.SecretName,
        target: x.File?.Name ?? x.SecretName,
      }));
      return { name: s.Spec.Name, constraints, secrets, ...(revision ? { revision } : {}) };
    }),
  };
}
