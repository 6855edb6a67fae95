// Backup and restore of a 1–2 GB PostgreSQL database on a lab cluster, to the
// lab's real S3 API (Swift with s3api). Measures, in the same run on the same
// data:
//   - `pg_dump -Fc > /dev/null` inside the postgres container (the baseline);
//   - `cluster-cli backup run`: the job's postgres.dump phase (pg_dump in the
//     same container, streamed through the Docker socket, sha256, multipart
//     upload) and its peak RSS (getrusage maxRSS of the job's process);
//   - `cluster-cli restore latest --only postgres`: wall time.
// Targets (issue 7): peak RSS < 150 MB, throughput >= 0.8x pg_dump.
// Needs root (the lab). Writes bench/results/backup.json.
//   node bench/backup.mjs [--rows N] [--encrypt]
import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const root = new URL('..', import.meta.url).pathname;
const labDir = process.env.CLUSTER_LAB_DIR ?? '/var/tmp/cluster-cli-lab';
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const ROWS = Number(arg('--rows', '9000000'));
const ENCRYPT = process.argv.includes('--encrypt');
const sh = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
const log = (line) => process.stderr.write(`bench: ${line}\n`);

sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
sh('scripts/lab', ['up', '--hosts', '1']);
sh('scripts/build-image', []);
sh('scripts/lab', ['load-image', join(root, '.cache/cluster-cli-image.tar')]);
sh('scripts/lab', ['wipe', 'lab1']);
const lab = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8'));
const host = lab.hosts[0];
const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-bench-backup-'));
const cfg = join(dir, 'cluster.yaml');
copyFileSync(join(root, 'test/fixtures/lab.cluster.yaml'), cfg);
appendFileSync(cfg, 'agent:\n  image: cluster-cli:dev\n');

function cli(args, stdin = '') {
  const t = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      'bin/cluster-cli.js',
      ...args,
      '--identity',
      lab.sshKey,
      '--known-hosts',
      lab.knownHosts,
      '-c',
      cfg,
    ],
    {
      cwd: root,
      encoding: 'utf8',
      input: stdin,
      env: { ...process.env, CI: 'true' },
      maxBuffer: 64 << 20,
    },
  );
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed:\n${r.stderr}\n${r.stdout}`);
  return { ms: Math.round(performance.now() - t), stdout: r.stdout };
}

const docker = (args, opts = {}) =>
  execFileSync('docker', ['-H', `unix://${host.dockerSocket}`, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    ...opts,
  }).trim();
const container = (service) =>
  docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]).split('\n')[0];
const PG = 'PGPASSWORD="$(cat /run/secrets/postgres_password)"';
const psql = (q) =>
  docker([
    'exec',
    container('platform_postgres'),
    'sh',
    '-c',
    `${PG} psql -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB" -Atqc "${q}"`,
  ]);

log('init on lab1');
cli([
  'init',
  '--host',
  `root@${host.address}`,
  '--domain',
  'app.lab.test',
  '--email',
  'ops@lab.test',
  '--yes',
]);

const s3 = new S3Client({
  endpoint: lab.s3.endpoint,
  region: lab.s3.region,
  forcePathStyle: true,
  credentials: { accessKeyId: lab.s3.accessKeyId, secretAccessKey: lab.s3.secretAccessKey },
});
const bucket = `bench-${Date.now()}`;
await s3.send(new CreateBucketCommand({ Bucket: bucket }));
s3.destroy();
cli(
  [
    'backup',
    'setup',
    '--s3-endpoint',
    lab.s3.endpoint,
    '--s3-bucket',
    bucket,
    '--s3-path-style',
    '--s3-credentials-stdin',
    '--schedule',
    '0 3 * * *',
    ...(ENCRYPT ? ['--encrypt'] : []),
    '--yes',
  ],
  `${lab.s3.accessKeyId}\n${lab.s3.secretAccessKey}\n`,
);

