import { AsyncLocalStorage } from 'node:async_hooks';
import { createPrivateKey } from 'node:crypto';
import { Agent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import {
  type Authorization,
  axios as acmeAxios,
  crypto as acmeCrypto,
  Client,
  type Order,
} from 'acme-client';
import { UserError } from '../core/errors.js';
import { type Secret, secret } from '../core/secret.js';
import { type CertInfo, certInfo, splitChain } from './cert-info.js';

/** Where HTTP-01 tokens are published: `/.well-known/acme-challenge/<token>` must answer the key authorization. */
export interface ChallengeStore {
  set(token: string, keyAuthorization: string): Promise<void>;
  remove(token: string): Promise<void>;
}

export interface ObtainInput {
  /** ACME directory URL (https). */
  directory: string;
  /** PEM of a private CA to trust for the directory's HTTPS, in addition to the system roots. */
  caRoot?: string;
  email: string;
  /** First = common name; all are SANs. */
  domains: string[];
  /** PEM; a P-256 key is generated when absent. */
  accountKey?: string;
  accountUrl?: string;
  /** HTTP-01 only. */
  challenges: ChallengeStore;
  /** Progress lines: "order created …", "challenge for X answered", "certificate issued …". Never keys. */
  log?: (line: string) => void;
}

export interface Obtained {
  /** PEM chain, leaf first. */
  certificate: string;
  /** PEM (P-256) of the certificate's key. */
  privateKey: Secret;
  accountKey: Secret;
  accountUrl: string;
  info: CertInfo;
}

/**
 * Polling of challenges and orders (acme-client's exponential backoff):
 * 250 ms, 0.5 s, 1 s, 2 s, 4 s, 8 s, then every 10 s; 12 tries (~65 s).
 * A test CA answers within the first tries; a real CA is not hammered.
 */
const BACKOFF = { backoffAttempts: 12, backoffMin: 250, backoffMax: 10_000 } as const;
/** The sum of BACKOFF's waits. */
const POLL_TOTAL_MS = Array.from({ length: BACKOFF.backoffAttempts - 1 }, (_, i) =>
  Math.min(BACKOFF.backoffMin * 2 ** i, BACKOFF.backoffMax),
).reduce((a, b) => a + b, 0);
/** One HTTP request to the CA (acme-client sets none: a stuck CA would hang the run). */
const REQUEST_TIMEOUT_MS = 30_000;
const DIRECTORY_TIMEOUT_MS = 10_000;
/** A rate limit whose Retry-After is longer than this fails the run instead of sleeping through it. */
const MAX_RATE_LIMIT_WAIT_S = 60;
const PROBLEM_PREFIX = 'urn:ietf:params:acme:error:';
const PROXY_NEXT = 'cluster-cli ssl status';

/** RFC 8555 §6.7 problem document, as the CA sent it. */
interface Problem {
  readonly type: string;
  readonly detail: string;
  readonly status?: number;
  readonly retryAfterS?: number;
}

/** Thrown from inside acme-client's HTTP stack to stop it retrying (see hookAcmeAxios). */
class AcmeProblemError extends Error {
  override readonly name = 'AcmeProblemError';
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

// ---------------------------------------------------------------------------
// Per-call HTTP settings for acme-client.
//
// acme-client sends every request through ONE module-level axios instance
// (`acme.axios`, shared by all Client objects) and offers no per-client HTTP
// options. Setting `acme.axios.defaults.httpsAgent` would leak one call's CA
// trust into every other call, also concurrent ones. Instead a request
// interceptor is registered once; it reads the settings of the call it runs
// in from an AsyncLocalStorage that obtainCertificate() enters. Outside such a
// call it changes nothing, so other users of acme-client see stock behaviour.
// Per request it sets: the call's https.Agent (CA trust), a timeout, and a
// transformResponse step that records the CA's problem documents (acme-client
// keeps only their detail text) and stops acme-client's transport retry for a
// long rate limit (it would otherwise sleep through Retry-After, 5 times).
// ---------------------------------------------------------------------------

interface CallContext {
  readonly agent: Agent;
  /** Problem documents the CA sent during this call, newest last. */
  readonly problems: Problem[];
}

const calls = new AsyncLocalStorage<CallContext>();
let hooked = false;

function hookAcmeAxios(): void {
  if (hooked) return;
  hooked = true;
  const defaults = acmeAxios.defaults.transformResponse;
  const stock = defaults === undefined ? [] : Array.isArray(defaults) ? defaults : [defaults];
  acmeAxios.interceptors.request.use((config) => {
    const ctx = calls.getStore();
    if (!ctx) return config;
    config.httpsAgent = ctx.agent;
    config.timeout = REQUEST_TIMEOUT_MS;
    config.transformResponse = [
      ...stock,
      (data: unknown, headers: unknown, status?: number) => {
        const problem = problemOf(data, headers, status);
        if (problem) {
          ctx.problems.push(problem);
          if (
            problem.type === `${PROBLEM_PREFIX}rateLimited` &&
            (problem.retryAfterS === undefined || problem.retryAfterS > MAX_RATE_LIMIT_WAIT_S)
          ) {
            // No `config` on this error: acme-client's retry interceptor passes it through.
            throw new AcmeProblemError(problem);
          }
        }
        return data;
      },
    ];
    return config;
  });
}

/** An error response's problem document, or the `error` of an object the CA marked invalid. */
function problemOf(data: unknown, headers: unknown, status?: number): Problem | undefined {
  if (!isRecord(data)) return undefined;
  let doc: unknown;
  if (status !== undefined && status >= 400) doc = data;
  else if (data.status === 'invalid') doc = data.error;
  if (!isRecord(doc) || typeof doc.type !== 'string') return undefined;
  const retryAfter = isRecord(headers) ? Number.parseInt(String(headers['retry-after']), 10) : NaN;
  return {
    type: doc.type,
    detail: typeof doc.detail === 'string' ? oneLine(doc.detail) : '',
    ...(status !== undefined && status >= 400 ? { status } : {}),
    ...(Number.isFinite(retryAfter) ? { retryAfterS: retryAfter } : {}),
  };
}

// ---------------------------------------------------------------------------

/**
 * Fetch the ACME directory and check it is one (newNonce, newAccount,
 * newOrder). Read-only: run it before anything is changed. Throws a one-line
 * UserError when the CA is unreachable, untrusted or not an ACME directory.
 */
export async function checkDirectory(
  directory: string,
  caRoot?: string,
  timeoutMs = DIRECTORY_TIMEOUT_MS,
): Promise<void> {
  const url = directoryUrl(directory);
  const ca = trustedCas(caRoot);
  const { status, contentType, body } = await new Promise<{
    status: number;
    contentType: string;
    body: string;
  }>((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: 'GET',
        agent: false,
        ...(ca ? { ca } : {}),
        headers: { accept: 'application/json', 'user-agent': 'cluster-cli' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > 1_000_000) req.destroy(new Error('answer larger than 1 MB'));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? 'no content type'),
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end();
  }).catch((err: unknown) => {
    throw connectError(directory, err, caRoot !== undefined, timeoutMs);
  });

  const notDirectory = (why: string) =>
    new UserError(
      `ACME directory ${directory} did not answer with an ACME directory (${why})`,
      'check the directory URL: it is the CA\'s "directory" address, e.g. https://acme-v02.api.letsencrypt.org/directory',
    );
  if (status !== 200) throw notDirectory(`HTTP ${status}`);
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw notDirectory(`not JSON: ${contentType}`);
  }
  const missing = ['newNonce', 'newAccount', 'newOrder'].filter(
    (k) => !isRecord(doc) || typeof doc[k] !== 'string',
  );
  if (missing.length > 0) throw notDirectory(`no ${missing.join(', ')} in its JSON`);
}

