import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DecryptError,
  decryptStream,
  encryptStream,
  generateIdentity,
  parseIdentityFile,
  recipientOf,
  sha256Stream,
} from '../../src/backup/crypt.js';
import { UserError } from '../../src/core/errors.js';
import { REDACTED, Secret } from '../../src/core/secret.js';

const MiB = 1024 * 1024;
const keys = await generateIdentity();

/** `size` random bytes, made as they are read (never held whole), in uneven chunks. */
function randomSource(size: number, onRead?: (produced: number) => void): Readable {
  let produced = 0;
  return new Readable({
    read() {
      if (produced >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(3 * 65_536 + 7, size - produced);
      produced += n;
      onRead?.(produced);
      this.push(randomBytes(n));
    },
  });
}

async function collect(stream: Readable | NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function encrypt(plain: Buffer, recipient = keys.recipient): Promise<Buffer> {
  return collect(Readable.from([plain]).pipe(encryptStream(recipient)));
}

async function decrypt(cipher: Buffer, identity: Secret = keys.identity): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([cipher]),
    decryptStream(identity),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('keys', () => {
  it('generates an X25519 identity whose secret half never prints', async () => {
    expect(keys.recipient).toMatch(/^age1[02-9ac-hj-np-z]{58}$/);
    expect(keys.identity.reveal()).toMatch(/^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/);
    expect(String(keys.identity)).toBe(REDACTED);
    expect(JSON.stringify(keys)).not.toContain('AGE-SECRET-KEY');
    expect(await recipientOf(keys.identity)).toBe(keys.recipient);
  });

  it('refuses a bad recipient or identity with a UserError that does not echo the key', async () => {
    expect(() => encryptStream('age1nope')).toThrow(UserError);
    expect(() => decryptStream(new Secret('AGE-SECRET-KEY-1NOPE'))).toThrow(
      'the backup encryption key is not an age identity (AGE-SECRET-KEY-1…)',
    );
    await expect(recipientOf(new Secret('nope'))).rejects.toThrow(UserError);
  });
});

describe('encrypt → decrypt', () => {
  it('round-trips 50 MB as a stream, with bounded memory', async () => {
    const size = 50 * MiB;
    let delivered = 0;
    let deliveredAtHalf = -1;
    const source = randomSource(size, (produced) => {
      if (deliveredAtHalf < 0 && produced >= size / 2) deliveredAtHalf = delivered;
    });
    const plain = sha256Stream();
    const stored = sha256Stream();
    const restored = sha256Stream();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = () => {
      peak = Math.max(peak, process.memoryUsage().rss);
    };
    const timer = setInterval(sample, 10);
    try {
      await pipeline(
        source,
        plain,
        encryptStream(keys.recipient),
        stored,
        decryptStream(keys.identity),
        restored,
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            delivered += chunk.length;
            sample();
            cb();
          },
        }),
      );
    } finally {
      clearInterval(timer);
    }
    const [p, s, r] = await Promise.all([plain.digest, stored.digest, restored.digest]);
    expect(r).toEqual(p);
    expect(p.size).toBe(size);
    // age: header, 16-byte nonce, then 64 KiB chunks each with a 16-byte tag
    const chunks = Math.ceil(size / 65_536);
    expect(s.size - size - 16 * chunks - 16).toBeGreaterThan(100); // the header
    expect(s.size - size - 16 * chunks - 16).toBeLessThan(300);
    expect(s.sha256).not.toBe(p.sha256);
    // Streaming, not buffering: half the input in, most of it already out.
    expect(deliveredAtHalf).toBeGreaterThan(size / 2 - 4 * MiB);
    // Loose: the garbage collector lags, but nothing grows with the input.
    expect(peak - before).toBeLessThan(100 * MiB);
  });

  it('round-trips empty and small inputs', async () => {
    for (const plain of [
      Buffer.alloc(0),
      Buffer.from('x'),
      randomBytes(65_536),
      randomBytes(65_537),
    ]) {
      expect((await decrypt(await encrypt(plain))).equals(plain)).toBe(true);
    }
  });

  it('sha256Stream reports the digest and byte count of what passed', async () => {
    const data = randomBytes(300_000);
    const h = sha256Stream();
    const out = await collect(Readable.from([data.subarray(0, 1), data.subarray(1)]).pipe(h));
    expect(out.equals(data)).toBe(true);
    expect(await h.digest).toEqual({
      sha256: createHash('sha256').update(data).digest('hex'),
      size: data.length,
    });
  });

  it('sha256Stream rejects its digest when destroyed before the end', async () => {
    const h = sha256Stream();
    h.on('error', () => {}); // the stream's own 'error' event; the digest is what is tested
    h.destroy(new Error('upload failed'));
    await expect(h.digest).rejects.toThrow('upload failed');
  });
});

