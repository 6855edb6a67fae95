import type { Config } from '../config/schema.js';
import { type Cmd, cmd, fileWrite } from '../core/cmd.js';
import { quoteArg } from '../core/quote.js';
import { networkNames, placement } from '../stack/model.js';
import { parseSchedule } from './schedule.js';

/**
 * The backup job: cluster-cli's own image run as a one-shot swarm service
 * (`replicated-job`) on the node that holds the databases, where it execs
 * pg_dump and redis-cli in the running tasks through the node's Docker
 * socket and streams their output to S3. The hosts need no Node.js. Every
 * manager's cron entry starts it for a tick (the service name carries the
 * tick, so a second manager's attempt is refused by name); inside, a claim
 * row in PostgreSQL keyed by the tick makes the run exactly once anyway.
 */

export const BACKUP_JOB_LABEL = 'io.cluster-cli.backup-job';
/** Which manager started a job (its cron script, or the CLI's manager). */
export const STARTED_BY_LABEL = 'io.cluster-cli.started-by';

export function backupSecretNames(stack: string) {
  return {
    accessKey: `${stack}_backup_s3_access_key`,
    secretKey: `${stack}_backup_s3_secret_key`,
    identity: `${stack}_backup_age_identity`,
  } as const;
}

/** File names under /run/secrets inside the job. */
export const JOB_SECRET_FILES = {
  postgresPassword: 'postgres_password',
  redisPassword: 'redis_password',
  accessKey: 'backup_s3_access_key',
  secretKey: 'backup_s3_secret_key',
  identity: 'backup_age_identity',
} as const;

export type JobAction = 'run' | 'verify' | 'restore';

/** The environment the job reads its settings from (nothing secret: those are files). */
export function jobEnv(config: Config): Record<string, string> {
  const b = config.backup;
  if (!b) throw new Error('jobEnv: no backup section');
  return {
    CLUSTER_CLI_STACK: config.name,
    PGHOST: 'postgres',
    PGPORT: '5432',
    PGUSER: config.postgres.user,
    PGDATABASE: config.postgres.database,
    PGPASSWORD_FILE: `/run/secrets/${JOB_SECRET_FILES.postgresPassword}`,
    BACKUP_S3_ENDPOINT: b.s3.endpoint,
    BACKUP_S3_BUCKET: b.s3.bucket,
    BACKUP_S3_REGION: b.s3.region,
    BACKUP_S3_PREFIX: b.s3.prefix,
    BACKUP_S3_PATH_STYLE: String(b.s3.pathStyle),
    BACKUP_SCHEDULE: b.schedule,
    BACKUP_RETENTION: `daily=${b.retention.daily},weekly=${b.retention.weekly},monthly=${b.retention.monthly},yearly=${b.retention.yearly}`,
    ...(b.recipient ? { BACKUP_AGE_RECIPIENT: b.recipient } : {}),
    // A small young generation and old space: buffers that streamed through are
    // collected sooner, which keeps the job's peak RSS near its working set
    // (bench/backup.mjs measures it; the heap in use stays ~20 MB).
    NODE_OPTIONS: '--max-semi-space-size=1 --max-old-space-size=96',
  };
}

/**
 * `docker service create` of one job. `name` must be unique per run; the
 * arguments after the image are the job's (`backup job run --scheduled`).
 */
