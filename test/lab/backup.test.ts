import { execFile } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKUP_JOB_LABEL, STARTED_BY_LABEL } from '../../src/backup/job.js';
import {
  dockerOf,
  execIn,
  formCluster,
  type Lab,
  type LabHost,
  labCli,
  labHost,
  ROOT,
  readLab,
  runCli,
  samplePs,
  stopNode,
  wipe,
} from './lab.js';

/**
 * Backups against a real S3-compatible server (Debian's Swift with s3api on
 * the lab bridge), from a cluster of three managers and a database worker:
 * setup refuses bad credentials and a missing bucket with nothing saved; a
 * backup of known data restores exactly; a flipped byte in the store is
 * refused by verify and restore, naming the artifact; the managers' cron
 * firing together starts exactly one run.
 */

const BUCKET = 'lab-backups';
let lab: Lab;
let h: LabHost[];
let d: Docker[];
let cfg: string;
let s3: S3Client;

const target = (n: number) => `root@${h[n - 1]?.address}`;
let cli: ReturnType<typeof labCli>['cli'];
let ok: ReturnType<typeof labCli>['ok'];

const db = () => d[3] as Docker; // lab4 holds the databases (db=primary)
const sql = (q: string, on = db()) =>
  execIn(on, 'platform_postgres', [
    'sh',
    '-c',
    `PGPASSWORD="$(cat /run/secrets/postgres_password)" psql -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB" -Atqc "${q}"`,
  ]);
const redisOn = (on: Docker, ...args: string[]) =>
  execIn(on, 'platform_redis', [
    'sh',
    '-c',
    `REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli -h 127.0.0.1 ${args.join(' ')}`,
  ]);
const redis = (...args: string[]) => redisOn(db(), ...args);
/** A plain dump of the app's tables, without pg_dump's per-run random \\restrict key. */
const dump = async (on = db()) =>
  (
    await execIn(on, 'platform_postgres', [
      'sh',
      '-c',
      'PGPASSWORD="$(cat /run/secrets/postgres_password)" pg_dump -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB" --schema=public',
    ])
  )
    .split('\n')
    .filter((l) => !/^\\(un)?restrict /.test(l))
    .join('\n');

const creds = () => `${lab.s3.accessKeyId}\n${lab.s3.secretAccessKey}\n`;
const setupArgs = (bucket = BUCKET) => [
  'backup',
  'setup',
  '--s3-endpoint',
  lab.s3.endpoint,
  '--s3-bucket',
  bucket,
  '--s3-path-style',
  '--s3-credentials-stdin',
  '--schedule',
  '* * * * *',
  '--yes',
];

beforeAll(async () => {
  lab = readLab();
  ({ cli, ok } = labCli(lab, () => cfg));
  h = [1, 2, 3, 4].map((n) => labHost(lab, `lab${n}`));
  d = h.map(dockerOf);
  s3 = new S3Client({
    endpoint: lab.s3.endpoint,
    region: lab.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: lab.s3.accessKeyId, secretAccessKey: lab.s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((e: Error) => {
    if (!/BucketAlreadyOwnedByYou|BucketAlreadyExists/.test(e.name)) throw e;
  });
  for (const n of [1, 2, 3, 4]) wipe(`lab${n}`);
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-backup-'));
  cfg = join(dir, 'cluster.yaml');
  copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, cfg);
  appendFileSync(cfg, 'agent:\n  image: cluster-cli:dev # built by scripts/build-image\n');
  await formCluster(
    ok,
    target(1),
    [`${target(2)},manager`, `${target(3)},manager`, `${target(4)},worker,db=primary`],
    { joinFlags: ['--force'] },
  );
}, 600_000);

afterAll(async () => {
  // The managers share this machine's filesystem in the lab: take the cron entry away again.
  const { rmSync } = await import('node:fs');
  rmSync('/etc/cron.d/cluster-cli-platform-backup', { force: true });
  rmSync('/usr/local/lib/cluster-cli/platform-backup', { force: true });
  s3?.destroy();
});

type RunRow = { id?: string; tick: string | null; status?: string; error?: string | null };
const runRows = async () => JSON.parse((await ok(['backup', 'list', '--json'])).stdout) as RunRow[];

/**
 * As cron would: just after the next minute starts, the backup script on each
 * of `managers` at once. Returns the run rows that appeared, once none runs.
 */
async function fireNextTick(managers: number[]): Promise<{ before: RunRow[]; added: RunRow[] }> {
  const before = await runRows();
  await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 1500));
  const script = '/usr/local/lib/cluster-cli/platform-backup';
  await Promise.all(
    managers.map(
      (n) =>
        new Promise<void>((resolve) =>
          execFile(`${ROOT}scripts/lab`, ['ssh', `lab${n}`, script], () => resolve()),
        ),
    ),
  );
  let all: RunRow[] = [];
  for (let i = 0; i < 90; i++) {
    all = await runRows();
    if (all.length > before.length && all.every((r) => r.status !== 'running')) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  return { before, added: all.slice(before.length) };
}

