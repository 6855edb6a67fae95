import { type ApiRequest, apiRequest } from '../core/api.js';
import { type Cmd, cmd, probe, shellScript } from '../core/cmd.js';
import type { Secret } from '../core/secret.js';
import { LABEL_MANAGED } from './commands.js';

/**
 * Pure builders for joining and managing swarm nodes. The join token is the
 * one secret here: it is read from a manager's stdout and handed to the new
 * node's engine in the body of POST /swarm/join, never as a `--token` word.
 */

export type Role = 'manager' | 'worker';

/** Prints the current join token for a role on stdout (read on a manager). */
export const joinTokenRead = (role: Role): Cmd =>
  probe(['docker', 'swarm', 'join-token', '--quiet', role]);

/** Replaces the join token for a role; the new one is printed and discarded. */
export const joinTokenRotate = (role: Role): Cmd =>
  cmd(['docker', 'swarm', 'join-token', '--rotate', '--quiet', role]);

/** `docker swarm join` by the Engine API: the token rides in the request body. */
export function swarmJoin(opts: {
  advertiseAddr: string;
  remoteAddrs: readonly string[];
  token: Secret;
}): ApiRequest {
  return apiRequest('POST', '/swarm/join', {
    body: {
      ListenAddr: '0.0.0.0:2377',
      AdvertiseAddr: opts.advertiseAddr,
      RemoteAddrs: [...opts.remoteAddrs],
      JoinToken: opts.token,
    },
  });
}

export const swarmLeave = (opts: { force: boolean }): Cmd =>
  cmd(['docker', 'swarm', 'leave', ...(opts.force ? ['--force'] : [])]);

export const nodePromote = (node: string): Cmd => cmd(['docker', 'node', 'promote', node]);
export const nodeDemote = (node: string): Cmd => cmd(['docker', 'node', 'demote', node]);

export function nodeAvailability(node: string, availability: 'active' | 'pause' | 'drain'): Cmd {
  return cmd(['docker', 'node', 'update', '--availability', availability, node]);
}

/** Add and remove labels in one update. */
export function nodeLabels(
  node: string,
  add: Readonly<Record<string, string>>,
  remove: readonly string[] = [],
): Cmd {
  const adds = Object.entries(add)
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([k, v]) => ['--label-add', `${k}=${v}`]);
  const rms = [...remove].sort().flatMap((k) => ['--label-rm', k]);
  return cmd(['docker', 'node', 'update', ...adds, ...rms, node]);
}

export const nodeRemove = (node: string, opts: { force: boolean }): Cmd =>
  cmd(['docker', 'node', 'rm', ...(opts.force ? ['--force'] : []), node]);

/**
 * TCP reachability of `addr:port` targets from the host, all at once: one line
 * `<addr:port> ok|refused|timeout` each. bash's /dev/tcp needs no extra tool on
 * a fresh VPS; `timeout` bounds a filtered port.
 */
export function tcpReach(targets: readonly string[], timeoutS = 3): Cmd {
  return shellScript(
    [
      't=$1; shift',
      'for x in "$@"; do (',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
      '  a=${x%:*}; p=${x##*:}; a=${a#[}; a=${a%]}',
      `  if timeout "$t" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$a" "$p" 2>/dev/null; then echo "$x ok"`,
      '  else rc=$?; if [ "$rc" -eq 124 ]; then echo "$x timeout"; elif [ "$rc" -eq 127 ]; then echo "$x missing-tool"; else echo "$x refused"; fi; fi',
      ') & done; wait',
    ].join('\n'),
    [String(timeoutS), ...targets],
    { readOnly: true },
  );
}

/** A throwaway overlay network for the data-path check. */
export const netcheckNetworkCreate = (name: string): Cmd =>
  cmd([
    'docker',
    'network',
    'create',
    '--driver',
    'overlay',
    '--attachable',
    '--label',
    LABEL_MANAGED,
    name,
  ]);

/**
 * A global service whose task on every node pings every other task over the
 * overlay (VXLAN, 4789/udp) and logs one `NETCHECK <from> <to> ok|fail` line a
 * pair. `tasks.<name>` resolves to every task's address once gossip (7946) has
 * spread them.
 */
export function netcheckServiceCreate(opts: {
  name: string;
  network: string;
  image: string;
  nodes: number;
}): Cmd {
  const script = [
    'n=$1; svc=$2; ips=""',
    'i=0; while [ "$i" -lt 80 ]; do',
    '  ips=$(nslookup "tasks.$svc" 2>/dev/null | sed -n "s/^Address[^:]*: *\\([0-9.]*\\).*/\\1/p" | grep -v "^127\\." | sort -u)',
    '  [ "$(echo "$ips" | grep -c .)" -ge "$n" ] && break; i=$((i+1)); sleep 0.25',
    'done',
    'me=$(hostname -i | cut -d" " -f1)',
    // Every peer at once. Right after a join the overlay's peer entries can lag
    // DNS by a few seconds, so a pair gets 5 tries (about 10 s) before it counts
    // as blocked; a working pair answers the first.
    'for ip in $ips; do [ "$ip" = "$me" ] && continue; (',
    '  r=fail; for try in 1 2 3 4 5; do if ping -c 1 -W 2 "$ip" >/dev/null 2>&1; then r=ok; break; fi; done',
    '  echo "NETCHECK $me $ip $r"',
    ') & done; wait',
    'echo "NETCHECK-DONE $me $(echo "$ips" | grep -c .)"',
    'exec sleep 600',
  ].join('\n');
  return cmd([
    'docker',
    'service',
    'create',
    '--detach',
    '--quiet',
    '--name',
    opts.name,
    '--mode',
    'global',
    '--network',
    opts.network,
    '--restart-condition',
    'none',
    '--label',
    LABEL_MANAGED,
    opts.image,
    'sh',
    '-c',
    script,
    'sh',
    String(opts.nodes),
    opts.name,
  ]);
}

export const serviceRemove = (name: string): Cmd => cmd(['docker', 'service', 'rm', name]);
export const networkRemove = (name: string): Cmd => cmd(['docker', 'network', 'rm', name]);
