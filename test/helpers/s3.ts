import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './sshd.js';

/**
 * A real S3-compatible server for one test file: Debian's OpenStack Swift 2.30
 * with its s3api middleware (scripts/lab.d/s3/start), as plain processes
 * with their state in a temp dir, the S3 API on 127.0.0.1 at a free port.
 * Signatures are really checked (SigV4); multipart uploads become Swift SLOs.
 * stop() stops the processes by PID (scripts/lab.d/s3/stop) and removes the dir.
 *
 * Needs the swift-proxy, swift-account, swift-container, swift-object and
 * memcached packages (scripts/setup installs them). As root, Swift runs as
 * the `swift` user.
 */
export interface S3Server {
  /** http://127.0.0.1:<port>; path-style only. */
  readonly endpoint: string;
  readonly region: 'us-east-1';
  /** tempauth user test:tester (admin of account AUTH_test). */
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /**
   * Another account's admin (other:tester): valid credentials, its own bucket
   * namespace (Swift: buckets belong to an account), so test's buckets are
   * NoSuchBucket to it.
   */
  readonly other: Credentials;
  /** test:guest: a user of test's account with no rights (AccessDenied). */
  readonly guest: Credentials;
  readonly stateDir: string;
  /** CreateBucket as test:tester (cluster-cli itself never creates buckets). */
  createBucket(name: string): Promise<void>;
  /**
   * A request to Swift's own API as test:tester (tempauth token), path
   * relative to the account: `/<bucket>/<key>?multipart-manifest=get` shows
   * what s3api made of a multipart upload.
   */
  swift(path: string, method?: string): Promise<Response>;
  /** The servers' logs (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
}

export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

const SCRIPTS = join(dirname(fileURLToPath(import.meta.url)), '../../scripts/lab.d/s3');

function run(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      err
        ? reject(new Error(`${file} failed: ${err.message}\n${stdout}${stderr}`))
        : resolve(stdout),
    );
  });
}

function readLogs(dir: string): string {
  const logs = join(dir, 'logs');
  try {
    return readdirSync(logs)
      .map(
        (f) => `--- ${f}\n${readFileSync(join(logs, f), 'utf8').split('\n').slice(-30).join('\n')}`,
      )
      .join('\n');
  } catch {
    return '';
  }
}

export async function startS3(): Promise<S3Server> {
  const dir = mkdtempSync(join(tmpdir(), 'cc-s3-'));
  let started = false;
  const stop = async () => {
    if (started) {
      started = false;
      await run(join(SCRIPTS, 'stop'), [dir]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    started = true; // from here on, stop must run even if start fails half-way
    await run(join(SCRIPTS, 'start'), [dir, '127.0.0.1', String(port)]);
    const endpoint = `http://127.0.0.1:${port}`;
    const accessKeyId = 'test:tester';
    const secretAccessKey = 'lab-s3-secret-b83e5a';
    return {
      endpoint,
      region: 'us-east-1',
      accessKeyId,
      secretAccessKey,
      other: { accessKeyId: 'other:tester', secretAccessKey: 'lab-s3-other-4c1d8e' },
      guest: { accessKeyId: 'test:guest', secretAccessKey: 'lab-s3-guest-9a7f02' },
      stateDir: dir,
      async createBucket(name) {
        // As src/backup/s3.ts does: no Node-version nag from the SDK in test output.
        process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
        const client = new S3Client({
          endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: { accessKeyId, secretAccessKey },
        });
        try {
          await client.send(new CreateBucketCommand({ Bucket: name }));
        } finally {
          client.destroy();
        }
      },
      async swift(path, method = 'GET') {
        const auth = await fetch(`${endpoint}/auth/v1.0`, {
          headers: { 'X-Auth-User': accessKeyId, 'X-Auth-Key': secretAccessKey },
        });
        const storageUrl = auth.headers.get('x-storage-url');
        const token = auth.headers.get('x-auth-token');
        if (!auth.ok || !storageUrl || !token) throw new Error(`tempauth: HTTP ${auth.status}`);
        return fetch(`${storageUrl}${path}`, { method, headers: { 'X-Auth-Token': token } });
      },
      logs: () => readLogs(dir),
      stop,
    };
  } catch (err) {
    const logs = readLogs(dir);
    await stop().catch(() => {});
    throw logs ? new Error(`${(err as Error).message}\n${logs}`, { cause: err }) : err;
  }
}