/**
 * Obtain a certificate for `domains` with HTTP-01: register (or reuse) the
 * account, order, publish each token through `challenges`, let the CA
 * validate, finalize with a fresh P-256 key and download the chain.
 * Every CA error becomes a one-line UserError naming the domain, the CA's own
 * words and a next step.
 */
export async function obtainCertificate(input: ObtainInput): Promise<Obtained> {
  const domains = normaliseDomains(input.domains);
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(input.email)) {
    throw new UserError(
      `"${input.email}" is not an e-mail address: the ACME account needs one for expiry notices`,
    );
  }
  if (input.accountUrl !== undefined && input.accountKey === undefined) {
    throw new UserError(
      `the ACME account ${input.accountUrl} is stored without its account key`,
      'forget the stored ACME account (URL) so a new one is registered',
    );
  }
  if (input.accountKey !== undefined) checkAccountKey(input.accountKey);
  await checkDirectory(input.directory, input.caRoot);
  const ca = trustedCas(input.caRoot);
  const ctx: CallContext = {
    agent: new Agent({ keepAlive: true, ...(ca ? { ca } : {}) }),
    problems: [],
  };
  hookAcmeAxios();
  try {
    return await calls.run(ctx, () => issue(input, domains, ctx));
  } finally {
    ctx.agent.destroy();
  }
}

