import { probe, shellScript } from '../core/cmd.js';
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
import type { Executor } from '../remote/executor.js';
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
}

export interface NodeFacts {
  readonly id: string;
  readonly hostname: string;
  readonly role: 'manager' | 'worker';
  readonly labels: Readonly<Record<string, string>>;
  readonly self: boolean;
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

/** Read-only facts about one host. Runs in --dry-run too. */
export async function probeHost(exec: Executor, stack: string): Promise<HostFacts> {
  const text = async (argv: string[]) =>
    (await exec.run(probe(argv), { allowFailure: true })).stdout;
  const [osRelease, hostname, nproc, meminfo, df, tcp, udp, addrs, route] = await Promise.all([
    text(['cat', '/etc/os-release']),
    text(['hostname']),
    text(['nproc']),
    text(['cat', '/proc/meminfo']),
    text(['df', '-Pk', DISK_PATH]),
    text(['cat', '/proc/net/tcp', '/proc/net/tcp6']),
    text(['cat', '/proc/net/udp', '/proc/net/udp6']),
    text(['ip', '-o', '-4', 'addr', 'show', 'scope', 'global']),
    text(['ip', '-4', 'route', 'get', '1.1.1.1']),
  ]);
  const disk = parseDf(df);
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
    cpus: Number(nproc.trim()) || 0,
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

export async function probeDocker(exec: Executor): Promise<DockerFacts> {
  const which = await exec.run(shellScript('command -v docker'), { allowFailure: true });
  if (which.exitCode !== 0) return { installed: false };
  const r = await exec.run(dockerVersion(), { allowFailure: true });
  let v: { Client?: { Version?: string }; Server?: { Version?: string } | null } = {};
  try {
    v = JSON.parse(r.stdout.trim().split('\n')[0] ?? '{}');
  } catch {
    // an old client prints nothing parseable when the daemon is down
  }
  const serverVersion = v.Server?.Version;
  return {
    installed: true,
    ...(v.Client?.Version ? { clientVersion: v.Client.Version } : {}),
    ...(serverVersion
      ? { serverVersion }
      : { daemonError: r.stderr.trim().split('\n').pop() ?? 'no answer' }),
  };
}

export async function probeSwarm(exec: Executor): Promise<SwarmFacts> {
  const r = await exec.run(dockerInfo(), { allowFailure: true });
  if (r.exitCode !== 0) return { state: 'unknown', isManager: false };
  const info = JSON.parse(r.stdout) as {
    Swarm?: {
      LocalNodeState?: string;
      ControlAvailable?: boolean;
      NodeID?: string;
      NodeAddr?: string;
      Cluster?: { ID?: string } | null;
    };
  };
  const s = info.Swarm ?? {};
  const state =
    (['inactive', 'pending', 'active', 'error', 'locked'] as const).find(
      (x) => x === s.LocalNodeState,
    ) ?? 'unknown';
  return {
    state,
    isManager: Boolean(s.ControlAvailable),
    ...(s.NodeID ? { nodeId: s.NodeID } : {}),
    ...(s.Cluster?.ID ? { clusterId: s.Cluster.ID } : {}),
    ...(s.NodeAddr ? { nodeAddr: s.NodeAddr } : {}),
  };
}

interface NodeInspect {
  ID: string;
  Spec: { Role: 'manager' | 'worker'; Labels?: Record<string, string> | null };
  Description: { Hostname: string };
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
    TaskTemplate?: { Placement?: { Constraints?: string[] | null } };
  };
}

export async function probeCluster(exec: Executor, stack: string): Promise<ClusterFacts> {
  const out = async (c: ReturnType<typeof probe>) => (await exec.run(c)).stdout;
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
  const nets = names.length ? parseJsonLines<NetworkInspect>(await out(networkInspect(names))) : [];
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
    nodes: nodes.map((n) => ({
      id: n.ID,
      hostname: n.Description.Hostname,
      role: n.Spec.Role,
      labels: n.Spec.Labels ?? {},
      self: n.ID === selfId,
    })),
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
      return { name: s.Spec.Name, constraints, ...(revision ? { revision } : {}) };
    }),
  };
}
