import { createHash, randomBytes } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { UserError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';

/**
 * Where backups go: one bucket (and a key prefix in it) on any S3-compatible
 * store (AWS S3, MinIO, Ceph RGW, OpenStack Swift's s3api, …). Keys given to
 * and returned by the functions below are relative to `prefix`.
 */
export interface S3Target {
  /** http(s)://host[:port], e.g. https://s3.eu-west-1.amazonaws.com */
  endpoint: string;
  region: string;
  bucket: string;
  /** '' or a folder such as 'backups/prod' (a trailing '/' is added). */
  prefix: string;
  /** Path-style URLs (endpoint/bucket/key) rather than bucket.endpoint/key; most non-AWS stores want it. */
  pathStyle: boolean;
  accessKeyId: Secret;
  secretAccessKey: Secret;
  /** PEM of a private CA to trust for the endpoint's HTTPS, in addition to the system roots. */
  caPem?: string;
}

/** One SDK client per target (kept alive between calls; `destroy()` closes its sockets). */
export interface S3 {
  readonly target: S3Target;
  readonly client: S3Client;
  /** The full object key of a key relative to the target's prefix. */
  key(relative: string): string;
  destroy(): void;
}

export interface S3Object {
  /** Relative to the target's prefix. */
  key: string;
  size: number;
  lastModified: Date;
}

/** A key that does not exist (GetObject's NoSuchKey). */
export class S3NoSuchKeyError extends UserError {
  constructor(
    readonly target: Pick<S3Target, 'endpoint' | 'bucket'>,
    readonly key: string,
  ) {
    super(`no object ${key} in bucket ${target.bucket} on ${target.endpoint}`);
  }
}

/**
 * lib-storage: parts of PART_SIZE (S3's minimum) unless the artifact is known
 * to be large (partSizeFor), one in flight. Measured (bench/backup.mjs): the
 * upload outruns pg_dump -Fc many times over, so a second part in flight buys
 * nothing, and each MiB of part is paid several times over in buffers
 * awaiting collection.
 */
export const PART_SIZE = 5 * 1024 * 1024;
export const QUEUE_SIZE = 1;
/** S3's cap (as MinIO, Ceph, R2 and B2); Swift's s3api defaults to 1000 (max_upload_part_num). */
export const MAX_PARTS = 10_000;

/**
 * The part size for an artifact of about `sizeHint` bytes: the smallest whole
 * MiB, at least PART_SIZE, that keeps it under MAX_PARTS with a margin. No hint:
 * PART_SIZE, so an object holds up to ~48 GiB.
 */
export function partSizeFor(sizeHint?: number): number {
  if (!sizeHint || sizeHint <= 0) return PART_SIZE;
  const MiB = 1024 * 1024;
  const wanted = Math.ceil((sizeHint * 1.05) / (MAX_PARTS * 0.95) / MiB) * MiB;
  return Math.min(Math.max(PART_SIZE, wanted), 5 * 1024 * MiB);
}
/** getSmall refuses objects larger than this (it holds the whole object in memory). */
export const SMALL_MAX_BYTES = 16 * 1024 * 1024;
/** DeleteObjects takes at most 1000 keys a request. */
const DELETE_BATCH = 1000;
const CONNECT_TIMEOUT_MS = 10_000;
/** A socket that carries no byte for this long fails the request (not a cap on a long transfer). */
const SOCKET_IDLE_TIMEOUT_MS = 120_000;

const clients = new WeakMap<S3Target, S3>();

/**
 * The client for a target, made on first use and reused for the same target
 * object. Checksums only where the API requires them (`WHEN_REQUIRED`): the
 * SDK's default CRC32 headers and aws-chunked trailers are refused by several
 * S3-compatible stores (Swift's s3api: "aws-chunked is not supported").
 * DeleteObjects also gets a Content-MD5 header, which S3 used to require and
 * Swift, older MinIO and Ceph still do (the SDK now sends a CRC32 instead).
 */
export function s3Client(t: S3Target): S3 {
  const cached = clients.get(t);
  if (cached) return cached;
  const url = endpointUrl(t);
  const prefix = normalisePrefix(t.prefix);
  // The SDK warns on every run under Node < 22 (its future support policy):
  // not the user's concern, and cluster-cli supports Node 20.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // No keep-alive: an idle pooled socket would keep a finished command (or the
  // backup job's container) from exiting, and backups make few, long requests.
  const agentOptions = { keepAlive: false, maxSockets: 50 };
  const client = new S3Client({
    endpoint: url.href.replace(/\/$/, ''),
    region: t.region,
    forcePathStyle: t.pathStyle,
    // A provider, so the revealed values live only inside the SDK's signer.
    credentials: async () => ({
      accessKeyId: t.accessKeyId.reveal(),
      secretAccessKey: t.secretAccessKey.reveal(),
    }),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: CONNECT_TIMEOUT_MS,
      socketTimeout: SOCKET_IDLE_TIMEOUT_MS,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent({
        ...agentOptions,
        ...(t.caPem ? { ca: [...rootCertificates, t.caPem] } : {}),
      }),
    },
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (
        context.commandName === 'DeleteObjectsCommand' &&
        request.headers &&
        (typeof request.body === 'string' || request.body instanceof Uint8Array)
      ) {
        request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
      }
      return next(args);
    },
    { step: 'build', name: 'clusterCliContentMd5', override: true },
  );
  const s3: S3 = {
    target: t,
    client,
    key: (relative) => prefix + checkKey(relative),
    destroy() {
      clients.delete(t);
      client.destroy();
    },
  };
  clients.set(t, s3);
  return s3;
}