describe('backups to a real S3 API', () => {
  it('setup refuses wrong credentials and a missing bucket: one line, nothing saved', async () => {
    const before = readFileSync(cfg, 'utf8');
    const wrong = await cli(setupArgs(), `${lab.s3.accessKeyId}\nnot-the-secret\n`);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.split('\n')[0]).toMatch(/^error: S3 store .* rejected the credentials/);
    const missing = await cli(setupArgs('no-such-bucket'), creds());
    expect(missing.code).toBe(2);
    expect(missing.stderr.split('\n')[0]).toMatch(/^error: bucket no-such-bucket does not exist/);
    const bad = await cli([...setupArgs(), '--schedule', '61 3 * * *'], creds());
    expect(bad.stderr.split('\n')[0]).toMatch(/^error: --schedule "61 3 \* \* \*": minute 61/);
    expect(readFileSync(cfg, 'utf8')).toBe(before);
    const secrets = await (d[0] as Docker).listSecrets();
    expect(secrets.map((s) => s.Spec?.Name).filter((n) => n?.includes('backup'))).toEqual([]);
  });

  it('setup stores credentials as Docker secrets and installs the cron entry on every manager', async () => {
    const r = await ok([...setupArgs(), '--encrypt', '--json'], creds());
    const doc = JSON.parse(r.stdout);
    expect(doc.identity).toMatch(/^AGE-SECRET-KEY-1/);
    identity = doc.identity;
    expect(readFileSync(cfg, 'utf8')).toMatch(
      /backup:\n\s+s3:\n\s+endpoint: http:\/\/10\.77\.0\.1:8080/,
    );
    expect(readFileSync(cfg, 'utf8')).not.toContain(lab.s3.secretAccessKey);
    const names = (await (d[0] as Docker).listSecrets()).map((s) => s.Spec?.Name);
    expect(names).toEqual(
      expect.arrayContaining([
        'platform_backup_s3_access_key',
        'platform_backup_s3_secret_key',
        'platform_backup_age_identity',
      ]),
    );
    expect(readFileSync('/etc/cron.d/cluster-cli-platform-backup', 'utf8')).toMatch(
      /^\* \* \* \* \* root \/usr\/local\/lib\/cluster-cli\/platform-backup /m,
    );
  });

  let before = '';
  let identity = '';

  it('backup run, then data changed and deleted, restore latest: everything is back exactly', async () => {
    await sql(
      "create table items(id int primary key, name text); insert into items select g, 'item ' || g from generate_series(1, 2000) g",
    );
    await redis('set', 'greeting', 'hello');
    await redis('set', 'counter', '42');
    await execIn(db(), 'platform_redis', ['sh', '-c', 'echo precious > /data/note.txt']);
    before = await dump();
    const pgPassword = (
      await execIn(db(), 'platform_postgres', ['cat', '/run/secrets/postgres_password'])
    ).trim();
    const sampler = samplePs();
    const run = await ok(['backup', 'run', '--yes', '--json']);
    const argv = await sampler.stop();
    expect(JSON.parse(run.stdout).run.status).toBe('ok');
    expect(
      argv.some((l) => l.includes('docker service create') && l.includes('replicated-job')),
    ).toBe(true);
    for (const secret of [pgPassword, lab.s3.secretAccessKey, 'AGE-SECRET-KEY']) {
      expect(argv.filter((l) => l.includes(secret))).toEqual([]);
    }
    const list = JSON.parse((await ok(['backup', 'list', '--json'])).stdout);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ status: 'ok' });
    expect(list[0].bytes).toBeGreaterThan(1000);

    await sql("delete from items where id > 10; update items set name = 'changed'");
    await redis('del', 'greeting');
    await execIn(db(), 'platform_redis', ['rm', '/data/note.txt']);
    expect(await dump()).not.toBe(before);

    await ok(['restore', 'latest', '--yes']);
    expect(await dump()).toBe(before);
    expect((await redis('mget', 'greeting', 'counter')).trim().split('\n')).toEqual([
      'hello',
      '42',
    ]);
    expect((await execIn(db(), 'platform_redis', ['cat', '/data/note.txt'])).trim()).toBe(
      'precious',
    );
    const verified = await ok(['backup', 'verify', 'latest']);
    expect(verified.stdout).toMatch(/the PostgreSQL dump loads/);

    // --only redis: Redis goes back, PostgreSQL is left as it is now
    await redis('set', 'greeting', 'changed again');
    await sql("insert into items values (99999, 'written after the backup')");
    const only = JSON.parse(
      (await ok(['restore', 'latest', '--only', 'redis', '--yes', '--json'])).stdout,
    );
    expect(only.only).toBe('redis');
    expect((await redis('get', 'greeting')).trim()).toBe('hello');
    expect((await sql('select name from items where id = 99999')).trim()).toBe(
      'written after the backup',
    );
    await sql('delete from items where id = 99999');
    expect(await dump()).toBe(before);
  });

  it('one flipped byte in the store: verify and restore refuse, naming the artifact; nothing changes', async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    const key = listed.Contents?.map((o) => o.Key ?? '').find((k) =>
      k.endsWith('postgres.dump.age'),
    );
    expect(key).toBeDefined();
    const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const bytes = Buffer.from(
      await (obj.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    const flipped = Buffer.from(bytes);
    const at = Math.floor(flipped.length / 2);
    flipped[at] = (flipped[at] as number) ^ 0x01;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: flipped }));
    try {
      await sql("update items set name = 'after the backup' where id = 1");
      const mark = await dump();
      const v = await cli(['backup', 'verify', 'latest']);
      expect(v.code).not.toBe(0);
      expect(v.stderr).toMatch(/postgres\.dump is damaged/);
      const r = await cli(['restore', 'latest', '--yes']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/postgres\.dump is damaged/);
      expect(await dump()).toBe(mark);
    } finally {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: bytes }));
    }
  });

  it('three managers whose cron fire the same tick: exactly one backup and one run row', async () => {
    const { added: scheduled } = await fireNextTick([1, 2, 3]);
    expect(scheduled).toHaveLength(1);
    expect(scheduled[0]?.tick).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$/);
    expect(scheduled[0]?.status).toBe('ok');
  });

  it('the job dies mid-run: its restart takes the tick over once the claim lapses; one good backup for the tick', async () => {
    // pg_dump waits for its table locks: a session holding one keeps the run in its middle.
    const holding = execIn(db(), 'platform_postgres', [
      'sh',
      '-c',
      'PGPASSWORD="$(cat /run/secrets/postgres_password)" psql -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB" -c "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);"',
    ]).catch(() => '');
    const before = await runRows();
    await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 1500));
    execFile(
      `${ROOT}scripts/lab`,
      ['ssh', 'lab1', '/usr/local/lib/cluster-cli/platform-backup'],
      () => {},
    );
    let job: Docker.ContainerInfo | undefined;
    for (let i = 0; i < 120 && !job; i++) {
      const open = (
        await sql('select count(*) from cluster_cli.backup_runs where finished_at is null')
      ).trim();
      if (open !== '0')
        job = (await db().listContainers()).find((c) =>
          c.Names.some((n) => n.startsWith('/platform_backup_')),
        );
      if (!job) await new Promise((r) => setTimeout(r, 500));
    }
    expect(job, 'a running backup job on the database node').toBeDefined();
    await db()
      .getContainer(job?.Id as string)
      .kill();
    await sql(
      "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(300)%' and pid <> pg_backend_pid()",
    );
    await holding;
    // Swarm starts the job again (10 s); it stands by until the dead runner's claim lapses (120 s).
    let rows: (RunRow & { error?: string | null })[] = [];
    for (let i = 0; i < 150; i++) {
      rows = (await runRows()).slice(before.length);
      if (rows.some((r) => r.status === 'ok') && rows.every((r) => r.status !== 'running')) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    expect(rows.map((r) => r.status).sort()).toEqual(['failed', 'ok']);
    expect(new Set(rows.map((r) => r.tick)).size).toBe(1);
    expect(rows.find((r) => r.status === 'failed')?.error).toMatch(
      /stopped renewing the claim for 120 s \(it died\); \w+ took the tick over/,
    );
    // backup status reads the same: the last run is the good one, nothing stale
    const st = JSON.parse((await ok(['backup', 'status', '--json'])).stdout);
    expect(st).toMatchObject({ schedule: '* * * * *', stale: false, lastRun: { status: 'ok' } });
    expect(st.lastSuccess.id).toBe(rows.find((r) => r.status === 'ok')?.id);
  });

  it('the manager whose cron started the last run stops: the next tick still runs, exactly once', async () => {
    const jobs = await (d[0] as Docker).listServices({
      filters: { label: [`${BACKUP_JOB_LABEL}=platform`] },
    });
    const last = jobs
      .filter((j) => /_backup_\d{8}T\d{4}$/.test(j.Spec?.Name ?? ''))
      .sort((a, b) => String(a.CreatedAt).localeCompare(String(b.CreatedAt)))
      .at(-1);
    const starter = last?.Spec?.Labels?.[STARTED_BY_LABEL] ?? '';
    expect(starter).toMatch(/^lab[123]$/);
    const gone = Number(starter.slice(3));
    const alive = [1, 2, 3].filter((n) => n !== gone);
    const restart = stopNode(gone);
    try {
      const { before, added: next } = await fireNextTick(alive);
      expect(next).toHaveLength(1);
      expect(next[0]?.status).toBe('ok');
      expect(next[0]?.tick).not.toBe(before.at(-1)?.tick);
      const started = (
        await (d[(alive[0] as number) - 1] as Docker).listServices({
          filters: { label: [`${BACKUP_JOB_LABEL}=platform`] },
        })
      )
        .sort((a, b) => String(a.CreatedAt).localeCompare(String(b.CreatedAt)))
        .at(-1);
      expect(alive.map((n) => `lab${n}`)).toContain(started?.Spec?.Labels?.[STARTED_BY_LABEL]);
      // status sees it: degraded (exit 1), the stopped node named, quorum kept
      const st = await cli(['status', '--json']);
      expect(st.code, st.stderr).toBe(1);
      const doc = JSON.parse(st.stdout);
      expect(doc.verdict).toBe('degraded');
      expect(doc.findings.map((f: { text: string }) => f.text)).toContain(
        `node lab${gone} (manager) is down`,
      );
    } finally {
      await restart();
    }
  });

  it("config set backup.schedule and backup.retention rewrite every manager's cron entry, and touch no service", async () => {
    const versions = async () =>
      Object.fromEntries(
        (await (d[0] as Docker).listServices()).map((x) => [x.Spec?.Name, x.Version?.Index]),
      );
    const before = await versions();
    const cronFile = '/etc/cron.d/cluster-cli-platform-backup';
    const script = '/usr/local/lib/cluster-cli/platform-backup';
    const r = JSON.parse(
      (
        await ok([
          'config',
          'set',
          'backup.schedule=30 2 * * *',
          'backup.retention.daily=14',
          '--yes',
          '--json',
        ])
      ).stdout,
    );
    expect(r.changes.map((c: { key: string }) => c.key)).toEqual([
      'backup.schedule',
      'backup.retention.daily',
    ]);
    expect(r.updated).toEqual(
      ['lab1', 'lab2', 'lab3'].map((m) => expect.stringContaining(`Cron on ${m}: 30 2 * * *`)),
    );
    // the managers share this machine's filesystem in the lab: one file to read
    expect(readFileSync(cronFile, 'utf8')).toContain('30 2 * * * root');
    expect(readFileSync(script, 'utf8')).toContain('BACKUP_RETENTION=daily=14,weekly=4');
    expect(readFileSync(cfg, 'utf8')).toMatch(/schedule: (["']?)30 2 \* \* \*\1/);
    expect(await versions()).toEqual(before);
    // and back, for the tests that fire every minute
    await ok(['config', 'set', 'backup.schedule=* * * * *', 'backup.retention.daily=7', '--yes']);
    expect(readFileSync(cronFile, 'utf8')).toContain('* * * * * root');
  });

  it('a new cluster on another host restores from the bucket alone (and the key kept elsewhere), its admins too', async () => {
    // An admin of the cluster about to be lost, in a backup taken now.
    const PASSWORD = 'correct horse battery staple';
    await ok(
      ['user', 'create', 'ops', '--email', 'ops@lab.test', '--password-stdin', '--yes'],
      PASSWORD,
    );
    await ok(['backup', 'run', '--yes']);
    // What the lost cluster held at its last backup (nothing changed since).
    const want = await dump();
    const wantRedis = (await redis('mget', 'greeting', 'counter')).trim();
    wipe('lab5');
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-recover-'));
    const cfg2 = join(dir, 'cluster.yaml');
    copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, cfg2);
    appendFileSync(cfg2, 'agent:\n  image: cluster-cli:dev # built by scripts/build-image\n');
    const keyFile = join(dir, 'backup-key.txt');
    writeFileSync(keyFile, `# kept in a password manager\n${identity}\n`, { mode: 0o600 });
    const fresh = labCli(lab, () => cfg2);
    await fresh.ok([
      'init',
      '--host',
      `root@${labHost(lab, 'lab5').address}`,
      '--domain',
      'app.lab.test',
      '--email',
      'ops@lab.test',
      '--yes',
    ]);
    const on = dockerOf(labHost(lab, 'lab5'));
    expect(await dump(on)).not.toBe(want);
    // the S3 credentials from the environment this time (no stdin, no prompt)
    const setup = await runCli(
      [
        ...setupArgs().filter((a) => a !== '--s3-credentials-stdin'),
        '--age-identity-file',
        keyFile,
        '--identity',
        lab.sshKey,
        '--known-hosts',
        lab.knownHosts,
        '-c',
        cfg2,
      ],
      {
        env: {
          AWS_ACCESS_KEY_ID: lab.s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: lab.s3.secretAccessKey,
        },
      },
    );
    expect(setup.code, setup.stderr).toBe(0);
    expect(readFileSync(cfg2, 'utf8')).not.toContain(lab.s3.secretAccessKey);
    expect(readFileSync(cfg2, 'utf8')).toMatch(/recipient: age1/);
    expect(JSON.parse((await fresh.ok(['user', 'list', '--json'])).stdout)).toEqual([]);
    // without --yes and without a terminal: refused, nothing touched
    const asked = await fresh.cli(['restore', 'latest']);
    expect(asked.code).toBe(2);
    expect(asked.stderr).toMatch(/--yes/);
    expect(await dump(on)).not.toBe(want);
    const r = await fresh.ok(['restore', 'latest', '--yes']);
    expect(r.stdout).toMatch(/The app runs again/);
    // the admins come back onto a cluster that had none, and log in with their password
    expect(JSON.parse((await fresh.ok(['user', 'list', '--json'])).stdout)).toEqual([
      expect.objectContaining({ name: 'ops', email: 'ops@lab.test', disabled: false }),
    ]);
    expect((await fresh.cli(['user', 'verify', 'ops', '--password-stdin'], PASSWORD)).code).toBe(0);
    expect(await dump(on)).toBe(want);
    expect((await redisOn(on, 'mget', 'greeting', 'counter')).trim()).toBe(wantRedis);
    expect((await execIn(on, 'platform_redis', ['cat', '/data/note.txt'])).trim()).toBe('precious');
    wipe('lab5');
  });

  it('status: a stale backup is degraded, a fresh one healthy; a service with no task is down (exit 2) until rolled back', async () => {
    type Doc = {
      verdict: string;
      findings: { area: string; text: string; level: string; next?: string }[];
      backup: { lastSuccess: { id: string; at: string } };
      services: { name: string }[];
    };
    const status = async () => {
      const r = await cli(['status', '--json']);
      return { code: r.code, doc: JSON.parse(r.stdout) as Doc };
    };
    const settled = async (areas: string[]) => {
      let r = await status();
      // the node stopped above is still coming back, a service still converging
      for (let i = 0; i < 45 && r.doc.findings.some((f) => areas.includes(f.area)); i++) {
        await new Promise((res) => setTimeout(res, 2000));
        r = await status();
      }
      return r;
    };
    // The schedule is every minute: once the last success is over two minutes old it is stale.
    const first = await settled(['nodes', 'services', 'stack']);
    const lastAt = Date.parse(first.doc.backup.lastSuccess.at);
    await new Promise((r) => setTimeout(r, Math.max(0, lastAt + 125_000 - Date.now())));
    const stale = await status();
    expect(stale.code).toBe(1);
    expect(stale.doc.verdict).toBe('degraded');
    expect(stale.doc.findings.map((f) => f.text)).toEqual([
      expect.stringMatching(
        /^the last successful backup \(.*\) is older than twice the schedule's interval$/,
      ),
    ]);
    await ok(['backup', 'run', '--yes']);
    const fresh = await status();
    expect(fresh.code, JSON.stringify(fresh.doc.findings)).toBe(0);
    const doc = fresh.doc;
    expect(doc.verdict).toBe('healthy');
    expect(doc.backup.lastSuccess.id).toMatch(/^\d{8}T\d{6}Z$/);
    expect(doc.services.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        'platform_proxy',
        'platform_app',
        'platform_postgres',
        'platform_redis',
      ]),
    );
    const text = await cli(['status']);
    expect(text.stdout.trim().split('\n').at(-1)).toBe('platform: HEALTHY');

    const docker = (...args: string[]) =>
      new Promise<void>((resolve, reject) =>
        execFile('docker', ['-H', `unix://${h[0]?.dockerSocket}`, ...args], (e) =>
          e ? reject(e) : resolve(),
        ),
      );
    await docker(
      'service',
      'update',
      '--detach',
      '--constraint-add',
      'node.labels.nowhere==yes',
      'platform_redis',
    );
    try {
      let down = await cli(['status', '--json']);
      for (let i = 0; i < 30 && down.code !== 2; i++) {
        await new Promise((r) => setTimeout(r, 2000));
        down = await cli(['status', '--json']);
      }
      expect(down.code).toBe(2);
      const d2 = JSON.parse(down.stdout);
      expect(d2.verdict).toBe('down');
      const f = d2.findings.find((x: { text: string }) => x.text.startsWith('platform_redis: 0/1'));
      expect(f?.level).toBe('fail');
      expect(f?.next).toBe('docker service ps --no-trunc platform_redis');
    } finally {
      await docker('service', 'rollback', '--detach', 'platform_redis');
    }
    const back = await settled(['services']);
    expect(back.doc.findings.filter((f) => f.area === 'services')).toEqual([]);
    expect(back.code).not.toBe(2);
  });
});
