import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { type AgeKeyPair, generateIdentity, parseIdentityFile } from '../backup/crypt.js';
import {
  BACKUP_JOB_LABEL,
  backupSecretNames,
  cronFile,
  cronFilePath,
  cronScript,
  cronScriptPath,
  jobServiceCreate,
  writeFileCmd,
} from '../backup/job.js';
import { parseRetention } from '../backup/retention.js';
import { probeBucket, type S3Target } from '../backup/s3.js';
import { nextTick, parseSchedule } from '../backup/schedule.js';
import { readBackupStatus } from '../backup/status.js';
import { editConfigText } from '../config/edit.js';
import { validateConfig } from '../config/load.js';
import type { Config, ConfigInput } from '../config/schema.js';
import { apiRequest } from '../core/api.js';
import { cmd } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import { change, type Plan, type Step } from '../core/plan.js';
import { type Secret, secret } from '../core/secret.js';
import type { HostSession } from '../core/session.js';
import type { Queryable } from '../db/queryable.js';
import { secretCreate } from '../docker/commands.js';
import { serviceRemove } from '../docker/swarm.js';
import { buildStackModel } from '../stack/model.js';
import { renderStack } from '../stack/render.js';
import { runWithProgress } from '../ui/progress.js';
import { formatTable } from '../ui/table.js';
import { parseTimeoutFlag, readAll } from './ask.js';
import { type ClusterHandle, cfgFlag, hostTarget, openCluster } from './cluster.js';
import { connectSession, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { withDatabase } from './db.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

export interface BackupFlags extends SshFlags, PipelineFlags {
  config: string;
  timeout?: string;
}

export interface BackupSetupOpts extends BackupFlags {
  s3Endpoint?: string;
  s3Bucket?: string;
  s3Region?: string;
  s3Prefix?: string;
  s3PathStyle?: boolean;
  s3CredentialsStdin?: boolean;
  schedule?: string;
  retention?: string;
  encrypt?: boolean;
  ageIdentityFile?: string;
}

/**
 * `backup setup`: where (any S3-compatible store), when (cron, UTC) and how
 * long (GFS retention). Everything is checked before anything is saved: the
 * cron expression, the retention, and the bucket itself (a probe object is
 * written, read back and deleted with the given credentials). Credentials
 * become Docker secrets only; every manager gets the cron entry.
 */
export async function runBackupSetup(opts: BackupSetupOpts, ctx: Ctx): Promise<void> {
  if (!opts.s3Endpoint || !opts.s3Bucket) {
    throw new UserError(
      'backup setup needs --s3-endpoint and --s3-bucket.',
      'cluster-cli backup setup --s3-endpoint https://s3.example.com --s3-bucket backups --schedule "0 3 * * *"',
    );
  }
  const schedule = parseSchedule(opts.schedule ?? '0 3 * * *');
  const retention = parseRetention(opts.retention ?? 'daily=7,weekly=4,monthly=6');
  // Bad input stops here, before any host is touched.
  const imported = opts.ageIdentityFile
    ? await readIdentity(ctx, opts.ageIdentityFile, Boolean(opts.s3CredentialsStdin))
    : undefined;
  const creds = await readCredentials(ctx, opts);
  const h = await openCluster(ctx, opts);
  const sessions = new Map<string, HostSession>([
    [h.manager.session.exec.label, h.manager.session],
  ]);
  try {
    const input: ConfigInput = structuredClone(h.input);
    const names = backupSecretNames(h.config.name);
    const have = h.manager.cluster.secrets;
    const identity = imported ?? (opts.encrypt ? await generateIdentity() : undefined);
    // A re-run without --encrypt keeps the encryption it had: the key is already a secret.
    const kept =
      !identity && h.config.backup?.recipient && have.includes(names.identity)
        ? h.config.backup.recipient
        : undefined;
    const recipient = identity?.recipient ?? kept;
    input.backup = {
      s3: {
        endpoint: opts.s3Endpoint,
        bucket: opts.s3Bucket,
        ...(opts.s3Region ? { region: opts.s3Region } : {}),
        ...(opts.s3Prefix !== undefined ? { prefix: opts.s3Prefix } : {}),
        pathStyle: Boolean(opts.s3PathStyle),
      },
      schedule: schedule.expression,
      retention,
      ...(recipient ? { recipient } : {}),
    };
    const { config } = validateConfig(input, h.configArg);
    const b = config.backup as NonNullable<Config['backup']>;
    const target: S3Target = {
      endpoint: b.s3.endpoint,
      region: b.s3.region,
      bucket: b.s3.bucket,
      prefix: b.s3.prefix,
      pathStyle: b.s3.pathStyle,
      ...creds,
    };
    // Before anything is saved: can we write, read and delete there?
    await probeBucket(target);

    const manager = h.manager.session.exec.label;
    const steps: Step[] = [];
    const jobs = await backupJobServices(h);
    if (jobs.length) {
      steps.push(
        change(
          'old-jobs',
          manager,
          `Remove ${jobs.length} finished backup job(s) (they hold the old secrets)`,
          jobs.map(serviceRemove),
        ),
      );
    }
    const put = (name: string, value: Secret, what: string) => {
      steps.push(
        change(
          `secret-${name}`,
          manager,
          `${have.includes(name) ? 'Replace' : 'Create'} Docker secret ${name} (${what})`,
          [
            ...(have.includes(name) ? [cmd(['docker', 'secret', 'rm', name])] : []),
            secretCreate(name, value),
          ],
        ),
      );
    };
    put(names.accessKey, creds.accessKeyId, 'S3 access key');
    put(names.secretKey, creds.secretAccessKey, 'S3 secret key');
    if (identity)
      put(names.identity, identity.identity, imported ? 'age identity, given' : 'age identity');

    steps.push(...(await cronSteps(ctx, h, config, opts, sessions)));
    const plan: Plan = { title: `backup setup on ${config.name}`, steps };
    const next = { config, text: editConfigText(h.text, input) };
    await runPipeline(ctx, opts, {
      name: 'backup setup',
      plan,
      sessions,
      async converge() {
        await withDatabase(ctx, { ...h, config }, opts, async (db) => {
          await recordDescription(db, { ...h, config, text: next.text });
        });
        return undefined;
      },
      async save(report) {
        if (!report || report.failed.size) return;
        await writeFile(h.file, next.text);
      },
      summary() {
        const lines = [
          '',
          `Backups of ${config.name} go to ${b.s3.endpoint}/${b.s3.bucket}/${b.s3.prefix} on "${schedule.expression}" (UTC), next ${nextTick(schedule, new Date()).toISOString()}.`,
          `Retention: daily ${retention.daily}, weekly ${retention.weekly}, monthly ${retention.monthly}, yearly ${retention.yearly}.`,
        ];
        if (kept) lines.push('Backups stay encrypted with the age key already in the cluster.');
        if (imported)
          lines.push(`Backups are encrypted with the given age key (${imported.recipient}).`);
        else if (identity) {
          lines.push(
            '',
            'Backups are encrypted with age. The key, shown ONCE — store it somewhere else (a password manager):',
            `  ${identity.identity.reveal()}`,
            'Without it no backup can be restored on a new cluster.',
          );
        }
        lines.push('', 'Next:', `  cluster-cli backup run${cfgFlag(opts)}   # one now`, '');
        return {
          text: lines.join('\n'),
          json: {
            s3: b.s3,
            schedule: schedule.expression,
            next: nextTick(schedule, new Date()).toISOString(),
            retention,
            ...(recipient ? { recipient } : {}),
            // Shown once, when generated here; an imported key is the user's already.
            ...(identity && !imported ? { identity: identity.identity.reveal() } : {}),
          },
        };
      },
    });
  } finally {
    await closeAll(sessions.values());
  }
}

/** An existing age key from a file, or stdin (`-`) when stdin does not carry the S3 credentials. */
async function readIdentity(ctx: Ctx, file: string, stdinTaken: boolean): Promise<AgeKeyPair> {
  if (file === '-' && stdinTaken) {
    throw new UserError(
      '--age-identity-file - and --s3-credentials-stdin both want stdin.',
      'pass the S3 credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the key as a file',
    );
  }
  let text: string;
  try {
    text = file === '-' ? await readAll(ctx.stdin ?? process.stdin) : await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      'give the file that holds the AGE-SECRET-KEY-1… line: --age-identity-file ~/backup-key.txt',
    );
  }
  return parseIdentityFile(text, file === '-' ? 'stdin' : file);
}

