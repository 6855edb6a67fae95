import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BACKUP_JOB_LABEL,
  cronFile,
  cronFilePath,
  cronScript,
  cronScriptPath,
  jobEnv,
  jobServiceCreate,
  writeFileCmd,
} from '../../src/backup/job.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { formatCmd } from '../../src/core/cmd.js';

const RECIPIENT = `age1${'q'.repeat(58)}`;
const RUN = ['backup', 'job', 'run', '--scheduled'];

function configOf(over: Partial<ConfigInput> = {}) {
  return validateConfig({
    domain: 'app.example.com',
    email: 'admin@example.com',
    hosts: [{ name: 'node1', address: '10.77.0.11' }],
    backup: {
      s3: { endpoint: 'http://10.77.0.1:8080', bucket: 'backups', pathStyle: true },
      schedule: '0 3 * * *',
    },
    agent: { image: 'cluster-cli:dev' },
    ...over,
  }).config;
}

const config = configOf();

/** `--flag value` pairs of an argv, in order. */
function values(argv: readonly string[], flag: string): string[] {
  return argv.flatMap((w, i) => (w === flag ? [argv[i + 1] as string] : []));
}

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-job-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('jobServiceCreate', () => {
  const create = jobServiceCreate(config, {
    name: 'platform_backup_20261124T0300',
    args: RUN,
    withIdentity: false,
  });
  const argv = create.argv;

  it('creates a one-shot job that is never restarted (backup run waits for it), labelled with the stack', () => {
    expect(argv.slice(0, 3)).toEqual(['docker', 'service', 'create']);
    expect(values(argv, '--name')).toEqual(['platform_backup_20261124T0300']);
    expect(values(argv, '--mode')).toEqual(['replicated-job']);
    expect(values(argv, '--restart-condition')).toEqual(['none']);
    expect(values(argv, '--label')).toEqual([`${BACKUP_JOB_LABEL}=platform`]);
    expect(argv).toContain('--detach');
    expect(create.stdin).toBeUndefined();
  });

  it('runs beside the databases (the first manager without a db=primary label)', () => {
    expect(values(argv, '--constraint')).toEqual(['node.hostname == node1']);
  });

  it('with a db=primary label the constraint is node.labels.db == primary', () => {
    const labelled = configOf({
      hosts: [
        { name: 'node1', address: '10.77.0.11' },
        { name: 'node2', address: '10.77.0.12', role: 'worker', labels: { db: 'primary' } },
      ],
    });
    const a = jobServiceCreate(labelled, { name: 'j', args: RUN, withIdentity: false }).argv;
    expect(values(a, '--constraint')).toEqual(['node.labels.db == primary']);
  });

  it('joins the data and the ingress networks and mounts the Docker socket', () => {
    expect(values(argv, '--network')).toEqual(['platform-data', 'platform-ingress']);
    expect(values(argv, '--mount')).toEqual([
      'type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock',
    ]);
  });

  it('mounts secrets by name with their targets; the age identity only when asked', () => {
    expect(values(argv, '--secret')).toEqual([
      'source=platform_postgres_password,target=postgres_password',
      'source=platform_backup_s3_access_key,target=backup_s3_access_key',
      'source=platform_backup_s3_secret_key,target=backup_s3_secret_key',
    ]);
    const withIdentity = jobServiceCreate(config, { name: 'j', args: RUN, withIdentity: true });
    expect(values(withIdentity.argv, '--secret')).toContain(
      'source=platform_backup_age_identity,target=backup_age_identity',
    );
  });

  it('passes the settings as environment, secrets only as file paths', () => {
    expect(values(argv, '--env')).toEqual([
      'CLUSTER_CLI_STACK=platform',
      'PGHOST=postgres',
      'PGPORT=5432',
      'PGUSER=app',
      'PGDATABASE=app',
      'PGPASSWORD_FILE=/run/secrets/postgres_password',
      'BACKUP_S3_ENDPOINT=http://10.77.0.1:8080',
      'BACKUP_S3_BUCKET=backups',
      'BACKUP_S3_REGION=us-east-1',
      'BACKUP_S3_PREFIX=cluster-cli',
      'BACKUP_S3_PATH_STYLE=true',
      'BACKUP_SCHEDULE=0 3 * * *',
      'BACKUP_RETENTION=daily=7,weekly=4,monthly=6,yearly=0',
      'NODE_OPTIONS=--max-semi-space-size=1 --max-old-space-size=96',
    ]);
  });

  it('ends with the agent image, then the job arguments', () => {
    expect(argv.slice(-5)).toEqual(['cluster-cli:dev', ...RUN]);
  });

  it('no word of it looks like a secret, even with encryption on', () => {
    const encrypted = configOf({
      backup: {
        s3: { endpoint: 'http://10.77.0.1:8080', bucket: 'backups', pathStyle: true },
        schedule: '0 3 * * *',
        recipient: RECIPIENT,
      },
    });
    const all = jobServiceCreate(encrypted, { name: 'j', args: RUN, withIdentity: true }).argv;
    expect(values(all, '--env')).toContain(`BACKUP_AGE_RECIPIENT=${RECIPIENT}`); // public
    for (const word of all) {
      expect(word).not.toMatch(/AGE-SECRET-KEY-|-----BEGIN|AKIA[0-9A-Z]{16}/);
    }
    const secretish = /PASS|SECRET|TOKEN|CREDENTIAL|(^|_)KEY($|_)/i;
    for (const [name, value] of Object.entries(jobEnv(encrypted))) {
      if (secretish.test(name)) expect({ name, value }).toMatchObject({ name: /_FILE$/ });
    }
    // Secrets are referenced by name, never by value.
    for (const s of values(all, '--secret'))
      expect(s).toMatch(/^source=platform_[a-z0-9_]+,target=[a-z0-9_]+$/);
  });
});