log(`loading ${ROWS} rows`);
const t0 = performance.now();
psql(
  `create table big as select g as id, md5(g::text) as a, md5((g * 7)::text) as b, repeat(md5(random()::text), 2) as c, now() - g * interval '1 second' as at from generate_series(1, ${ROWS}) g`,
);
const loadMs = Math.round(performance.now() - t0);
const dbBytes = Number(psql('select pg_database_size(current_database())'));
log(`database: ${(dbBytes / 1048576).toFixed(0)} MB, loaded in ${loadMs} ms`);

// The baseline: the same pg_dump, in the same container, its output thrown away.
const dumpCmd =
  'pg_dump -Fc --exclude-schema=cluster_cli -h 127.0.0.1 -U "$POSTGRES_USER" "$POSTGRES_DB"';
const b0 = performance.now();
const dumpBytes = Number(
  docker(['exec', container('platform_postgres'), 'sh', '-c', `${PG} ${dumpCmd} | wc -c`]),
);
const baselineMs = Math.round(performance.now() - b0);
const b1 = performance.now();
docker(['exec', container('platform_postgres'), 'sh', '-c', `${PG} ${dumpCmd} > /dev/null`]);
const baselineDevNullMs = Math.round(performance.now() - b1);
log(
  `pg_dump > /dev/null: ${baselineDevNullMs} ms (${dumpBytes} bytes; via wc -c ${baselineMs} ms)`,
);

const run = cli(['backup', 'run', '--yes', '--json']);
const row = JSON.parse(run.stdout).run;
const job = docker([
  'service',
  'ls',
  '--filter',
  'label=io.cluster-cli.backup-job=platform',
  '--format',
  '{{.Name}}',
])
  .split('\n')
  .filter((n) => n.includes('_backup_run_'))
  .sort()
  .at(-1);
const jobLog = docker(['service', 'logs', '--raw', job], { stdio: ['ignore', 'pipe', 'pipe'] });
const pgLine = /postgres\.dump: (\d+) bytes.* in ([\d.]+) s/.exec(jobLog);
const rss = /peak RSS (\d+) MB/.exec(jobLog);
if (!pgLine || !rss) throw new Error(`unexpected job log:\n${jobLog}`);
const backupPgMs = Math.round(Number(pgLine[2]) * 1000);
log(`backup run: ${run.ms} ms wall; postgres.dump phase ${backupPgMs} ms; peak RSS ${rss[1]} MB`);

const restore = cli(['restore', 'latest', '--only', 'postgres', '--yes']);
const restoredRows = Number(psql('select count(*) from big'));
log(`restore --only postgres: ${restore.ms} ms wall; ${restoredRows} rows back`);
if (restoredRows !== ROWS) throw new Error(`restored ${restoredRows} rows, expected ${ROWS}`);

const ratio = Number((baselineDevNullMs / backupPgMs).toFixed(3));
const result = {
  date: new Date().toISOString(),
  machine: `${execFileSync('nproc').toString().trim()} cores`,
  encrypted: ENCRYPT,
  database: { rows: ROWS, bytes: dbBytes, loadMs },
  dumpBytes,
  baseline: {
    pgDumpToDevNullMs: baselineDevNullMs,
    mbPerS: Number((dbBytes / 1048576 / (baselineDevNullMs / 1000)).toFixed(1)),
  },
  backup: {
    wallMs: run.ms,
    postgresPhaseMs: backupPgMs,
    storedBytes: Number(row.bytes),
    peakRssMb: Number(rss[1]),
    mbPerS: Number((dbBytes / 1048576 / (backupPgMs / 1000)).toFixed(1)),
  },
  throughputRatio: ratio,
  restore: { wallMs: restore.ms, rows: restoredRows },
  targets: {
    peakRssUnder150Mb: Number(rss[1]) < 150,
    throughputAtLeast0_8: ratio >= 0.8,
  },
  jobLog: jobLog.split('\n').map((l) => l.replace(/^\S+ /, '')),
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
const out = join(root, `bench/results/backup${ENCRYPT ? '-encrypted' : ''}.json`);
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
log(`written ${out}: ratio ${ratio}, peak RSS ${rss[1]} MB`);
