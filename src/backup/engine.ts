import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { decryptStream, encryptStream, sha256Stream } from './crypt.js';
import {
  AGE_VERSION,
  type ArtifactName,
  artifactContentType,
  artifactKey,
  type BackupLocation,
  backupId,
  backupIdOfKey,
  clusterPrefix,
  type Manifest,
  type ManifestArtifact,
  manifestKey,
  parseBackupId,
  parseManifest,
  validateManifest,
} from './manifest.js';
import { downloadStream, getSmall, listKeys, putSmall, type S3Target, uploadStream } from './s3.js';

/**
 * Taking, listing and checking backups, independent of where the bytes come
 * from: each artifact is a stream (pg_dump's output, a Redis snapshot, a
 * tar) piped through a digest, age encryption when configured and another
 * digest into a multipart upload, so memory stays bounded whatever the size
 * and no temporary file is written. The manifest goes last.
 */

export interface ArtifactSource {
  readonly name: ArtifactName;
  /** About how large it will be (an upper estimate), for the upload's part size. */
  sizeHint?(): Promise<number | undefined>;
  /** Starts the producer. `done` rejects when it failed (exit code, stderr), even after a clean EOF. */
  open(): Promise<{ readonly stream: NodeJS.ReadableStream; readonly done: Promise<void> }>;
}

export interface TakeInput {
  readonly s3: S3Target;
  readonly loc: BackupLocation;
  /** age recipient; absent: stored as is. */
  readonly encryption?: { readonly recipient: string; readonly identitySecret: string };
  readonly createdAt: Date;
  readonly tick?: string;
  readonly clusterCliVersion: string;
  readonly versions: Pick<Manifest, 'postgres' | 'redis'>;
  readonly sources: readonly ArtifactSource[];
  readonly now: () => Date;
  readonly log: (line: string) => void;
  /** Bytes read from the sources so far (progress). */
  readonly onBytes?: (total: number) => void;
}

export async function takeBackup(i: TakeInput): Promise<Manifest> {
  const id = backupId(i.createdAt);
  const scheme = i.encryption ? 'age' : 'none';
  const artifacts: ManifestArtifact[] = [];
  let total = 0;
  for (const source of i.sources) {
    const key = artifactKey(i.loc, id, source.name, scheme);
    const started = i.now().getTime();
    const hint = await source.sizeHint?.();
    const { stream, done } = await source.open();
    const plain = sha256Stream();
    const stored = sha256Stream();
    plain.on('data', (b: Buffer) => {
      total += b.length;
      i.onBytes?.(total);
    });
    const body = new PassThrough();
    const chain = i.encryption
      ? pipeline(stream, plain, encryptStream(i.encryption.recipient), stored, body)
      : pipeline(stream, plain, stored, body);
    const upload = uploadStream(i.s3, key, body, {
      contentType: artifactContentType(source.name, scheme),
      ...(hint ? { sizeHint: hint } : {}),
    });
    await Promise.all([chain, upload, done]);
    const [p, s] = await Promise.all([plain.digest, stored.digest]);
    const seconds = Math.max(0.001, (i.now().getTime() - started) / 1000);
    i.log(
      `${source.name}: ${p.size} bytes${i.encryption ? ` (${s.size} encrypted)` : ''} in ${seconds.toFixed(1)} s (${(p.size / 1048576 / seconds).toFixed(1)} MB/s)`,
    );
    artifacts.push({
      name: source.name,
      key,
      size: s.size,
      sha256: s.sha256,
      ...(i.encryption ? { plainSha256: p.sha256 } : {}),
      contentType: artifactContentType(source.name, scheme),
    });
  }
  const manifest = validateManifest({
    format: 1,
    id,
    cluster: i.loc.cluster,
    createdAt: i.createdAt.toISOString(),
    finishedAt: i.now().toISOString(),
    ...(i.tick ? { tick: i.tick } : {}),
    clusterCliVersion: i.clusterCliVersion,
    ...i.versions,
    artifacts,
    encryption: i.encryption
      ? {
          scheme: 'age',
          version: AGE_VERSION,
          recipient: i.encryption.recipient,
          identitySecret: i.encryption.identitySecret,
        }
      : { scheme: 'none' },
  });
  await putSmall(
    i.s3,
    manifestKey(i.loc, id),
    `${JSON.stringify(manifest, null, 2)}\n`,
    'application/json',
  );
  return manifest;
}

export interface ListedBackup {
  readonly id: string;
  readonly at: Date;
  /** Bytes stored (all objects of the backup). */
  readonly size: number;
  /** Absent or unreadable: an interrupted run, not a backup. */
  readonly manifest?: Manifest;
}

