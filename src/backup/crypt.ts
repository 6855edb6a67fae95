/**
 * Client-side encryption of backup artifacts with age (age-encryption.org/v1),
 * as Node streams whose memory use does not grow with the input: multi-GB
 * dumps pass through in age's 64 KiB chunks.
 *
 * Library: `age-encryption` (typage, by Filippo Valsorda, age's author). Its
 * Encrypter/Decrypter take and return Web ReadableStreams and do the STREAM
 * chunking themselves; here they are only bridged to Node streams, so the
 * format is the library's, byte for byte what the `age` CLI reads and writes.
 *
 * Keys are X25519 (`AGE-SECRET-KEY-1…` / `age1…`), generated explicitly:
 * the library's generateIdentity() may switch to post-quantum hybrid keys,
 * which age releases before 1.3 (Debian 12 ships 1.1.1) cannot use.
 *
 * Decryption authenticates each 64 KiB chunk as it goes, and the end of the
 * file only at the end: a truncated file fails at its last chunk, after the
 * chunks before it were already passed on. A consumer must treat the output
 * as untrusted until the stream ends without error (or check the stored
 * bytes' sha256 from the manifest before decrypting).
 */
import { createHash } from 'node:crypto';
import { Duplex, Transform, type TransformCallback } from 'node:stream';
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { UserError } from '../core/errors.js';
import { Secret } from '../core/secret.js';

export interface AgeKeyPair {
  /** `AGE-SECRET-KEY-1…`: goes into a Docker secret, is shown once, never logged. */
  readonly identity: Secret;
  /** `age1…`: public, stored in the manifest and cluster.yaml. */
  readonly recipient: string;
}

/** Decryption failed: wrong key, or the data is corrupt or truncated. */
export class DecryptError extends UserError {}

export async function generateIdentity(): Promise<AgeKeyPair> {
  const identity = await generateX25519Identity();
  return {
    identity: new Secret(identity, 'backup encryption key'),
    recipient: await identityToRecipient(identity),
  };
}

/** The recipient (public key) of an identity: to check a key against a manifest before restoring. */
export async function recipientOf(identity: Secret): Promise<string> {
  try {
    return await identityToRecipient(identity.reveal());
  } catch {
    throw new UserError('the backup encryption key is not an age identity (AGE-SECRET-KEY-1…)');
  }
}

/**
 * An existing key, as `age-keygen` writes it or `backup setup --encrypt`
 * printed it: the one AGE-SECRET-KEY-1 line among comments. For a new
 * cluster restoring from the bucket alone.
 */
export async function parseIdentityFile(text: string, where: string): Promise<AgeKeyPair> {
  const keys = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('AGE-SECRET-KEY-'));
  if (keys.length !== 1) {
    throw new UserError(
      `${where} holds ${keys.length === 0 ? 'no' : keys.length} age key${keys.length > 1 ? 's' : ''}; one AGE-SECRET-KEY-1… line is wanted.`,
      'give the file with the key backup setup --encrypt printed (or age-keygen wrote)',
    );
  }
  const identity = new Secret(keys[0] as string, 'backup encryption key');
  return { identity, recipient: await recipientOf(identity) };
}

/** Plaintext in, age file out. */
export function encryptStream(recipient: string): Duplex {
  const encrypter = new Encrypter();
  try {
    encrypter.addRecipient(recipient);
  } catch {
    throw new UserError(`not an age recipient: ${JSON.stringify(recipient)} (expected age1…)`);
  }
  return bridge(
    (input) => encrypter.encrypt(input),
    (err) => (err instanceof Error ? err : new Error(String(err))),
  );
}

/** age file in, plaintext out; fails with a DecryptError (see the module comment on truncation). */
export function decryptStream(identity: Secret): Duplex {
  const decrypter = new Decrypter();
  try {
    decrypter.addIdentity(identity.reveal());
  } catch {
    throw new UserError('the backup encryption key is not an age identity (AGE-SECRET-KEY-1…)');
  }
  return bridge(
    (input) => decrypter.decrypt(input),
    (err) => {
      if (err instanceof DecryptError) return err;
      const why = err instanceof Error ? err.message : String(err);
      const e = new DecryptError(
        `age decryption failed (wrong key, or corrupt or truncated data): ${why}`,
      );
      e.cause = err;
      return e;
    },
  );
}

export interface Digest {
  /** Lowercase hex. */
  readonly sha256: string;
  /** Bytes that passed. */
  readonly size: number;
}

/** A passthrough that hashes what flows through it; `digest` resolves when the input ends. */
export class DigestStream extends Transform {
  /** Rejects if the stream is destroyed before its end (a rejection nobody awaits is not reported). */
  readonly digest: Promise<Digest>;
  readonly #hash = createHash('sha256');
  #size = 0;
  #settle!: { resolve: (d: Digest) => void; reject: (e: Error) => void };
  #settled = false;

  constructor() {
    super();
    this.digest = new Promise<Digest>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.digest.catch(() => {});
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#settled = true;
    this.#settle.resolve({ sha256: this.#hash.digest('hex'), size: this.#size });
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.#settled) {
      this.#settled = true;
      this.#settle.reject(err ?? new Error('the stream closed before its end'));
    }
    cb(err);
  }
}

export function sha256Stream(): DigestStream {
  return new DigestStream();
}

/**
 * A Node Duplex around an age operation that maps a Web ReadableStream to
 * another, and resolves only once it has read the input's header (decryption)
 * or at once (encryption). Writes go into `input`; the operation's output is
 * piped into `output`, which the Duplex reads. Backpressure holds end to end:
 * each Web stream buffers at most a chunk, the Node side its highWaterMark.
 */
function bridge(
  run: (input: ReadableStream<Uint8Array>) => Promise<ReadableStream<Uint8Array>>,
  mapError: (err: unknown) => Error,
): Duplex {
  let failInput: (err: Error) => void = () => {};
  const input = new TransformStream<Uint8Array, Uint8Array>({
    start(controller) {
      failInput = (err) => controller.error(err);
    },
  });
  const output = new TransformStream<Uint8Array, Uint8Array>();
  const fail = (err: unknown) => {
    const e = mapError(err);
    // Unblock a writer waiting on the input, and end the output with the error.
    failInput(e);
    output.writable.abort(e).catch(() => {});
  };
  run(input.readable).then(
    (result) => result.pipeTo(output.writable, { preventAbort: true }).catch(fail),
    fail,
  );
  return Duplex.fromWeb({ readable: output.readable, writable: input.writable });
}
