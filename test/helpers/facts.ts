import type { ClusterFacts, HostFacts } from '../../src/cluster/probe.js';

/** Hand-built facts for planner and preflight tests (pure functions: no host needed). */
export function freshDebianHost(over: Partial<HostFacts> = {}): HostFacts {
  return {
    hostname: 'node1',
    os: { id: 'debian', idLike: [], versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    cpus: 2,
    memKb: 4_026_000,
    disk: { path: '/var/lib', totalKb: 81_000_000, availKb: 70_000_000 },
    listening: { tcp: [22], udp: [] },
    addresses: ['203.0.113.10'],
    routeSrc: '203.0.113.10',
    docker: { installed: true, clientVersion: '20.10.24', serverVersion: '20.10.24' },
    swarm: { state: 'inactive', isManager: false },
    ...over,
  };
}

export function managerOf(
  cluster: Partial<ClusterFacts>,
  over: Partial<HostFacts> = {},
): HostFacts {
  return freshDebianHost({
    listening: { tcp: [22, 80, 443, 2377, 7946], udp: [4789, 7946] },
    swarm: {
      state: 'active',
      isManager: true,
      nodeId: 'n0de1d',
      clusterId: 'c1uster1d0000000',
      nodeAddr: '203.0.113.10',
    },
    cluster: { nodes: [], networks: [], secrets: [], configs: [], services: [], ...cluster },
    ...over,
  });
}