/** Every backup folder of the cluster in the bucket, oldest first. */
export async function listBackups(s3: S3Target, loc: BackupLocation): Promise<ListedBackup[]> {
  const objects = await listKeys(s3, clusterPrefix(loc));
  const byId = new Map<string, { size: number; hasManifest: boolean }>();
  for (const o of objects) {
    const id = backupIdOfKey(loc, o.key);
    if (!id) continue;
    const e = byId.get(id) ?? { size: 0, hasManifest: false };
    e.size += o.size;
    if (o.key === manifestKey(loc, id)) e.hasManifest = true;
    byId.set(id, e);
  }
  const out: ListedBackup[] = [];
  for (const [id, e] of [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    let manifest: Manifest | undefined;
    if (e.hasManifest) {
      try {
        manifest = parseManifest((await getSmall(s3, manifestKey(loc, id))).toString('utf8'));
      } catch {
        manifest = undefined;
      }
    }
    out.push({ id, at: parseAt(id), size: e.size, ...(manifest ? { manifest } : {}) });
  }
  return out;
}

function parseAt(id: string): Date {
  return parseBackupId(id) ?? new Date(Number.NaN);
}

/** `latest` → the newest backup with a complete manifest; an id → its manifest. */
export async function findBackup(
  s3: S3Target,
  loc: BackupLocation,
  which: string,
): Promise<Manifest> {
  if (which === 'latest') {
    const good = (await listBackups(s3, loc)).filter((b) => b.manifest);
    const last = good[good.length - 1];
    if (!last?.manifest) {
      throw new UserError(
        `No complete backup of ${loc.cluster} in the bucket.`,
        'take one: cluster-cli backup run',
      );
    }
    return last.manifest;
  }
  try {
    return parseManifest((await getSmall(s3, manifestKey(loc, which))).toString('utf8'));
  } catch (err) {
    if (err instanceof UserError && /no such key|NoSuchKey|does not exist/i.test(err.message)) {
      throw new UserError(
        `No backup ${which} (or it has no manifest: an interrupted run).`,
        'see the backups: cluster-cli backup list',
      );
    }
    throw err;
  }
}

/**
 * Download every artifact and check the stored bytes' sha256 (no key needed):
 * the first mismatch throws, naming the artifact. Nothing is written anywhere.
 */
export async function checkStored(s3: S3Target, m: Manifest): Promise<void> {
  for (const a of m.artifacts) {
    const digest = sha256Stream();
    await pipeline(await downloadStream(s3, a.key), digest, devNull());
    const d = await digest.digest;
    if (d.sha256 !== a.sha256 || d.size !== a.size) {
      throw new UserError(
        `Backup ${m.id}: ${a.name} is damaged (sha256 ${d.sha256.slice(0, 12)}…, ${d.size} bytes; the manifest says ${a.sha256.slice(0, 12)}…, ${a.size} bytes).`,
        'restore another backup: cluster-cli backup list',
      );
    }
  }
}

/**
 * One artifact's plaintext as a stream: downloaded, decrypted when the
 * backup is, and its digest checked at the end (`checked` rejects on a
 * mismatch, after the consumer got the bytes: call checkStored first).
 */
export async function openArtifact(
  s3: S3Target,
  m: Manifest,
  name: ArtifactName,
  identity?: Secret,
): Promise<{ stream: Readable; checked: Promise<void> }> {
  const a = m.artifacts.find((x) => x.name === name);
  if (!a) throw new UserError(`Backup ${m.id} has no ${name}.`, 'cluster-cli backup list');
  const source = await downloadStream(s3, a.key);
  const plain = sha256Stream();
  const out = new PassThrough();
  let chain: Promise<void>;
  if (m.encryption.scheme === 'age') {
    if (!identity)
      throw new UserError(
        `Backup ${m.id} is encrypted and no key was given.`,
        'the key is the Docker secret named in the manifest',
      );
    chain = pipeline(source, decryptStream(identity), plain, out);
  } else {
    chain = pipeline(source, plain, out);
  }
  const want = a.plainSha256 ?? a.sha256;
  const checked = chain
    .then(() => plain.digest)
    .then((d) => {
      if (d.sha256 !== want) {
        throw new UserError(
          `Backup ${m.id}: ${name} does not match its digest after download.`,
          `cluster-cli backup verify ${m.id}`,
        );
      }
    });
  return { stream: out, checked };
}

function devNull() {
  const sink = new PassThrough();
  sink.resume();
  return sink;
}
