import { UserError } from '../core/errors.js';
import { osFamily } from './parse.js';
import type { HostFacts } from './probe.js';

/** Minimums from the reference deployment (seed 001): 2 vCPU, 2 GB RAM, 40 GB disk. */
export const MINIMUMS = {
  cpus: 2,
  // A "2 GB" VPS shows ~1.9 GiB in MemTotal (the kernel keeps some); allow for that.
  memKb: 1_800_000,
  // A "40 GB" disk shows ~37-39 GiB once formatted.
  diskKb: 36 * 1024 * 1024,
} as const;

export const SWARM_PORTS = { tcp: [2377, 7946], udp: [7946, 4789] } as const;
export const PROXY_PORTS = [80, 443] as const;

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckRow {
  readonly check: string;
  readonly value: string;
  readonly want: string;
  readonly status: CheckStatus;
  /** Failures that --force may override (resources, busy ports); others never. */
  readonly forcible?: boolean;
}

export interface PreflightReport {
  readonly rows: readonly CheckRow[];
  readonly blocking: readonly CheckRow[];
}

const gb = (kb: number) => `${(kb / 1024 / 1024).toFixed(1)} GiB`;

export interface PreflightOptions {
  readonly force: boolean;
  readonly stack: string;
  /** `node join`: the swarm the host is to join (its membership is judged against it). */
  readonly joining?: { readonly swarmId: string | undefined; readonly member: boolean };
}

export function preflight(f: HostFacts, opts: PreflightOptions): PreflightReport {
  const rows: CheckRow[] = [];
  const family = osFamily(f.os);
  rows.push({
    check: 'OS',
    value: f.os.prettyName,
    want: 'Debian, Ubuntu or RHEL family',
    status: family === 'unknown' ? (f.docker.serverVersion ? 'warn' : 'fail') : 'ok',
  });
  rows.push(minimum('CPU', `${f.cpus} vCPU`, `>= ${MINIMUMS.cpus} vCPU`, f.cpus >= MINIMUMS.cpus));
  rows.push(minimum('Memory', gb(f.memKb), '>= 2 GB', f.memKb >= MINIMUMS.memKb));
  rows.push(
    minimum(
      `Disk (${f.disk.path})`,
      `${gb(f.disk.totalKb)} (${gb(f.disk.availKb)} free)`,
      '>= 40 GB',
      f.disk.totalKb >= MINIMUMS.diskKb,
    ),
  );

  const swarmActive = f.swarm.state === 'active';
  const ourProxy = f.cluster?.services.some((s) => s.name === `${opts.stack}_proxy`) ?? false;
  const want: { port: number; proto: 'tcp' | 'udp'; ours: boolean }[] = [
    // On a member of this swarm the proxy ports are the cluster's, whichever node runs it.
    ...PROXY_PORTS.map((port) => ({
      port,
      proto: 'tcp' as const,
      ours: ourProxy || Boolean(opts.joining?.member),
    })),
    ...SWARM_PORTS.tcp.map((port) => ({ port, proto: 'tcp' as const, ours: swarmActive })),
    ...SWARM_PORTS.udp.map((port) => ({ port, proto: 'udp' as const, ours: swarmActive })),
  ];
  const busy = want.filter((w) => !w.ours && f.listening[w.proto].includes(w.port));
  const kept = want.filter((w) => w.ours);
  rows.push({
    check: 'Ports 80,443,2377,7946/tcp 7946,4789/udp',
    value: busy.length
      ? `in use: ${busy.map((b) => `${b.port}/${b.proto}`).join(', ')}`
      : kept.length
        ? `free (${kept.map((k) => `${k.port}/${k.proto}`).join(',')} already the cluster's)`
        : 'free',
    want: 'free',
    status: busy.length ? 'fail' : 'ok',
    forcible: true,
  });

  if (!f.docker.installed) {
    rows.push({
      check: 'Docker',
      value: 'not installed',
      want: 'installed',
      status: family === 'unknown' ? 'fail' : 'warn',
    });
  } else if (!f.docker.serverVersion) {
    rows.push({
      check: 'Docker',
      value: `client ${f.docker.clientVersion ?? '?'}, daemon not answering`,
      want: 'running',
      status: 'warn',
    });
  } else {
    rows.push({ check: 'Docker', value: f.docker.serverVersion, want: 'running', status: 'ok' });
  }

  rows.push(opts.joining ? joinSwarmRow(f, opts.joining.member) : swarmRow(f));
  const blocking = rows.filter((r) => r.status === 'fail' && !(opts.force && r.forcible));
  return { rows, blocking };
}

function minimum(check: string, value: string, want: string, ok: boolean): CheckRow {
  return { check, value, want, status: ok ? 'ok' : 'fail', forcible: true };
}

function swarmRow(f: HostFacts): CheckRow {
  const s = f.swarm;
  const base = { check: 'Swarm', want: 'inactive, or manager of this cluster' };
  switch (s.state) {
    case 'active':
      return s.isManager
        ? {
            ...base,
            value: `manager of swarm ${s.clusterId?.slice(0, 12) ?? '?'} (kept)`,
            status: 'ok',
          }
        : { ...base, value: 'worker node of another swarm', status: 'fail' };
    case 'inactive':
      return { ...base, value: 'not in a swarm (will init)', status: 'ok' };
    case 'unknown':
      return {
        ...base,
        value: f.docker.serverVersion ? 'unknown' : 'after Docker is installed',
        status: f.docker.serverVersion ? 'fail' : 'ok',
      };
    default:
      return { ...base, value: s.state, status: 'fail' };
  }
}

/** For a node to join: a member of this swarm is kept; another swarm is judged by the join planner (--force-leave). */
function joinSwarmRow(f: HostFacts, member: boolean): CheckRow {
  const s = f.swarm;
  const base = { check: 'Swarm', want: 'inactive, or a member of this cluster' };
  if (member)
    return {
      ...base,
      value: `already a ${s.isManager ? 'manager' : 'worker'} of this swarm`,
      status: 'ok',
    };
  if (s.state === 'inactive') return { ...base, value: 'not in a swarm (will join)', status: 'ok' };
  if (s.state === 'unknown')
    return {
      ...base,
      value: f.docker.serverVersion ? 'unknown' : 'after Docker is installed',
      status: f.docker.serverVersion ? 'fail' : 'ok',
    };
  return {
    ...base,
    value: `${s.state} in swarm ${s.clusterId?.slice(0, 12) ?? '?'}`,
    status: 'warn',
  };
}

/** The error for a preflight with blocking rows (the table was printed before), or undefined. */
export function preflightError(report: PreflightReport, host: string): UserError | undefined {
  if (!report.blocking.length) return undefined;
  const forcible = report.blocking.every((b) => b.forcible);
  return new UserError(
    `Preflight failed on ${host}: ${report.blocking.map((b) => `${b.check}: ${b.value}`).join('; ')}. Nothing was changed.`,
    forcible
      ? 'fix the host, or re-run with --force to go on anyway'
      : 'fix the host and run the command again',
  );
}
