import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * OpenSSH known_hosts, the parts cluster-cli needs: look up the keys recorded
 * for a host and port (plain, comma-listed, wildcard and hashed names), honour
 * `@revoked`, print fingerprints the way `ssh-keygen -lf` does, and append new
 * entries in the format `ssh` writes.
 */

export interface HostKey {
  /** Key type as written in known_hosts and inside the blob, e.g. `ssh-ed25519`. */
  readonly type: string;
  /** The public key in SSH wire format (what the server presents). */
  readonly blob: Buffer;
}

export interface HostKeyLookup {
  readonly keys: HostKey[];
  /** Blobs marked `@revoked` for this host: never accept them. */
  readonly revoked: Buffer[];
}

/** The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise (lower-cased). */
export function knownHostsName(host: string, port = 22): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** Keys recorded for host:port in the text of one known_hosts file. */
export function lookupHostKeys(text: string, host: string, port = 22): HostKeyLookup {
  const name = knownHostsName(host, port);
  const keys: HostKey[] = [];
  const revoked: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    if (marker !== undefined && marker !== '@revoked') continue; // @cert-authority and unknown markers
    const [patterns, type, b64] = fields;
    if (patterns === undefined || type === undefined || b64 === undefined) continue;
    if (!hostMatches(patterns, name)) continue;
    const blob = decodeKey(b64, type);
    if (blob === undefined) continue;
    if (marker === '@revoked') revoked.push(blob);
    else keys.push({ type, blob });
  }
  return { keys, revoked };
}

/** `SHA256:…` exactly as `ssh-keygen -lf` prints it (base64 without padding). */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type stored at the start of a wire-format public key (`ssh-ed25519`, `ssh-rsa`, …). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) throw new Error('public key blob too short');
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) throw new Error('malformed public key blob');
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** One known_hosts line for host:port, unhashed, as `ssh` writes it with HashKnownHosts off. */
export function formatKnownHostsLine(
  host: string,
  port: number,
  type: string,
  blob: Buffer,
): string {
  return `${knownHostsName(host, port)} ${type} ${blob.toString('base64')}`;
}

/** Append a line, creating the directory (0700) and file (0600) when missing. */
export async function appendKnownHost(file: string, line: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  let sep = '';
  try {
    const current = await readFile(file);
    if (current.length > 0 && current[current.length - 1] !== 0x0a) sep = '\n';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await appendFile(file, `${sep}${line}\n`, { mode: 0o600 });
}

function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const pattern = negated ? p.slice(1) : p;
    if (!globMatches(pattern.toLowerCase(), name)) continue;
    if (negated) return false;
    matched = true;
  }
  return matched;
}

/** `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as written by `ssh-keygen -H`. */
function hashedMatches(entry: string, name: string): boolean {
  const [, , salt, hash] = entry.split('|');
  if (salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** OpenSSH host patterns: `*` any run of characters, `?` exactly one. */
function globMatches(pattern: string, name: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === name;
  const re = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) =>
    c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`,
  );
  return new RegExp(`^${re}$`).test(name);
}

function decodeKey(b64: string, type: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const blob = Buffer.from(b64, 'base64');
  try {
    return keyTypeOf(blob) === type ? blob : undefined;
  } catch {
    return undefined;
  }
}

export type HostKeyVerdict = 'known' | 'revoked' | 'changed' | 'unknown';

/**
 * Compare the key a server presented with what known_hosts holds for it:
 * revoked wins, then an exact blob match; any other recorded key means the
 * host key changed; nothing recorded means unknown.
 */
export function classifyHostKey(lookup: HostKeyLookup, blob: Buffer): HostKeyVerdict {
  if (lookup.revoked.some((r) => r.equals(blob))) return 'revoked';
  if (lookup.keys.some((k) => k.blob.equals(blob))) return 'known';
  return lookup.keys.length > 0 ? 'changed' : 'unknown';
}
