import { randomBytes } from 'node:crypto';
import { apiRequest } from '../core/api.js';
import type { HostSession } from '../core/session.js';
import {
  netcheckNetworkCreate,
  netcheckServiceCreate,
  networkRemove,
  serviceRemove,
} from '../docker/swarm.js';

/**
 * The data-path check after a join: a short-lived global service on a fresh
 * overlay network; each task pings every other one (VXLAN, 4789/udp) once
 * gossip (7946) has told it where they are. Run on a manager; everything it
 * creates is removed again, also when the check fails.
 */

export interface PathResult {
  readonly a: string;
  readonly b: string;
  readonly ok: boolean;
}

export interface NetcheckReport {
  readonly pairs: PathResult[];
  /** Nodes whose check task did not run or did not finish, with why. */
  readonly silent: { readonly node: string; readonly why: string }[];
}

interface Task {
  NodeID: string;
  Status: { State: string; Err?: string };
  NetworksAttachments?: { Addresses?: string[] }[];
}

/** Pure: pairs from the log lines and the task → node map. */
export function readNetcheck(
  logs: string,
  ipToNode: ReadonlyMap<string, string>,
  nodes: readonly string[],
): NetcheckReport {
  const seen = new Map<string, boolean>();
  const done = new Set<string>();
  for (const m of logs.matchAll(/NETCHECK (\S+) (\S+) (ok|fail)/g)) {
    const from = ipToNode.get(m[1] as string);
    const to = ipToNode.get(m[2] as string);
    if (from && to) seen.set(`${from} ${to}`, m[3] === 'ok');
  }
  for (const m of logs.matchAll(/NETCHECK-DONE (\S+)/g)) {
    const n = ipToNode.get(m[1] as string);
    if (n) done.add(n);
  }
  const pairs: PathResult[] = [];
  const sorted = [...nodes].sort();
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length; j++) {
      const a = sorted[i] as string;
      const b = sorted[j] as string;
      if (!done.has(a) || !done.has(b)) continue;
      const ab = seen.get(`${a} ${b}`);
      const ba = seen.get(`${b} ${a}`);
      pairs.push({ a, b, ok: ab === true && ba === true });
    }
  }
  const silent = sorted
    .filter((n) => !done.has(n))
    .map((node) => ({ node, why: 'its check task did not finish' }));
  return { pairs, silent };
}

export async function runNetcheck(
  manager: HostSession,
  o: {
    stack: string;
    image: string;
    /** Node IDs → hostnames of the nodes that should take part (ready ones). */
    nodes: ReadonlyMap<string, string>;
    timeoutMs?: number;
  },
): Promise<NetcheckReport> {
  const name = `${o.stack}-netcheck-${randomBytes(3).toString('hex')}`;
  const api = manager.docker();
  const exec = manager.exec;
  await exec.run(netcheckNetworkCreate(name));
  try {
    await exec.run(
      netcheckServiceCreate({ name, network: name, image: o.image, nodes: o.nodes.size }),
    );
    const deadline = Date.now() + (o.timeoutMs ?? 60_000);
    let logs = '';
    let tasks: Task[] = [];
    for (;;) {
      tasks = await api.request<Task[]>(
        apiRequest('GET', '/tasks', {
          query: { filters: JSON.stringify({ service: [name] }) },
          readOnly: true,
        }),
      );
      const raw = await api.request<unknown>(
        apiRequest('GET', `/services/${name}/logs`, {
          query: { stdout: true, stderr: true },
          readOnly: true,
        }),
      );
      logs = typeof raw === 'string' ? raw : Buffer.isBuffer(raw) ? raw.toString('latin1') : '';
      const finished = (logs.match(/NETCHECK-DONE/g) ?? []).length;
      const dead = tasks.filter((t) => ['failed', 'rejected', 'complete'].includes(t.Status.State));
      if (finished >= o.nodes.size || finished + dead.length >= o.nodes.size) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const ipToNode = new Map<string, string>();
    for (const t of tasks) {
      const node = o.nodes.get(t.NodeID);
      if (!node) continue;
      for (const att of t.NetworksAttachments ?? [])
        for (const a of att.Addresses ?? []) ipToNode.set(a.split('/')[0] as string, node);
    }
    const report = readNetcheck(logs, ipToNode, [...o.nodes.values()]);
    const why = new Map(
      tasks
        .filter((t) => t.Status.Err)
        .map((t) => [o.nodes.get(t.NodeID) ?? t.NodeID, `${t.Status.State}: ${t.Status.Err}`]),
    );
    return {
      pairs: report.pairs,
      silent: report.silent.map((s) => ({ node: s.node, why: why.get(s.node) ?? s.why })),
    };
  } finally {
    await exec.run(serviceRemove(name), { allowFailure: true });
    // The network goes once the tasks are gone; that takes a moment.
    for (let i = 0; i < 20; i++) {
      const r = await exec.run(networkRemove(name), { allowFailure: true });
      if (r.exitCode === 0 || /not found/i.test(r.stderr)) break;
      await new Promise((res) => setTimeout(res, 500));
    }
  }
}

/** One line per pair that cannot talk over the overlay, naming the likely port. */
export function netcheckProblems(r: NetcheckReport): string[] {
  return [
    ...r.pairs
      .filter((p) => !p.ok)
      .map(
        (p) =>
          `${p.a} <-> ${p.b}: no overlay traffic between them (4789/udp VXLAN blocked, or 7946/udp gossip)`,
      ),
    ...r.silent.map((s) => `${s.node}: the overlay check could not run there (${s.why})`),
  ];
}
