import { isIP } from 'node:net';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const DOMAIN_BODY =
  '(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';

/** A fully qualified DNS name with at least two labels and a non-numeric TLD, e.g. `app.example.com`. */
export const DOMAIN_RE = new RegExp(`^${DOMAIN_BODY}$`);
export const EMAIL_RE = new RegExp(`^[A-Za-z0-9.!#$%&'*+/=?^_\`{|}~-]{1,64}@${DOMAIN_BODY}$`);

export function isDomain(value: string): boolean {
  return DOMAIN_RE.test(value);
}

/** A hostname in the wider sense: a single label (`lab1`) or a domain. */
export function isHostname(value: string): boolean {
  if (value.length > 253) return false;
  return value.split('.').every((l) => LABEL.test(l));
}

export function isEmail(value: string): boolean {
  return EMAIL_RE.test(value);
}

export function isIpAddress(value: string): boolean {
  return isIP(value) !== 0;
}

/** An IPv4 CIDR such as 10.0.10.0/24 whose address is the network address. */
export function isIpv4Cidr(value: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!m) return false;
  const octets = m.slice(1, 5).map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits < 8 || bits > 30) return false;
  const n = ipv4ToInt(octets);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (n & mask) >>> 0 === n;
}

export function ipv4ToInt(octets: number[]): number {
  return (
    (((octets[0] ?? 0) << 24) |
      ((octets[1] ?? 0) << 16) |
      ((octets[2] ?? 0) << 8) |
      (octets[3] ?? 0)) >>>
    0
  );
}

export function cidrRange(cidr: string): [number, number] {
  const [addr, bits] = cidr.split('/') as [string, string];
  const start = ipv4ToInt(addr.split('.').map(Number));
  const size = 2 ** (32 - Number(bits));
  return [start, start + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const [a0, a1] = cidrRange(a);
  const [b0, b1] = cidrRange(b);
  return a0 <= b1 && b0 <= a1;
}

/** Docker memory size as compose writes it: 512M, 1G, 64M. */
export const MEMORY = /^[1-9]\d*(\.\d+)?[KMG]$/;

/** Swarm node label keys and values we accept (docker allows more; we keep to safe words). */
export const NODE_LABEL_KEY = /^[a-z][a-z0-9_.-]{0,62}$/;
export const NODE_LABEL_VALUE = /^[A-Za-z0-9_.-]{1,63}$/;
