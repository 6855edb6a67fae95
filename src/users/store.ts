/**
 * Admin users in `cluster_cli.users` (the table's contract with the
 * control-plane app is in src/db/migrations.ts). Nothing here returns a hash
 * except dashboardUsers(), which exists to render the proxy's basic-auth file.
 */
import { randomBytes } from 'node:crypto';
import { UserError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { isUniqueViolation, type Queryable } from '../db/queryable.js';
import { bcryptHash, type DashboardUser } from './htpasswd.js';
import { hashPassword, verifyPassword } from './kdf.js';
import { checkPasswordPolicy, validateEmail, validateUserName } from './password.js';

export interface User {
  readonly id: number;
  readonly name: string;
  readonly email: string;
  readonly disabled: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly passwordChangedAt: Date;
}

export interface NewUser {
  readonly name: string;
  readonly email: string;
  readonly password: Secret;
}

const LIST_HINT = 'cluster-cli user list';

// Hash columns are never in this list.
const USER_COLUMNS = 'id, name, email, disabled, created_at, updated_at, password_changed_at';

interface UserRow {
  id: string;
  name: string;
  email: string;
  disabled: boolean;
  created_at: Date;
  updated_at: Date;
  password_changed_at: Date;
}

export async function createUser(db: Queryable, input: NewUser): Promise<User> {
  const name = validateUserName(input.name);
  const email = validateEmail(input.email);
  checkPasswordPolicy(input.password);
  const [login, dashboard] = await Promise.all([
    hashPassword(input.password),
    bcryptHash(input.password),
  ]);
  try {
    const { rows } = await db.query<UserRow>(
      `INSERT INTO cluster_cli.users (name, email, password_hash, kdf, kdf_params, dashboard_hash)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6)
       RETURNING ${USER_COLUMNS}`,
      [name, email, login.encoded, login.kdf, JSON.stringify(login.params), dashboard],
    );
    return toUser(one(rows));
  } catch (err) {
    if (isUniqueViolation(err)) {
      if (err.constraint === 'users_name_key') {
        throw new UserError(`A user named ${name} already exists`, LIST_HINT);
      }
      if (err.constraint === 'users_email_lower_key') {
        throw new UserError(`Another user already has the email ${email}`, LIST_HINT);
      }
    }
    throw err;
  }
}

/** All users by name, without any hash. */
export async function listUsers(db: Queryable): Promise<User[]> {
  const { rows } = await db.query<UserRow>(
    `SELECT ${USER_COLUMNS} FROM cluster_cli.users ORDER BY name`,
  );
  return rows.map(toUser);
}

/** New password for an existing user: both hashes replaced. */
export async function setPassword(db: Queryable, name: string, password: Secret): Promise<User> {
  checkPasswordPolicy(password);
  const [login, dashboard] = await Promise.all([hashPassword(password), bcryptHash(password)]);
  const { rows } = await db.query<UserRow>(
    `UPDATE cluster_cli.users
        SET password_hash = $2, kdf = $3, kdf_params = $4::jsonb, dashboard_hash = $5,
            password_changed_at = now(), updated_at = now()
      WHERE name = $1
      RETURNING ${USER_COLUMNS}`,
    [name, login.encoded, login.kdf, JSON.stringify(login.params), dashboard],
  );
  return toUser(found(rows, name));
}

export async function setDisabled(db: Queryable, name: string, disabled: boolean): Promise<User> {
  const { rows } = await db.query<UserRow>(
    `UPDATE cluster_cli.users
        SET disabled = $2,
            updated_at = CASE WHEN disabled = $2 THEN updated_at ELSE now() END
      WHERE name = $1
      RETURNING ${USER_COLUMNS}`,
    [name, disabled],
  );
  return toUser(found(rows, name));
}

export async function deleteUser(db: Queryable, name: string): Promise<void> {
  const { rows } = await db.query<{ id: string }>(
    'DELETE FROM cluster_cli.users WHERE name = $1 RETURNING id',
    [name],
  );
  found(rows, name);
}

/**
 * The user when `nameOrEmail` (a name, or an email in any case) and
 * `password` match an enabled user; undefined otherwise, whichever part
 * failed. An unknown user costs the same scrypt work as a wrong password.
 */
export async function checkLogin(
  db: Queryable,
  nameOrEmail: string,
  password: Secret,
): Promise<User | undefined> {
  // A name cannot contain '@' and an email must, so at most one row matches.
  const { rows } = await db.query<UserRow & { password_hash: string }>(
    `SELECT ${USER_COLUMNS}, password_hash FROM cluster_cli.users
      WHERE name = $1 OR lower(email) = lower($1)`,
    [nameOrEmail],
  );
  const row = rows[0];
  const ok = await verifyPassword(password, row?.password_hash ?? (await dummyHash()));
  if (!row || !ok || row.disabled) return undefined;
  return toUser(row);
}

/** Name, bcrypt hash and disabled flag of every user: the input of htpasswdFile / caddyBasicAuth. */
export async function dashboardUsers(db: Queryable): Promise<DashboardUser[]> {
  const { rows } = await db.query<{ name: string; dashboard_hash: string; disabled: boolean }>(
    'SELECT name, dashboard_hash, disabled FROM cluster_cli.users ORDER BY name',
  );
  return rows.map((r) => ({ name: r.name, dashboardHash: r.dashboard_hash, disabled: r.disabled }));
}

let dummy: Promise<string> | undefined;

/** A hash with the default parameters of a password nobody knows, made once per process. */
function dummyHash(): Promise<string> {
  dummy ??= hashPassword(new Secret(randomBytes(32).toString('base64url'))).then((h) => h.encoded);
  return dummy;
}

function found<T>(rows: T[], name: string): T {
  const row = rows[0];
  if (!row) throw new UserError(`No user named ${name}`, LIST_HINT);
  return row;
}

function one<T>(rows: T[]): T {
  const row = rows[0];
  if (!row) throw new Error('INSERT … RETURNING gave no row');
  return row;
}

function toUser(row: UserRow): User {
  return {
    id: Number(row.id),
    name: row.name,
    email: row.email,
    disabled: row.disabled,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    passwordChangedAt: row.password_changed_at,
  };
}
