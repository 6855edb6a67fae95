import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { axios as acmeAxios } from 'acme-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import {
  type ChallengeStore,
  checkDirectory,
  type Obtained,
  obtainCertificate,
} from '../../src/tls/acme.js';
import { certInfo, daysLeft, splitChain } from '../../src/tls/cert-info.js';
import { fetchFromPebble, type Pebble, startPebble } from '../helpers/pebble.js';
import { freePort } from '../helpers/sshd.js';

// A real ACME CA: Debian's pebble on loopback (test/helpers/pebble.ts). Its VA
// resolves every name to 127.0.0.1 (pebble-challtestsrv) and fetches the
// HTTP-01 token for real from the challenge server below.

/** The ChallengeStore the proxy would back; here a Map served by a tiny HTTP server. */
class MemoryStore implements ChallengeStore {
  readonly tokens = new Map<string, string>();
  readonly removed: string[] = [];
  async set(token: string, keyAuthorization: string): Promise<void> {
    this.tokens.set(token, keyAuthorization);
  }
  async remove(token: string): Promise<void> {
    this.tokens.delete(token);
    this.removed.push(token);
  }
}

/** Publishes a key authorization for another account key: pebble must refuse it. */
class WrongKeyStore extends MemoryStore {
  override async set(token: string): Promise<void> {
    this.tokens.set(token, `${token}.${'A'.repeat(43)}`);
  }
}

let pebble: Pebble;
let challengeServer: Server;
let pebbleRoot: X509Certificate;
/** The store the challenge server answers from, per test. */
let current: MemoryStore = new MemoryStore();
/** Host headers of the token fetches pebble's VA made. */
const fetchedFor: string[] = [];

