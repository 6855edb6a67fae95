/**
 * The `cluster_cli` schema in the platform PostgreSQL (15+), as numbered
 * migrations. A migration, once released, is never edited: a change is a new
 * migration with the next number.
 *
 * ## Contract: `cluster_cli.users`
 * The control-plane app may READ this table to log admins in; only cluster-cli
 * writes it. Columns (stable; new ones may be added, none renamed or dropped
 * without a new major version):
 *
 * | column              | type        | meaning                                                        |
 * | ------------------- | ----------- | -------------------------------------------------------------- |
 * | id                  | bigint      | surrogate key (bigserial)                                      |
 * | name                | text        | login name, unique, `^[a-z][a-z0-9_.-]{0,31}$`                 |
 * | email               | text        | as typed; unique case-insensitively (index on lower(email))    |
 * | password_hash       | text        | `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>`                 |
 * | kdf                 | text        | `scrypt` (the only value so far)                               |
 * | kdf_params          | jsonb       | `{"ln":15,"r":8,"p":1,"saltBytes":16,"keyBytes":32}` (per row) |
 * | dashboard_hash      | text        | bcrypt (`$2b$10$…`) of the same password, for proxy basic auth |
 * | disabled            | boolean     | true: the user must not be let in                              |
 * | created_at          | timestamptz |                                                                |
 * | updated_at          | timestamptz | any change to the row                                          |
 * | password_changed_at | timestamptz | last password change                                           |
 *
 * Verifying a password against `password_hash`: salt and key are standard
 * base64 without padding (PHC string format); N = 2^ln. Derive
 * scrypt(utf8(password), salt, N, r, p, keylen = decoded key length) and compare
 * in constant time. The string alone is authoritative (rows hashed with other
 * parameters keep theirs); `kdf_params` mirrors it for queries. Name the
 * columns you read; never `SELECT *`.
 */
import type { Queryable } from './queryable.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** One or more statements, no parameters (sent as a simple query). */
  readonly sql: string;
}

export const SCHEMA = 'cluster_cli';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'users',
    sql: `
CREATE TABLE cluster_cli.users (
  id                  bigserial PRIMARY KEY,
  name                text NOT NULL,
  email               text NOT NULL,
  password_hash       text NOT NULL,
  kdf                 text NOT NULL,
  kdf_params          jsonb NOT NULL,
  dashboard_hash      text NOT NULL,
  disabled            boolean NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  password_changed_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_name_key UNIQUE (name),
  CONSTRAINT users_name_check CHECK (name ~ '^[a-z][a-z0-9_.-]{0,31}$'),
  CONSTRAINT users_email_check CHECK (position('@' in email) > 1)
);
CREATE UNIQUE INDEX users_email_lower_key ON cluster_cli.users (lower(email));
COMMENT ON TABLE cluster_cli.users IS
  'Admin users. Written by cluster-cli only; the control-plane app may read it (contract: src/db/migrations.ts).';
`,
  },
  {
    version: 2,
    name: 'claims',
    sql: `
CREATE TABLE cluster_cli.claims (
  kind        text NOT NULL,
  tick        text NOT NULL,
  owner       text NOT NULL,
  claimed_at  timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz NOT NULL,
  finished_at timestamptz,
  status      text NOT NULL DEFAULT 'running',
  detail      jsonb,
  PRIMARY KEY (kind, tick),
  CONSTRAINT claims_status_check CHECK (status IN ('running', 'ok', 'failed')),
  CONSTRAINT claims_finished_check CHECK ((status = 'running') = (finished_at IS NULL))
);
COMMENT ON TABLE cluster_cli.claims IS
  'One row per (kind, tick) of a scheduled job: whoever inserts it runs the tick (src/db/claims.ts).';
`,
  },
  {
    version: 3,
    name: 'kv and acme challenges',
    sql: `
CREATE TABLE cluster_cli.kv (
  key        text PRIMARY KEY,
  value      jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE cluster_cli.acme_challenges (
  token             text PRIMARY KEY,
  key_authorization text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  expires_at        timestamptz NOT NULL
);
CREATE INDEX acme_challenges_expires_at_idx ON cluster_cli.acme_challenges (expires_at);
`,
  },
  {
    version: 4,
    name: 'backup runs',
    sql: `
CREATE TABLE cluster_cli.backup_runs (
  id          text PRIMARY KEY,
  tick        text,
  owner       text NOT NULL,
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
  bytes       bigint NOT NULL DEFAULT 0,
  sizes       jsonb,
  error       text,
  verified_at timestamptz
);
CREATE INDEX backup_runs_started_at_idx ON cluster_cli.backup_runs (started_at);
`,
  },
];

