import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { Stream } from '../core/executor.js';
import { type Secret, secret } from '../core/secret.js';
import type { Queryable } from '../db/queryable.js';
import { StreamSocket } from './stream-socket.js';

/** A PostgreSQL session: run queries, then end it. */
export interface Database extends Queryable {
  end(): Promise<void>;
}

export interface PgLogin {
  readonly user: string;
  readonly database: string;
  readonly password: Secret;
}

/**
 * PostgreSQL over a byte stream that some command relays to the server (see
 * cluster/db-route.ts): the database port is never published, and the
 * password travels inside the protocol (SCRAM), never on a command line.
 */
export async function connectPostgresOver(
  open: () => Promise<Stream>,
  login: PgLogin,
): Promise<Database> {
  const stream = new StreamSocket(await open());
  const client = new pg.Client({
    user: login.user,
    database: login.database,
    password: login.password.reveal(),
    stream: () => stream,
    ssl: false,
    connectionTimeoutMillis: 20_000,
  } as pg.ClientConfig);
  return connected(client);
}

/**
 * PostgreSQL by TCP, with the password read from a file: the agent inside the
 * cluster, on the stack's data network (PGHOST etc. from its environment).
 */
export async function connectPostgresTcp(opts: {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  readonly passwordFile: string;
}): Promise<Database> {
  const password = secret((await readFile(opts.passwordFile, 'utf8')).replace(/\n+$/, ''));
  const client = new pg.Client({
    host: opts.host,
    port: opts.port,
    user: opts.user,
    database: opts.database,
    password: password.reveal(),
    connectionTimeoutMillis: 10_000,
  });
  return connected(client);
}

async function connected(client: pg.Client): Promise<Database> {
  // An idle session the server or the relay drops must not crash the process.
  client.on('error', () => {});
  await client.connect();
  const query = (text: string, values?: readonly unknown[]) =>
    client.query(text, values as unknown[] | undefined);
  return { query: query as Queryable['query'], end: () => client.end() };
}
