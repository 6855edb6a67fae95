import { createServer, type Server } from 'node:http';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPass, challengeHandler } from '../../src/agent/agent.js';
import { migrate } from '../../src/db/migrations.js';
import { obtainCertificate } from '../../src/tls/acme.js';
import { readTls, writeTls } from '../../src/tls/store.js';
import { type Pebble, startPebble } from '../helpers/pebble.js';
import { type Postgres, startPostgres } from '../helpers/postgres.js';

/**
 * Two agent replicas against a real PostgreSQL and a real ACME CA (pebble,
 * challenges validated): whichever of them orders, the challenge is answered
 * by the OTHER one (the only one listening where pebble's VA connects), a
 * scheduled tick is claimed by exactly one, and a request from the CLI is
 * taken by exactly one. No Docker here: delivery to the proxy is the lab's
 * test (test/lab/tls.test.ts); these agents store the certificate only.
 */

let postgres: Postgres;
let pebble: Pebble;
let server: Server;
const clients: pg.Client[] = [];

async function client(): Promise<pg.Client> {
  const c = await postgres.connect();
  clients.push(c);
  return c;
}

const NOW = new Date('2026-11-24T03:00:10Z');
const HOUR = 3_600_000;

async function agent(name: string, now = NOW) {
  return {
    work: await client(),
    serve: await client(),
    owner: name,
    checkMs: HOUR,
    obtain: obtainCertificate,
    now: () => now,
    log: () => {},
  };
}

beforeAll(async () => {
  postgres = await startPostgres();
  const admin = await client();
  await migrate(admin);
  // Replica B answers challenges: it alone listens on the port pebble's VA connects to.
  server = createServer((req, res) => void challengeHandler(admin)(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no port');
  pebble = await startPebble({ httpPort: address.port, env: { PEBBLE_AUTHZREUSE: '0' } });
  await writeTls(admin, 'settings', {
    stack: 'platform',
    domains: ['app.lab.test', 'proxy.lab.test'],
    directory: pebble.directory,
    email: 'ops@lab.test',
    caRoot: pebble.caPem,
    renewDays: 30,
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await new Promise((r) => server?.close(r));
  await pebble?.stop();
  await postgres?.stop();
});

describe('the agent replicas', () => {
  it('a scheduled tick: exactly one of three replicas orders, answered by another', async () => {
    const before = pebble.orderCount();
    const replicas = await Promise.all(['lab1', 'lab2', 'lab3'].map((n) => agent(n)));
    await Promise.all(replicas.map((r) => agentPass(r, {})));
    expect(pebble.orderCount()).toBe(before + 1);
    const db = await client();
    const claims = await db.query(
      "SELECT tick, owner, status FROM cluster_cli.claims WHERE kind = 'tls-renew'",
    );
    expect(claims.rows).toEqual([
      {
        tick: '2026-11-24T03:00:00.000Z',
        owner: expect.stringMatching(/^lab[123]$/),
        status: 'ok',
      },
    ]);
    const cert = await readTls(db, 'certificate');
    expect(cert?.domains.slice().sort()).toEqual(['app.lab.test', 'proxy.lab.test']);
    expect(cert?.obtainedBy).toBe(claims.rows[0]?.owner);
    // The challenge tokens are gone once the order is done.
    expect(
      (await db.query('SELECT count(*)::int AS n FROM cluster_cli.acme_challenges')).rows[0],
    ).toEqual({ n: 0 });
  });

  it('the same tick again, and the next tick with a fresh certificate: no order', async () => {
    const before = pebble.orderCount();
    await agentPass(await agent('lab1'), {});
    await agentPass(await agent('lab2', new Date(NOW.getTime() + HOUR)), {});
    expect(pebble.orderCount()).toBe(before);
    const db = await client();
    const ticks = await db.query(
      "SELECT tick, status, detail FROM cluster_cli.claims WHERE kind = 'tls-renew' ORDER BY tick",
    );
    expect(ticks.rows.map((r) => [r.tick, r.status, r.detail])).toEqual([
      ['2026-11-24T03:00:00.000Z', 'ok', { action: 'renewed' }],
      ['2026-11-24T04:00:00.000Z', 'ok', { action: 'fresh' }],
    ]);
  });

  it('a forced request from the CLI: taken by exactly one replica, one order', async () => {
    const db = await client();
    const old = await readTls(db, 'certificate');
    await writeTls(db, 'request', { id: 'req-1', force: true, requestedAt: NOW.toISOString() });
    const before = pebble.orderCount();
    const replicas = await Promise.all(['lab1', 'lab2', 'lab3'].map((n) => agent(n)));
    // `lastTick` set: only the request is pending in this pass
    const tick = Math.floor(NOW.getTime() / HOUR);
    await Promise.all(replicas.map((r) => agentPass(r, { lastTick: tick })));
    expect(pebble.orderCount()).toBe(before + 1);
    const status = await readTls(db, 'status');
    expect(status?.handled).toEqual({ id: 'req-1', ok: true, detail: 'renewed (no-api)' });
    const cert = await readTls(db, 'certificate');
    expect(cert?.fingerprint).not.toBe(old?.fingerprint);
    // handled: another pass takes nothing
    await agentPass(await agent('lab1'), { lastTick: tick });
    expect(pebble.orderCount()).toBe(before + 1);
  });

  it('a failed order is recorded as the last ACME error and the request answered with it', async () => {
    const db = await client();
    await writeTls(db, 'settings', {
      ...((await readTls(db, 'settings')) as NonNullable<
        Awaited<ReturnType<typeof readTls<'settings'>>>
      >),
      domains: ['app.lab.test', 'nothing-answers.lab.test'],
    });
    // nothing answers this name's challenge correctly: the handler knows no such token for it
    await db.query(
      'CREATE OR REPLACE RULE no_challenges AS ON INSERT TO cluster_cli.acme_challenges WHERE NEW.token IS NOT NULL DO INSTEAD NOTHING',
    );
    try {
      await writeTls(db, 'request', { id: 'req-2', force: true, requestedAt: NOW.toISOString() });
      await agentPass(await agent('lab2'), { lastTick: Math.floor(NOW.getTime() / HOUR) });
      const status = await readTls(db, 'status');
      expect(status?.handled?.id).toBe('req-2');
      expect(status?.handled?.ok).toBe(false);
      expect(status?.handled?.detail).toMatch(/could not validate/);
      expect(status?.lastError).toMatch(/could not validate/);
    } finally {
      await db.query('DROP RULE no_challenges ON cluster_cli.acme_challenges');
    }
  });
});
