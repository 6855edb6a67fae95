import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type ArtifactSource,
  checkStored,
  findBackup,
  listBackups,
  openArtifact,
  takeBackup,
} from '../backup/engine.js';
import { JOB_SECRET_FILES } from '../backup/job.js';
import {
  type BackupLocation,
  backupId,
  backupPrefix,
  type Manifest,
  volumeArtifact,
} from '../backup/manifest.js';
import { RdbEofMarkStripper } from '../backup/rdb.js';
import { parseRetention, retentionPlan } from '../backup/retention.js';
import { deleteKeys, listKeys, type S3Target } from '../backup/s3.js';
import { parseSchedule, previousTick, tickId } from '../backup/schedule.js';
import { apiRequest } from '../core/api.js';
import { UserError } from '../core/errors.js';
import { type Secret, secret } from '../core/secret.js';
import { claim, finish, renew } from '../db/claims.js';
import { migrate } from '../db/migrations.js';
import type { Queryable } from '../db/queryable.js';
import { connectDockerSocket, execInContainer } from '../remote/docker-api.js';
import { connectPostgresTcp } from '../remote/postgres.js';
import type { Ctx } from './context.js';

/**
 * `cluster-cli backup job run|verify|restore`: inside the backup job's
 * container (see backup/job.ts), beside the databases. Settings come from
 * the environment, secrets from /run/secrets, the databases' tasks through
 * this node's Docker socket. Every run is a row in cluster_cli.backup_runs.
 */

const SOCKET = '/var/run/docker.sock';
const VERSION = '0.1.0';

export interface JobOpts {
  scheduled?: boolean;
  id?: string;
  only?: string;
}

export async function runBackupJob(action: string, opts: JobOpts, ctx: Ctx): Promise<void> {
  const env = process.env;
  const need = (k: string) => {
    const v = env[k];
    if (!v) throw new Error(`backup job: ${k} is not set (the job runs inside the cluster)`);
    return v;
  };
  const stack = need('CLUSTER_CLI_STACK');
  const log = (line: string) => ctx.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const file = async (name: string) =>
    secret((await readFile(`/run/secrets/${name}`, 'utf8')).replace(/\n+$/, ''));
  const s3: S3Target = {
    endpoint: need('BACKUP_S3_ENDPOINT'),
    bucket: need('BACKUP_S3_BUCKET'),
    region: env.BACKUP_S3_REGION ?? 'us-east-1',
    prefix: env.BACKUP_S3_PREFIX ?? '',
    pathStyle: env.BACKUP_S3_PATH_STYLE === 'true',
    accessKeyId: await file(JOB_SECRET_FILES.accessKey),
    secretAccessKey: await file(JOB_SECRET_FILES.secretKey),
  };
  const loc: BackupLocation = { cluster: stack };
  const db = await connectPostgresTcp({
    host: env.PGHOST ?? 'postgres',
    port: Number(env.PGPORT ?? 5432),
    user: need('PGUSER'),
    database: need('PGDATABASE'),
    passwordFile: need('PGPASSWORD_FILE'),
  });
  const owner = `${hostname()}`;
  try {
    await migrate(db);
    const tasks = await localTasks(stack);
    if (action === 'run') await run(db, s3, loc, tasks, { ...opts, owner, log });
    else if (action === 'verify') await verify(db, s3, loc, tasks, opts.id ?? 'latest', log);
    else if (action === 'restore') await restore(db, s3, loc, tasks, opts, log);
    else throw new UserError(`Unknown backup job ${action}.`, 'run|verify|restore');
  } finally {
    await db.end();
  }
}

interface LocalTasks {
  readonly postgres: string;
  readonly redis: string;
  readonly database: string;
  readonly user: string;
}

