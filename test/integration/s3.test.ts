import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deleteKeys,
  downloadStream,
  getSmall,
  listKeys,
  PART_SIZE,
  probeBucket,
  putSmall,
  S3NoSuchKeyError,
  type S3Target,
  s3Client,
  uploadStream,
} from '../../src/backup/s3.js';
import { UserError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';
import { type S3Server, startS3 } from '../helpers/s3.js';
import { freePort } from '../helpers/sshd.js';

// A real S3 API: OpenStack Swift 2.30 + s3api, started for this file
// (test/helpers/s3.ts, scripts/lab.d/s3/start). Signatures are checked for
// real; multipart uploads become Swift SLOs.
let server: S3Server;
const BUCKET = 'cluster-cli-backups';
const targets: S3Target[] = [];

beforeAll(async () => {
  server = await startS3();
  await server.createBucket(BUCKET);
}, 60_000);

afterAll(async () => {
  for (const t of targets) s3Client(t).destroy();
  await server?.stop();
});

function target(overrides: Partial<S3Target> = {}): S3Target {
  const t: S3Target = {
    endpoint: server.endpoint,
    region: server.region,
    bucket: BUCKET,
    prefix: 'backups/prod',
    pathStyle: true,
    accessKeyId: new Secret(server.accessKeyId, 'S3 access key ID'),
    secretAccessKey: new Secret(server.secretAccessKey, 'S3 secret access key'),
    ...overrides,
  };
  targets.push(t);
  return t;
}

async function thrown(p: Promise<unknown>): Promise<UserError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** A one-line UserError with a next step that leaks no credentials. */
function expectOneLine(err: UserError, pattern: RegExp): void {
  expect(err.message).toMatch(pattern);
  expect(err.message).not.toContain('\n');
  expect(err.next).toBeTruthy();
  for (const s of ['lab-s3-secret-b83e5a', 'lab-s3-other-4c1d8e', 'wrong-secret']) {
    expect(`${err.message} ${err.next}`).not.toContain(s);
  }
}

describe('probeBucket', () => {
  it('writes, reads back and deletes a probe object under the prefix', async () => {
    const t = target({ prefix: 'probe-ok' });
    await probeBucket(t);
    expect(await listKeys(t, '')).toEqual([]);
  });

  it('wrong secret: the credentials line', async () => {
    const err = await thrown(
      probeBucket(target({ secretAccessKey: new Secret('wrong-secret', 'S3 secret access key') })),
    );
    expectOneLine(err, /rejected the credentials \(SignatureDoesNotMatch, HTTP 403\)/);
    expect(err.next).toMatch(/access key ID and the secret access key/);
  });

  it('unknown access key: the credentials line', async () => {
    const err = await thrown(
      probeBucket(target({ accessKeyId: new Secret('nobody:nothing', 'S3 access key ID') })),
    );
    expectOneLine(err, /rejected the credentials \((InvalidAccessKeyId|SignatureDoesNotMatch)/);
  });

  it('missing bucket: the NoSuchBucket line', async () => {
    const err = await thrown(probeBucket(target({ bucket: 'no-such-bucket-here' })));
    expectOneLine(err, /bucket no-such-bucket-here does not exist on S3 store .* \(NoSuchBucket/);
    expect(err.next).toMatch(/create the bucket/);
  });

  it('unreachable endpoint: the network line', async () => {
    const closed = await freePort(); // nothing listens there
    const err = await thrown(probeBucket(target({ endpoint: `http://127.0.0.1:${closed}` })));
    expectOneLine(err, /is unreachable \(ECONNREFUSED\)/);
    expect(err.next).toContain(`curl -sSI http://127.0.0.1:${closed}`);
  });

  it('credentials without rights on the bucket: the access denied line', async () => {
    const err = await thrown(
      probeBucket(
        target({
          accessKeyId: new Secret(server.guest.accessKeyId, 'S3 access key ID'),
          secretAccessKey: new Secret(server.guest.secretAccessKey, 'S3 secret access key'),
        }),
      ),
    );
    expectOneLine(
      err,
      /denied access to bucket cluster-cli-backups under backups\/prod\/ \(AccessDenied/,
    );
    expect(err.next).toMatch(/s3:PutObject/);
  });

  it("another account's credentials: NoSuchBucket (Swift: buckets are per account)", async () => {
    const err = await thrown(
      probeBucket(
        target({
          accessKeyId: new Secret(server.other.accessKeyId, 'S3 access key ID'),
          secretAccessKey: new Secret(server.other.secretAccessKey, 'S3 secret access key'),
        }),
      ),
    );
    expectOneLine(err, /bucket cluster-cli-backups does not exist .*\(NoSuchBucket/);
  });

  it('wrong region: the region line', async () => {
    const err = await thrown(probeBucket(target({ region: 'eu-west-3' })));
    expectOneLine(err, /refused region eu-west-3 .*AuthorizationHeaderMalformed/);
  });
});

describe('small objects', () => {
  it('putSmall / getSmall round-trip under the prefix; a missing key is S3NoSuchKeyError', async () => {
    const t = target({ prefix: 'small/' });
    await putSmall(t, 'manifest.json', '{"a":1}', 'application/json');
    expect((await getSmall(t, 'manifest.json')).toString()).toBe('{"a":1}');
    expect(await listKeys(t, '')).toEqual([
      { key: 'manifest.json', size: 7, lastModified: expect.any(Date) },
    ]);
    const missing = await thrown(getSmall(t, 'nope.json'));
    expect(missing).toBeInstanceOf(S3NoSuchKeyError);
    await deleteKeys(t, ['manifest.json', 'nope.json']);
    expect(await listKeys(t, '')).toEqual([]);
  });
});

describe('uploadStream', () => {
  it('streams 200 MiB as a multipart upload with bounded memory', async () => {
    const t = target({ prefix: 'big' });
    const size = 200 * 1024 * 1024;
    const chunk = 1024 * 1024;
    const sent = createHash('sha256');
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < size / chunk; i++) {
          const b = randomBytes(chunk);
          sent.update(b);
          yield b;
        }
      })(),
    );

    const rss0 = process.memoryUsage().rss;
    let rssMax = rss0;
    const sampler = setInterval(() => {
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
    }, 20);
    const progress: number[] = [];
    const started = performance.now();
    let result: { size: number; etag: string };
    try {
      result = await uploadStream(t, 'db.dump', source, {
        contentType: 'application/octet-stream',
        onProgress: (bytes) => progress.push(bytes),
      });
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    const growthMb = (rssMax - rss0) / 1024 / 1024;
    console.info(
      `s3 upload: 200 MiB in ${seconds.toFixed(2)} s (${(200 / seconds).toFixed(0)} MiB/s), RSS growth ${growthMb.toFixed(0)} MiB`,
    );
    expect(growthMb).toBeLessThan(150);

    const parts = size / PART_SIZE;
    expect(result.size).toBe(size);
    expect(result.etag).toMatch(new RegExp(`^[0-9a-f]{32}-${parts}$`));
    expect(progress.at(-1)).toBe(size);

    // Swift really holds a multipart object: s3api made a static large
    // object of `parts` segments of PART_SIZE (Swift 2.30's s3api has no
    // GET/HEAD ?partNumber=, so ask Swift's own API).
    const { key } = s3Client(t);
    const head = await s3Client(t).client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: key('db.dump') }),
    );
    expect(head.ContentLength).toBe(size);
    const manifest = await server.swift(`/${BUCKET}/${key('db.dump')}?multipart-manifest=get`);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('x-static-large-object')).toBe('True');
    const segments = (await manifest.json()) as { bytes: number; name: string }[];
    expect(segments.map((s) => s.bytes)).toEqual(Array(parts).fill(PART_SIZE));
    expect(segments[0]?.name).toMatch(new RegExp(`^/${BUCKET}\\+segments/big/db.dump/`));

    const got = createHash('sha256');
    let gotBytes = 0;
    for await (const c of await downloadStream(t, 'db.dump')) {
      got.update(c as Buffer);
      gotBytes += (c as Buffer).length;
    }
    expect(gotBytes).toBe(size);
    expect(got.digest('hex')).toBe(sent.digest('hex'));

    await deleteKeys(t, ['db.dump']);
    expect(await listKeys(t, '')).toEqual([]);
  });

  it('a small stream is one PutObject; a failing stream rejects and leaves nothing', async () => {
    const t = target({ prefix: 'stream-small' });
    const r = await uploadStream(t, 'a.txt', Readable.from([Buffer.from('hello '), 'world']), {
      contentType: 'text/plain',
    });
    expect(r).toEqual({ size: 11, etag: createHash('md5').update('hello world').digest('hex') });
    expect((await getSmall(t, 'a.txt')).toString()).toBe('hello world');

    const failing = Readable.from(
      (function* () {
        yield randomBytes(PART_SIZE + 1024); // one full part goes up first
        throw new Error('pg_dump died');
      })(),
    );
    await expect(
      uploadStream(t, 'broken.dump', failing, { contentType: 'application/octet-stream' }),
    ).rejects.toThrow(/pg_dump died/);
    expect((await listKeys(t, '')).map((o) => o.key)).toEqual(['a.txt']);
    await deleteKeys(t, ['a.txt']);
  });
});

