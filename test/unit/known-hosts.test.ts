import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendKnownHost,
  classifyHostKey,
  fingerprintSha256,
  formatKnownHostsLine,
  keyTypeOf,
  knownHostsName,
  lookupHostKeys,
} from '../../src/remote/known-hosts.js';

let dir: string;
/** Real keys made by ssh-keygen: `type base64` of each .pub. */
const pub: Record<'ed' | 'ed2' | 'rsa' | 'ecdsa', { type: string; b64: string; file: string }> =
  {} as never;

function keygen(name: string, args: string[]) {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', 'c', '-f', file]);
  const [type, b64] = readFileSync(`${file}.pub`, 'utf8').split(' ') as [string, string];
  return { type, b64, file: `${file}.pub` };
}
const blob = (k: { b64: string }) => Buffer.from(k.b64, 'base64');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cc-kh-'));
  pub.ed = keygen('ed', ['-t', 'ed25519']);
  pub.ed2 = keygen('ed2', ['-t', 'ed25519']);
  pub.rsa = keygen('rsa', ['-t', 'rsa', '-b', '2048']);
  pub.ecdsa = keygen('ecdsa', ['-t', 'ecdsa']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fingerprintSha256', () => {
  it('prints what ssh-keygen -lf prints', () => {
    for (const k of [pub.ed, pub.rsa, pub.ecdsa]) {
      const expected = execFileSync('ssh-keygen', ['-lf', k.file], { encoding: 'utf8' }).split(
        ' ',
      )[1];
      expect(fingerprintSha256(blob(k))).toBe(expected);
    }
  });

  it('is base64 without padding', () => {
    // sha256 of the empty string: 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
    expect(fingerprintSha256(Buffer.alloc(0))).toBe(
      'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
    );
  });
});

describe('keyTypeOf', () => {
  it('reads the type at the start of the blob', () => {
    expect(keyTypeOf(blob(pub.ed))).toBe('ssh-ed25519');
    expect(keyTypeOf(blob(pub.rsa))).toBe('ssh-rsa');
    expect(keyTypeOf(blob(pub.ecdsa))).toBe('ecdsa-sha2-nistp256');
  });
  it('rejects a malformed blob', () => {
    expect(() => keyTypeOf(Buffer.from([0, 0, 0, 99, 1]))).toThrow('malformed');
    expect(() => keyTypeOf(Buffer.from([0, 0]))).toThrow('too short');
  });
});

describe('lookupHostKeys', () => {
  const line = (hosts: string, k: { type: string; b64: string }) => `${hosts} ${k.type} ${k.b64}`;

  it('matches a plain host on port 22 only', () => {
    const text = line('10.0.0.5', pub.ed);
    expect(lookupHostKeys(text, '10.0.0.5', 22)).toEqual({
      keys: [{ type: 'ssh-ed25519', blob: blob(pub.ed) }],
      revoked: [],
    });
    expect(lookupHostKeys(text, '10.0.0.5', 2222).keys).toEqual([]);
    expect(lookupHostKeys(text, '10.0.0.6', 22).keys).toEqual([]);
  });

  it('matches [host]:port for other ports only', () => {
    const text = line('[10.0.0.5]:2222', pub.ed);
    expect(lookupHostKeys(text, '10.0.0.5', 2222).keys).toHaveLength(1);
    expect(lookupHostKeys(text, '10.0.0.5', 22).keys).toEqual([]);
    expect(lookupHostKeys(text, '10.0.0.5', 2223).keys).toEqual([]);
  });

  it('matches any name of a comma list, case-insensitively, and IPv6', () => {
    const text = [
      line('node1.example.com,10.0.0.5,[::1]:2200', pub.ed),
      line('Node2', pub.rsa),
    ].join('\n');
    expect(lookupHostKeys(text, 'NODE1.example.com', 22).keys).toHaveLength(1);
    expect(lookupHostKeys(text, '10.0.0.5', 22).keys).toHaveLength(1);
    expect(lookupHostKeys(text, '::1', 2200).keys).toHaveLength(1);
    expect(lookupHostKeys(text, 'node2', 22).keys).toEqual([
      { type: 'ssh-rsa', blob: blob(pub.rsa) },
    ]);
    expect(lookupHostKeys(text, 'node1', 22).keys).toEqual([]);
  });

  it('honours wildcards and negation', () => {
    const text = line('*.lab.test,!bad.lab.test,10.0.0.?', pub.ed);
    expect(lookupHostKeys(text, 'a.lab.test', 22).keys).toHaveLength(1);
    expect(lookupHostKeys(text, 'bad.lab.test', 22).keys).toEqual([]);
    expect(lookupHostKeys(text, '10.0.0.7', 22).keys).toHaveLength(1);
    expect(lookupHostKeys(text, '10.0.0.17', 22).keys).toEqual([]);
    expect(lookupHostKeys(text, 'lab.test', 22).keys).toEqual([]);
  });

  it('collects several keys, skipping comments, blank, malformed and @cert-authority lines', () => {
    const text = [
      '# a comment',
      '',
      '   ',
      line('h1', pub.ed),
      line('h1', pub.rsa),
      `@cert-authority h1 ${pub.ecdsa.type} ${pub.ecdsa.b64}`,
      'h1 ssh-ed25519',
      `h1 ssh-ed25519 not*base64`,
      // declared type differs from the type inside the blob
      `h1 ssh-rsa ${pub.ed.b64}`,
      `@unknown-marker h1 ${pub.ecdsa.type} ${pub.ecdsa.b64}`,
      `h1 ${pub.ecdsa.type} ${pub.ecdsa.b64} comment with spaces`,
    ].join('\n');
    expect(lookupHostKeys(text, 'h1', 22)).toEqual({
      keys: [
        { type: 'ssh-ed25519', blob: blob(pub.ed) },
        { type: 'ssh-rsa', blob: blob(pub.rsa) },
        { type: 'ecdsa-sha2-nistp256', blob: blob(pub.ecdsa) },
      ],
      revoked: [],
    });
  });

  it('returns @revoked keys separately', () => {
    const text = [`@revoked * ${pub.ed2.type} ${pub.ed2.b64}`, line('h1', pub.ed)].join('\r\n');
    expect(lookupHostKeys(text, 'h1', 22)).toEqual({
      keys: [{ type: 'ssh-ed25519', blob: blob(pub.ed) }],
      revoked: [blob(pub.ed2)],
    });
    expect(lookupHostKeys(text, 'other', 2222)).toEqual({ keys: [], revoked: [blob(pub.ed2)] });
  });

  it('matches hashed names written by ssh-keygen -H', () => {
    const file = join(dir, 'known_hosts_hashed');
    writeFileSync(
      file,
      [
        line('10.0.0.5', pub.ed),
        line('[10.0.0.5]:2222', pub.rsa),
        line('node1.lab', pub.ecdsa),
      ].join('\n'),
    );
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('10.0.0.5');
    expect(text.trim().split('\n')).toHaveLength(3);
    for (const l of text.trim().split('\n')) expect(l).toMatch(/^\|1\|[^|]+\|[^ ]+ /);

    expect(lookupHostKeys(text, '10.0.0.5', 22).keys).toEqual([
      { type: 'ssh-ed25519', blob: blob(pub.ed) },
    ]);
    expect(lookupHostKeys(text, '10.0.0.5', 2222).keys).toEqual([
      { type: 'ssh-rsa', blob: blob(pub.rsa) },
    ]);
    expect(lookupHostKeys(text, 'NODE1.lab', 22).keys).toEqual([
      { type: 'ecdsa-sha2-nistp256', blob: blob(pub.ecdsa) },
    ]);
    expect(lookupHostKeys(text, '10.0.0.6', 22).keys).toEqual([]);
    expect(lookupHostKeys(text, '10.0.0.5', 2223).keys).toEqual([]);
  });
});

