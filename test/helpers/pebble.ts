import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './sshd.js';

/**
 * A real ACME CA for one test file: Debian's pebble (Let's Encrypt's test CA)
 * on 127.0.0.1, with pebble-challtestsrv as its DNS server answering every
 * name with 127.0.0.1. Pebble's VA really fetches
 * http://<domain>:<httpPort>/.well-known/acme-challenge/<token>, so the test
 * serves tokens on 127.0.0.1:<httpPort>.
 *
 * Pebble ships no certificates: a throwaway CA and a certificate for
 * 127.0.0.1 are made with openssl in a temp dir. Both processes are stopped by
 * PID; stop() removes the dir.
 */
export interface Pebble {
  /** https://127.0.0.1:<port>/dir */
  readonly directory: string;
  /** The throwaway CA that signs pebble's HTTPS listeners (ACME and management). */
  readonly caFile: string;
  readonly caPem: string;
  /** The certificate and key of pebble's listener (127.0.0.1), for a stand-in server the same CA vouches for. */
  readonly listener: { readonly cert: string; readonly key: string };
  /** Pebble's issuing root (new at each start), on the management port: fetch with caPem. */
  readonly rootsUrl: string;
  /** Where pebble's VA connects for HTTP-01. */
  readonly httpPort: number;
  /** pebble's and pebble-challtestsrv's output so far. */
  logText(): string;
  /** New orders pebble accepted (its "Added order … to the db" lines). */
  orderCount(): number;
  /** Certificates pebble issued (its "Issued certificate serial … for order …" lines). */
  issuedCount(): number;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** The port the test's challenge server listens on (127.0.0.1). */
  readonly httpPort: number;
  /** Extra environment for pebble, e.g. PEBBLE_AUTHZREUSE. */
  readonly env?: Readonly<Record<string, string>>;
}

/** Pebble's log line for each new order (wfe: `Added order %q to the db`). */
export const ORDER_LINE = /Added order "[^"]+" to the db/g;
/** Pebble's log line for each issued certificate (ca: `Issued certificate serial %s for order %s`). */
export const ISSUED_LINE = /Issued certificate serial \S+ for order \S+/g;

const START_TIMEOUT_MS = 15_000;

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA and a server certificate for 127.0.0.1, both P-256, valid two days. */
function makeCertificates(dir: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=cluster-cli test CA for pebble',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'server.csr',
      '-subj',
      '/CN=127.0.0.1',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'server.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '',
    ].join('\n'),
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-set_serial',
      `0x${Date.now().toString(16)}`,
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'cert.pem',
    ],
    dir,
  );
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

function startProcess(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  append: (text: string) => void,
): Proc {
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', append);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      append(`[${file} exited: ${signal ?? code}]\n`);
      resolve();
    });
    child.once('error', (err) => {
      append(`[${file} failed to start: ${err.message}]\n`);
      resolve();
    });
  });
  return { child, exited };
}

/** Stop by PID: SIGTERM, then SIGKILL after 3 s. */
async function stopProcess(proc: Proc): Promise<void> {
  const { pid } = proc.child;
  if (pid === undefined || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  process.kill(pid, 'SIGTERM');
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 3_000);
  await proc.exited;
  clearTimeout(timer);
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function httpsOk(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { ca, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

async function waitFor(
  what: string,
  ready: () => Promise<boolean>,
  alive: () => boolean,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (await ready()) return;
    if (!alive()) throw new Error(`${what} exited during start:\n${log()}`);
    if (Date.now() > deadline)
      throw new Error(`${what} not ready after ${START_TIMEOUT_MS} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Fetch a URL from pebble (management or ACME port), trusting the test CA. */
export function fetchFromPebble(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(body)
          : reject(new Error(`GET ${url}: HTTP ${res.statusCode}\n${body}`)),
      );
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.once('error', reject);
  });
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'cc-pebble-'));
  let output = '';
  const append = (text: string) => {
    output += text;
  };
  const procs: Proc[] = [];
  const stop = async () => {
    // Pebble first: it uses challtestsrv.
    for (const p of procs.splice(0).reverse()) await stopProcess(p);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    makeCertificates(dir);
    const [acmePort, mgmtPort, tlsPort, dnsPort, dnsMgmtPort] = (await distinctFreePorts(
      5,
      opts.httpPort,
    )) as [number, number, number, number, number];
    const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');

    const challtestsrv = startProcess(
      '/usr/bin/pebble-challtestsrv',
      [
        '-dns01',
        `127.0.0.1:${dnsPort}`,
        '-defaultIPv4',
        '127.0.0.1',
        // No AAAA answers: the challenge server listens on 127.0.0.1 only.
        '-defaultIPv6',
        '',
        '-management',
        `127.0.0.1:${dnsMgmtPort}`,
        '-http01',
        '',
        '-https01',
        '',
        '-tlsalpn01',
        '',
      ],
      { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      append,
    );
    procs.push(challtestsrv);
    await waitFor(
      'pebble-challtestsrv',
      () => tcpOpen(dnsMgmtPort),
      () => challtestsrv.child.exitCode === null,
      () => output,
    );

    const config = join(dir, 'pebble-config.json');
    writeFileSync(
      config,
      JSON.stringify(
        {
          pebble: {
            listenAddress: `127.0.0.1:${acmePort}`,
            managementListenAddress: `127.0.0.1:${mgmtPort}`,
            certificate: join(dir, 'cert.pem'),
            privateKey: join(dir, 'key.pem'),
            httpPort: opts.httpPort,
            tlsPort,
            ocspResponderURL: '',
            externalAccountBindingRequired: false,
          },
        },
        null,
        2,
      ),
    );
    const pebble = startProcess(
      '/usr/bin/pebble',
      ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`],
      {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        PEBBLE_VA_NOSLEEP: '1',
        PEBBLE_WFE_NONCEREJECT: '0',
        ...opts.env,
      },
      append,
    );
    procs.push(pebble);
    const directory = `https://127.0.0.1:${acmePort}/dir`;
    const rootsUrl = `https://127.0.0.1:${mgmtPort}/roots/0`;
    await waitFor(
      'pebble',
      async () => (await httpsOk(directory, caPem)) && httpsOk(rootsUrl, caPem),
      () => pebble.child.exitCode === null,
      () => output,
    );

    return {
      directory,
      caFile: join(dir, 'ca.pem'),
      caPem,
      listener: {
        cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
        key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      },
      rootsUrl,
      httpPort: opts.httpPort,
      logText: () => output,
      orderCount: () => output.match(ORDER_LINE)?.length ?? 0,
      issuedCount: () => output.match(ISSUED_LINE)?.length ?? 0,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** n free loopback ports, distinct from each other and from `taken`. */
async function distinctFreePorts(n: number, ...taken: number[]): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const p = await freePort();
    if (!ports.includes(p) && !taken.includes(p)) ports.push(p);
  }
  return ports;
}
