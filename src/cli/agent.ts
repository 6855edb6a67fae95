import { hostname } from 'node:os';
import { startAgent } from '../agent/agent.js';
import { migrate } from '../db/migrations.js';
import { connectDockerSocket } from '../remote/docker-api.js';
import { connectPostgresTcp } from '../remote/postgres.js';
import { obtainCertificate } from '../tls/acme.js';
import type { Ctx } from './context.js';

/**
 * `cluster-cli agent`: the process inside the agent service's containers
 * (see stack/render.ts). Everything comes from the environment the stack
 * sets: the database (PG* and PGPASSWORD_FILE), the manager's Docker socket,
 * the node's name. Runs until SIGTERM.
 */
export async function runAgent(ctx: Ctx): Promise<void> {
  const env = process.env;
  const need = (k: string) => {
    const v = env[k];
    if (!v) throw new Error(`agent: ${k} is not set (the agent runs inside the cluster's stack)`);
    return v;
  };
  const pg = {
    host: env.PGHOST ?? 'postgres',
    port: Number(env.PGPORT ?? 5432),
    user: need('PGUSER'),
    database: need('PGDATABASE'),
    passwordFile: need('PGPASSWORD_FILE'),
  };
  const log = (line: string) => ctx.stdout.write(`${new Date().toISOString()} ${line}\n`);
  // The database may still be starting: retry for a while rather than crash-loop.
  const connect = async () => {
    for (let i = 0; ; i++) {
      try {
        return await connectPostgresTcp(pg);
      } catch (err) {
        if (i >= 60) throw err;
        log(`waiting for the database: ${err instanceof Error ? err.message : String(err)}`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  };
  const work = await connect();
  const serve = await connect();
  await migrate(work);
  const owner = `${env.CLUSTER_CLI_NODE ?? hostname()}/${hostname()}`;
  const agent = await startAgent({
    work,
    serve,
    api: connectDockerSocket(env.DOCKER_SOCKET ?? '/var/run/docker.sock', owner),
    owner,
    checkMs: Number(env.CLUSTER_CLI_TLS_CHECK_SECONDS ?? 3600) * 1000,
    obtain: obtainCertificate,
    now: () => new Date(),
    log,
  });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log('stopping');
  await agent.stop();
  await work.end();
  await serve.end();
}
