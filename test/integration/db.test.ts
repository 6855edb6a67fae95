import bcrypt from 'bcryptjs';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';
import { claim, finish, renew } from '../../src/db/claims.js';
import { MIGRATIONS, migrate } from '../../src/db/migrations.js';
import { bcryptHash, caddyBasicAuth, htpasswdFile } from '../../src/users/htpasswd.js';
import {
  checkPasswordPolicy,
  generatePassword,
  validateEmail,
  validateUserName,
} from '../../src/users/password.js';
import {
  checkLogin,
  createUser,
  dashboardUsers,
  deleteUser,
  listUsers,
  setDisabled,
  setPassword,
} from '../../src/users/store.js';
import { type Postgres, startPostgres } from '../helpers/postgres.js';

// A real PostgreSQL 15 server, started for this file (test/helpers/postgres.ts).
// Every call below hands a pg.Client where a Queryable is expected: tsc checks
// that pg's Client satisfies the interface.
let server: Postgres;

beforeAll(async () => {
  server = await startPostgres();
});

afterAll(async () => {
  await server?.stop();
});

/** A fresh database with its own clients. */
async function freshDb(name: string, clients = 1): Promise<pg.Client[]> {
  await server.createDatabase(name);
  return Promise.all(Array.from({ length: clients }, () => server.connect(name)));
}

const pw = (s: string) => new Secret(s, 'password');

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('migrate', () => {
  it('migrates an empty database, then does nothing', async () => {
    const [db] = await freshDb('mig_once');
    if (!db) throw new Error('no client');
    const latest = MIGRATIONS.at(-1)?.version;
    const all = MIGRATIONS.map((m) => m.version);
    expect(all).toEqual([1, 2, 3, 4]);
    expect(await migrate(db)).toEqual({ applied: all, current: latest });
    expect(await migrate(db)).toEqual({ applied: [], current: latest });

    const { rows } = await db.query<{ version: number; name: string }>(
      'SELECT version, name FROM cluster_cli.schema_migrations ORDER BY version',
    );
    expect(rows).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    const tables = await db.query<{ t: string }>(
      `SELECT table_name AS t FROM information_schema.tables
        WHERE table_schema = 'cluster_cli' ORDER BY table_name`,
    );
    expect(tables.rows.map((r) => r.t)).toEqual([
      'acme_challenges',
      'backup_runs',
      'claims',
      'kv',
      'schema_migrations',
      'users',
    ]);
  });

  it('lets concurrent callers all succeed, each migration applied once', async () => {
    const clients = await freshDb('mig_race', 4);
    const results = await Promise.all(clients.map((c) => migrate(c)));
    for (const r of results) expect(r.current).toBe(4);
    const applied = results.flatMap((r) => r.applied).sort();
    expect(applied).toEqual([1, 2, 3, 4]);
  });

  it('rolls a failing migration back whole and names it', async () => {
    const [db] = await freshDb('mig_fail');
    if (!db) throw new Error('no client');
    const broken = [
      ...MIGRATIONS,
      {
        version: 5,
        name: 'broken',
        sql: 'CREATE TABLE cluster_cli.half (x int); SELECT * FROM cluster_cli.no_such_table;',
      },
    ];
    const err = await thrown(migrate(db, broken));
    expect(String(err)).toMatch(/migration 5 \(broken\) failed: .*no_such_table/);
    // 1–4 were committed one by one; 5 left nothing behind.
    expect(await migrate(db)).toEqual({ applied: [], current: 4 });
    const half = await db.query<{ r: string | null }>(
      "SELECT to_regclass('cluster_cli.half')::text AS r",
    );
    expect(half.rows[0]?.r).toBeNull();
  });
});