/**
 * `backup setup`'s check before anything is saved: write a probe object under
 * the prefix, list it, read it back and compare, delete it — every right
 * backups and their retention need. Throws a one-line UserError naming the
 * cause (credentials, bucket, region, network, TLS, permissions) and what to
 * do next.
 */
export async function probeBucket(t: S3Target): Promise<void> {
  const key = `.cluster-cli-probe-${randomBytes(8).toString('hex')}`;
  const body = Buffer.from(`cluster-cli probe ${randomBytes(16).toString('hex')}\n`);
  await putSmall(t, key, body, 'text/plain');
  let readBack: Buffer;
  try {
    await listKeys(t, key);
    readBack = await getSmall(t, key);
  } catch (err) {
    await deleteKeys(t, [key]).catch(() => {});
    throw err;
  }
  await deleteKeys(t, [key]);
  if (!readBack.equals(body)) {
    throw new UserError(
      `S3 store ${t.endpoint} returned other bytes than were written to bucket ${t.bucket} (${readBack.length} bytes instead of ${body.length})`,
      'check that the endpoint is the S3 store itself, not a caching proxy or a gateway that rewrites objects',
    );
  }
}

/**
 * Streams `body` to `key` with multipart upload (lib-storage): parts of
 * partSizeFor(sizeHint), QUEUE_SIZE of them in flight, so memory stays bounded
 * whatever the size;
 * no temp file. A body that fails aborts the multipart upload (no orphaned
 * parts). Resolves with the bytes read from `body` and the object's ETag
 * (unquoted; "<md5>-<parts>" for a multipart object).
 *
 * Note: stores cap the number of parts (S3: 10000, Swift: 1000), so without
 * a hint one object holds at most ~48 GiB on S3, ~4.8 GiB on Swift.
 */
export async function uploadStream(
  t: S3Target,
  key: string,
  body: Readable,
  opts: { contentType: string; onProgress?: (bytes: number) => void; sizeHint?: number },
): Promise<{ size: number; etag: string }> {
  const s3 = s3Client(t);
  const fullKey = s3.key(key);
  let size = 0;
  const counted = Readable.from(
    (async function* () {
      for await (const chunk of body) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
        size += buf.length;
        yield buf;
      }
    })(),
    { objectMode: false },
  );
  const upload = new Upload({
    client: s3.client,
    params: { Bucket: t.bucket, Key: fullKey, Body: counted, ContentType: opts.contentType },
    partSize: partSizeFor(opts.sizeHint),
    queueSize: QUEUE_SIZE,
    leavePartsOnError: false,
  });
  const { onProgress } = opts;
  if (onProgress) upload.on('httpUploadProgress', (p) => onProgress(p.loaded ?? 0));
  try {
    const done = await upload.done();
    return { size, etag: unquote(done.ETag ?? '') };
  } catch (err) {
    body.destroy();
    throw s3Error(err, t, `upload ${fullKey}`);
  }
}

/** The object's bytes as a stream (not buffered); the caller consumes or destroys it. */
export async function downloadStream(t: S3Target, key: string): Promise<Readable> {
  const s3 = s3Client(t);
  const fullKey = s3.key(key);
  try {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: t.bucket, Key: fullKey }));
    if (!(out.Body instanceof Readable)) throw new Error(`GetObject ${fullKey}: no body stream`);
    return out.Body;
  } catch (err) {
    throw s3Error(err, t, `download ${fullKey}`, key);
  }
}

/**
 * Every object under `prefix` (relative to the target's prefix; '' = all),
 * page by page (ListObjectsV2, `pageSize` keys a request: 1000 unless set).
 */