/**
 * Runs cronScript(config) with `docker` and `date` replaced by stubs (no
 * Docker daemon here): `date` answers 2026-11-24 03:00 UTC, `hostname`
 * node2; `docker` records
 * its argv and plays a swarm holding `services` (id → the state of its one
 * task). Like the real daemon, a job's task has desired state `complete`
 * whether it is still running or done.
 */
function runCronScript(services: Record<string, 'running' | 'complete'> = {}) {
  const dir = tempDir();
  const log = join(dir, 'docker.log');
  const stub = (name: string, body: string) => {
    const file = join(dir, name);
    writeFileSync(file, `#!${process.execPath}\n${body}\n`);
    chmodSync(file, 0o755);
  };
  stub(
    'date',
    `const a = process.argv.slice(2);
if (a.join(' ') !== '-u +%Y%m%dT%H%M') { console.error('unexpected date ' + a.join(' ')); process.exit(2); }
console.log('20261124T0300');`,
  );
  stub('hostname', "console.log('node2');");
  stub(
    'docker',
    `const fs = require('node:fs');
const a = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(a) + '\\n');
const services = ${JSON.stringify(services)};
if (a[0] === 'service' && a[1] === 'ls') for (const id of Object.keys(services)) console.log(id);
if (a[0] === 'service' && a[1] === 'ps') {
  const state = services[a[a.length - 1]];
  const f = a.indexOf('--filter');
  const desired = f >= 0 && a[f + 1].startsWith('desired-state=') ? a[f + 1].slice(14) : undefined;
  if (state && (desired === undefined || desired === 'complete')) {
    const fmt = a.indexOf('--format');
    if (fmt >= 0) console.log(state === 'running' ? 'Running 2 minutes ago' : 'Complete 1 hour ago');
    else console.log('task-' + a[a.length - 1]);
  }
}`,
  );
  const script = join(dir, 'backup');
  writeFileSync(script, cronScript(config), { mode: 0o755 });
  const r = spawnSync('sh', [script], {
    encoding: 'utf8',
    env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` },
  });
  const calls = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as string[]);
  return { status: r.status, stderr: r.stderr, calls };
}

describe('cronScript', () => {
  const script = cronScript(config);

  it('is valid sh', () => {
    const file = join(tempDir(), 'backup');
    writeFileSync(file, script);
    const r = spawnSync('sh', ['-n', file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(script.startsWith('#!/bin/sh\n')).toBe(true);
  });

  it('starts the job named by the UTC minute, labelled with this manager, with exactly the argv jobServiceCreate builds', () => {
    const { status, stderr, calls } = runCronScript();
    expect(stderr).toBe('');
    expect(status).toBe(0);
    const expected = jobServiceCreate(config, {
      name: 'platform_backup_20261124T0300',
      args: RUN,
      withIdentity: false,
      startedBy: 'node2',
      restartOnFailure: true,
    }).argv;
    expect(expected).toContain('io.cluster-cli.started-by=node2');
    // a scheduled job that dies is started again: its new task takes the tick over
    expect(values(expected, '--restart-condition')).toEqual(['on-failure']);
    expect(values(expected, '--restart-max-attempts')).toEqual(['3']);
    // Through the shell's quoting and back: 'node.hostname == node1', 'BACKUP_SCHEDULE=0 3 * * *'.
    expect(calls.at(-1)).toEqual(expected.slice(1));
  });

  it('lists earlier jobs by the stack label and removes the finished ones', () => {
    const { calls } = runCronScript({ old1: 'complete', old2: 'complete' });
    expect(calls[0]?.slice(0, 2)).toEqual(['service', 'ls']);
    expect(values(calls[0] ?? [], '--filter')).toEqual([`label=${BACKUP_JOB_LABEL}=platform`]);
    const removed = calls.filter((c) => c[0] === 'service' && c[1] === 'rm').map((c) => c[2]);
    expect(removed).toEqual(['old1', 'old2']);
    expect(calls.at(-1)?.slice(0, 2)).toEqual(['service', 'create']);
  });

  // A replicated-job's task has desired state `complete` from the start
  // (swarmkit's jobs orchestrator): the script judges by the current state.
  it('keeps a job that is still running', () => {
    const { calls } = runCronScript({ done: 'complete', busy: 'running' });
    const removed = calls.filter((c) => c[0] === 'service' && c[1] === 'rm').map((c) => c[2]);
    expect(removed).toEqual(['done']);
  });
});

describe('cronFile', () => {
  it('runs the script as root on the schedule, in UTC, logging to a file', () => {
    expect(cronFile(config)).toBe(
      [
        '# cluster-cli: scheduled backup of platform (UTC). Written by `cluster-cli backup setup`.',
        'CRON_TZ=UTC',
        'SHELL=/bin/sh',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '0 3 * * * root /usr/local/lib/cluster-cli/platform-backup >>/var/log/cluster-cli-platform-backup.log 2>&1',
        '',
      ].join('\n'),
    );
    expect(cronScriptPath('platform')).toBe('/usr/local/lib/cluster-cli/platform-backup');
  });

  it('lives where cron reads it, under a name cron does not skip', () => {
    const path = cronFilePath('platform');
    expect(path).toBe('/etc/cron.d/cluster-cli-platform-backup');
    expect(path.split('/').at(-1)).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  const withSchedule = (schedule: string) =>
    configOf({
      backup: { s3: { endpoint: 'http://10.77.0.1:8080', bucket: 'backups' }, schedule },
    });

  // BUG (src/backup/job.ts cronFile): it writes backup.schedule as the user
  // wrote it, not parseSchedule(...).fields as schedule.ts promises. Drop
  // `.fails` once fixed.
  it('writes the schedule with names turned into numbers', () => {
    expect(cronFile(withSchedule('0 3 * * mon-fri'))).toContain(
      '\n0 3 * * 1-5 root /usr/local/lib/cluster-cli/platform-backup ',
    );
  });

  // BUG (src/config/schema.ts): backup.schedule is only `.min(9)`, so the
  // @nicknames parseSchedule accepts (and `backup setup --schedule @daily`
  // stores) are refused. Drop `.fails` once fixed.
  it('takes @daily, as backup setup stores it', () => {
    expect(cronFile(withSchedule('@daily'))).toContain('\n0 0 * * * root ');
  });

  // BUG (src/config/schema.ts): an invalid schedule in cluster.yaml passes
  // validateConfig and reaches cron.d as it is, a newline included. Drop
  // `.fails` once fixed.
  it.each(['61 3 * * *', '0 3 * * *\n* * * * * root sh /tmp/x'])(
    'a cluster.yaml with the schedule %j is refused',
    (schedule) => {
      expect(() => withSchedule(schedule)).toThrow(/backup\.schedule/);
    },
  );

  it('refuses a config without a backup section', () => {
    const { backup: _none, ...rest } = config;
    expect(() => cronFile(rest)).toThrow('cronFile: no backup section');
  });
});

describe('writeFileCmd', () => {
  const content = 'line 1 $(touch pwned) `id` "q" \'s\' %\nline 2\n';

  it('carries the content on stdin only', () => {
    const c = writeFileCmd('/etc/cron.d/cluster-cli-platform-backup', content, '0644');
    expect(c.stdin).toBe(content);
    for (const word of c.argv) expect(word).not.toContain('line 1');
    expect(c.argv.slice(-2)).toEqual(['/etc/cron.d/cluster-cli-platform-backup', '0644']);
    expect(formatCmd(c)).not.toContain('line 1');
  });

  it('writes the file byte for byte, with its mode, creating the directory', () => {
    const dir = tempDir();
    const path = join(dir, 'new dir', 'cron file');
    for (const [text, mode] of [
      ['old\n', '0755'],
      [content, '0644'],
    ] as const) {
      const c = writeFileCmd(path, text, mode);
      const r = spawnSync(c.argv[0] as string, c.argv.slice(1), {
        cwd: dir,
        input: c.stdin as string,
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(readFileSync(path, 'utf8')).toBe(text);
      expect((statSync(path).mode & 0o777).toString(8)).toBe(mode.slice(1));
    }
    expect(readdirSync(join(dir, 'new dir'))).toEqual(['cron file']); // no .new left behind
    expect(readdirSync(dir)).not.toContain('pwned');
  });
});
