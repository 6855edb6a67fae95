/**
 * Admin password hashing: scrypt (memory-hard, in node:crypto, no dependency),
 * stored as a self-describing PHC-style string
 *
 *     $scrypt$ln=15,r=8,p=1$<salt>$<key>
 *
 * N = 2^ln; salt and key in standard base64 without padding. verifyPassword()
 * reads the parameters from the string, so rows hashed with other parameters
 * (older defaults) keep verifying after the defaults change.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { Secret } from '../core/secret.js';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  readonly ln: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
}

/** What goes in `kdf_params`: the cost parameters plus salt and key lengths. */
export interface KdfParams extends ScryptParams {
  readonly saltBytes: number;
  readonly keyBytes: number;
}

export interface PasswordHash {
  /** The `password_hash` column. */
  readonly encoded: string;
  /** The `kdf` column. */
  readonly kdf: 'scrypt';
  /** The `kdf_params` column. */
  readonly params: KdfParams;
}

/** 32 MiB of memory and some 50–100 ms of CPU per hash on a current server core. */
export const DEFAULT_SCRYPT: ScryptParams = { ln: 15, r: 8, p: 1 };
export const SALT_BYTES = 16;
export const KEY_BYTES = 32;

// Bounds for parameters read back from a stored string: a corrupt or hostile
// row must not make a login allocate gigabytes or spin for minutes.
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 256 * 1024 * 1024;

const B64 = '[A-Za-z0-9+/]+';
const ENCODED_RE = new RegExp(
  `^\\$scrypt\\$ln=(\\d{1,2}),r=(\\d{1,3}),p=(\\d{1,3})\\$(${B64})\\$(${B64})$`,
);

export async function hashPassword(
  pw: Secret,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<PasswordHash> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(pw, salt, params, KEY_BYTES);
  return {
    encoded: encodeScrypt(params, salt, key),
    kdf: 'scrypt',
    params: { ln: params.ln, r: params.r, p: params.p, saltBytes: SALT_BYTES, keyBytes: KEY_BYTES },
  };
}

/**
 * True when `pw` matches the stored string. Throws (a plain Error: data, not
 * the user's input, is wrong) when the string is not a hash this code reads.
 */
export async function verifyPassword(pw: Secret, encoded: string): Promise<boolean> {
  const { params, salt, key } = parseScrypt(encoded);
  const derived = await derive(pw, salt, params, key.length);
  return timingSafeEqual(derived, key);
}

export interface ParsedScrypt {
  readonly params: ScryptParams;
  readonly salt: Buffer;
  readonly key: Buffer;
}

export function parseScrypt(encoded: string): ParsedScrypt {
  const m = ENCODED_RE.exec(encoded);
  if (!m) throw new Error('unrecognised password hash (expected $scrypt$ln=…,r=…,p=…$salt$key)');
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  checkParams(params);
  const salt = Buffer.from(m[4] ?? '', 'base64');
  const key = Buffer.from(m[5] ?? '', 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 64) {
    throw new Error('unrecognised password hash (salt or key length out of range)');
  }
  return { params, salt, key };
}

/** True when a stored hash was made with parameters other than `target` (rehash at next password change). */
export function needsRehash(encoded: string, target: ScryptParams = DEFAULT_SCRYPT): boolean {
  const { params, salt, key } = parseScrypt(encoded);
  return (
    params.ln !== target.ln ||
    params.r !== target.r ||
    params.p !== target.p ||
    salt.length !== SALT_BYTES ||
    key.length !== KEY_BYTES
  );
}

export function encodeScrypt(params: ScryptParams, salt: Buffer, key: Buffer): string {
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

function b64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

/** Memory scrypt needs: 128·N·r for V plus 128·r·p for B (Node refuses when maxmem is below it). */
function memoryFor(params: ScryptParams): number {
  return 128 * 2 ** params.ln * params.r + 128 * params.r * params.p;
}

function checkParams(params: ScryptParams): void {
  const { ln, r, p } = params;
  const ok =
    Number.isInteger(ln) &&
    Number.isInteger(r) &&
    Number.isInteger(p) &&
    ln >= 1 &&
    ln <= MAX_LN &&
    r >= 1 &&
    r <= MAX_R &&
    p >= 1 &&
    p <= MAX_P &&
    memoryFor(params) <= MAX_MEMORY;
  if (!ok) throw new Error(`unsupported scrypt parameters ln=${ln},r=${r},p=${p}`);
}

function derive(pw: Secret, salt: Buffer, params: ScryptParams, keylen: number): Promise<Buffer> {
  const options = {
    N: 2 ** params.ln,
    r: params.r,
    p: params.p,
    // Headroom over the exact need: Node's own estimate rounds differently across versions.
    maxmem: memoryFor(params) + 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    scrypt(Buffer.from(pw.reveal(), 'utf8'), salt, keylen, options, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}