/** The running postgres and redis containers on this node. */
async function localTasks(stack: string): Promise<LocalTasks> {
  const api = connectDockerSocket(SOCKET);
  const find = async (service: string) => {
    const list = await api.request<{ Id: string; State: string }[]>(
      apiRequest('GET', '/containers/json', {
        query: {
          filters: JSON.stringify({ label: [`com.docker.swarm.service.name=${stack}_${service}`] }),
        },
        readOnly: true,
      }),
    );
    const c = list.find((x) => x.State === 'running');
    if (!c)
      throw new UserError(
        `No running ${stack}_${service} container on this node.`,
        'the job runs where the databases run; check placement',
      );
    return c.Id;
  };
  return {
    postgres: await find('postgres'),
    redis: await find('redis'),
    database: process.env.PGDATABASE ?? 'app',
    user: process.env.PGUSER ?? 'app',
  };
}

// Passwords come from the tasks' own secret files through the shell: never an argument.
const PG = (tail: string) => `PGPASSWORD="$(cat /run/secrets/postgres_password)" exec ${tail}`;
const REDIS = (tail: string) => `REDISCLI_AUTH="$(cat /run/secrets/redis_password)" exec ${tail}`;

function execSource(container: string, script: string): ArtifactSource['open'] {
  return async () => {
    const x = await execInContainer(SOCKET, container, ['sh', '-c', script]);
    const done = x.done.then((code) => {
      if (code !== 0)
        throw new Error(
          `${script.split(' exec ')[1]?.split(' ')[0] ?? 'command'} exited ${code}: ${x.stderr().trim().split('\n').slice(-3).join(' | ')}`,
        );
    });
    return { stream: x.stdout, done };
  };
}

async function execText(container: string, script: string): Promise<string> {
  const x = await execInContainer(SOCKET, container, ['sh', '-c', script]);
  let out = '';
  x.stdout.on('data', (b: Buffer) => {
    out += b.toString('utf8');
  });
  const code = await x.done;
  if (code !== 0) throw new Error(`${script}: exit ${code}: ${x.stderr()}`);
  return out.trim();
}