beforeAll(async () => {
  challengeServer = createServer((req, res) => {
    const token = /^\/\.well-known\/acme-challenge\/([\w-]+)$/.exec(req.url ?? '')?.[1];
    const answer = token === undefined ? undefined : current.tokens.get(token);
    fetchedFor.push(String(req.headers.host));
    if (answer === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
  });
  await new Promise<void>((resolve) => challengeServer.listen(0, '127.0.0.1', resolve));
  const address = challengeServer.address();
  if (typeof address !== 'object' || !address) throw new Error('challenge server has no port');
  // PEBBLE_AUTHZREUSE=0: every order validates its names again (pebble reuses half the time otherwise).
  pebble = await startPebble({ httpPort: address.port, env: { PEBBLE_AUTHZREUSE: '0' } });
  pebbleRoot = new X509Certificate(await fetchFromPebble(pebble.rootsUrl, pebble.caPem));
});

afterAll(async () => {
  await pebble?.stop();
  await new Promise((resolve) => challengeServer?.close(resolve));
});

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function expectOneLine(err: unknown, pattern: RegExp): UserError {
  expect(err).toBeInstanceOf(UserError);
  const e = err as UserError;
  expect(e.message).toMatch(pattern);
  expect(e.message).not.toContain('\n');
  return e;
}

describe('obtainCertificate against pebble', () => {
  let first: Obtained;
  const lines: string[] = [];

  it('obtains a certificate for two names with HTTP-01', async () => {
    current = new MemoryStore();
    const orders = pebble.orderCount();
    const issued = pebble.issuedCount();
    fetchedFor.length = 0;

    first = await obtainCertificate({
      directory: pebble.directory,
      caRoot: pebble.caPem,
      email: 'ops@example.com',
      domains: ['app.lab.test', 'www.lab.test'],
      challenges: current,
      log: (line) => lines.push(line),
    });

    // Pebble's VA fetched both tokens from our server, under each name.
    expect(new Set(fetchedFor)).toEqual(
      new Set([`app.lab.test:${pebble.httpPort}`, `www.lab.test:${pebble.httpPort}`]),
    );
    expect(current.tokens.size).toBe(0);
    expect(current.removed).toHaveLength(2);
    expect(pebble.orderCount()).toBe(orders + 1);
    expect(pebble.issuedCount()).toBe(issued + 1);

    const { info } = first;
    expect([...info.domains].sort()).toEqual(['app.lab.test', 'www.lab.test']);
    expect(info.issuer).toMatch(/^Pebble Intermediate CA/);
    expect(info.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(info.notBefore.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
    expect(daysLeft(info)).toBeGreaterThan(0);
    expect(info.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(certInfo(first.certificate)).toEqual(info);
    expect(first.accountUrl).toMatch(new RegExp(`^${pebble.directory.replace('/dir', '')}/`));

    expect(lines).toContain('order created for app.lab.test, www.lab.test');
    expect(lines).toContain('challenge for app.lab.test answered');
    expect(lines).toContain('challenge for www.lab.test answered');
    expect(lines.at(-1)).toMatch(/^certificate issued by Pebble Intermediate CA/);
  });

  it('returns a chain that verifies up to pebble’s issuing root, and the matching key', async () => {
    const chain = splitChain(first.certificate).map((pem) => new X509Certificate(pem));
    expect(chain.length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i + 1 < chain.length; i++) {
      const [child, parent] = [chain[i], chain[i + 1]] as [X509Certificate, X509Certificate];
      expect(child.checkIssued(parent)).toBe(true);
      expect(child.verify(parent.publicKey)).toBe(true);
    }
    const top = chain.at(-1) as X509Certificate;
    expect(top.checkIssued(pebbleRoot)).toBe(true);
    expect(top.verify(pebbleRoot.publicKey)).toBe(true);

    const leaf = chain[0] as X509Certificate;
    expect(leaf.checkPrivateKey(createPrivateKey(first.privateKey.reveal()))).toBe(true);
    expect(leaf.checkHost('www.lab.test')).toBe('www.lab.test');

    // And as a TLS client sees it: serve the chain, verify against the root only.
    const server = createTlsServer({ cert: first.certificate, key: first.privateKey.reveal() });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const peer = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect(
          { host: '127.0.0.1', port, servername: 'app.lab.test', ca: pebbleRoot.toString() },
          () => {
            const subject = socket.getPeerX509Certificate()?.subject ?? '';
            socket.end();
            resolve(socket.authorized ? subject : `unauthorized: ${socket.authorizationError}`);
          },
        );
        socket.once('error', reject);
      });
      expect(peer).not.toMatch(/^unauthorized/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('keeps keys out of everything printable', () => {
    expect(String(first.privateKey)).toBe('[REDACTED]');
    expect(String(first.accountKey)).toBe('[REDACTED]');
    const printed = `${JSON.stringify(first)}\n${lines.join('\n')}`;
    expect(printed).not.toContain('PRIVATE KEY');
    expect(first.privateKey.reveal()).toContain('-----BEGIN PRIVATE KEY-----');
    expect(first.accountKey.reveal()).toMatch(/-----BEGIN (EC )?PRIVATE KEY-----/);
  });

  it('reuses the account key on a second order (same account URL)', async () => {
    current = new MemoryStore();
    const byKey = await obtainCertificate({
      directory: pebble.directory,
      caRoot: pebble.caPem,
      email: 'ops@example.com',
      domains: ['api.lab.test'],
      accountKey: first.accountKey.reveal(),
      challenges: current,
    });
    expect(byKey.accountUrl).toBe(first.accountUrl);
    expect(byKey.accountKey.reveal()).toBe(first.accountKey.reveal());
    expect(byKey.info.domains).toEqual(['api.lab.test']);
    expect(byKey.privateKey.reveal()).not.toBe(first.privateKey.reveal());

    const byUrl = await obtainCertificate({
      directory: pebble.directory,
      caRoot: pebble.caPem,
      email: 'ops@example.com',
      domains: ['API.lab.test.'],
      accountKey: first.accountKey.reveal(),
      accountUrl: first.accountUrl,
      challenges: current,
    });
    expect(byUrl.accountUrl).toBe(first.accountUrl);
    expect(byUrl.info.domains).toEqual(['api.lab.test']);
    expect(pebble.logText()).toMatch(/There are now 1 accounts in memory/);
    expect(pebble.logText()).not.toMatch(/There are now 2 accounts in memory/);
  });

  it('refuses a stored account URL with another key in one line', async () => {
    const orders = pebble.orderCount();
    const err = await thrown(
      obtainCertificate({
        directory: pebble.directory,
        caRoot: pebble.caPem,
        email: 'ops@example.com',
        domains: ['app.lab.test'],
        accountUrl: first.accountUrl,
        accountKey: generateKeyPairSync('ec', { namedCurve: 'P-256' })
          .privateKey.export({ type: 'pkcs8', format: 'pem' })
          .toString(),
        challenges: new MemoryStore(),
      }),
    );
    const e = expectOneLine(
      err,
      new RegExp(
        `^ACME CA 127\\.0\\.0\\.1:\\d+ refused the stored ACME account ${first.accountUrl} \\(needed for app\\.lab\\.test\\): .+ \\((malformed|unauthorized)\\)$`,
      ),
    );
    expect(e.next).toBe('forget the stored ACME account (key and URL) so a new one is registered');
    expect(pebble.orderCount()).toBe(orders);
  });

  it('turns a failed validation into a UserError naming the domain and pebble’s detail', async () => {
    current = new WrongKeyStore();
    const orders = pebble.orderCount();
    const issued = pebble.issuedCount();
    const err = await thrown(
      obtainCertificate({
        directory: pebble.directory,
        caRoot: pebble.caPem,
        email: 'ops@example.com',
        domains: ['bad.lab.test'],
        challenges: current,
      }),
    );
    const e = expectOneLine(
      err,
      /^ACME CA 127\.0\.0\.1:\d+ could not validate bad\.lab\.test \(HTTP-01\): .*key authorization.* \(unauthorized\)$/,
    );
    expect(e.next).toBe(
      'check that bad.lab.test resolves to a node running the proxy and that port 80 reaches it: cluster-cli ssl status',
    );
    expect(current.tokens.size).toBe(0);
    expect(current.removed).toHaveLength(1);
    expect(pebble.orderCount()).toBe(orders + 1);
    expect(pebble.issuedCount()).toBe(issued);
  });
});

describe('checkDirectory', () => {
  it('passes for pebble’s directory', async () => {
    await expect(checkDirectory(pebble.directory, pebble.caPem)).resolves.toBeUndefined();
  });

  it('reports a closed port in one line', async () => {
    const port = await freePort();
    const url = `https://127.0.0.1:${port}/dir`;
    expectOneLine(
      await thrown(checkDirectory(url, pebble.caPem)),
      new RegExp(
        `^ACME directory ${url} is unreachable: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`,
      ),
    );
  });

  it('reports a URL that is not an ACME directory in one line', async () => {
    expectOneLine(
      await thrown(checkDirectory(pebble.rootsUrl, pebble.caPem)),
      /^ACME directory \S+\/roots\/0 did not answer with an ACME directory \(not JSON: application\/pem-certificate-chain.*\)$/,
    );
    const missing = pebble.directory.replace(/\/dir$/, '/no-such-thing');
    expectOneLine(
      await thrown(checkDirectory(missing, pebble.caPem)),
      /did not answer with an ACME directory \(HTTP 404\)$/,
    );
  });

  it('names --acme-ca-root when the CA’s TLS certificate is not trusted', async () => {
    expectOneLine(
      await thrown(checkDirectory(pebble.directory)),
      /^ACME directory \S+ is not trusted \(.+\): for a private CA, pass its root certificate with --acme-ca-root <file>$/,
    );
    // A root that does not sign the listener (pebble's issuing root signs certificates, not its listener).
    expectOneLine(
      await thrown(checkDirectory(pebble.directory, pebbleRoot.toString())),
      /is not trusted \(.+\): the certificate given with --acme-ca-root does not sign its TLS certificate$/,
    );
  });

  it('stops obtainCertificate before any order when the CA is not trusted', async () => {
    const orders = pebble.orderCount();
    expectOneLine(
      await thrown(
        obtainCertificate({
          directory: pebble.directory,
          email: 'ops@example.com',
          domains: ['app.lab.test'],
          challenges: new MemoryStore(),
        }),
      ),
      /--acme-ca-root/,
    );
    expect(pebble.orderCount()).toBe(orders);
  });
});

// Pebble has no rate limits, so this one case uses a stand-in: a minimal ACME
// server (directory, nonce, account) whose newOrder answers 429 rateLimited,
// served with pebble's listener certificate so the same CA root applies.
describe('a rate-limited order (stand-in CA: pebble has no rate limits)', () => {
  it('retries a short Retry-After once, then stops at a long one with a clear line', async () => {
    const retryAfter = ['1', '3600'];
    let orderPosts = 0;
    const server = createHttpsServer(pebble.listener, (req, res) => {
      const base = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
      const nonce = { 'replay-nonce': `n${Math.random().toString(36).slice(2)}` };
      req.resume();
      if (req.url === '/dir') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            newNonce: `${base}/nonce`,
            newAccount: `${base}/account`,
            newOrder: `${base}/order`,
          }),
        );
      } else if (req.url === '/nonce') {
        res.writeHead(200, nonce).end();
      } else if (req.url === '/account') {
        res.writeHead(201, {
          ...nonce,
          location: `${base}/acct/1`,
          'content-type': 'application/json',
        });
        res.end(JSON.stringify({ status: 'valid' }));
      } else if (req.url === '/order') {
        res.writeHead(429, {
          ...nonce,
          'retry-after': retryAfter[orderPosts++] ?? '3600',
          'content-type': 'application/problem+json',
        });
        res.end(
          JSON.stringify({
            type: 'urn:ietf:params:acme:error:rateLimited',
            detail: 'too many certificates (5) already issued for this exact set of identifiers',
            status: 429,
          }),
        );
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const started = Date.now();
    try {
      const err = await thrown(
        obtainCertificate({
          directory: `https://127.0.0.1:${port}/dir`,
          caRoot: pebble.caPem,
          email: 'ops@example.com',
          domains: ['app.lab.test'],
          challenges: new MemoryStore(),
        }),
      );
      const e = expectOneLine(
        err,
        new RegExp(
          `^ACME CA 127\\.0\\.0\\.1:${port} rate-limited the request to order a certificate for app\\.lab\\.test: too many certificates \\(5\\) already issued for this exact set of identifiers \\(rateLimited\\)$`,
        ),
      );
      expect(e.next).toMatch(/^try again in 60 min/);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    // acme-client waited out the 1 s Retry-After, then the 1 h one stopped the run at once.
    expect(orderPosts).toBe(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('leaves acme-client’s shared axios instance without a CA setting of its own', () => {
    expect(acmeAxios.defaults.httpsAgent).toBeUndefined();
  });
});