describe('claims', () => {
  let clients: pg.Client[];
  let db: pg.Client;

  beforeAll(async () => {
    clients = await freshDb('claims', 5);
    db = clients[0] as pg.Client;
    await migrate(db);
  });

  it('of 5 concurrent claimers of one tick, exactly one wins', async () => {
    const results = await Promise.all(
      clients.map((c, i) =>
        claim(c, { kind: 'backup', tick: '2025-06-01', owner: `agent-${i}`, leaseMs: 60_000 }),
      ),
    );
    const winners = results.flatMap((r, i) => (r.won ? [{ i, r }] : []));
    expect(winners).toHaveLength(1);
    const winner = winners[0];
    expect(winner?.r).toMatchObject({ won: true, takeover: false });
    for (const r of results) {
      if (!r.won)
        expect(r).toEqual({ won: false, holder: `agent-${winner?.i}`, status: 'running' });
    }
  });

  it('lets exactly one of several concurrent takers take over an expired lease', async () => {
    // A runner that claimed an hour ago with a one-second lease, then died.
    const anHourAgo = new Date(Date.now() - 3_600_000);
    const first = await claim(db, {
      kind: 'backup',
      tick: 'expired',
      owner: 'dead-agent',
      leaseMs: 1000,
      now: anHourAgo,
    });
    expect(first).toMatchObject({ won: true, takeover: false });
    expect(await renew(db, 'backup', 'expired', 'someone-else', 60_000)).toBe(false);

    const results = await Promise.all(
      clients.map((c, i) =>
        claim(c, { kind: 'backup', tick: 'expired', owner: `taker-${i}`, leaseMs: 60_000 }),
      ),
    );
    const winners = results.flatMap((r, i) => (r.won ? [{ i, r }] : []));
    expect(winners).toHaveLength(1);
    expect(winners[0]?.r).toMatchObject({ won: true, takeover: true });
    const newOwner = `taker-${winners[0]?.i}`;
    for (const r of results) {
      if (!r.won) expect(r).toEqual({ won: false, holder: newOwner, status: 'running' });
    }

    // The dead runner, come back, can neither renew nor finish.
    expect(await renew(db, 'backup', 'expired', 'dead-agent', 60_000)).toBe(false);
    expect(await finish(db, 'backup', 'expired', 'dead-agent', 'ok')).toBe(false);
    // The new owner can.
    expect(await renew(db, 'backup', 'expired', newOwner, 60_000)).toBe(true);
    expect(await finish(db, 'backup', 'expired', newOwner, 'ok', { bytes: 42 })).toBe(true);
    const row = await db.query(
      `SELECT owner, status, detail, finished_at IS NOT NULL AS finished
         FROM cluster_cli.claims WHERE kind = 'backup' AND tick = 'expired'`,
    );
    expect(row.rows[0]).toEqual({
      owner: newOwner,
      status: 'ok',
      detail: { bytes: 42 },
      finished: true,
    });
  });

  it('renew keeps a lease alive past its first end', async () => {
    const t0 = new Date(Date.now() - 10_000);
    await claim(db, { kind: 'job', tick: 'renewed', owner: 'a', leaseMs: 5_000, now: t0 });
    // Renewed (at the database's now) before anyone else asks: still held.
    expect(await renew(db, 'job', 'renewed', 'a', 60_000)).toBe(true);
    expect(await claim(db, { kind: 'job', tick: 'renewed', owner: 'b', leaseMs: 60_000 })).toEqual({
      won: false,
      holder: 'a',
      status: 'running',
    });
  });

  it('never hands out a finished tick again, ok or failed', async () => {
    const later = new Date(Date.now() + 7 * 24 * 3_600_000);
    for (const status of ['ok', 'failed'] as const) {
      const tick = `finished-${status}`;
      expect(await claim(db, { kind: 'job', tick, owner: 'a', leaseMs: 1000 })).toMatchObject({
        won: true,
      });
      expect(await finish(db, 'job', tick, 'a', status, { error: 'disk full' })).toBe(true);
      // A second finish (or one after a takeover) changes nothing.
      expect(await finish(db, 'job', tick, 'a', 'ok')).toBe(false);
      const results = await Promise.all(
        clients.map((c, i) =>
          claim(c, { kind: 'job', tick, owner: `b${i}`, leaseMs: 1000, now: later }),
        ),
      );
      for (const r of results) expect(r).toEqual({ won: false, holder: 'a', status });
    }
  });

  it('keeps kinds apart and checks its arguments', async () => {
    expect(
      await claim(db, { kind: 'other', tick: '2025-06-01', owner: 'x', leaseMs: 10 }),
    ).toMatchObject({ won: true, takeover: false });
    await expect(claim(db, { kind: 'job', tick: 't', owner: 'x', leaseMs: 0 })).rejects.toThrow(
      /leaseMs/,
    );
    await expect(claim(db, { kind: '', tick: 't', owner: 'x', leaseMs: 10 })).rejects.toThrow(
      /kind/,
    );
  });
});

