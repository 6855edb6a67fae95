import type { Queryable } from '../db/queryable.js';

/**
 * TLS state in `cluster_cli.kv`, shared by every cluster-cli that reaches the
 * database (the CLI on a laptop, the agent on each manager). The private keys
 * live here and in Docker secrets only; the database is never published.
 */

/** What the certificate must cover and where it comes from; written by `ssl enable`. */
export interface TlsSettings {
  readonly stack: string;
  readonly domains: readonly string[];
  readonly directory: string;
  readonly email: string;
  /** PEM of a private CA that signs the directory's HTTPS, if any. */
  readonly caRoot?: string;
  readonly renewDays: number;
}

export interface StoredAccount {
  readonly key: string;
  readonly url: string;
}

export interface StoredCertificate {
  readonly certificate: string;
  readonly key: string;
  readonly domains: readonly string[];
  readonly issuer: string;
  readonly serial: string;
  readonly fingerprint: string;
  readonly notAfter: string;
  readonly obtainedAt: string;
  readonly obtainedBy: string;
  /** The ACME directory it came from: a new one (staging → production) means a new certificate. */
  readonly directory?: string;
}

/** The last attempt and the last success, for `ssl status`. */
export interface TlsStatus {
  readonly lastAttemptAt?: string;
  readonly lastAttemptBy?: string;
  readonly lastError?: string;
  readonly lastRenewalAt?: string;
  readonly lastRenewalBy?: string;
  /** The id of the last request from the CLI that an agent handled, and how. */
  readonly handled?: { readonly id: string; readonly ok: boolean; readonly detail: string };
}

/** `ssl enable` / `ssl renew` ask the agents through this row; one of them takes it. */
export interface TlsRequest {
  readonly id: string;
  readonly force: boolean;
  readonly requestedAt: string;
}

const KEYS = {
  settings: 'tls.settings',
  account: 'tls.account',
  certificate: 'tls.certificate',
  status: 'tls.status',
  request: 'tls.request',
} as const;
type Key = keyof typeof KEYS;
interface Values {
  settings: TlsSettings;
  account: StoredAccount;
  certificate: StoredCertificate;
  status: TlsStatus;
  request: TlsRequest;
}

export async function readTls<K extends Key>(
  db: Queryable,
  key: K,
): Promise<Values[K] | undefined> {
  const r = await db.query<{ value: Values[K] }>(
    'SELECT value FROM cluster_cli.kv WHERE key = $1',
    [KEYS[key]],
  );
  return r.rows[0]?.value;
}

export async function writeTls<K extends Key>(
  db: Queryable,
  key: K,
  value: Values[K],
): Promise<void> {
  await db.query(
    `INSERT INTO cluster_cli.kv (key, value, updated_at) VALUES ($1, $2::jsonb, now())
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()`,
    [KEYS[key], JSON.stringify(value)],
  );
}

/** Merge into the status row (one statement, so concurrent writers don't lose fields). */
export async function updateTlsStatus(db: Queryable, patch: TlsStatus): Promise<void> {
  await db.query(
    `INSERT INTO cluster_cli.kv (key, value, updated_at) VALUES ($1, $2::jsonb, now())
     ON CONFLICT (key) DO UPDATE SET value = cluster_cli.kv.value || excluded.value, updated_at = now()`,
    [KEYS.status, JSON.stringify(patch)],
  );
}

/** ACME HTTP-01 key authorizations, answered by any agent replica. */
export const challengeStore = (db: Queryable, ttlMinutes = 30) => ({
  async set(token: string, keyAuthorization: string): Promise<void> {
    await db.query(
      `INSERT INTO cluster_cli.acme_challenges (token, key_authorization, expires_at)
       VALUES ($1, $2, now() + $3::int * interval '1 minute')
       ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization,
         expires_at = excluded.expires_at`,
      [token, keyAuthorization, ttlMinutes],
    );
  },
  async remove(token: string): Promise<void> {
    await db.query('DELETE FROM cluster_cli.acme_challenges WHERE token = $1', [token]);
  },
});

export async function lookupChallenge(db: Queryable, token: string): Promise<string | undefined> {
  const r = await db.query<{ key_authorization: string }>(
    'SELECT key_authorization FROM cluster_cli.acme_challenges WHERE token = $1 AND expires_at > now()',
    [token],
  );
  return r.rows[0]?.key_authorization;
}