export async function listKeys(
  t: S3Target,
  prefix: string,
  opts: { pageSize?: number } = {},
): Promise<S3Object[]> {
  const s3 = s3Client(t);
  const base = normalisePrefix(t.prefix);
  const fullPrefix = base + prefix;
  const out: S3Object[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await s3.client.send(
        new ListObjectsV2Command({
          Bucket: t.bucket,
          Prefix: fullPrefix,
          ContinuationToken: token,
          MaxKeys: opts.pageSize,
        }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || !o.Key.startsWith(base)) continue;
        out.push({
          key: o.Key.slice(base.length),
          size: o.Size ?? 0,
          lastModified: o.LastModified ?? new Date(0),
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token) {
        throw new Error(`ListObjectsV2 ${fullPrefix}: truncated page without a continuation token`);
      }
    } while (token);
  } catch (err) {
    throw s3Error(err, t, `list ${fullPrefix || '/'}`);
  }
  return out;
}

/** Deletes the keys (relative to the target's prefix), 1000 a request. A missing key is not an error. */
export async function deleteKeys(t: S3Target, keys: readonly string[]): Promise<void> {
  const s3 = s3Client(t);
  const full = keys.map((k) => s3.key(k));
  for (let i = 0; i < full.length; i += DELETE_BATCH) {
    const batch = full.slice(i, i + DELETE_BATCH);
    let failed: { Key?: string; Code?: string; Message?: string } | undefined;
    try {
      if (batch.length === 1) {
        await s3.client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: batch[0] }));
      } else {
        const out = await s3.client.send(
          new DeleteObjectsCommand({
            Bucket: t.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        failed = out.Errors?.find((e) => e.Code !== 'NoSuchKey');
      }
    } catch (err) {
      throw s3Error(err, t, `delete ${batch.length === 1 ? batch[0] : `${batch.length} objects`}`);
    }
    if (failed) {
      throw s3Error(
        new S3ServiceException({
          name: failed.Code ?? 'Error',
          $fault: 'client',
          $metadata: {},
          message: failed.Message ?? failed.Code ?? 'failed',
        }),
        t,
        `delete ${failed.Key ?? '?'}`,
      );
    }
  }
}

/** One request, the whole body in memory: manifests, markers, probes. */
export async function putSmall(
  t: S3Target,
  key: string,
  body: string | Buffer,
  contentType: string,
): Promise<void> {
  const s3 = s3Client(t);
  const fullKey = s3.key(key);
  try {
    await s3.client.send(
      new PutObjectCommand({
        Bucket: t.bucket,
        Key: fullKey,
        Body: typeof body === 'string' ? Buffer.from(body) : body,
        ContentType: contentType,
      }),
    );
  } catch (err) {
    throw s3Error(err, t, `write ${fullKey}`);
  }
}

/** The whole object (at most SMALL_MAX_BYTES); S3NoSuchKeyError when it does not exist. */
export async function getSmall(t: S3Target, key: string): Promise<Buffer> {
  const s3 = s3Client(t);
  const fullKey = s3.key(key);
  try {
    const out = await s3.client.send(new GetObjectCommand({ Bucket: t.bucket, Key: fullKey }));
    if (!out.Body) throw new Error(`GetObject ${fullKey}: no body`);
    if ((out.ContentLength ?? 0) > SMALL_MAX_BYTES) {
      (out.Body as Readable).destroy?.();
      throw new Error(
        `${fullKey} is ${out.ContentLength} bytes, more than getSmall holds (${SMALL_MAX_BYTES}); use downloadStream`,
      );
    }
    return Buffer.from(await out.Body.transformToByteArray());
  } catch (err) {
    throw s3Error(err, t, `read ${fullKey}`, key);
  }
}

// ------------------------------------------------------------------ errors --

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
]);

