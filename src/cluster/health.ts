import type { NodeFacts } from './probe.js';

/**
 * `cluster-cli status`'s verdict, from facts already read: healthy (exit 0),
 * degraded (1: it serves, but something needs a look), down (2: quorum is
 * lost or a service the platform cannot run without has no task). Pure.
 */

export type Verdict = 'healthy' | 'degraded' | 'down';

export interface Finding {
  readonly level: 'warn' | 'fail';
  readonly area: 'nodes' | 'services' | 'stack' | 'tls' | 'backups' | 'database';
  readonly text: string;
  readonly next?: string;
}

export interface ServiceHealth {
  /** Full name (`platform_app`). */
  readonly name: string;
  readonly running: number;
  readonly desired: number;
  /** The newest task error, when the service is short of tasks. */
  readonly lastError?: string;
  /** The revision label it runs, and the one cluster.yaml renders. */
  readonly revision?: string;
  readonly wanted?: string;
  readonly present: boolean;
}

export interface TlsHealth {
  readonly mode: string;
  /** Cluster-managed certificate: its expiry and the last renewal error. */
  readonly notAfter?: string;
  readonly lastError?: string;
  readonly renewDays?: number;
}

export interface BackupHealth {
  readonly lastSuccessAt?: string;
  readonly lastRunFailed?: string;
  readonly stale: boolean;
}

export interface HealthInput {
  readonly nodes: readonly NodeFacts[];
  readonly services: readonly ServiceHealth[];
  /** Services without which the platform does not serve (proxy, app, postgres, redis). */
  readonly essential: readonly string[];
  readonly tls?: TlsHealth;
  readonly backup?: BackupHealth;
  /** Reading the database failed (certificates and backups unknown). */
  readonly databaseError?: string;
  readonly now: Date;
}

const DAY = 86_400_000;

export function assessHealth(i: HealthInput): { verdict: Verdict; findings: Finding[] } {
  const f: Finding[] = [];
  const managers = i.nodes.filter((n) => n.role === 'manager');
  const reachable = managers.filter((m) => m.state === 'ready' && m.reachability === 'reachable');
  const need = Math.floor(managers.length / 2) + 1;
  if (managers.length && reachable.length < need) {
    f.push({
      level: 'fail',
      area: 'nodes',
      text: `quorum lost: ${reachable.length} of ${managers.length} managers reachable, ${need} needed`,
      next: 'bring managers back up (cluster-cli node ls shows which are down)',
    });
  }
  for (const n of i.nodes) {
    if (n.state !== 'ready') {
      f.push({
        level: 'warn',
        area: 'nodes',
        text: `node ${n.hostname} (${n.role}) is ${n.state}`,
        next: `start it again, or take it out: cluster-cli node remove ${n.hostname}`,
      });
    } else if (n.role === 'manager' && n.reachability && n.reachability !== 'reachable') {
      f.push({
        level: 'warn',
        area: 'nodes',
        text: `manager ${n.hostname} is ${n.reachability} for the other managers`,
        next: 'check ports 2377/tcp and 7946 between the managers',
      });
    } else if (n.availability !== 'active') {
      f.push({
        level: 'warn',
        area: 'nodes',
        text: `node ${n.hostname} is ${n.availability}: it takes no new tasks`,
        next: `docker node update --availability active ${n.hostname}`,
      });
    }
  }
  for (const s of i.services) {
    const essential = i.essential.includes(s.name);
    if (!s.present) {
      f.push({
        level: essential ? 'fail' : 'warn',
        area: 'services',
        text: `${s.name} is not deployed`,
        next: 'cluster-cli apply',
      });
      continue;
    }
    if (s.running < s.desired) {
      f.push({
        level: essential && s.running === 0 ? 'fail' : 'warn',
        area: 'services',
        text: `${s.name}: ${s.running}/${s.desired} running${s.lastError ? ` (last error: ${s.lastError})` : ''}`,
        next: `docker service ps --no-trunc ${s.name}`,
      });
    }
    if (s.wanted && s.revision !== s.wanted) {
      f.push({
        level: 'warn',
        area: 'stack',
        text: `${s.name} runs revision ${s.revision ?? 'none'}, cluster.yaml renders ${s.wanted}`,
        next: 'cluster-cli apply',
      });
    }
  }
  if (i.databaseError) {
    f.push({
      level: 'warn',
      area: 'database',
      text: `could not read the platform database: ${i.databaseError}`,
      next: 'docker service ps platform_postgres',
    });
  }
  if (i.tls?.mode === 'cluster') {
    const t = i.tls;
    if (!t.notAfter) {
      f.push({
        level: 'warn',
        area: 'tls',
        text: 'no certificate obtained yet',
        next: 'cluster-cli ssl renew',
      });
    } else {
      const left = (Date.parse(t.notAfter) - i.now.getTime()) / DAY;
      if (left <= 0)
        f.push({
          level: 'fail',
          area: 'tls',
          text: `the certificate expired at ${t.notAfter}`,
          next: 'cluster-cli ssl renew --force',
        });
      else if (left < Math.max(1, (t.renewDays ?? 30) / 2))
        f.push({
          level: 'warn',
          area: 'tls',
          text: `the certificate expires in ${Math.floor(left)} days and was not renewed`,
          next: 'cluster-cli ssl status',
        });
    }
    if (t.lastError)
      f.push({
        level: 'warn',
        area: 'tls',
        text: `last ACME error: ${t.lastError}`,
        next: 'cluster-cli ssl status',
      });
  }
  if (i.backup) {
    if (i.backup.lastRunFailed)
      f.push({
        level: 'warn',
        area: 'backups',
        text: `the last backup failed: ${i.backup.lastRunFailed}`,
        next: 'cluster-cli backup list',
      });
    if (i.backup.stale)
      f.push({
        level: 'warn',
        area: 'backups',
        text: i.backup.lastSuccessAt
          ? `the last successful backup (${i.backup.lastSuccessAt}) is older than twice the schedule's interval`
          : 'no successful backup yet',
        next: 'cluster-cli backup run',
      });
  }
  const verdict: Verdict = f.some((x) => x.level === 'fail')
    ? 'down'
    : f.length
      ? 'degraded'
      : 'healthy';
  return { verdict, findings: f };
}

export const EXIT_CODE: Readonly<Record<Verdict, number>> = { healthy: 0, degraded: 1, down: 2 };
