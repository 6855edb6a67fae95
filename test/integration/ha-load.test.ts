import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type LoadTarget,
  loadStats,
  type RequestResult,
  requestOnce,
  startLoad,
} from '../../src/cluster/ha-load.js';

/**
 * doctor --ha's HTTP load against a REAL HTTPS server on 127.0.0.1 (a
 * self-signed certificate made with openssl here). 127.0.0.2 is loopback
 * too, but nothing listens on it: connecting there is refused, as an
 * isolated proxy node's address would be (there it is dropped, which the
 * 1 s connect timeout covers; the lab measures that for real).
 */

const DOMAIN = 'apps.example.test';
let server: Server;
let port: number;
/** SNI and Host of each request the server answered, and the status it should send. */
const seen: { sni: string | false | null; host: string | undefined }[] = [];
let status = 200;

/** A self-signed certificate for DOMAIN, made once. */
let pem: { key: Buffer; cert: Buffer } | undefined;
function cert(): { key: Buffer; cert: Buffer } {
  if (pem) return pem;
  const dir = mkdtempSync(join(tmpdir(), 'ha-load-'));
  const key = join(dir, 'key.pem');
  const crt = join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '1',
      '-subj',
      `/CN=${DOMAIN}`,
    ],
    { stdio: 'ignore' },
  );
  pem = { key: readFileSync(key), cert: readFileSync(crt) };
  return pem;
}

function startServer(p = 0): Promise<Server> {
  const s = createServer(cert(), (req, res) => {
    seen.push({ sni: (req.socket as TLSSocket).servername, host: req.headers.host });
    res.writeHead(status, { 'content-type': 'text/plain' }).end('hello\n');
  });
  return new Promise((resolve) => s.listen(p, '127.0.0.1', () => resolve(s)));
}

beforeAll(async () => {
  server = await startServer();
  port = (server.address() as AddressInfo).port;
});

afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const target = (addresses: string[]): LoadTarget => ({
  addresses,
  port,
  host: DOMAIN,
  path: '/',
  tls: true,
});

describe('requestOnce', () => {
  it('moves on from a refusing address to the next, with SNI and Host set to the domain', async () => {
    seen.length = 0;
    const r = await requestOnce(target(['127.0.0.2', '127.0.0.1']), 0);
    expect(r).toMatchObject({ ok: true, status: 200, address: '127.0.0.1', tried: 2 });
    expect(seen).toEqual([{ sni: DOMAIN, host: DOMAIN }]);
  });

  it('starts at the address it is told (round-robin)', async () => {
    const r = await requestOnce(target(['127.0.0.2', '127.0.0.1']), 1);
    expect(r).toMatchObject({ ok: true, address: '127.0.0.1', tried: 1 });
  });

  it('every address refusing is a failure that says so', async () => {
    const r = await requestOnce(target(['127.0.0.2', '127.0.0.3']), 0);
    expect(r.ok).toBe(false);
    expect(r.tried).toBe(2);
    expect(r.error).toBe('ECONNREFUSED on every address');
  });

  it('a non-2xx answer is a failure, not a reason to try the next address', async () => {
    status = 502;
    try {
      const r = await requestOnce(target(['127.0.0.1', '127.0.0.2']), 0);
      expect(r).toMatchObject({ ok: false, status: 502, error: 'HTTP 502', tried: 1 });
    } finally {
      status = 200;
    }
  });
});

describe('startLoad', () => {
  it('with one address refusing, failover keeps every request succeeding at the asked rate', async () => {
    const load = startLoad(target(['127.0.0.2', '127.0.0.1']), { rps: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    const s = await load.stop();
    // 20/s for 1.5 s: about 30 requests (timers are not exact)
    expect(s.requests).toBeGreaterThanOrEqual(25);
    expect(s.requests).toBeLessThanOrEqual(32);
    expect(s.successes).toBe(s.requests);
    expect(s.successRate).toBe(1);
    expect(s.rate).toBeGreaterThan(15);
    expect(s.rate).toBeLessThan(23);
    expect(s.worstGapMs).toBeLessThan(500);
    // half of them started at the refusing address and moved on
    const movedOn = load.results.filter((r) => r.tried === 2).length;
    expect(movedOn).toBeGreaterThanOrEqual(Math.floor(s.requests / 2) - 1);
    expect(movedOn).toBeLessThanOrEqual(Math.ceil(s.requests / 2) + 1);
  });

  it('the server stopped mid-run: the failures are counted, and the gap measured', async () => {
    const load = startLoad(target(['127.0.0.2', '127.0.0.1']), { rps: 20 });
    await new Promise((r) => setTimeout(r, 1000));
    const stoppedAt = performance.now();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise((r) => setTimeout(r, 1000));
    const s = await load.stop();
    // restart for any later test, on the same port
    server = await startServer(port);
    const after = load.results.filter((r) => r.start > stoppedAt + 50);
    expect(after.length).toBeGreaterThan(10);
    expect(after.every((r) => !r.ok && r.error === 'ECONNREFUSED on every address')).toBe(true);
    expect(s.failures).toBeGreaterThanOrEqual(after.length);
    expect(s.successes).toBeGreaterThan(10);
    expect(s.successRate).toBeGreaterThan(0.3);
    expect(s.successRate).toBeLessThan(0.7);
    expect(s.worstGapMs).toBeGreaterThan(900);
    // a request in flight when the server went away may fail otherwise (reset)
    expect(s.errors['ECONNREFUSED on every address']).toBeGreaterThanOrEqual(after.length);
    expect(Object.values(s.errors).reduce((a, b) => a + b, 0)).toBe(s.failures);
  });

  it('never more than maxInFlight at once; the ticks that found them busy are counted', async () => {
    // a server that answers after 400 ms: at 20/s, 4 in flight cap what is sent
    let now = 0;
    let most = 0;
    const slow = createServer(cert(), (_req, res) => {
      now++;
      most = Math.max(most, now);
      setTimeout(() => {
        now--;
        res.writeHead(200).end('slow\n');
      }, 400);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    try {
      const load = startLoad(
        { ...target(['127.0.0.1']), port: (slow.address() as AddressInfo).port },
        { rps: 20, maxInFlight: 4 },
      );
      await new Promise((r) => setTimeout(r, 1200));
      const s = await load.stop();
      expect(most).toBe(4);
      expect(s.notSent).toBeGreaterThan(5);
      expect(s.requests).toBeLessThanOrEqual(16);
      expect(s.successes).toBe(s.requests);
    } finally {
      slow.closeAllConnections();
      slow.close();
    }
  });
});

describe('loadStats', () => {
  const r = (start: number, end: number, ok: boolean, error?: string): RequestResult => ({
    start,
    end,
    ok,
    tried: 1,
    ...(error ? { error } : {}),
  });

  it('rate, success rate, worst gap between successes (window edges included)', () => {
    const s = loadStats(
      [
        r(0, 100, true),
        r(100, 200, true),
        r(200, 5200, false, 'timeout'),
        r(300, 1300, false, 'timeout'),
        r(2000, 3100, true),
      ],
      { start: 0, end: 4000 },
      2,
    );
    expect(s).toEqual({
      requests: 5,
      successes: 3,
      failures: 2,
      notSent: 2,
      successRate: 0.6,
      rate: 1.25,
      worstGapMs: 2900,
      windowMs: 4000,
      errors: { timeout: 2 },
    });
  });

  it('the gap after the last success counts too', () => {
    expect(loadStats([r(0, 100, true)], { start: 0, end: 3000 }).worstGapMs).toBe(2900);
  });
});