function field(err: unknown, name: string): unknown {
  return typeof err === 'object' && err !== null
    ? (err as Record<string, unknown>)[name]
    : undefined;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * An SDK or network failure as a one-line UserError with the next step;
 * anything else (a bug) is returned unchanged. `what` names the operation
 * ("upload backups/x"); `key` (relative) turns NoSuchKey into S3NoSuchKeyError.
 */
export function s3Error(err: unknown, t: S3Target, what: string, key?: string): Error {
  if (err instanceof UserError) return err;
  const where = `S3 store ${t.endpoint}`;
  const prefix = normalisePrefix(t.prefix);
  const bucket = `bucket ${t.bucket}`;
  const name = String(field(err, 'name') ?? '');
  const code = String(field(err, 'code') ?? field(err, 'Code') ?? '');
  const message = oneLine(err instanceof Error ? err.message : String(err));
  const meta = field(err, '$metadata');
  const status = Number(field(meta, 'httpStatusCode') ?? 0) || undefined;
  const isService = err instanceof S3ServiceException || field(err, '$fault') !== undefined;

  if (NETWORK_CODES.has(code) || name === 'TimeoutError') {
    return new UserError(
      `${where} is unreachable (${code || name}) during ${what}`,
      `check the endpoint URL (scheme, host, port) and that this machine reaches it: curl -sSI ${t.endpoint}`,
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new UserError(
      `${where} presented a TLS certificate for another name (${message})`,
      "use the host name the store's certificate is issued for",
    );
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return new UserError(
      `${where}'s TLS certificate is not trusted (${code})`,
      t.caPem
        ? 'the CA certificate given does not sign the endpoint certificate: give the CA that does'
        : "give the CA certificate that signs the store's certificate, or put a publicly trusted certificate on the store",
    );
  }
  if (!isService) return err instanceof Error ? err : new Error(message);

  const said = `${name}${status ? `, HTTP ${status}` : ''}`;
  switch (name) {
    case 'SignatureDoesNotMatch':
    case 'InvalidAccessKeyId':
    case 'InvalidToken':
    case 'ExpiredToken':
      return new UserError(
        `${where} rejected the credentials (${said}) during ${what}`,
        'check the access key ID and the secret access key (copy them again from the provider), then run backup setup again',
      );
    case 'NoSuchBucket':
      return new UserError(
        `${bucket} does not exist on ${where} (${said})`,
        'create the bucket in the provider console (cluster-cli does not create buckets) or fix the bucket name',
      );
    case 'NoSuchKey':
      return key !== undefined
        ? new S3NoSuchKeyError(t, key)
        : new UserError(`${where}: no such object during ${what} (${said})`);
    case 'AuthorizationHeaderMalformed':
    case 'AuthorizationQueryParametersError':
    case 'PermanentRedirect':
    case 'IllegalLocationConstraintException':
    case 'IncorrectEndpoint':
      return new UserError(
        `${where} refused region ${t.region} for ${bucket} (${said}: ${message})`,
        "set the region to the bucket's region (the store's message above names it)",
      );
    case 'InvalidBucketName':
      return new UserError(
        `${where} says ${t.bucket} is not a valid bucket name (${said})`,
        'use the exact name of an existing bucket: 3-63 lowercase letters, digits, dots and hyphens',
      );
    case 'AccessDenied':
    case 'Forbidden':
    case 'AllAccessDisabled':
    case 'AccountProblem':
      return new UserError(
        `${where} denied access to ${bucket}${prefix ? ` under ${prefix}` : ''} (${said}) during ${what}`,
        `give these credentials list, read, write and delete on ${t.bucket}/${prefix}* (s3:ListBucket, s3:GetObject, s3:PutObject, s3:DeleteObject)`,
      );
  }
  if (status === 403) {
    return new UserError(
      `${where} denied ${what} (${said}: ${message})`,
      `check that these credentials may read, write and delete in ${t.bucket}`,
    );
  }
  return new UserError(
    `${where} failed to ${what} (${said}: ${message})`,
    'run the command again; if it keeps failing, check the store status and the endpoint URL',
  );
}

// ------------------------------------------------------------------- keys --

function endpointUrl(t: S3Target): URL {
  let url: URL;
  try {
    url = new URL(t.endpoint);
  } catch {
    throw new UserError(
      `S3 endpoint ${JSON.stringify(t.endpoint)} is not a URL`,
      'give it as https://host[:port], e.g. https://s3.eu-west-1.amazonaws.com',
    );
  }
  if (
    (url.protocol !== 'https:' && url.protocol !== 'http:') ||
    url.username ||
    url.password ||
    url.search ||
    url.hash
  ) {
    throw new UserError(
      `S3 endpoint ${t.endpoint} must be a plain http(s)://host[:port][/path] URL`,
      'give it as https://host[:port], e.g. https://s3.eu-west-1.amazonaws.com',
    );
  }
  return url;
}

/** '' stays ''; 'a/b', '/a/b/' → 'a/b/'. */
export function normalisePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  return p ? `${p}/` : '';
}

function checkKey(key: string): string {
  if (key === '' || key.startsWith('/')) {
    throw new Error(`S3 key ${JSON.stringify(key)}: relative and not empty`);
  }
  return key;
}

function unquote(etag: string): string {
  return etag.replace(/^"(.*)"$/, '$1');
}
