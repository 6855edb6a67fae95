/**
 * Basic-auth user lists for the proxy's dashboard. The proxy needs bcrypt, and
 * the CLI knows a plaintext password only when it is set (user create, user
 * passwd), so a bcrypt hash of it is kept in `users.dashboard_hash` next to the
 * scrypt login hash, and these files are rendered from the stored hashes.
 *
 * Hashes keep bcryptjs's `$2b$` prefix: Go's bcrypt (Caddy, Traefik) reads
 * every prefix, and the basic-auth code Traefik builds on (go-http-auth) has
 * listed `$2a$`, `$2b$`, `$2x$` and `$2y$` since 2016.
 */
import bcrypt from 'bcryptjs';
import { UserError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { MAX_PASSWORD_BYTES, USER_NAME_RE } from './password.js';

export const DASHBOARD_BCRYPT_COST = 10;

const BCRYPT_RE = /^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$/;

export interface DashboardUser {
  readonly name: string;
  /** bcrypt hash (`users.dashboard_hash`). */
  readonly dashboardHash: string;
  /** Disabled users are left out of the files. */
  readonly disabled?: boolean;
}

export async function bcryptHash(pw: Secret, cost = DASHBOARD_BCRYPT_COST): Promise<string> {
  const value = pw.reveal();
  if (Buffer.byteLength(value, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new UserError(`Password too long: ${MAX_PASSWORD_BYTES} bytes at most`);
  }
  const salt = await bcrypt.genSalt(cost);
  return bcrypt.hash(value, salt);
}

/** Traefik `basicAuth.usersFile` (htpasswd format): `name:hash`, one per line, enabled users only. */
export function htpasswdFile(users: readonly DashboardUser[]): string {
  return lines(users, (u) => `${u.name}:${u.dashboardHash}`);
}

/**
 * The account lines of a Caddy 2.6 `basicauth { … }` block: `name <base64 of
 * the bcrypt hash>`, one per line, enabled users only.
 */
export function caddyBasicAuth(users: readonly DashboardUser[]): string {
  return lines(
    users,
    (u) => `${u.name} ${Buffer.from(u.dashboardHash, 'utf8').toString('base64')}`,
  );
}

function lines(users: readonly DashboardUser[], line: (u: DashboardUser) => string): string {
  const out: string[] = [];
  for (const u of users) {
    // Both land in a line-oriented file: a newline, colon or space in either
    // would add or change an entry.
    if (!USER_NAME_RE.test(u.name))
      throw new Error(`dashboard user: bad name ${JSON.stringify(u.name)}`);
    if (!BCRYPT_RE.test(u.dashboardHash))
      throw new Error(`dashboard user ${u.name}: not a bcrypt hash`);
    if (!u.disabled) out.push(line(u));
  }
  return out.map((l) => `${l}\n`).join('');
}
