import { findPostgresTask, postgresRelay, readContainerSecret } from '../cluster/db-route.js';
import { UserError } from '../core/errors.js';
import { secret } from '../core/secret.js';
import type { HostSession } from '../core/session.js';
import { migrate } from '../db/migrations.js';
import { connectPostgresOver, type Database } from '../remote/postgres.js';
import { type ClusterHandle, hostTarget } from './cluster.js';
import { connectSession, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';

export interface OpenDatabase {
  readonly db: Database;
  /** The node the database runs on. */
  readonly node: string;
  close(): Promise<void>;
}

/**
 * A session with the platform PostgreSQL, through the SSH connection of the
 * node that runs it (see cluster/db-route.ts), with the cluster_cli schema
 * migrated to this version.
 */
export async function openDatabase(
  ctx: Ctx,
  h: ClusterHandle,
  flags: SshFlags,
): Promise<OpenDatabase> {
  const task = await findPostgresTask(h.manager.session.docker(), h.config.name);
  let session: HostSession = h.manager.session;
  let own = false;
  if (task.hostname !== h.manager.host.name) {
    const host = h.config.hosts.find((x) => x.name === task.hostname);
    if (!host) {
      throw new UserError(
        `PostgreSQL runs on ${task.hostname}, which ${h.configArg} does not list, so cluster-cli cannot reach it over SSH.`,
        `add it to cluster.yaml: cluster-cli node join <user@address> (or check ${h.configArg})`,
      );
    }
    session = await connectSession(ctx, hostTarget(host, flags, h.config));
    own = true;
  }
  try {
    const read = await session.exec.run(readContainerSecret(task.containerId, 'postgres_password'));
    const password = secret(read.stdout.replace(/\n+$/, ''));
    const relay = postgresRelay(task.containerId, h.config.deploy.checkImage);
    const db = await connectPostgresOver(() => session.exec.stream(relay), {
      user: h.config.postgres.user,
      database: h.config.postgres.database,
      password,
    }).catch((err: unknown) => {
      throw new UserError(
        `Could not open the database on ${task.hostname}: ${err instanceof Error ? err.message : String(err)}`,
        `check that ${h.config.deploy.checkImage} (deploy.checkImage, it relays the connection) is on ${task.hostname}: cluster-cli images push ${h.config.deploy.checkImage}`,
      );
    });
    await migrate(db);
    return {
      db,
      node: task.hostname,
      async close() {
        await db.end().catch(() => {});
        if (own) await session.close();
      },
    };
  } catch (err) {
    if (own) await session.close();
    throw err;
  }
}

/** The database for the length of `fn`, closed afterwards whatever happens. */
export async function withDatabase<T>(
  ctx: Ctx,
  h: ClusterHandle,
  flags: SshFlags,
  fn: (db: Database, node: string) => Promise<T>,
): Promise<T> {
  const opened = await openDatabase(ctx, h, flags);
  try {
    return await fn(opened.db, opened.node);
  } finally {
    await opened.close();
  }
}
