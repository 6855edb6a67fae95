/** Pure parsers for what the probes read off a host. */

export interface OsInfo {
  readonly id: string;
  readonly idLike: readonly string[];
  readonly versionId: string;
  readonly prettyName: string;
}

export function parseOsRelease(text: string): OsInfo {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m)
      kv.set(m[1] as string, (m[2] as string).replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1'));
  }
  return {
    id: kv.get('ID') ?? 'unknown',
    idLike: (kv.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean),
    versionId: kv.get('VERSION_ID') ?? '',
    prettyName: kv.get('PRETTY_NAME') ?? kv.get('NAME') ?? 'unknown',
  };
}

export type OsFamily = 'debian' | 'rhel' | 'unknown';

export function osFamily(os: OsInfo): OsFamily {
  const ids = [os.id, ...os.idLike];
  if (ids.some((i) => i === 'debian' || i === 'ubuntu')) return 'debian';
  if (ids.some((i) => ['rhel', 'centos', 'fedora', 'rocky', 'almalinux'].includes(i)))
    return 'rhel';
  return 'unknown';
}

export function parseMemTotalKb(meminfo: string): number {
  const m = /^MemTotal:\s+(\d+)\s+kB/m.exec(meminfo);
  return m ? Number(m[1]) : 0;
}

/** `df -Pk PATH` → size and free space of the filesystem holding PATH, in kB. */
export function parseDf(text: string): { totalKb: number; availKb: number; mount: string } {
  const line = text.trim().split('\n').slice(1).join(' ');
  const f = line.split(/\s+/);
  return { totalKb: Number(f[1] ?? 0), availKb: Number(f[3] ?? 0), mount: f[5] ?? '?' };
}

/**
 * Listening sockets from /proc/net/{tcp,tcp6,udp,udp6} (present on every Linux,
 * unlike ss or netstat). TCP state 0A is LISTEN; UDP sockets bound to a port
 * with no remote (state 07) are counted as in use.
 */
export function parseProcNet(text: string, proto: 'tcp' | 'udp'): number[] {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !/^\d+:$/.test(f[0] ?? '')) continue;
    const local = f[1] ?? '';
    const state = f[3] ?? '';
    const port = Number.parseInt(local.split(':').pop() ?? '', 16);
    if (Number.isNaN(port)) continue;
    if (proto === 'tcp' ? state === '0A' : state === '07') ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

/** `ip -o -4 addr show scope global` → addresses, skipping Docker's own bridges. */
export function parseIpAddrs(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+([\d.]+)\//.exec(line.trim());
    if (!m) continue;
    const dev = m[1] as string;
    if (/^(docker\d*|docker_gwbridge|br-|veth)/.test(dev)) continue;
    out.push(m[2] as string);
  }
  return out;
}

/** `ip -4 route get 1.1.1.1` → the `src` address the kernel would use (no packet is sent). */
export function parseRouteSrc(text: string): string | undefined {
  return /\bsrc\s+([\d.]+)/.exec(text)?.[1];
}

/** docker's `--format '{{json .}}'` prints one JSON object per line. */
export function parseJsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);
}
