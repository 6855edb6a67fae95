import type { DockerApi } from '../core/api.js';
import type { Queryable } from '../db/queryable.js';
import type { Obtained, ObtainInput } from './acme.js';
import { daysLeft } from './cert-info.js';
import { ensureCertSecrets, swapProxyCertificate } from './deliver.js';
import {
  challengeStore,
  readTls,
  type StoredCertificate,
  type TlsSettings,
  updateTlsStatus,
  writeTls,
} from './store.js';

export interface RenewDeps {
  readonly db: Queryable;
  /** A manager's Docker API, to swap a renewed certificate into the proxy; absent: store only. */
  readonly api?: DockerApi;
  /** Who renews (agent replica or CLI), recorded for `ssl status`. */
  readonly owner: string;
  readonly now: () => Date;
  readonly obtain: (input: ObtainInput) => Promise<Obtained>;
  readonly log: (line: string) => void;
}

export type RenewOutcome =
  | { readonly action: 'not-configured' }
  | { readonly action: 'fresh'; readonly cert: StoredCertificate }
  | {
      readonly action: 'renewed';
      readonly cert: StoredCertificate;
      readonly delivery: 'swapped' | 'already' | 'not-serving' | 'no-api';
    };

// One advisory lock for every certificate order of the cluster: whoever holds
// it re-reads the state, so a second runner finds a fresh certificate and stops.
const LOCK = "SELECT pg_advisory_lock(hashtext('cluster_cli.tls'))";
const UNLOCK = "SELECT pg_advisory_unlock(hashtext('cluster_cli.tls'))";

/** Why the stored certificate needs replacing, or undefined when it is good. */
export function renewalReason(
  settings: TlsSettings,
  cert: StoredCertificate | undefined,
  now: Date,
  force: boolean,
): string | undefined {
  if (!cert) return 'no certificate yet';
  if (force) return 'forced';
  const want = [...settings.domains].sort().join(',');
  if ([...cert.domains].sort().join(',') !== want) return 'the host names changed';
  if (cert.directory !== settings.directory) return 'the ACME CA changed';
  const left = daysLeft({ notAfter: new Date(cert.notAfter) }, now);
  if (left < settings.renewDays) return `${Math.floor(left)} days left`;
  return undefined;
}

/**
 * Obtain a certificate when the stored one is missing, stale, for other
 * names or `force`d, store it, and swap it into the running proxy. Runs under
 * the cluster-wide lock, so concurrent callers never order twice.
 */
export async function renewIfDue(deps: RenewDeps, opts: { force: boolean }): Promise<RenewOutcome> {
  const { db } = deps;
  await db.query(LOCK);
  try {
    const settings = await readTls(db, 'settings');
    if (!settings) return { action: 'not-configured' };
    const current = await readTls(db, 'certificate');
    const now = deps.now();
    const reason = renewalReason(settings, current, now, opts.force);
    if (!reason && current) return { action: 'fresh', cert: current };

    deps.log(`ordering a certificate for ${settings.domains.join(', ')} (${reason})`);
    await updateTlsStatus(db, { lastAttemptAt: now.toISOString(), lastAttemptBy: deps.owner });
    const account = await readTls(db, 'account');
    let got: Obtained;
    try {
      got = await deps.obtain({
        directory: settings.directory,
        ...(settings.caRoot ? { caRoot: settings.caRoot } : {}),
        email: settings.email,
        domains: [...settings.domains],
        ...(account ? { accountKey: account.key, accountUrl: account.url } : {}),
        challenges: challengeStore(db),
        log: deps.log,
      });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await updateTlsStatus(db, { lastError: message.split('\n')[0] ?? message });
      throw err;
    }
    await writeTls(db, 'account', { key: got.accountKey.reveal(), url: got.accountUrl });
    const cert: StoredCertificate = {
      certificate: got.certificate,
      key: got.privateKey.reveal(),
      domains: got.info.domains,
      issuer: got.info.issuer,
      serial: got.info.serial,
      fingerprint: got.info.fingerprint256,
      notAfter: got.info.notAfter.toISOString(),
      obtainedAt: deps.now().toISOString(),
      obtainedBy: deps.owner,
      directory: settings.directory,
    };
    await writeTls(db, 'certificate', cert);
    await updateTlsStatus(db, {
      lastRenewalAt: cert.obtainedAt,
      lastRenewalBy: deps.owner,
      lastError: '',
    });
    deps.log(`certificate issued by ${cert.issuer}, valid until ${cert.notAfter}`);
    if (!deps.api) return { action: 'renewed', cert, delivery: 'no-api' };
    const names = await ensureCertSecrets(deps.api, settings.stack, cert);
    const delivery = await swapProxyCertificate(deps.api, settings.stack, names);
    if (delivery === 'swapped') deps.log('proxy updated to the new certificate');
    return { action: 'renewed', cert, delivery };
  } finally {
    await db.query(UNLOCK);
  }
}