describe('listKeys / deleteKeys', () => {
  it('pages through more than 1000 keys and deletes them in batches', async () => {
    const t = target({ prefix: 'many' });
    const keys = Array.from({ length: 1005 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
    const queue = [...keys];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
          await putSmall(t, k, k, 'text/plain');
        }
      }),
    );
    await putSmall(t, 'other/x', 'x', 'text/plain');

    // Count the requests: 1005 keys = two pages of 1000, three of 400.
    const { client } = s3Client(t);
    const sent: string[] = [];
    client.middlewareStack.add(
      (next, context) => (args) => {
        sent.push(context.commandName ?? '');
        return next(args);
      },
      { step: 'initialize', name: 'countRequests' },
    );
    try {
      const listed = await listKeys(t, 'k/');
      expect(listed.map((o) => o.key)).toEqual(keys);
      expect(listed[7]).toEqual({ key: 'k/00007', size: 7, lastModified: expect.any(Date) });
      expect(sent.filter((c) => c === 'ListObjectsV2Command')).toHaveLength(2);

      sent.length = 0;
      expect((await listKeys(t, 'k/', { pageSize: 400 })).map((o) => o.key)).toEqual(keys);
      expect(sent.filter((c) => c === 'ListObjectsV2Command')).toHaveLength(3);
      expect(await listKeys(t, '')).toHaveLength(1006);

      sent.length = 0;
      await deleteKeys(t, keys);
      expect(sent.filter((c) => c === 'DeleteObjectsCommand')).toHaveLength(2);
      expect((await listKeys(t, '')).map((o) => o.key)).toEqual(['other/x']);
    } finally {
      client.middlewareStack.remove('countRequests');
    }
    await deleteKeys(t, ['other/x']);
  });
});