describe('tampering', () => {
  const plain = randomBytes(200_000); // four chunks
  const cipher = encrypt(plain);

  /** From `from` on, the first header byte that stays a base64 letter when flipped: a change in meaning, not in syntax. */
  const flippable = (c: Buffer, from: number) => {
    const b64 = /[A-Za-z0-9]/;
    for (let i = from; i < c.length; i += 1) {
      const ch = c[i] as number;
      if (b64.test(String.fromCharCode(ch)) && b64.test(String.fromCharCode(ch ^ 1))) return i;
    }
    return -1;
  };

  it.each([
    ['the X25519 share in the header', (c: Buffer) => flippable(c, c.indexOf('\n-> X25519 ') + 11)],
    [
      'the wrapped file key',
      (c: Buffer) => flippable(c, c.indexOf('\n', c.indexOf('\n-> ') + 1) + 1),
    ],
    ['the header MAC', (c: Buffer) => flippable(c, c.indexOf('\n--- ') + 5)],
    ['a byte in the payload', (c: Buffer) => c.length - 100_000],
    ['the last byte', (c: Buffer) => c.length - 1],
  ])('a flipped byte (%s) fails decryption', async (_what, where) => {
    const c = Buffer.from(await cipher);
    const i = where(c);
    expect(i).toBeGreaterThan(0);
    c[i] = (c[i] as number) ^ 0x01;
    await expect(decrypt(c)).rejects.toThrow(DecryptError);
  });

  it('a truncated file fails decryption', async () => {
    const c = await cipher;
    await expect(decrypt(c.subarray(0, c.length - 1000))).rejects.toThrow(DecryptError);
    // cut exactly at a chunk boundary: only the missing last-chunk flag tells
    const header = c.length - (plain.length + 16 * Math.ceil(plain.length / 65_536));
    await expect(decrypt(c.subarray(0, header + 65_536 + 16))).rejects.toThrow(DecryptError);
  });

  it('another key fails decryption with a one-line message', async () => {
    const other = await generateIdentity();
    const err = await decrypt(await cipher, other.identity).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DecryptError);
    expect((err as Error).message).toMatch(
      /^age decryption failed \(wrong key, or corrupt or truncated data\): /,
    );
    expect((err as Error).message).not.toContain('\n');
    expect((err as Error).message).not.toContain(other.identity.reveal());
  });
});

/*
 * Interoperability with the reference implementation: the `age` CLI from
 * Debian's `age` package (scripts/setup installs it; skipped where it is
 * missing, e.g. a machine set up by hand).
 */
const ageCli = spawnSync('age', ['--version'], { encoding: 'utf8' });
const haveAge = ageCli.status === 0;

describe.skipIf(!haveAge)(
  `the age CLI (${haveAge ? ageCli.stdout.trim() : 'not installed'})`,
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'crypt-test-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'key.txt');
    writeFileSync(keyFile, `${keys.identity.reveal()}\n`, { mode: 0o600 });
    const plain = randomBytes(300_000);

    it('decrypts what encryptStream wrote', async () => {
      writeFileSync(join(dir, 'ours.age'), await encrypt(plain));
      const out = execFileSync('age', ['--decrypt', '-i', keyFile, join(dir, 'ours.age')]);
      expect(out.equals(plain)).toBe(true);
    });

    it('writes what decryptStream reads', async () => {
      writeFileSync(join(dir, 'plain.bin'), plain);
      execFileSync('age', [
        '-r',
        keys.recipient,
        '-o',
        join(dir, 'theirs.age'),
        join(dir, 'plain.bin'),
      ]);
      expect((await decrypt(readFileSync(join(dir, 'theirs.age')))).equals(plain)).toBe(true);
    });

    it('agrees on the recipient of a key age-keygen made', async () => {
      const r = spawnSync('age-keygen', [], { encoding: 'utf8' });
      if (r.status !== 0) return; // age-keygen ships in the same package; absent only if removed
      const identity = r.stdout.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1')) as string;
      const recipient = /public key: (age1\w+)/.exec(r.stderr + r.stdout)?.[1];
      expect(await recipientOf(new Secret(identity))).toBe(recipient);
    });
  },
);

describe('parseIdentityFile', () => {
  it('takes the one key line of a key file with comments, as age-keygen writes it', async () => {
    const text = `# created: 2026-11-24T03:00:00Z\n# public key: ${keys.recipient}\n${keys.identity.reveal()}\n`;
    const got = await parseIdentityFile(text, 'key.txt');
    expect(got.recipient).toBe(keys.recipient);
    expect(got.identity.reveal()).toBe(keys.identity.reveal());
    expect(String(got.identity)).toBe(REDACTED);
  });

  it('refuses a file with no key or two, naming the file; a damaged key is refused too', async () => {
    await expect(parseIdentityFile('# nothing here\n', 'k.txt')).rejects.toThrow(
      /^k\.txt holds no age key; one AGE-SECRET-KEY-1… line is wanted\.$/,
    );
    const two = `${keys.identity.reveal()}\n${(await generateIdentity()).identity.reveal()}\n`;
    await expect(parseIdentityFile(two, 'k.txt')).rejects.toThrow(/holds 2 age keys/);
    const damaged = `${keys.identity.reveal().slice(0, -3)}QQQ`;
    await expect(parseIdentityFile(damaged, 'k.txt')).rejects.toBeInstanceOf(UserError);
  });
});
