import { parseSchedule } from '../backup/schedule.js';
import type { Diagnostic } from './diagnostics.js';
import type { Config } from './schema.js';
import { cidrsOverlap } from './validators.js';

export interface RuleReport {
  readonly errors: Diagnostic[];
  readonly warnings: Diagnostic[];
}

/** Checks across fields that a schema can't express. Pure. */
export function checkRules(c: Config): RuleReport {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];

  const names = new Map<string, number>();
  c.hosts.forEach((h, i) => {
    const prev = names.get(h.name);
    if (prev !== undefined)
      errors.push({
        path: `hosts[${i}].name`,
        message: `duplicates hosts[${prev}].name "${h.name}"`,
      });
    else names.set(h.name, i);
  });

  const managers = c.hosts.filter((h) => h.role === 'manager').length;
  if (managers === 0)
    errors.push({ path: 'hosts', message: 'needs at least one host with role manager' });
  else if (managers % 2 === 0)
    warnings.push({
      path: 'hosts',
      message: `${managers} managers tolerate no more failures than ${managers - 1}; use an odd number`,
    });

  const locals = c.hosts.filter((h) => h.address === undefined).length;
  if (locals > 1)
    errors.push({ path: 'hosts', message: 'only one host may omit address (the local machine)' });

  const dbPrimaries = c.hosts.filter((h) => h.labels.db === 'primary').length;
  if (dbPrimaries > 1)
    errors.push({
      path: 'hosts',
      message: `${dbPrimaries} hosts are labelled db=primary; PostgreSQL needs exactly one`,
    });

  const nets = [
    ['networks.ingress.subnet', c.networks.ingress.subnet],
    ['networks.app.subnet', c.networks.app.subnet],
    ['networks.data.subnet', c.networks.data.subnet],
  ] as const;
  for (let i = 0; i < nets.length; i++) {
    for (let j = i + 1; j < nets.length; j++) {
      const [pa, a] = nets[i] as readonly [string, string];
      const [pb, b] = nets[j] as readonly [string, string];
      if (cidrsOverlap(a, b)) errors.push({ path: pb, message: `${b} overlaps ${pa} (${a})` });
    }
  }

  if (c.ssl.directory && c.proxy.tls !== 'acme')
    warnings.push({
      path: 'ssl.directory',
      message: `is ignored because proxy.tls is ${c.proxy.tls}`,
    });
  const hostNames = [c.domain, ...c.app.domains, ...(c.proxy.dashboard ? [c.proxy.dashboard] : [])];
  const dup = hostNames.find((n, i) => hostNames.indexOf(n) !== i);
  if (dup)
    errors.push({
      path: 'app.domains',
      message: `${dup} is listed twice (domain, app.domains, proxy.dashboard)`,
    });
  if (c.backup) {
    try {
      parseSchedule(c.backup.schedule);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      errors.push({
        path: 'backup.schedule',
        message: message.replace(/^--schedule "[^"]*": /s, ''),
      });
    }
  }
  const anyPublic = c.hosts.some((h) => h.labels.public_ip === 'true');
  const proxies = c.hosts.filter(
    (h) => h.role === 'manager' && (!anyPublic || h.labels.public_ip === 'true'),
  ).length;
  if (c.proxy.tls === 'acme' && c.ssl.acme === 'proxy' && proxies > 1)
    warnings.push({
      path: 'ssl.acme',
      message: `${proxies} proxy replicas each run their own ACME (separate certificates, lost with their node); run cluster-cli ssl enable to share one`,
    });
  if (c.topology === 'ha' && managers < 3 && c.hosts.length >= 3)
    warnings.push({ path: 'topology', message: 'ha wants 3 or 5 managers' });

  return { errors, warnings };
}
