import { S3ServiceException } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import {
  normalisePrefix,
  S3NoSuchKeyError,
  type S3Target,
  s3Client,
  s3Error,
} from '../../src/backup/s3.js';
import { UserError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';

// Failures the real store in test/integration/s3.test.ts cannot produce
// (TLS, timeouts); the S3 side of the mapping is tested there.
const t: S3Target = {
  endpoint: 'https://s3.example.test',
  region: 'eu-west-1',
  bucket: 'backups',
  prefix: '/prod/db/',
  pathStyle: false,
  accessKeyId: new Secret('AKIAEXAMPLE'),
  secretAccessKey: new Secret('very-secret-key'),
};

const netErr = (code: string) => Object.assign(new Error(`connect ${code}`), { code });
const svcErr = (name: string, status: number) =>
  new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });

describe('keys', () => {
  it('normalises the prefix and joins keys under it', () => {
    expect(normalisePrefix('')).toBe('');
    expect(normalisePrefix('/')).toBe('');
    expect(normalisePrefix('a/b')).toBe('a/b/');
    expect(normalisePrefix('/a/b//')).toBe('a/b/');
    const s3 = s3Client(t);
    expect(s3Client(t)).toBe(s3);
    expect(s3.key('2024/x.dump')).toBe('prod/db/2024/x.dump');
    expect(() => s3.key('/abs')).toThrow(/relative/);
    s3.destroy();
  });

  it('refuses an endpoint that is not a plain http(s) URL', () => {
    expect(() => s3Client({ ...t, endpoint: 's3.example.test' })).toThrow(UserError);
    expect(() => s3Client({ ...t, endpoint: 'ftp://s3.example.test' })).toThrow(/plain http/);
    expect(() => s3Client({ ...t, endpoint: 'https://k:s@s3.example.test' })).toThrow(UserError);
  });
});

describe('s3Error', () => {
  const line = (err: unknown) => {
    const e = s3Error(err, t, 'upload prod/db/x');
    expect(e).toBeInstanceOf(UserError);
    expect(e.message).not.toContain('\n');
    expect(`${e.message} ${(e as UserError).next}`).not.toMatch(/AKIAEXAMPLE|very-secret-key/);
    return e as UserError;
  };

  it('network and TLS failures', () => {
    expect(line(netErr('ENOTFOUND')).message).toBe(
      'S3 store https://s3.example.test is unreachable (ENOTFOUND) during upload prod/db/x',
    );
    expect(line(Object.assign(new Error('timed out'), { name: 'TimeoutError' })).message).toMatch(
      /unreachable \(TimeoutError\)/,
    );
    expect(line(netErr('SELF_SIGNED_CERT_IN_CHAIN')).next).toMatch(/give the CA certificate/);
    expect(
      s3Error(netErr('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), { ...t, caPem: 'x' }, 'x'),
    ).toHaveProperty('next', expect.stringMatching(/does not sign/));
    expect(line(netErr('ERR_TLS_CERT_ALTNAME_INVALID')).message).toMatch(/for another name/);
  });

  it('store answers', () => {
    expect(line(svcErr('InvalidAccessKeyId', 403)).message).toMatch(/rejected the credentials/);
    expect(line(svcErr('AccessDenied', 403)).message).toBe(
      'S3 store https://s3.example.test denied access to bucket backups under prod/db/ (AccessDenied, HTTP 403) during upload prod/db/x',
    );
    expect(line(svcErr('PermanentRedirect', 301)).message).toMatch(/refused region eu-west-1/);
    expect(line(svcErr('InternalError', 500)).next).toMatch(/run the command again/);
    expect(s3Error(svcErr('NoSuchKey', 404), t, 'read', 'x.dump')).toBeInstanceOf(S3NoSuchKeyError);
  });

  it('leaves bugs alone', () => {
    const bug = new TypeError('x is not a function');
    expect(s3Error(bug, t, 'list')).toBe(bug);
  });
});