async function issue(input: ObtainInput, domains: string[], ctx: CallContext): Promise<Obtained> {
  const log = input.log ?? (() => {});
  const fail = (step: Step, err: unknown, names = domains) =>
    caError(err, ctx, {
      directory: input.directory,
      step,
      domains: names,
      email: input.email,
      storedAccount: input.accountUrl,
    });

  const accountKey =
    input.accountKey ?? (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString('utf8');
  const client = new Client({
    directoryUrl: input.directory,
    accountKey,
    ...(input.accountUrl ? { accountUrl: input.accountUrl } : {}),
    ...BACKOFF,
  });

  // Account: new (or found by its key), or the stored one with its contact kept current.
  const contact = [`mailto:${input.email}`];
  try {
    await client.createAccount(
      input.accountUrl ? { contact } : { termsOfServiceAgreed: true, contact },
    );
  } catch (err) {
    throw fail('account', err);
  }
  const accountUrl = client.getAccountUrl();
  log(`account ${accountUrl}`);

  let order: Order;
  let authorizations: Authorization[];
  try {
    order = await client.createOrder({
      identifiers: domains.map((value) => ({ type: 'dns', value })),
    });
    authorizations = await client.getAuthorizations(order);
  } catch (err) {
    throw fail('order', err);
  }
  log(`order created for ${domains.join(', ')}`);

  // All challenges at once, as the CA validates them independently; wait for
  // every one (tokens removed) before reporting the first failure.
  const results = await Promise.allSettled(
    authorizations.map(async (authz) => {
      const domain = authz.identifier.value;
      try {
        await authorize(client, authz, input.challenges, log);
      } catch (err) {
        throw fail('challenge', err, [domain]);
      }
    }),
  );
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;

  let certificate: string;
  let keyPem: string;
  try {
    // acme-client's polled objects lose the `url` it added: put it back.
    const ready: Order = { ...(await client.waitForValidStatus(order)), url: order.url };
    const [key, csr] = await acmeCrypto.createCsr(
      { commonName: domains[0], altNames: domains },
      await acmeCrypto.createPrivateEcdsaKey('P-256'),
    );
    keyPem = key.toString('utf8');
    const finalized = await client.finalizeOrder(ready, csr);
    certificate = await client.getCertificate({ ...finalized, url: order.url });
  } catch (err) {
    throw fail('finalize', err);
  }
  if (splitChain(certificate).length === 0) {
    throw new UserError(
      `ACME CA ${host(input.directory)} sent no PEM certificate for ${domains.join(', ')}`,
    );
  }
  const info = certInfo(certificate);
  const missing = domains.filter((d) => !info.domains.includes(d));
  if (missing.length > 0) {
    throw new UserError(
      `ACME CA ${host(input.directory)} issued a certificate without ${missing.join(', ')} (it names ${info.domains.join(', ') || 'no DNS names'})`,
    );
  }
  log(`certificate issued by ${info.issuer}, valid until ${info.notAfter.toISOString()}`);
  return {
    certificate,
    privateKey: secret(keyPem, 'TLS private key'),
    accountKey: secret(accountKey, 'ACME account key'),
    accountUrl,
    info,
  };
}

async function authorize(
  client: Client,
  authz: Authorization,
  store: ChallengeStore,
  log: (line: string) => void,
): Promise<void> {
  const domain = authz.identifier.value;
  if (authz.status === 'valid') {
    log(`authorization for ${domain} is still valid`);
    return;
  }
  const challenge = authz.challenges.find((c) => c.type === 'http-01');
  if (!challenge) {
    throw new UserError(
      `the ACME CA offers no HTTP-01 challenge for ${domain} (offered: ${authz.challenges.map((c) => c.type).join(', ') || 'none'})`,
      'use a CA that validates with HTTP-01',
    );
  }
  const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
  let answered = false;
  try {
    await store.set(challenge.token, keyAuthorization);
    await client.completeChallenge(challenge);
    answered = true;
    log(`challenge for ${domain} answered`);
    await client.waitForValidStatus(challenge);
    log(`challenge for ${domain} valid`);
  } catch (err) {
    // An authorization left pending counts against the CA's pending limit.
    if (!answered) await client.deactivateAuthorization(authz).catch(() => undefined);
    throw err;
  } finally {
    await store
      .remove(challenge.token)
      .catch((err: unknown) =>
        log(
          `challenge token for ${domain} not removed: ${err instanceof Error ? err.message : err}`,
        ),
      );
  }
}

// ---------------------------------------------------------------------------
// Errors

type Step = 'account' | 'order' | 'challenge' | 'finalize';

const STEP_TEXT: Record<Step, string> = {
  account: 'register the ACME account for',
  order: 'order a certificate for',
  challenge: 'validate',
  finalize: 'issue the certificate for',
};

function caError(
  err: unknown,
  ctx: CallContext,
  at: {
    directory: string;
    step: Step;
    domains: readonly string[];
    email: string;
    /** The account URL the caller gave, if any. */
    storedAccount?: string | undefined;
  },
): UserError {
  if (err instanceof UserError) return err;
  const message = err instanceof Error ? oneLine(err.message) : String(err);
  const problem =
    err instanceof AcmeProblemError
      ? err.problem
      : ctx.problems.findLast((p) => p.detail !== '' && message.includes(p.detail));
  const ca = host(at.directory);
  const names = at.domains.join(', ');

  if (!problem && at.step === 'challenge' && /pending or processing/.test(message)) {
    return new UserError(
      `ACME CA ${ca} has not finished validating ${names} (HTTP-01) after ${Math.round(POLL_TOTAL_MS / 1000)} s`,
      `run the command again; check that ${names} resolves to a node running the proxy: ${PROXY_NEXT}`,
    );
  }
  if (!problem) {
    // No answer from the CA (connection, TLS, timeout) or a client-side failure.
    const code = isRecord(err) && typeof err.code === 'string' ? `${err.code}: ` : '';
    return new UserError(
      `ACME CA ${ca} failed to ${STEP_TEXT[at.step]} ${names}: ${code}${message}`,
      'run the command again; if it keeps failing, check the CA is reachable from here',
    );
  }

  const type = problem.type.startsWith(PROBLEM_PREFIX)
    ? problem.type.slice(PROBLEM_PREFIX.length)
    : problem.type;
  const detail = problem.detail || type;
  const said = `${detail} (${type})`;
  const first = at.domains[0] ?? '';

  switch (type) {
    case 'rateLimited':
      return new UserError(
        `ACME CA ${ca} rate-limited the request to ${STEP_TEXT[at.step]} ${names}: ${said}`,
        problem.retryAfterS !== undefined
          ? `try again in ${formatWait(problem.retryAfterS)}; test against the CA's staging directory meanwhile`
          : "try again once the limit resets (see the CA's detail); test against its staging directory meanwhile",
      );
    case 'caa':
      return new UserError(
        `ACME CA ${ca} may not issue for ${names}: ${said}`,
        `add a CAA record for ${first} that allows this CA, or remove the CAA record`,
      );
    case 'rejectedIdentifier':
    case 'unsupportedIdentifier':
      return new UserError(
        `ACME CA ${ca} will not issue for ${names}: ${said}`,
        'check the domain names: public names only, no IP addresses',
      );
    case 'invalidContact':
    case 'unsupportedContact':
      return new UserError(
        `ACME CA ${ca} rejected the contact ${at.email} for ${names}: ${said}`,
        'use an e-mail address on a real, deliverable domain',
      );
    case 'accountDoesNotExist':
      return new UserError(
        `ACME CA ${ca} has no account for the stored account key (needed for ${names}): ${said}`,
        'forget the stored ACME account (key and URL) so a new one is registered',
      );
  }
  if (at.step === 'challenge') {
    // unauthorized, incorrectResponse, connection, dns, tls, …: the CA could not fetch the token.
    const next =
      type === 'dns'
        ? `create a DNS A record for ${first} pointing at a node running the proxy, then check: ${PROXY_NEXT}`
        : `check that ${first} resolves to a node running the proxy and that port 80 reaches it: ${PROXY_NEXT}`;
    return new UserError(`ACME CA ${ca} could not validate ${first} (HTTP-01): ${said}`, next);
  }
  if (at.step === 'account' && at.storedAccount && ['unauthorized', 'malformed'].includes(type)) {
    return new UserError(
      `ACME CA ${ca} refused the stored ACME account ${at.storedAccount} (needed for ${names}): ${said}`,
      'forget the stored ACME account (key and URL) so a new one is registered',
    );
  }
  return new UserError(
    `ACME CA ${ca} failed to ${STEP_TEXT[at.step]} ${names}: ${said}`,
    'run the command again; if the CA keeps refusing, its detail above says why',
  );
}

/** A failure to fetch the directory, as one line. */
function connectError(directory: string, err: unknown, hadCaRoot: boolean, timeoutMs: number) {
  const code = isRecord(err) && typeof err.code === 'string' ? err.code : '';
  const message = err instanceof Error ? oneLine(err.message) : String(err);
  if (code === 'ETIMEDOUT') {
    return new UserError(
      `ACME directory ${directory} did not answer within ${formatWait(timeoutMs / 1000)}`,
      'check the URL and that this machine can reach the CA',
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new UserError(
      `ACME directory ${directory} presented a certificate for another name: ${message}`,
      'use the host name the CA certificate is issued for',
    );
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return new UserError(
      hadCaRoot
        ? `ACME directory ${directory} is not trusted (${message}): the certificate given with --acme-ca-root does not sign its TLS certificate`
        : `ACME directory ${directory} is not trusted (${message}): for a private CA, pass its root certificate with --acme-ca-root <file>`,
    );
  }
  return new UserError(
    `ACME directory ${directory} is unreachable: ${message}`,
    'check the URL and that this machine can reach the CA',
  );
}

// ---------------------------------------------------------------------------
// Input

function directoryUrl(directory: string): URL {
  let url: URL;
  try {
    url = new URL(directory);
  } catch {
    throw new UserError(`ACME directory "${directory}" is not a URL`);
  }
  if (url.protocol !== 'https:') {
    throw new UserError(
      `ACME directory ${directory} is not an https:// URL (RFC 8555 requires HTTPS)`,
    );
  }
  return url;
}

function checkAccountKey(pem: string): void {
  try {
    createPrivateKey(pem);
  } catch {
    throw new UserError(
      'the stored ACME account key is not a PEM private key',
      'forget the stored ACME account (key and URL) so a new one is registered',
    );
  }
}

/** The system roots plus caRoot, or undefined for Node's default trust. */
function trustedCas(caRoot: string | undefined): string[] | undefined {
  if (caRoot === undefined) return undefined;
  const certs = splitChain(caRoot);
  if (certs.length === 0) {
    throw new UserError(
      'the ACME CA root (--acme-ca-root) holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    );
  }
  return [...rootCertificates, ...certs];
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

function normaliseDomains(input: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of input) {
    const d = raw.trim().toLowerCase().replace(/\.$/, '');
    if (d.startsWith('*.')) {
      throw new UserError(
        `${raw}: a wildcard certificate needs a DNS-01 challenge; only HTTP-01 is supported`,
        'list each host name instead',
      );
    }
    if (d.length > 253 || !d.split('.').every((label) => LABEL.test(label))) {
      throw new UserError(`"${raw}" is not a domain name`);
    }
    if (!out.includes(d)) out.push(d);
  }
  if (out.length === 0) throw new UserError('no domain names to obtain a certificate for');
  return out;
}

// ---------------------------------------------------------------------------

function host(directory: string): string {
  try {
    return new URL(directory).host;
  } catch {
    return directory;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function formatWait(seconds: number): string {
  if (seconds < 120) return `${Math.ceil(seconds)} s`;
  if (seconds < 7200) return `${Math.ceil(seconds / 60)} min`;
  return `${Math.ceil(seconds / 3600)} h`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