describe('users', () => {
  let db: pg.Client;
  const alicePw = 'correct horse battery';

  beforeAll(async () => {
    const [c] = await freshDb('users');
    db = c as pg.Client;
    await migrate(db);
  });

  it('creates a user whose stored hashes verify', async () => {
    const user = await createUser(db, {
      name: 'alice',
      email: 'Alice@Example.com',
      password: pw(alicePw),
    });
    expect(user).toMatchObject({ name: 'alice', email: 'Alice@Example.com', disabled: false });
    expect(typeof user.id).toBe('number');
    expect(user.createdAt).toBeInstanceOf(Date);

    const { rows } = await db.query(
      'SELECT password_hash, kdf, kdf_params, dashboard_hash FROM cluster_cli.users WHERE name = $1',
      ['alice'],
    );
    const row = rows[0] as Record<string, string | object>;
    expect(row.kdf).toBe('scrypt');
    expect(row.kdf_params).toEqual({ ln: 15, r: 8, p: 1, saltBytes: 16, keyBytes: 32 });
    expect(row.password_hash).toMatch(
      /^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/,
    );
    expect(row.dashboard_hash).toMatch(/^\$2b\$10\$/);
    expect(await bcrypt.compare(alicePw, row.dashboard_hash as string)).toBe(true);
  });

  it('checks a login by name or by email in any case', async () => {
    expect(await checkLogin(db, 'alice', pw(alicePw))).toMatchObject({ name: 'alice' });
    expect(await checkLogin(db, 'ALICE@example.COM', pw(alicePw))).toMatchObject({ name: 'alice' });
    expect(await checkLogin(db, 'alice', pw('correct horse battery!'))).toBeUndefined();
    expect(await checkLogin(db, 'nobody', pw(alicePw))).toBeUndefined();
  });

  it('refuses a duplicate name, and an email that differs only in case', async () => {
    const dupName = await thrown(
      createUser(db, { name: 'alice', email: 'other@example.com', password: pw(alicePw) }),
    );
    expect(dupName).toBeInstanceOf(UserError);
    expect(dupName).toMatchObject({
      message: 'A user named alice already exists',
      next: 'cluster-cli user list',
    });

    const dupEmail = await thrown(
      createUser(db, { name: 'alice2', email: 'aLiCe@eXample.com', password: pw(alicePw) }),
    );
    expect(dupEmail).toBeInstanceOf(UserError);
    expect(dupEmail).toMatchObject({
      message: 'Another user already has the email aLiCe@eXample.com',
      next: 'cluster-cli user list',
    });
  });

  it('refuses an 11-character password, a bad name and a bad email', async () => {
    const short = await thrown(
      createUser(db, { name: 'bob', email: 'bob@example.com', password: pw('abcdefghijk') }),
    );
    expect(short).toBeInstanceOf(UserError);
    expect((short as Error).message).toBe('Password too short: 12 characters at least');
    await expect(
      createUser(db, { name: 'Bob', email: 'bob@example.com', password: pw(alicePw) }),
    ).rejects.toThrow(/Invalid user name "Bob"/);
    await expect(
      createUser(db, { name: 'bob', email: 'bob@localhost', password: pw(alicePw) }),
    ).rejects.toThrow(/Invalid email address/);
    expect(await listUsers(db)).toHaveLength(1);
  });

  it('changes the password: the old one stops working, the new one works', async () => {
    const before = (await listUsers(db))[0];
    const after = await setPassword(db, 'alice', pw('a new password, longer'));
    expect(after.passwordChangedAt.getTime()).toBeGreaterThan(
      before?.passwordChangedAt.getTime() ?? 0,
    );
    expect(await checkLogin(db, 'alice', pw(alicePw))).toBeUndefined();
    expect(await checkLogin(db, 'alice', pw('a new password, longer'))).toMatchObject({
      name: 'alice',
    });
    const [dash] = await dashboardUsers(db);
    expect(await bcrypt.compare('a new password, longer', dash?.dashboardHash ?? '')).toBe(true);
    await expect(setPassword(db, 'alice', pw('short'))).rejects.toThrow(/Password too short/);
  });

  it('blocks a disabled user and lets them in again once enabled', async () => {
    expect(await setDisabled(db, 'alice', true)).toMatchObject({ disabled: true });
    expect(await checkLogin(db, 'alice', pw('a new password, longer'))).toBeUndefined();
    expect(await setDisabled(db, 'alice', false)).toMatchObject({ disabled: false });
    expect(await checkLogin(db, 'alice', pw('a new password, longer'))).toMatchObject({
      name: 'alice',
    });
  });

  it('never lists a hash', async () => {
    await createUser(db, { name: 'carol', email: 'carol@example.com', password: pw(alicePw) });
    const users = await listUsers(db);
    expect(users.map((u) => u.name)).toEqual(['alice', 'carol']);
    for (const u of users) {
      expect(Object.keys(u).sort()).toEqual(
        ['createdAt', 'disabled', 'email', 'id', 'name', 'passwordChangedAt', 'updatedAt'].sort(),
      );
    }
    expect(JSON.stringify(users)).not.toMatch(/\$scrypt\$|\$2[aby]\$/);
  });

  it('answers an unknown user with a UserError naming the next command', async () => {
    for (const call of [
      () => setPassword(db, 'nobody', pw(alicePw)),
      () => setDisabled(db, 'nobody', true),
      () => deleteUser(db, 'nobody'),
    ]) {
      const err = await thrown(call());
      expect(err).toBeInstanceOf(UserError);
      expect(err).toMatchObject({ message: 'No user named nobody', next: 'cluster-cli user list' });
    }
  });

  it('deletes a user: gone from the list, no login', async () => {
    await deleteUser(db, 'carol');
    expect((await listUsers(db)).map((u) => u.name)).toEqual(['alice']);
    expect(await checkLogin(db, 'carol', pw(alicePw))).toBeUndefined();
    await expect(deleteUser(db, 'carol')).rejects.toThrow(UserError);
    // The email is free again.
    await createUser(db, { name: 'carol2', email: 'CAROL@example.com', password: pw(alicePw) });
  });

  it('renders basic-auth files whose hashes verify, without disabled users', async () => {
    await createUser(db, {
      name: 'dave',
      email: 'dave@example.com',
      password: pw('dave password 1'),
    });
    await setDisabled(db, 'carol2', true);
    const users = await dashboardUsers(db);

    const file = htpasswdFile(users);
    const lines = file.trimEnd().split('\n');
    expect(file.endsWith('\n')).toBe(true);
    expect(lines.map((l) => l.split(':')[0])).toEqual(['alice', 'dave']);
    const dave = lines.find((l) => l.startsWith('dave:')) ?? '';
    expect(dave).toMatch(/^dave:\$2b\$10\$[./A-Za-z0-9]{53}$/);
    expect(await bcrypt.compare('dave password 1', dave.slice('dave:'.length))).toBe(true);
    expect(await bcrypt.compare('dave password 2', dave.slice('dave:'.length))).toBe(false);

    const caddy = caddyBasicAuth(users).trimEnd().split('\n');
    expect(caddy.map((l) => l.split(' ')[0])).toEqual(['alice', 'dave']);
    const [, b64] = (caddy.find((l) => l.startsWith('dave ')) ?? '').split(' ');
    const decoded = Buffer.from(b64 ?? '', 'base64').toString('utf8');
    expect(await bcrypt.compare('dave password 1', decoded)).toBe(true);
  });
});