export function jobServiceCreate(
  config: Config,
  o: {
    name: string;
    args: readonly string[];
    withIdentity: boolean;
    startedBy?: string;
    /**
     * Start the job again when it dies (killed, out of memory): the scheduled
     * job, whose new task takes the tick over once the dead one's claim lapses.
     * A run that failed on its own records so and the new task finds the tick done.
     */
    restartOnFailure?: boolean;
  },
): Cmd {
  const nets = networkNames(config.name);
  const secrets = backupSecretNames(config.name);
  const secret = (source: string, target: string) => [
    '--secret',
    `source=${source},target=${target}`,
  ];
  return cmd([
    'docker',
    'service',
    'create',
    '--detach',
    '--quiet',
    '--name',
    o.name,
    '--mode',
    'replicated-job',
    ...(o.restartOnFailure
      ? [
          '--restart-condition',
          'on-failure',
          '--restart-max-attempts',
          '3',
          '--restart-delay',
          '10s',
        ]
      : ['--restart-condition', 'none']),
    '--label',
    `${BACKUP_JOB_LABEL}=${config.name}`,
    ...(o.startedBy ? ['--label', `${STARTED_BY_LABEL}=${o.startedBy}`] : []),
    // Beside the databases: the job reaches their tasks through this node's Docker socket.
    ...placement(config).data.flatMap((c) => ['--constraint', c]),
    '--network',
    nets.data,
    // The data network is internal: the store is reached through the ingress network.
    '--network',
    nets.ingress,
    '--mount',
    'type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock',
    ...secret(`${config.name}_postgres_password`, JOB_SECRET_FILES.postgresPassword),
    ...secret(secrets.accessKey, JOB_SECRET_FILES.accessKey),
    ...secret(secrets.secretKey, JOB_SECRET_FILES.secretKey),
    ...(o.withIdentity ? secret(secrets.identity, JOB_SECRET_FILES.identity) : []),
    ...Object.entries(jobEnv(config)).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    config.agent.image,
    ...o.args,
  ]);
}

/** Where each manager keeps the script its cron entry runs. */
export function cronScriptPath(stack: string): string {
  return `/usr/local/lib/cluster-cli/${stack}-backup`;
}

export function cronFilePath(stack: string): string {
  return `/etc/cron.d/cluster-cli-${stack}-backup`;
}

/**
 * The script every manager's cron runs: remove finished jobs of earlier
 * ticks, then start this tick's (named by the minute, so the managers that
 * fire together start one; the claim inside settles any clock skew).
 */
export function cronScript(config: Config): string {
  const create = jobServiceCreate(config, {
    name: '__NAME__',
    args: ['backup', 'job', 'run', '--scheduled'],
    withIdentity: false,
    startedBy: '__HOST__',
    restartOnFailure: true,
  });
  const words = create.argv.map((w) =>
    w === '__NAME__'
      ? '"$name"'
      : w === `${STARTED_BY_LABEL}=__HOST__`
        ? `${STARTED_BY_LABEL}="$(hostname)"`
        : quoteArg(w),
  );
  return [
    '#!/bin/sh',
    `# cluster-cli: scheduled backup of ${config.name}. Written by \`cluster-cli backup setup\`;`,
    '# every manager runs it from cron, one job per tick starts.',
    'set -u',
    `name=${quoteArg(`${config.name}_backup_`)}"$(date -u +%Y%m%dT%H%M)"`,
    // A job's tasks have the desired state `complete` from the start: judge by the current state.
    `for s in $(docker service ls --format '{{.Name}}' --filter label=${BACKUP_JOB_LABEL}=${config.name}); do`,
    '  [ "$s" = "$name" ] && continue',
    '  docker service ps --format \'{{.CurrentState}}\' "$s" | grep -qvE \'^(Complete|Failed|Shutdown|Rejected|Orphaned|Remove)\' || docker service rm "$s" >/dev/null',
    'done',
    `exec ${words.join(' ')}`,
    '',
  ].join('\n');
}

/** The /etc/cron.d file: the schedule (UTC), root, the script. */
export function cronFile(config: Config): string {
  const b = config.backup;
  if (!b) throw new Error('cronFile: no backup section');
  return [
    `# cluster-cli: scheduled backup of ${config.name} (UTC). Written by \`cluster-cli backup setup\`.`,
    'CRON_TZ=UTC',
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `${parseSchedule(b.schedule).fields} root ${cronScriptPath(config.name)} >>/var/log/cluster-cli-${config.name}-backup.log 2>&1`,
    '',
  ].join('\n');
}

/** Writing a file on a host through stdin (nothing in argv but the path and mode). */
export const writeFileCmd = fileWrite;
