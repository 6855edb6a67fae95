import { probe } from '../core/cmd.js';
import type { Executor } from '../core/executor.js';
import { LABEL_MANAGED, serviceInspect } from '../docker/commands.js';
import { type ClockReading, type ClockSample, clockReading, type NodeResources } from './doctor.js';
import { parseDf, parseJsonLines, parseMemTotalKb } from './parse.js';
import { ProbeError, probeText } from './probe.js';

/**
 * The read-only probes `cluster-cli doctor` runs besides the shared ones
 * (probeCluster, probePorts, probeFirewall): a node's clock, its memory and
 * disk, and which configs the swarm's services use. They run in --dry-run
 * too and throw a ProbeError for anything but the fact they look for.
 */

/** The filesystem probeHost reports too: Docker's data root (/var/lib/docker) and its volumes. */
export const DISK_PATH = '/var/lib';

/** `date -u +%s.%N`: seconds since the epoch, with nanoseconds where date has %N (GNU). */
export function parseDate(text: string): { ms: number; resolutionMs: number } | undefined {
  const t = text.trim();
  const fine = /^(\d+)\.(\d+)$/.exec(t);
  if (fine) return { ms: Number(`${fine[1]}.${fine[2]}`) * 1000, resolutionMs: 1 };
  // a date without %N prints it as is (`1700000000.N`, `1700000000.%N`): whole seconds only
  const coarse = /^(\d+)(?:\.\D.*)?$/.exec(t);
  if (coarse) return { ms: Number(coarse[1]) * 1000, resolutionMs: 1000 };
  return undefined;
}

/**
 * A node's clock against this machine's: a few readings one after another,
 * the one with the shortest round trip kept (the least room for error; see
 * clockReading for how it is measured).
 */
export async function probeClock(
  exec: Executor,
  now: () => number = Date.now,
  samples = 3,
): Promise<ClockReading> {
  let best: ClockSample | undefined;
  for (let i = 0; i < samples; i++) {
    const sentMs = now();
    const out = await probeText(exec, 'the clock', probe(['date', '-u', '+%s.%N']));
    const receivedMs = now();
    const d = parseDate(out);
    if (!d)
      throw new ProbeError(exec.label, 'the clock', `date printed ${JSON.stringify(out.trim())}`);
    const s = { sentMs, receivedMs, remoteMs: d.ms, resolutionMs: d.resolutionMs };
    if (!best || s.receivedMs - s.sentMs < best.receivedMs - best.sentMs) best = s;
  }
  return clockReading(best as ClockSample);
}

/** MemTotal, MemAvailable and the free space under /var/lib. */
export async function probeResources(exec: Executor): Promise<NodeResources> {
  const [meminfo, df] = await Promise.all([
    probeText(exec, 'the memory', probe(['cat', '/proc/meminfo'])),
    probeText(exec, `the disk (${DISK_PATH})`, probe(['df', '-Pk', DISK_PATH])),
  ]);
  const memKb = parseMemTotalKb(meminfo);
  if (!memKb) throw new ProbeError(exec.label, 'the memory', 'no MemTotal in /proc/meminfo');
  const available = /^MemAvailable:\s+(\d+)\s+kB/m.exec(meminfo);
  const disk = parseDf(df);
  if (!(disk.totalKb > 0))
    throw new ProbeError(
      exec.label,
      `the disk (${DISK_PATH})`,
      `df printed ${JSON.stringify(df.trim())}`,
    );
  return {
    memKb,
    ...(available ? { memAvailableKb: Number(available[1]) } : {}),
    disk: { path: DISK_PATH, totalKb: disk.totalKb, availKb: disk.availKb },
  };
}

export interface ConfigUse {
  /** Configs cluster-cli created (label io.cluster-cli.managed=true), any stack. */
  readonly managed: readonly string[];
  /** Configs some service references, in its spec or its previous spec (rollback). */
  readonly inUse: readonly string[];
}

interface ServiceConfigs {
  Spec?: TaskSpec;
  PreviousSpec?: TaskSpec | null;
}
interface TaskSpec {
  TaskTemplate?: { ContainerSpec?: { Configs?: { ConfigName?: string }[] | null } };
}

/** On a manager: cluster-cli's configs, and those every service of the swarm (any stack) uses. */
export async function probeConfigUse(exec: Executor): Promise<ConfigUse> {
  const what = 'the configs and the services using them';
  const [managed, ids] = await Promise.all([
    probeText(
      exec,
      what,
      probe([
        'docker',
        'config',
        'ls',
        '--filter',
        `label=${LABEL_MANAGED}`,
        '--format',
        '{{.Name}}',
      ]),
    ),
    probeText(exec, what, probe(['docker', 'service', 'ls', '--format', '{{.ID}}'])),
  ]);
  const lines = (t: string) =>
    t
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  const services = lines(ids).length
    ? parseJsonLines<ServiceConfigs>(await probeText(exec, what, serviceInspect(lines(ids))))
    : [];
  const inUse = services.flatMap((s) =>
    [s.Spec, s.PreviousSpec ?? undefined].flatMap((spec) =>
      (spec?.TaskTemplate?.ContainerSpec?.Configs ?? []).flatMap((c) =>
        c.ConfigName ? [c.ConfigName] : [],
      ),
    ),
  );
  return { managed: lines(managed), inUse: [...new Set(inUse)] };
}