/** S3 credentials: stdin (two lines), the environment, or a masked prompt; never a flag. */
async function readCredentials(
  ctx: Ctx,
  opts: BackupSetupOpts,
): Promise<{ accessKeyId: Secret; secretAccessKey: Secret }> {
  if (opts.s3CredentialsStdin) {
    const text = await readAll(ctx.stdin ?? process.stdin);
    const [id, key] = text.split(/\r?\n/);
    if (!id || !key) {
      throw new UserError(
        '--s3-credentials-stdin wants two lines: the access key id, then the secret key.',
        'printf \'%s\\n%s\\n\' "$ID" "$KEY" | cluster-cli backup setup … --s3-credentials-stdin',
      );
    }
    return { accessKeyId: secret(id.trim()), secretAccessKey: secret(key.trim()) };
  }
  const id = ctx.env.AWS_ACCESS_KEY_ID;
  const key = ctx.env.AWS_SECRET_ACCESS_KEY;
  if (id && key) return { accessKeyId: secret(id), secretAccessKey: secret(key) };
  if (!ctx.interactive) {
    throw new UserError(
      'S3 credentials are needed and there is no terminal to ask on.',
      'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass them on stdin with --s3-credentials-stdin',
    );
  }
  return {
    accessKeyId: secret(await ctx.prompts.password({ message: 'S3 access key id:' })),
    secretAccessKey: secret(await ctx.prompts.password({ message: 'S3 secret access key:' })),
  };
}

