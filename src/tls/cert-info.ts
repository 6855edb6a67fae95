import { X509Certificate } from 'node:crypto';

/** What a certificate says about itself: the leaf of a PEM chain. */
export interface CertInfo {
  /** The subject's CN, or the whole subject when it has none. */
  readonly subject: string;
  /** Who signed it, human readable: the issuer's CN, else its O, else the whole issuer. */
  readonly issuer: string;
  /** Hex, as openssl prints it. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DNS names from subjectAltName, in certificate order. */
  readonly domains: readonly string[];
  /** SHA-256 of the DER, colon-separated hex. */
  readonly fingerprint256: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

/** The certificates of a PEM chain, leaf first as the chain lists them; each ends with a newline. */
export function splitChain(pem: string): string[] {
  return (pem.match(PEM_CERT) ?? []).map((block) => `${block.replace(/\r\n/g, '\n')}\n`);
}

/** Facts about the first certificate (the leaf) of a PEM chain. */
export function certInfo(pem: string): CertInfo {
  const [leaf] = splitChain(pem);
  if (!leaf) throw new Error('no PEM certificate (-----BEGIN CERTIFICATE-----) in the input');
  const x = new X509Certificate(leaf);
  return {
    subject: distinguishedName(x.subject, ['CN']),
    issuer: distinguishedName(x.issuer, ['CN', 'O']),
    serial: x.serialNumber,
    notBefore: certDate(x.validFrom, 'notBefore'),
    notAfter: certDate(x.validTo, 'notAfter'),
    domains: dnsNames(x.subjectAltName),
    fingerprint256: x.fingerprint256,
  };
}

/** Whole days until notAfter (negative once expired). */
export function daysLeft(info: Pick<CertInfo, 'notAfter'>, now: Date = new Date()): number {
  return Math.floor((info.notAfter.getTime() - now.getTime()) / DAY_MS);
}

/**
 * Node prints a distinguished name one `KEY=value` per line (`CN=x\nO=y`).
 * Returns the first of `prefer` present, else the whole name on one line.
 */
function distinguishedName(dn: string, prefer: readonly string[]): string {
  const fields = dn
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const eq = line.indexOf('=');
      return { key: line.slice(0, eq), value: line.slice(eq + 1) };
    });
  for (const key of prefer) {
    const hit = fields.find((f) => f.key === key);
    if (hit) return hit.value;
  }
  return fields.map((f) => `${f.key}=${f.value}`).join(', ');
}

function certDate(text: string, field: string): Date {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) throw new Error(`certificate ${field} "${text}" is not a date`);
  return date;
}

/**
 * `DNS:a.example, DNS:b.example, IP Address:1.2.3.4`. Node quotes an entry
 * that holds a comma or a quote as a JSON string (`DNS:"a,b"`).
 */
function dnsNames(san: string | undefined): string[] {
  if (!san) return [];
  const names: string[] = [];
  for (const m of san.matchAll(/(?:^|, )DNS:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = m[1] ?? '';
    names.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return names;
}
