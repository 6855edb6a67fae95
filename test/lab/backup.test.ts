import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
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
import {
  type CliResult,
  dockerOf,
  execIn,
  type Lab,
  type LabHost,
  labHost,
  ROOT,
  readLab,
  samplePs,
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

const ssh = () => ['--identity', lab.sshKey, '--known-hosts', lab.knownHosts];
const target = (n: number) => `root@${h[n - 1]?.address}`;

function cli(args: string[], stdin?: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = execFile(
      process.execPath,
      [`${ROOT}bin/cluster-cli.js`, ...args, ...ssh(), '-c', cfg],
      { env: { ...process.env, CI: 'true' }, maxBuffer: 16 << 20, timeout: 900_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    p.stdin?.end(stdin ?? '');
  });
}

async function ok(args: string[], stdin?: string): Promise<CliResult> {
  const r = await cli(args, stdin);
  if (r.code !== 0)
    throw new Error(`${args.join(' ')} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
  return r;
}

const db = () => d[3] as Docker; // lab4 holds the databases (db=primary)
const sql = (q: string) =>
  execIn(db(), 'platform_postgres', [
    'sh',
    '-c',
    `PGPASSWORD="$(cat /run/secrets/postgres_password)" psql -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB" -Atqc "${q}"`,
  ]);
const redis = (...args: string[]) =>
  execIn(db(), 'platform_redis', [
    'sh',
    '-c',
    `REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli -h 127.0.0.1 ${args.join(' ')}`,
  ]);
/** A plain dump of the app's tables, without pg_dump's per-run random \\restrict key. */
const dump = async () =>
  (
    await execIn(db(), 'platform_postgres', [
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
  const { appendFileSync } = await import('node:fs');
  appendFileSync(cfg, 'agent:\n  image: cluster-cli:dev # built by scripts/build-image\n');
  await ok([
    'init',
    '--host',
    target(1),
    '--domain',
    'app.lab.test',
    '--email',
    'ops@lab.test',
    '--yes',
  ]);
  await ok([
    'node',
    'join',
    `${target(2)},manager`,
    `${target(3)},manager`,
    `${target(4)},worker,db=primary`,
    '--force',
    '--yes',
  ]);
}, 600_000);

afterAll(async () => {
  // The managers share this machine's filesystem in the lab: take the cron entry away again.
  const { rmSync } = await import('node:fs');
  rmSync('/etc/cron.d/cluster-cli-platform-backup', { force: true });
  rmSync('/usr/local/lib/cluster-cli/platform-backup', { force: true });
  s3?.destroy();
});

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
    const rows = async () =>
      JSON.parse((await ok(['backup', 'list', '--json'])).stdout) as { tick: string | null }[];
    const n0 = (await rows()).length;
    // Just after a minute starts, as cron would, on all three managers at once.
    const wait = 60_000 - (Date.now() % 60_000) + 1500;
    await new Promise((r) => setTimeout(r, wait));
    const script = '/usr/local/lib/cluster-cli/platform-backup';
    await Promise.all(
      [1, 2, 3].map(
        (n) =>
          new Promise<void>((resolve) =>
            execFile(`${ROOT}scripts/lab`, ['ssh', `lab${n}`, script], () => resolve()),
          ),
      ),
    );
    let all: { tick: string | null; status?: string }[] = [];
    for (let i = 0; i < 90; i++) {
      all = await rows();
      if (all.length > n0 && all.every((r) => r.status !== 'running')) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    const scheduled = all.slice(n0);
    expect(scheduled).toHaveLength(1);
    expect(scheduled[0]?.tick).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$/);
    expect(scheduled[0]?.status).toBe('ok');
  });
});
