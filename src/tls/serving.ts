import { connect } from 'node:tls';

export type Served =
  | { readonly ok: true; readonly fingerprint256: string; readonly validTo: string }
  | { readonly ok: false; readonly error: string };

/**
 * The certificate a proxy node presents for `servername` on port 443 (not
 * verified here: the caller compares fingerprints with the one it delivered).
 */
export function servedCertificate(
  address: string,
  servername: string,
  opts: { port?: number; timeoutMs?: number } = {},
): Promise<Served> {
  return new Promise((resolve) => {
    const socket = connect({
      host: address,
      port: opts.port ?? 443,
      servername,
      rejectUnauthorized: false,
      timeout: opts.timeoutMs ?? 5000,
    });
    const done = (s: Served) => {
      socket.destroy();
      resolve(s);
    };
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      if (!cert?.fingerprint256) done({ ok: false, error: 'no certificate presented' });
      else done({ ok: true, fingerprint256: cert.fingerprint256, validTo: cert.valid_to });
    });
    socket.once('timeout', () => done({ ok: false, error: 'timed out' }));
    socket.once('error', (err) => done({ ok: false, error: err.message }));
  });
}