describe('password helpers and file rendering (no database)', () => {
  it('generates 24 URL-safe characters that pass the policy', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i += 1) {
      const p = generatePassword();
      expect(p.reveal()).toMatch(/^[A-Za-z0-9_-]{24}$/);
      expect(String(p)).toBe('[REDACTED]');
      checkPasswordPolicy(p);
      seen.add(p.reveal());
    }
    expect(seen.size).toBe(50);
  });

  it('counts characters, not bytes, and caps at bcrypt’s 72 bytes', () => {
    expect(() => checkPasswordPolicy(pw('x'.repeat(11)))).toThrow(
      'Password too short: 12 characters at least',
    );
    checkPasswordPolicy(pw('x'.repeat(12)));
    checkPasswordPolicy(pw('😀'.repeat(12)));
    expect(() => checkPasswordPolicy(pw('é'.repeat(11)))).toThrow(/too short/);
    expect(() => checkPasswordPolicy(pw('x'.repeat(73)))).toThrow(
      'Password too long: 72 bytes at most',
    );
  });

  it('validates names and emails', () => {
    for (const ok of ['a', 'admin', 'ops.team-1_x', `a${'b'.repeat(31)}`]) {
      expect(validateUserName(ok)).toBe(ok);
    }
    for (const bad of ['', 'Admin', '1admin', '_a', 'a b', 'a:b', `a${'b'.repeat(32)}`, 'a@b.c']) {
      expect(() => validateUserName(bad)).toThrow(UserError);
    }
    expect(validateEmail('Ops+x@example.co.uk')).toBe('Ops+x@example.co.uk');
    for (const bad of ['', 'ops', 'ops@', 'ops@localhost', 'a b@example.com']) {
      expect(() => validateEmail(bad)).toThrow(UserError);
    }
  });

  it('refuses entries that would break a line-oriented file', async () => {
    const hash = await bcryptHash(pw('some password 12'));
    expect(htpasswdFile([])).toBe('');
    expect(htpasswdFile([{ name: 'a', dashboardHash: hash }])).toBe(`a:${hash}\n`);
    expect(() => htpasswdFile([{ name: 'a:b', dashboardHash: hash }])).toThrow(/bad name/);
    expect(() => htpasswdFile([{ name: 'a', dashboardHash: `${hash}\nb:x` }])).toThrow(/bcrypt/);
    expect(() => caddyBasicAuth([{ name: 'a', dashboardHash: 'plain' }])).toThrow(/bcrypt/);
  });
});
