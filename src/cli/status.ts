import { readBackupStatus } from '../backup/status.js';
import {
  assessHealth,
  type BackupHealth,
  EXIT_CODE,
  type Finding,
  type ServiceHealth,
  type TlsHealth,
  type Verdict,
} from '../cluster/health.js';
import { type NodeRow, nodeRows } from '../cluster/plan-node.js';
import { apiRequest } from '../core/api.js';
import { ExitCode, UserError } from '../core/errors.js';
import { tlsState } from '../stack/providers/types.js';
import { readTls } from '../tls/store.js';
import { formatTable } from '../ui/table.js';
import { type ClusterHandle, openCluster, renderedFor } from './cluster.js';
import type { SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { withDatabase } from './db.js';

export interface StatusOpts extends SshFlags {
  config: string;
  json?: boolean;
}

interface ApiService {
  Spec: { Name: string; Labels?: Record<string, string> };
  ServiceStatus?: { RunningTasks: number; DesiredTasks: number };
}
interface ApiTask {
  UpdatedAt?: string;
  DesiredState?: string;
  Status: { State: string; Err?: string; Message?: string };
}

/**
 * `cluster-cli status`: nodes, services (running/desired, the newest task
 * error), drift between the running stack and what cluster.yaml renders,
 * the certificate and the backups; exit 0 healthy, 1 degraded, 2 down.
 * Read-only.
 */
export async function runStatus(opts: StatusOpts, ctx: Ctx): Promise<void> {
  let h: ClusterHandle;
  try {
    h = await openCluster(ctx, opts);
  } catch (err) {
    // No manager answers: the cluster is down as far as anyone can tell from here.
    if (!(err instanceof UserError) || !/No manager of/.test(err.message)) throw err;
    report(ctx, opts, {
      verdict: 'down',
      findings: [
        {
          level: 'fail',
          area: 'nodes',
          text: err.message,
          ...(err.next ? { next: err.next } : {}),
        },
      ],
    });
    throw new ExitCode(EXIT_CODE.down);
  }
  try {
    const config = h.config;
    const api = h.manager.session.docker();
    const now = new Date();
    const listed = await api.request<ApiService[]>(
      apiRequest('GET', '/services', {
        query: {
          status: 'true',
          filters: JSON.stringify({ label: [`com.docker.stack.namespace=${config.name}`] }),
        },
        readOnly: true,
      }),
    );
    const { model, rendered } = renderedFor(h, config);
    const services: ServiceHealth[] = [];
    for (const [key, wanted] of Object.entries(rendered.revisions)) {
      const name = `${config.name}_${key}`;
      const s = listed.find((x) => x.Spec.Name === name);
      const running = s?.ServiceStatus?.RunningTasks ?? 0;
      const desired = s?.ServiceStatus?.DesiredTasks ?? 0;
      const lastError = s && running < desired ? await newestTaskError(h, name) : undefined;
      const revision = s?.Spec.Labels?.['io.cluster-cli.revision'];
      services.push({
        name,
        present: Boolean(s),
        running,
        desired,
        wanted,
        ...(revision ? { revision } : {}),
        ...(lastError ? { lastError } : {}),
      });
    }
    const state = tlsState(model);
    const tlsMode = state === 'cluster' || state === 'cluster-pending' ? 'cluster' : state;
    let tls: TlsHealth = { mode: tlsMode };
    let backup: BackupHealth | undefined;
    let backupInfo: Awaited<ReturnType<typeof readBackupStatus>> | undefined;
    let databaseError: string | undefined;
    const postgres = services.find((s) => s.name === `${config.name}_postgres`);
    if ((tlsMode === 'cluster' || config.backup) && postgres && postgres.running > 0) {
      try {
        await withDatabase(ctx, h, opts, async (db) => {
          if (tlsMode === 'cluster') {
            const cert = await readTls(db, 'certificate');
            const st = await readTls(db, 'status');
            tls = {
              mode: 'cluster',
              renewDays: config.ssl.renewDays,
              ...(cert ? { notAfter: cert.notAfter } : {}),
              ...(st?.lastError ? { lastError: st.lastError } : {}),
            };
          }
          if (config.backup) {
            backupInfo = await readBackupStatus(db, config.backup, now);
            backup = {
              stale: backupInfo.stale,
              ...(backupInfo.lastSuccess ? { lastSuccessAt: backupInfo.lastSuccess.at } : {}),
              ...(backupInfo.lastRun?.status === 'failed'
                ? { lastRunFailed: backupInfo.lastRun.error ?? 'no error recorded' }
                : {}),
            };
          }
        });
      } catch (err) {
        databaseError = err instanceof Error ? err.message : String(err);
      }
    }
    const nodes = h.manager.cluster.nodes;
    const essential = ['proxy', 'app', 'postgres', 'redis'].map((s) => `${config.name}_${s}`);
    const { verdict, findings } = assessHealth({
      nodes,
      services,
      essential,
      tls,
      ...(backup ? { backup } : {}),
      ...(databaseError ? { databaseError } : {}),
      now,
    });
    report(ctx, opts, {
      verdict,
      findings,
      cluster: config.name,
      manager: h.manager.session.exec.label,
      nodes: nodeRows(h.manager.cluster, config.hosts),
      services,
      tls,
      ...(backupInfo ? { backup: backupInfo } : {}),
    });
    if (verdict !== 'healthy') throw new ExitCode(EXIT_CODE[verdict]);
  } finally {
    await h.manager.session.close();
  }
}

/** The newest task of a service that ended with an error (what `docker service ps` shows first). */
async function newestTaskError(h: ClusterHandle, service: string): Promise<string | undefined> {
  const tasks = await h.manager.session.docker().request<ApiTask[]>(
    apiRequest('GET', '/tasks', {
      query: { filters: JSON.stringify({ service: [service] }) },
      readOnly: true,
    }),
  );
  const failed = tasks
    .filter((t) => t.Status.Err)
    .sort((a, b) => String(b.UpdatedAt).localeCompare(String(a.UpdatedAt)));
  return failed[0]?.Status.Err;
}

interface Report {
  verdict: Verdict;
  findings: Finding[];
  cluster?: string;
  manager?: string;
  nodes?: NodeRow[];
  services?: ServiceHealth[];
  tls?: TlsHealth;
  backup?: Awaited<ReturnType<typeof readBackupStatus>>;
}

function report(ctx: Ctx, opts: StatusOpts, r: Report): void {
  if (opts.json) {
    ctx.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return;
  }
  const out: string[] = [];
  if (r.nodes) {
    out.push(
      formatTable(
        ['NODE', 'ROLE', 'AVAILABILITY', 'STATUS', 'MANAGER'],
        r.nodes.map((n) => [n.name, n.role, n.availability, n.status, n.manager ?? '-']),
      ),
      '',
    );
  }
  if (r.services) {
    out.push(
      formatTable(
        ['SERVICE', 'TASKS', 'REVISION'],
        r.services.map((s) => [
          s.name,
          s.present ? `${s.running}/${s.desired}` : 'not deployed',
          !s.present ? '-' : s.revision === s.wanted ? 'as cluster.yaml' : 'differs',
        ]),
      ),
      '',
    );
  }
  if (r.tls) {
    out.push(
      `TLS: ${r.tls.mode}${r.tls.notAfter ? `, certificate valid until ${r.tls.notAfter}` : ''}`,
    );
  }
  if (r.backup) {
    out.push(
      `Backups: last success ${r.backup.lastSuccess?.at ?? 'none'}, next ${r.backup.next} (${r.backup.schedule} UTC)`,
    );
  }
  if (r.tls || r.backup) out.push('');
  for (const f of r.findings) {
    out.push(`${f.level === 'fail' ? 'FAIL' : 'warn'}: ${f.text}`);
    if (f.next) out.push(`      next: ${f.next}`);
  }
  out.push(`${r.cluster ? `${r.cluster}: ` : ''}${r.verdict.toUpperCase()}`);
  ctx.stdout.write(`${out.join('\n')}\n`);
}