/**
 * Key of the transaction-level advisory lock every migrate() takes: two CLIs
 * (or agents) migrating at once run one after the other, and the second finds
 * nothing left to do. A fixed bigint: the ASCII bytes of "cluster_".
 */
export const MIGRATION_LOCK_KEY = '7164230245974110815';

export interface MigrateResult {
  /** Versions this call applied, in order. */
  readonly applied: number[];
  /** Highest version in the database afterwards. */
  readonly current: number;
}

/**
 * Apply pending migrations, each in its own transaction that first takes the
 * advisory lock, then reads which versions are in. `db` must be one session
 * (see Queryable).
 */
export async function migrate(
  db: Queryable,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrateResult> {
  checkOrder(migrations);
  const applied: number[] = [];

  // Fast path, no lock and no DDL: everything is in already.
  const before = await appliedVersions(db);
  if (before && migrations.every((m) => before.has(m.version))) {
    return { applied, current: highest(before) };
  }

  for (;;) {
    const step = await inTransaction(db, async () => {
      await db.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
      let done = await appliedVersions(db);
      if (!done) {
        await db.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
        await db.query(
          `CREATE TABLE IF NOT EXISTS ${SCHEMA}.schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
           )`,
        );
        done = new Set();
      }
      const next = migrations.find((m) => !done.has(m.version));
      if (!next) return { next: undefined, current: highest(done) };
      try {
        await db.query(next.sql);
      } catch (err) {
        throw new Error(`migration ${next.version} (${next.name}) failed: ${errorText(err)}`, {
          cause: err,
        });
      }
      await db.query(`INSERT INTO ${SCHEMA}.schema_migrations (version, name) VALUES ($1, $2)`, [
        next.version,
        next.name,
      ]);
      return { next, current: highest(done.add(next.version)) };
    });
    if (!step.next) return { applied, current: step.current };
    applied.push(step.next.version);
  }
}

/** Versions recorded in schema_migrations, or undefined when the table does not exist yet. */
async function appliedVersions(db: Queryable): Promise<Set<number> | undefined> {
  // A scan of pg_class with this statement's snapshot, not to_regclass(): that
  // goes through the backend's catalog cache, which an advisory lock does not
  // refresh, so a caller that waited for another's first migration could still
  // see "no table" and run migration 1 again.
  const { rows: exists } = await db.query<{ present: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_catalog.pg_class c
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = 'schema_migrations'
     ) AS present`,
    [SCHEMA],
  );
  if (!exists[0]?.present) return undefined;
  const { rows } = await db.query<{ version: number }>(
    `SELECT version FROM ${SCHEMA}.schema_migrations`,
  );
  return new Set(rows.map((r) => r.version));
}

async function inTransaction<T>(db: Queryable, body: () => Promise<T>): Promise<T> {
  await db.query('BEGIN');
  let result: T;
  try {
    result = await body();
  } catch (err) {
    try {
      await db.query('ROLLBACK');
    } catch {
      // the connection is gone; the server rolls back on its own
    }
    throw err;
  }
  await db.query('COMMIT');
  return result;
}

function highest(versions: Set<number>): number {
  let max = 0;
  for (const v of versions) if (v > max) max = v;
  return max;
}

function checkOrder(migrations: readonly Migration[]): void {
  let prev = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= prev) {
      throw new Error(`migrations out of order at version ${m.version} (${m.name})`);
    }
    prev = m.version;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