/** The stack's backup job services whose task ended; a running one refuses (its secrets are in use). */
async function backupJobServices(h: ClusterHandle): Promise<string[]> {
  const api = h.manager.session.docker();
  const svcs = await api.request<{ Spec: { Name: string } }[]>(
    apiRequest('GET', '/services', {
      query: { filters: JSON.stringify({ label: [`${BACKUP_JOB_LABEL}=${h.config.name}`] }) },
      readOnly: true,
    }),
  );
  const done: string[] = [];
  for (const s of svcs) {
    const tasks = await api.request<{ Status: { State: string } }[]>(
      apiRequest('GET', '/tasks', {
        query: { filters: JSON.stringify({ service: [s.Spec.Name] }) },
        readOnly: true,
      }),
    );
    if (
      tasks.some(
        (t) => !['complete', 'failed', 'shutdown', 'rejected', 'orphaned'].includes(t.Status.State),
      )
    ) {
      throw new UserError(
        `A backup job (${s.Spec.Name}) is running.`,
        'wait until it ends (cluster-cli backup list), then run backup setup again',
      );
    }
    done.push(s.Spec.Name);
  }
  return done;
}

/** cluster.yaml and the rendered stack, for the job to put in each backup. */
async function recordDescription(db: Queryable, h: ClusterHandle): Promise<void> {
  const stackYaml = renderStack(buildStackModel(h.config)).yaml;
  await db.query(
    `INSERT INTO cluster_cli.kv (key, value, updated_at) VALUES ('backup.cluster', $1::jsonb, now())
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`,
    [JSON.stringify({ clusterYaml: h.text, stackYaml })],
  );
}

function requireBackup(h: ClusterHandle, opts: { config: string }): NonNullable<Config['backup']> {
  if (!h.config.backup) {
    throw new UserError(
      `${opts.config} has no backup settings.`,
      'set them up: cluster-cli backup setup --s3-endpoint … --s3-bucket … --schedule "0 3 * * *"',
    );
  }
  return h.config.backup;
}

interface JobResult {
  readonly name: string;
  readonly ok: boolean;
  readonly logs: string;
}

