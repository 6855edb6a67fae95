import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './sshd.js';

/**
 * A real, throwaway PostgreSQL server for one test file: initdb into a temp
 * dir, SCRAM passwords only, listening on 127.0.0.1 at a free port and on a
 * unix socket in the temp dir. stop() ends the clients it handed out, stops
 * the server and removes the dir.
 *
 * PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the
 * `postgres` system user (runuser), which owns the temp dir.
 */
export interface Postgres {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Holds the unix socket `.s.PGSQL.<port>`. */
  readonly socketDir: string;
  readonly user: 'postgres';
  /** A connected client (ended by stop()); `database` defaults to `postgres`. */
  connect(database?: string): Promise<pg.Client>;
  /** CREATE DATABASE for a test group that wants a fresh one; returns its name. */
  createDatabase(name: string): Promise<string>;
  /** The server log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

const SERVICE_USER = 'postgres';

function run(file: string, args: readonly string[], cwd: string): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  const [cmd, argv] = asRoot
    ? ['runuser', ['-u', SERVICE_USER, '--', file, ...args]]
    : [file, [...args]];
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      argv,
      // LC_ALL: initdb and the server take their locale from the environment.
      { cwd, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, timeout: 60_000 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${file} failed: ${err.message}\n${stdout}${stderr}`))
          : resolve(stdout),
    );
  });
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function serviceIds(): { uid: number; gid: number } {
  // /etc/passwd: name:x:uid:gid:…
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === SERVICE_USER) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`no ${SERVICE_USER} system user to run PostgreSQL as (tests run as root)`);
}

export async function startPostgres(): Promise<Postgres> {
  const dir = mkdtempSync(join(tmpdir(), 'cc-pg-'));
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const pwFile = join(dir, 'pwfile');
  const password = randomBytes(24).toString('base64url');
  const clients: pg.Client[] = [];
  let started = false;

  const stop = async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.end()));
    if (started) {
      started = false;
      try {
        await run(
          join(PG_BIN, 'pg_ctl'),
          ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'],
          dir,
        );
      } catch {
        // Not stopped cleanly: end the postmaster by the PID it wrote.
        try {
          const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
          if (pid > 0) process.kill(pid, 'SIGQUIT');
        } catch {
          // no pid file or no such process: nothing runs
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // The password reaches initdb in a file, never on argv.
    writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
    if (process.getuid?.() === 0) {
      const { uid, gid } = serviceIds();
      chownSync(dir, uid, gid);
      chownSync(pwFile, uid, gid);
    }
    await run(
      join(PG_BIN, 'initdb'),
      [
        '-D',
        data,
        '-U',
        SERVICE_USER,
        '--auth=scram-sha-256',
        `--pwfile=${pwFile}`,
        '-E',
        'UTF8',
        '--no-locale',
        '--no-sync',
      ],
      dir,
    );
    rmSync(pwFile);

    const port = await freePort();
    // Settings in postgresql.conf rather than `pg_ctl -o`, whose string goes through a shell.
    appendFileSync(
      join(data, 'postgresql.conf'),
      [
        '',
        '# cluster-cli test server',
        "listen_addresses = '127.0.0.1'",
        `port = ${port}`,
        `unix_socket_directories = '${dir}'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        'max_connections = 50',
        "password_encryption = 'scram-sha-256'",
        '',
      ].join('\n'),
    );
    await run(join(PG_BIN, 'pg_ctl'), ['-D', data, '-l', logFile, '-w', '-t', '60', 'start'], dir);
    started = true;

    const connect = async (database = 'postgres') => {
      const client = new pg.Client({
        host: '127.0.0.1',
        port,
        user: SERVICE_USER,
        password,
        database,
      });
      await client.connect();
      clients.push(client);
      return client;
    };
    let admin: pg.Client | undefined;
    return {
      host: '127.0.0.1',
      port,
      socketDir: dir,
      user: SERVICE_USER,
      connect,
      async createDatabase(name) {
        if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad test database name ${name}`);
        admin ??= await connect();
        // An identifier cannot be a $n parameter; the name is checked above.
        await admin.query(`CREATE DATABASE "${name}"`);
        return name;
      },
      log: () => readLog(logFile),
      stop,
    };
  } catch (err) {
    const log = readLog(logFile);
    await stop();
    throw log ? new Error(`${(err as Error).message}\n${log}`, { cause: err }) : err;
  }
}