async function run(
  db: Queryable,
  s3: S3Target,
  loc: BackupLocation,
  t: LocalTasks,
  o: JobOpts & { owner: string; log: (l: string) => void },
): Promise<void> {
  const now = new Date();
  let tick: string | undefined;
  if (o.scheduled) {
    tick = tickId(previousTick(parseSchedule(process.env.BACKUP_SCHEDULE ?? '0 3 * * *'), now));
    if (!(await claimTick(db, tick, o))) return;
  }
  const id = backupId(now);
  await db.query(
    'INSERT INTO cluster_cli.backup_runs (id, tick, owner, started_at) VALUES ($1, $2, $3, $4)',
    [id, tick ?? null, o.owner, now],
  );
  let bytes = 0;
  let renewed = Date.now();
  const progress = setInterval(() => {
    void db
      .query('UPDATE cluster_cli.backup_runs SET bytes = $2 WHERE id = $1', [id, bytes])
      .catch(() => {});
    if (tick && Date.now() - renewed >= RENEW_MS) {
      renewed = Date.now();
      void renew(db, 'backup', tick, o.owner, LEASE_MS).then(
        (held) => {
          if (!held)
            o.log(`tick ${tick}: the claim was taken over (this run stopped renewing it in time)`);
        },
        () => {},
      );
    }
  }, 1000);
  try {
    const described = await db.query<{ value: { clusterYaml: string; stackYaml: string } }>(
      "SELECT value FROM cluster_cli.kv WHERE key = 'backup.cluster'",
    );
    const desc = described.rows[0]?.value ?? { clusterYaml: '', stackYaml: '' };
    const server =
      (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ??
      '';
    const pgDump = await execText(t.postgres, 'exec pg_dump --version');
    const redisVersion = await execText(t.redis, 'exec redis-cli --version');
    const text = (name: 'cluster.yaml' | 'stack.yml', body: string): ArtifactSource => ({
      name,
      open: async () => ({ stream: Readable.from([Buffer.from(body)]), done: Promise.resolve() }),
    });
    const recipient = process.env.BACKUP_AGE_RECIPIENT;
    const manifest = await takeBackup({
      s3,
      loc,
      ...(recipient
        ? { encryption: { recipient, identitySecret: `${loc.cluster}_backup_age_identity` } }
        : {}),
      createdAt: now,
      ...(tick ? { tick } : {}),
      clusterCliVersion: VERSION,
      versions: {
        postgres: { serverVersion: server, pgDumpVersion: pgDump, database: t.database },
        redis: { version: redisVersion },
      },
      sources: [
        {
          name: 'postgres.dump',
          // A custom-format dump is smaller than the database (compressed, no indexes).
          sizeHint: async () =>
            Number(
              (
                await db.query<{ size: string }>(
                  'SELECT pg_database_size(current_database()) AS size',
                )
              ).rows[0]?.size ?? 0,
            ),
          open: execSource(
            t.postgres,
            // cluster-cli's own schema stays out: a restore must not roll back the
            // run history, the claims, the admins or the certificate state.
            PG(
              'pg_dump -Fc --exclude-schema=cluster_cli -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB"',
            ),
          ),
        },
        {
          // cluster-cli's admins, apart from the app's data: restored only onto a
          // cluster that has none (one rebuilt from the bucket), never rolled back.
          name: 'admins.dump',
          open: execSource(
            t.postgres,
            PG(
              'pg_dump -Fc --data-only --table=cluster_cli.users -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB"',
            ),
          ),
        },
        {
          name: 'redis.rdb',
          open: async () => {
            const src = await execSource(
              t.redis,
              REDIS('redis-cli -h 127.0.0.1 --rdb - 2>/dev/null'),
            )();
            return {
              stream: (src.stream as Readable).pipe(new RdbEofMarkStripper()),
              done: src.done,
            };
          },
        },
        {
          name: volumeArtifact(`${loc.cluster}_redis_data`),
          sizeHint: async () =>
            Number((await execText(t.redis, 'du -sb /data | cut -f1').catch(() => '0')) || 0) * 1.1,
          open: execSource(t.redis, 'exec tar -c -C /data .'),
        },
        text('cluster.yaml', desc.clusterYaml),
        text('stack.yml', desc.stackYaml),
      ],
      now: () => new Date(),
      log: o.log,
      onBytes: (n) => {
        bytes = n;
      },
    });
    const sizes = Object.fromEntries(manifest.artifacts.map((a) => [a.name, a.size]));
    const total = manifest.artifacts.reduce((s, a) => s + a.size, 0);
    await db.query(
      "UPDATE cluster_cli.backup_runs SET status = 'ok', finished_at = now(), bytes = $2, sizes = $3 WHERE id = $1",
      [id, total, JSON.stringify(sizes)],
    );
    if (tick) await finish(db, 'backup', tick, o.owner, 'ok', { id });
    // maxRSS is the kernel's high-water mark for this process (KiB): the memory bound, measured.
    o.log(
      `backup ${id} complete: ${total} bytes; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
    );
    await applyRetention(s3, loc, o.log);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    await db.query(
      "UPDATE cluster_cli.backup_runs SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1",
      [id, message.slice(0, 2000)],
    );
    if (tick) await finish(db, 'backup', tick, o.owner, 'failed', { id, error: message });
    throw err;
  } finally {
    clearInterval(progress);
  }
}

/**
 * A scheduled run's claim on its tick: held while the runner renews it every
 * RENEW_MS; a runner that dies stops renewing, and after LEASE_MS another job
 * (its own restart, or a manager whose clock named the tick a minute apart)
 * takes the tick over. A job that finds the tick running stands by until it
 * ends or its runner stops renewing.
 */
const LEASE_MS = 120_000;
const RENEW_MS = 30_000;
const STANDBY_POLL_MS = 10_000;

/** True when this job runs the tick (won or taken over); false when it is done already. */
async function claimTick(
  db: Queryable,
  tick: string,
  o: { owner: string; log: (l: string) => void },
): Promise<boolean> {
  let announced = false;
  for (;;) {
    const c = await claim(db, { kind: 'backup', tick, owner: o.owner, leaseMs: LEASE_MS });
    if (c.won) {
      if (c.takeover) {
        const dead = await db.query(
          "UPDATE cluster_cli.backup_runs SET status = 'failed', finished_at = now(), error = $2 WHERE tick = $1 AND finished_at IS NULL",
          [
            tick,
            `its runner stopped renewing the claim for ${LEASE_MS / 1000} s (it died); ${o.owner} took the tick over`,
          ],
        );
        o.log(
          `tick ${tick}: its runner stopped; taking it over (${dead.rowCount ?? 0} run(s) marked failed)`,
        );
      }
      return true;
    }
    if (c.status !== 'running') {
      o.log(`tick ${tick} is done by ${c.holder} (${c.status}): nothing to do`);
      return false;
    }
    if (!announced)
      o.log(
        `tick ${tick} is being run by ${c.holder}: standing by until it ends or stops renewing its claim`,
      );
    announced = true;
    await new Promise((r) => setTimeout(r, STANDBY_POLL_MS));
  }
}

async function applyRetention(s3: S3Target, loc: BackupLocation, log: (l: string) => void) {
  const policy = parseRetention(process.env.BACKUP_RETENTION ?? 'daily=7,weekly=4,monthly=6');
  const listed = await listBackups(s3, loc);
  const plan = retentionPlan({
    backups: listed.map((b) => ({ id: b.id, at: b.at, status: b.manifest ? 'ok' : 'incomplete' })),
    policy,
    now: new Date(),
    lastRun: 'ok',
  });
  for (const id of plan.delete) {
    const keys = (await listKeys(s3, backupPrefix(loc, id))).map((k) => k.key);
    await deleteKeys(s3, keys);
    log(`retention: deleted ${id}`);
  }
}

async function identity(): Promise<Secret | undefined> {
  try {
    return secret((await readFile(`/run/secrets/${JOB_SECRET_FILES.identity}`, 'utf8')).trim());
  } catch {
    return undefined;
  }
}

/** Download, check every digest, decrypt, and load the dump into a scratch database. */
async function verify(
  db: Queryable,
  s3: S3Target,
  loc: BackupLocation,
  t: LocalTasks,
  which: string,
  log: (l: string) => void,
): Promise<void> {
  const m = await findBackup(s3, loc, which);
  await checkStored(s3, m);
  log(`${m.id}: every artifact matches its sha256`);
  const scratch = `cluster_cli_verify_${m.id.toLowerCase()}`;
  await execText(t.postgres, PG(`createdb -h 127.0.0.1 -U "$POSTGRES_USER" ${scratch}`));
  try {
    await pgRestore(s3, m, t, scratch, []);
    const tables = await execText(
      t.postgres,
      PG(
        `psql -h 127.0.0.1 -U "$POSTGRES_USER" -d ${scratch} -Atc "select count(*) from information_schema.tables where table_schema not in ('pg_catalog','information_schema')"`,
      ),
    );
    log(`${m.id}: the PostgreSQL dump loads (${tables} tables)`);
  } finally {
    await execText(
      t.postgres,
      PG(`dropdb -h 127.0.0.1 -U "$POSTGRES_USER" --if-exists ${scratch}`),
    );
  }
  await db.query('UPDATE cluster_cli.backup_runs SET verified_at = now() WHERE id = $1', [m.id]);
  log(`verified ${m.id}`);
}

async function pgRestore(
  s3: S3Target,
  m: Manifest,
  t: LocalTasks,
  database: string,
  extra: string[],
  artifact: 'postgres.dump' | 'admins.dump' = 'postgres.dump',
): Promise<void> {
  const { stream, checked } = await openArtifact(s3, m, artifact, await identity());
  const x = await execInContainer(
    SOCKET,
    t.postgres,
    [
      'sh',
      '-c',
      PG(
        `pg_restore -h 127.0.0.1 -U "$POSTGRES_USER" -d ${database} --no-owner --exit-on-error ${extra.join(' ')}`,
      ),
    ],
    { stdin: true },
  );
  await pipeline(stream, x.stdin as NodeJS.WritableStream);
  await checked;
  const code = await x.done;
  if (code !== 0)
    throw new Error(
      `pg_restore exited ${code}: ${x.stderr().trim().split('\n').slice(-3).join(' | ')}`,
    );
}

/** Replace the data with a backup's (the CLI stopped the app first and starts it again after). */
async function restore(
  db: Queryable,
  s3: S3Target,
  loc: BackupLocation,
  t: LocalTasks,
  o: JobOpts,
  log: (l: string) => void,
): Promise<void> {
  const m = await findBackup(s3, loc, o.id ?? 'latest');
  // Every digest first: nothing is touched when any artifact is damaged.
  await checkStored(s3, m);
  log(`${m.id}: every artifact matches its sha256`);
  const only = o.only;
  if (!only || only === 'postgres') {
    await pgRestore(s3, m, t, t.database, ['--clean', '--if-exists', '--single-transaction']);
    log('PostgreSQL restored');
    if (m.artifacts.some((a) => a.name === 'admins.dump')) {
      const have = Number(
        (await db.query<{ n: string }>('SELECT count(*) AS n FROM cluster_cli.users')).rows[0]?.n ??
          0,
      );
      if (have === 0) {
        await pgRestore(
          s3,
          m,
          t,
          t.database,
          ['--data-only', '--single-transaction'],
          'admins.dump',
        );
        // the rows came with their ids: the next user create must not reuse one
        await db.query(
          "SELECT setval(pg_get_serial_sequence('cluster_cli.users', 'id'), coalesce(max(id), 1)) FROM cluster_cli.users",
        );
        const n = (await db.query<{ n: string }>('SELECT count(*) AS n FROM cluster_cli.users'))
          .rows[0]?.n;
        log(`admins restored: ${n} (this cluster had none)`);
      } else log(`admins kept: this cluster has its own ${have}`);
    }
  }
  if (!only || only === 'redis' || only === 'volumes') {
    // Redis loads dump.rdb at start when no AOF exists: put it (and the volume's files) in
    // place; the CLI restarts the redis service afterwards.
    const name = volumeArtifact(`${loc.cluster}_redis_data`);
    const tar = await openArtifact(s3, m, name, await identity());
    const x = await execInContainer(
      SOCKET,
      t.redis,
      [
        'sh',
        '-c',
        'rm -rf /data/restore.tmp && mkdir /data/restore.tmp && exec tar -x -C /data/restore.tmp',
      ],
      { stdin: true },
    );
    await pipeline(tar.stream, x.stdin as NodeJS.WritableStream);
    await tar.checked;
    if ((await x.done) !== 0) throw new Error(`tar exited: ${x.stderr()}`);
    const rdb = await openArtifact(s3, m, 'redis.rdb', await identity());
    const y = await execInContainer(
      SOCKET,
      t.redis,
      ['sh', '-c', 'exec cat > /data/restore.tmp/dump.rdb'],
      { stdin: true },
    );
    await pipeline(rdb.stream, y.stdin as NodeJS.WritableStream);
    await rdb.checked;
    if ((await y.done) !== 0) throw new Error(`writing dump.rdb failed: ${y.stderr()}`);
    // Redis 7 starts from its AOF directory: the snapshot becomes that AOF's base
    // (multi-part AOF: a base RDB plus increments), so the next start loads it.
    await execText(
      t.redis,
      [
        'set -e',
        'cd /data/restore.tmp',
        'rm -rf appendonlydir && mkdir appendonlydir',
        'cp dump.rdb appendonlydir/appendonly.aof.1.base.rdb',
        "printf 'file appendonly.aof.1.base.rdb seq 1 type b\\n' > appendonlydir/appendonly.aof.manifest",
        'cd /data',
        'find . -mindepth 1 -maxdepth 1 ! -name restore.tmp -exec rm -rf {} +',
        'for f in restore.tmp/* restore.tmp/.[!.]*; do if [ -e "$f" ]; then mv "$f" .; fi; done',
        'rmdir restore.tmp',
        'chown -R "$(stat -c %u:%g /data)" /data',
      ].join('\n'),
    );
    log('Redis data in place (takes effect when redis restarts)');
  }
  log(`restored ${m.id}`);
}