/** Start a backup job service and wait until its task completed or failed; its output is the log. */
async function runJob(
  ctx: Ctx,
  h: ClusterHandle,
  mode: Parameters<typeof converge>[2],
  o: {
    kind: string;
    args: string[];
    withIdentity: boolean;
    timeoutS: number;
    progress?: (db: Queryable) => Promise<string>;
    db?: Queryable;
  },
): Promise<JobResult> {
  const name = `${h.config.name}_backup_${o.kind}_${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}${randomBytes(2).toString('hex')}`;
  const exec = h.manager.session.exec;
  const api = h.manager.session.docker();
  await exec.run(
    jobServiceCreate(h.config, {
      name,
      args: o.args,
      withIdentity: o.withIdentity,
      startedBy: h.manager.host.name,
    }),
  );
  let state = '';
  await runWithProgress(ctx.stdout, mode, [
    {
      title: `Backup job ${o.kind} (${name})`,
      run: async (report) => {
        const t0 = Date.now();
        for (;;) {
          const tasks = await api.request<{ Status: { State: string; Err?: string } }[]>(
            apiRequest('GET', '/tasks', {
              query: { filters: JSON.stringify({ service: [name] }) },
              readOnly: true,
            }),
          );
          state = tasks[0]?.Status.State ?? 'pending';
          if (['complete', 'failed', 'rejected', 'shutdown'].includes(state)) break;
          if (Date.now() - t0 > o.timeoutS * 1000) {
            throw new UserError(
              `The backup job ${name} did not finish within ${o.timeoutS}s (${state}).`,
              `see it: docker service logs ${name}`,
            );
          }
          const extra = o.progress && o.db ? await o.progress(o.db).catch(() => '') : '';
          report(`${state}${extra ? `: ${extra}` : ''}`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      },
    },
  ]);
  const got = await exec.run(cmd(['docker', 'service', 'logs', '--raw', name]), {
    allowFailure: true,
  });
  // docker service logs passes the job's stderr (its error line) to its own stderr.
  const logs = `${got.stdout}${got.stderr}`;
  return { name, ok: state === 'complete', logs };
}

function lastLines(text: string, n = 4): string {
  return text.trim().split('\n').slice(-n).join('\n  ');
}

/** `backup run`: a backup now, by the same job cron starts (progress from its run row). */
export async function runBackupRun(opts: BackupFlags, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout) ?? 3600;
  const h = await openCluster(ctx, opts);
  try {
    requireBackup(h, opts);
    const manager = h.manager.session;
    const plan: Plan = {
      title: `backup run on ${h.config.name}`,
      steps: [
        change(
          'backup',
          manager.exec.label,
          'Run a backup now (job beside the databases: PostgreSQL, Redis, volumes, cluster.yaml, stack) to S3',
          [],
        ),
      ],
    };
    let result: JobResult | undefined;
    let row: Record<string, unknown> | undefined;
    const outcome = await runPipeline(ctx, opts, {
      name: 'backup run',
      plan,
      sessions: new Map([[manager.exec.label, manager]]),
      async converge(mode) {
        await withDatabase(ctx, h, opts, async (db) => {
          await recordDescription(db, h);
          const since = new Date();
          result = await runJob(ctx, h, mode, {
            kind: 'run',
            args: ['backup', 'job', 'run'],
            withIdentity: false,
            timeoutS,
            db,
            progress: async (db) => {
              const r = await db.query<{ bytes: string }>(
                'SELECT bytes FROM cluster_cli.backup_runs WHERE started_at >= $1 ORDER BY started_at DESC LIMIT 1',
                [since],
              );
              const b = Number(r.rows[0]?.bytes ?? 0);
              return b ? `${(b / 1048576).toFixed(1)} MB` : '';
            },
          });
          row = (
            await db.query(
              'SELECT id, status, bytes, sizes, error FROM cluster_cli.backup_runs WHERE started_at >= $1 ORDER BY started_at DESC LIMIT 1',
              [new Date(since.getTime() - 5000)],
            )
          ).rows[0];
        });
        return row;
      },
      summary() {
        return {
          text: `\n${result?.ok ? `Backup ${String(row?.id)} stored: ${String(row?.bytes)} bytes.` : 'The backup failed.'}\n`,
          json: { ok: result?.ok, run: row },
        };
      },
    });
    if (!outcome.dryRun && !result?.ok) {
      throw new UserError(
        `The backup failed: ${String(row?.error ?? lastLines(result?.logs ?? ''))}`,
        `see the job: docker service logs ${result?.name}`,
      );
    }
  } finally {
    await h.manager.session.close();
  }
}

/** `backup list`: the runs recorded in the cluster (id, time, size, status, verified). */
export async function runBackupList(
  opts: SshFlags & { config: string; json?: boolean },
  ctx: Ctx,
): Promise<void> {
  const h = await openCluster(ctx, opts);
  try {
    await withDatabase(ctx, h, opts, async (db) => {
      const rows = (
        await db.query<{
          id: string;
          started_at: Date;
          finished_at: Date | null;
          status: string;
          bytes: string;
          verified_at: Date | null;
          error: string | null;
          tick: string | null;
        }>(
          'SELECT id, tick, started_at, finished_at, status, bytes, verified_at, error FROM cluster_cli.backup_runs ORDER BY started_at',
        )
      ).rows.map((r) => ({
        id: r.id,
        tick: r.tick,
        startedAt: r.started_at,
        finishedAt: r.finished_at,
        status: r.status,
        bytes: Number(r.bytes),
        verifiedAt: r.verified_at,
        error: r.error,
      }));
      if (opts.json) {
        ctx.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      if (!rows.length) {
        ctx.stdout.write(`No backups yet.\n\nNext:\n  cluster-cli backup run${cfgFlag(opts)}\n`);
        return;
      }
      ctx.stdout.write(
        `${formatTable(
          ['ID', 'STARTED', 'SIZE', 'STATUS', 'VERIFIED'],
          rows.map((r) => [
            r.id,
            new Date(r.startedAt).toISOString(),
            mb(r.bytes),
            r.status === 'failed' ? `failed: ${(r.error ?? '').slice(0, 60)}` : r.status,
            r.verifiedAt ? new Date(r.verifiedAt).toISOString() : '',
          ]),
        )}\n`,
      );
    });
  } finally {
    await h.manager.session.close();
  }
}

function mb(bytes: number): string {
  return bytes >= 1048576
    ? `${(bytes / 1048576).toFixed(1)} MB`
    : `${(bytes / 1024).toFixed(1)} kB`;
}

/**
 * Every manager of `config`: its cron entry and the script it runs (one job
 * per tick starts), written whole. Sessions to managers other than the one
 * connected are opened and added to `sessions`.
 */
export async function cronSteps(
  ctx: Ctx,
  h: ClusterHandle,
  config: Config,
  opts: SshFlags,
  sessions: Map<string, HostSession>,
): Promise<Step[]> {
  const schedule = parseSchedule(config.backup?.schedule ?? '0 3 * * *');
  const steps: Step[] = [];
  for (const m of config.hosts.filter((x) => x.role === 'manager')) {
    let s = m.name === h.manager.host.name ? h.manager.session : undefined;
    if (!s) {
      s = await connectSession(ctx, hostTarget(m, opts, config));
      sessions.set(s.exec.label, s);
    }
    steps.push(
      change(
        `cron-${m.name}`,
        s.exec.label,
        `Cron on ${m.name}: ${schedule.expression} (UTC) → ${cronScriptPath(config.name)}`,
        [
          writeFileCmd(cronScriptPath(config.name), cronScript(config), '0755'),
          writeFileCmd(cronFilePath(config.name), cronFile(config), '0644'),
        ],
        { wave: 'cron' },
      ),
    );
  }
  return steps;
}

/** `backup status`: schedule, last success, next tick; a warning when the last success is too old. */
export async function runBackupStatus(
  opts: SshFlags & { config: string; json?: boolean },
  ctx: Ctx,
): Promise<void> {
  const h = await openCluster(ctx, opts);
  try {
    const b = requireBackup(h, opts);
    await withDatabase(ctx, h, opts, async (db) => {
      const status = await readBackupStatus(db, b, new Date());
      if (opts.json) ctx.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
      else
        ctx.stdout.write(
          [
            `Schedule: ${status.schedule} (UTC), next ${status.next}`,
            `Store:    ${status.store}${status.encrypted ? ' (age-encrypted)' : ''}`,
            `Last success: ${status.lastSuccess ? `${status.lastSuccess.id} at ${status.lastSuccess.at}` : 'none'}`,
            ...(status.warning ? [`warning: ${status.warning}`] : []),
            '',
          ].join('\n'),
        );
    });
  } finally {
    await h.manager.session.close();
  }
}

/** `backup verify <id>`: download, check every sha256, decrypt, load the dump into a scratch database. */
export async function runBackupVerify(id: string, opts: BackupFlags, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout) ?? 3600;
  const h = await openCluster(ctx, opts);
  try {
    const b = requireBackup(h, opts);
    const r = await runJob(ctx, h, opts.json ? 'silent' : ctx.tty ? 'tty' : 'plain', {
      kind: 'verify',
      args: ['backup', 'job', 'verify', '--id', id],
      withIdentity: Boolean(b.recipient),
      timeoutS,
    });
    if (!r.ok) {
      throw new UserError(
        `Backup ${id} did not verify: ${lastLines(r.logs, 2).replace(/^\S+ /gm, '')}`,
        'restore another one: cluster-cli backup list',
      );
    }
    ctx.stdout.write(
      opts.json ? `${JSON.stringify({ id, verified: true })}\n` : `${lastLines(r.logs, 3)}\n`,
    );
  } finally {
    await h.manager.session.close();
  }
}

export interface RestoreOpts extends BackupFlags {
  only?: 'postgres' | 'redis' | 'volumes';
}

/**
 * `restore <id|latest>`: shows what will be replaced and asks; the job checks
 * every digest before touching anything; the app is stopped, the data
 * restored, Redis restarted on its restored files, the app started again and
 * its health waited for.
 */
export async function runRestore(which: string, opts: RestoreOpts, ctx: Ctx): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout) ?? 3600;
  const h = await openCluster(ctx, opts);
  try {
    const b = requireBackup(h, opts);
    const manager = h.manager.session;
    const label = manager.exec.label;
    const app = `${h.config.name}_app`;
    const what = opts.only ? [opts.only] : ['postgres', 'redis', 'volumes'];
    const redis = `${h.config.name}_redis`;
    const restartRedis = cmd(['docker', 'service', 'update', '--detach', '--force', redis]);
    const startApp = cmd([
      'docker',
      'service',
      'scale',
      '--detach',
      `${app}=${h.config.app.replicas}`,
    ]);
    const touchesRedis = what.some((x) => x !== 'postgres');
    // Apply stops the app; the rest must come in order after it, so it runs in converge.
    const plan: Plan = {
      title: `restore ${which} into ${h.config.name}`,
      steps: [
        change('stop-app', label, `Stop ${app} (scale to 0)`, [
          cmd(['docker', 'service', 'scale', '--detach', `${app}=0`]),
        ]),
        change(
          'restore',
          label,
          `Replace ${what.join(', ')} with backup ${which} (a job beside the databases; every sha256 checked before anything is touched)`,
          [],
        ),
        ...(touchesRedis
          ? [
              change(
                'restart-redis',
                label,
                `Restart ${redis} on the restored data (docker service update --force ${redis})`,
                [],
              ),
            ]
          : []),
        change(
          'start-app',
          label,
          `Start ${app} again (${h.config.app.replicas} replica(s)) and wait for its health`,
          [],
        ),
      ],
    };
    let result: JobResult | undefined;
    await runPipeline(ctx, opts, {
      name: 'restore',
      plan,
      sessions: new Map([[label, manager]]),
      async converge(mode) {
        result = await runJob(ctx, h, mode, {
          kind: 'restore',
          args: [
            'backup',
            'job',
            'restore',
            '--id',
            which,
            ...(opts.only ? ['--only', opts.only] : []),
          ],
          withIdentity: Boolean(b.recipient),
          timeoutS,
        });
        if (!result.ok) {
          // Untouched (a digest failed) or half restored: bring the app back either way.
          await manager.exec.run(startApp, { allowFailure: true });
          throw new UserError(
            `The restore failed: ${lastLines(result.logs, 2)}`,
            `see the job: docker service logs ${result.name}`,
          );
        }
        if (touchesRedis) await manager.exec.run(restartRedis);
        await manager.exec.run(startApp);
        await converge(manager.docker(), ctx.stdout, mode, {
          stack: h.config.name,
          services: [app, redis],
          timeoutMs: h.config.deploy.timeout * 1000,
        });
        return undefined;
      },
      summary() {
        return {
          text: `\n${lastLines(result?.logs ?? '', 3)}\nThe app runs again.\n`,
          json: { restored: which, only: opts.only ?? null },
        };
      },
    });
  } finally {
    await h.manager.session.close();
  }
}