describe('formatKnownHostsLine', () => {
  it('writes host, type and base64 blob; [host]:port off port 22', () => {
    expect(formatKnownHostsLine('10.0.0.5', 22, 'ssh-ed25519', blob(pub.ed))).toBe(
      `10.0.0.5 ssh-ed25519 ${pub.ed.b64}`,
    );
    expect(formatKnownHostsLine('Node1.LAB', 2222, 'ssh-rsa', blob(pub.rsa))).toBe(
      `[node1.lab]:2222 ssh-rsa ${pub.rsa.b64}`,
    );
    expect(formatKnownHostsLine('fd00::5', 22, 'ssh-ed25519', blob(pub.ed))).toBe(
      `fd00::5 ssh-ed25519 ${pub.ed.b64}`,
    );
    expect(knownHostsName('fd00::5', 2200)).toBe('[fd00::5]:2200');
  });

  it('is found by ssh-keygen -F and by lookupHostKeys', () => {
    const file = join(dir, 'known_hosts_written');
    writeFileSync(file, `${formatKnownHostsLine('10.0.0.9', 2200, pub.ed.type, blob(pub.ed))}\n`);
    const out = execFileSync('ssh-keygen', ['-F', '[10.0.0.9]:2200', '-f', file], {
      encoding: 'utf8',
    });
    expect(out).toContain(pub.ed.b64);
    expect(lookupHostKeys(readFileSync(file, 'utf8'), '10.0.0.9', 2200).keys).toHaveLength(1);
  });
});

describe('appendKnownHost', () => {
  it('creates the directory (0700) and the file (0600)', async () => {
    const file = join(dir, 'fresh', 'sub', 'known_hosts');
    await appendKnownHost(file, 'h1 ssh-ed25519 AAAA');
    await appendKnownHost(file, 'h2 ssh-ed25519 BBBB');
    expect(readFileSync(file, 'utf8')).toBe('h1 ssh-ed25519 AAAA\nh2 ssh-ed25519 BBBB\n');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'fresh', 'sub')).mode & 0o777).toBe(0o700);
  });

  it('adds the missing newline at the end of an existing file and keeps its mode', async () => {
    const file = join(dir, 'no_newline');
    writeFileSync(file, 'h1 ssh-ed25519 AAAA');
    chmodSync(file, 0o644);
    await appendKnownHost(file, 'h2 ssh-ed25519 BBBB');
    expect(readFileSync(file, 'utf8')).toBe('h1 ssh-ed25519 AAAA\nh2 ssh-ed25519 BBBB\n');
    expect(statSync(file).mode & 0o777).toBe(0o644);
  });
});

describe('classifyHostKey', () => {
  it('revoked, known, changed, unknown', () => {
    const ed = blob(pub.ed);
    const ed2 = blob(pub.ed2);
    const known = { keys: [{ type: 'ssh-ed25519', blob: ed }], revoked: [] };
    expect(classifyHostKey(known, ed)).toBe('known');
    expect(classifyHostKey(known, ed2)).toBe('changed');
    expect(classifyHostKey({ keys: [], revoked: [] }, ed)).toBe('unknown');
    expect(classifyHostKey({ keys: known.keys, revoked: [ed] }, ed)).toBe('revoked');
  });
});
