import { describe, expect, it } from 'vitest';
import {
  AGE_VERSION,
  artifactContentType,
  artifactKey,
  backupId,
  backupIdOfKey,
  backupPrefix,
  clusterPrefix,
  ManifestError,
  manifestKey,
  parseBackupId,
  parseManifest,
  REQUIRED_ARTIFACTS,
  validateManifest,
  volumeArtifact,
} from '../../src/backup/manifest.js';
import { UserError } from '../../src/core/errors.js';

const ID = '20261124T030000Z';
const SHA = 'a'.repeat(64);
const PLAIN_SHA = 'b'.repeat(64);
const SOURCE = 'backups/platform/20261124T030000Z/manifest.json';
const AGE = {
  scheme: 'age',
  version: AGE_VERSION,
  recipient: `age1${'q'.repeat(58)}`,
  identitySecret: 'platform_backup_age_identity',
};

type Json = Record<string, unknown>;

function artifact(name: string, encrypted = false): Json {
  return {
    name,
    key: `backups/platform/${ID}/${name}${encrypted ? '.age' : ''}`,
    size: 1024,
    sha256: SHA,
    ...(encrypted ? { plainSha256: PLAIN_SHA } : {}),
    contentType: 'application/octet-stream',
  };
}

const NAMES = [...REQUIRED_ARTIFACTS, 'volume-platform_postgres_data.tar'];

/** A complete manifest as the job writes it; `over` replaces top-level fields. */
function manifest(over: Json = {}, encrypted = false): Json {
  return {
    format: 1,
    id: ID,
    cluster: 'platform',
    createdAt: '2026-11-24T03:00:00Z',
    finishedAt: '2026-11-24T03:02:10Z',
    tick: '2026-11-24T03:00Z',
    clusterCliVersion: '0.1.0',
    postgres: { serverVersion: '16.4', pgDumpVersion: '16.4', database: 'app' },
    redis: { version: '7.4.1' },
    artifacts: NAMES.map((n) => artifact(n, encrypted)),
    encryption: encrypted ? AGE : { scheme: 'none' },
    ...over,
  };
}

/** The manifest with artifact `name` changed by `edit`. */
function withArtifact(name: string, edit: (a: Json) => Json | undefined, encrypted = false): Json {
  const artifacts = NAMES.map((n) => artifact(n, encrypted))
    .map((a) => (a.name === name ? edit(a) : a))
    .filter((a): a is Json => a !== undefined);
  return manifest({ artifacts }, encrypted);
}

function refusal(json: unknown): ManifestError {
  try {
    validateManifest(json, SOURCE);
  } catch (err) {
    if (err instanceof ManifestError) return err;
    throw err;
  }
  throw new Error('validateManifest accepted it');
}

describe('validateManifest', () => {
  it('returns a complete manifest as it is, plain or encrypted', () => {
    const plain = manifest();
    expect(validateManifest(plain, SOURCE)).toEqual(plain);
    const encrypted = manifest({}, true);
    expect(validateManifest(encrypted, SOURCE)).toEqual(encrypted);
  });

  it('takes a manifest without a tick (a run by hand) and without volumes', () => {
    const { tick: _tick, ...byHand } = manifest({
      artifacts: REQUIRED_ARTIFACTS.map((n) => artifact(n)),
    });
    expect(validateManifest(byHand, SOURCE).tick).toBeUndefined();
  });

  it.each(REQUIRED_ARTIFACTS)('a manifest without %s is refused, naming it', (name) => {
    const err = refusal(withArtifact(name, () => undefined));
    expect(err.message).toBe(`manifest ${SOURCE}: artifacts has no ${name}`);
  });

  it('takes the admins dump beside the required artifacts; older backups without it stay valid', () => {
    const withAdmins = manifest({
      artifacts: [...REQUIRED_ARTIFACTS, 'admins.dump'].map((n) => artifact(n)),
    });
    expect(validateManifest(withAdmins, SOURCE).artifacts.map((a) => a.name)).toContain(
      'admins.dump',
    );
    const without = manifest({ artifacts: REQUIRED_ARTIFACTS.map((n) => artifact(n)) });
    expect(validateManifest(without, SOURCE).artifacts).toHaveLength(REQUIRED_ARTIFACTS.length);
  });

  it('is a one-line UserError', () => {
    const err = refusal(withArtifact('redis.rdb', () => undefined));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).not.toContain('\n');
  });

  it('refuses an id that does not match createdAt, with the id expected', () => {
    expect(refusal(manifest({ createdAt: '2026-11-24T03:00:01Z' })).message).toBe(
      `manifest ${SOURCE}: id does not match createdAt (expected 20261124T030001Z)`,
    );
  });

  it('counts the other problems after the first', () => {
    // Every artifact key now names another folder as well.
    expect(refusal(manifest({ id: '20261124T030001Z' })).message).toBe(
      `manifest ${SOURCE}: id does not match createdAt (expected 20261124T030000Z) (and 5 more)`,
    );
  });

  it('refuses an artifact listed twice', () => {
    const m = manifest();
    m.artifacts = [...(m.artifacts as Json[]), artifact('redis.rdb')];
    expect(refusal(m).message).toBe(
      `manifest ${SOURCE}: artifacts[5].name redis.rdb is listed twice`,
    );
  });

  it.each([
    ['another backup', `backups/platform/20261124T030001Z/stack.yml`],
    ['a longer id', `backups/platform/x${ID}/stack.yml`],
    ['.age on a plain backup', `backups/platform/${ID}/stack.yml.age`],
    ['another file', `backups/platform/${ID}/cluster.yaml`],
  ])('refuses a key for %s', (_what, key) => {
    expect(refusal(withArtifact('stack.yml', (a) => ({ ...a, key }))).message).toBe(
      `manifest ${SOURCE}: artifacts[3].key must end in ${ID}/stack.yml`,
    );
  });

  it('takes a key with no prefix at all', () => {
    const m = withArtifact('stack.yml', (a) => ({ ...a, key: `${ID}/stack.yml` }));
    expect(validateManifest(m, SOURCE).artifacts[3]?.key).toBe(`${ID}/stack.yml`);
  });

  it('wants .age keys and a plaintext digest on every artifact when encrypted', () => {
    expect(
      refusal(withArtifact('cluster.yaml', ({ plainSha256: _plain, ...rest }) => rest, true))
        .message,
    ).toBe(`manifest ${SOURCE}: artifacts[2].plainSha256 is missing`);
    expect(refusal(manifest({ encryption: AGE })).message).toBe(
      `manifest ${SOURCE}: artifacts[0].key must end in ${ID}/postgres.dump.age (and 9 more)`,
    );
  });

  it('names a missing field, and a wrong one with what it must be', () => {
    expect(refusal(withArtifact('redis.rdb', ({ sha256: _sha, ...rest }) => rest)).message).toBe(
      `manifest ${SOURCE}: artifacts[1].sha256 is missing`,
    );
    expect(refusal(withArtifact('redis.rdb', (a) => ({ ...a, sha256: 'ABC' }))).message).toBe(
      `manifest ${SOURCE}: artifacts[1].sha256 must be a SHA-256 digest in lowercase hex`,
    );
    const { cluster: _cluster, ...noCluster } = manifest();
    expect(refusal(noCluster).message).toBe(`manifest ${SOURCE}: cluster is missing`);
    expect(refusal(manifest({ finishedAt: '2026-11-24T02:59:59Z' })).message).toBe(
      `manifest ${SOURCE}: finishedAt is before createdAt`,
    );
    const m = manifest();
    m.artifacts = [...(m.artifacts as Json[]), artifact('volume-.tar')];
    expect(refusal(m).message).toBe(
      `manifest ${SOURCE}: artifacts[5].name must be postgres.dump, admins.dump, redis.rdb, cluster.yaml, stack.yml or volume-<name>.tar`,
    );
  });

  it('refuses a newer format and says to upgrade', () => {
    const err = refusal(manifest({ format: 2 }));
    expect(err.message).toBe(
      `manifest ${SOURCE}: format 2 is newer than this cluster-cli reads (1)`,
    );
    expect(err.next).toBe('upgrade cluster-cli');
  });

  it.each([null, [], 'manifest', 42])('refuses %j: not a JSON object', (json) => {
    expect(refusal(json).message).toBe(`manifest ${SOURCE}: not a JSON object`);
  });
});

describe('parseManifest', () => {
  it('reads JSON text', () => {
    expect(parseManifest(JSON.stringify(manifest()), SOURCE).id).toBe(ID);
  });

  it('refuses text that is not JSON', () => {
    expect(() => parseManifest('{"format": 1,', SOURCE)).toThrow(
      new RegExp(`^manifest ${SOURCE}: not JSON \\(`),
    );
    expect(() => parseManifest('', SOURCE)).toThrow(ManifestError);
  });
});

describe('backupId / parseBackupId', () => {
  it('is the UTC start time to the second', () => {
    expect(backupId(new Date('2026-11-24T03:00:00Z'))).toBe(ID);
    expect(backupId(new Date('2026-01-02T04:05:06.999Z'))).toBe('20260102T040506Z');
    expect(backupId(new Date('2026-11-24T04:00:00+01:00'))).toBe(ID);
    expect(() => backupId(new Date('nope'))).toThrow('backupId: invalid date');
  });

  it('round-trips', () => {
    for (const t of ['2026-11-24T03:00:00Z', '2024-02-29T23:59:59Z', '2000-01-01T00:00:00Z']) {
      const date = new Date(t);
      expect(parseBackupId(backupId(date))?.toISOString()).toBe(date.toISOString());
    }
  });

  it.each([
    '20260230T030000Z', // 30 February
    '20261124T246000Z',
    '20261124T030000', // no Z
    '2026-11-24T03:00Z', // a tick id, not a backup id
    `${ID}x`,
    '',
  ])('%j is not a backup id', (id) => {
    expect(parseBackupId(id)).toBeNull();
  });

  it('sorts by time as text', () => {
    const times = ['2026-11-24T03:00:00Z', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z'];
    const ids = times.map((t) => backupId(new Date(t)));
    expect([...ids].sort()).toEqual(['20260101T000000Z', '20261124T030000Z', '20270101T000000Z']);
  });
});

describe('key layout', () => {
  it.each([
    [undefined, 'platform/'],
    ['', 'platform/'],
    ['backups', 'backups/platform/'],
    ['/backups/', 'backups/platform/'],
    ['a/b/c', 'a/b/c/platform/'],
    ['//x//', 'x/platform/'],
  ])('prefix %j: the cluster folder is %j', (prefix, folder) => {
    const loc = { prefix, cluster: 'platform' };
    expect(clusterPrefix(loc)).toBe(folder);
    expect(backupPrefix(loc, ID)).toBe(`${folder}${ID}/`);
    expect(manifestKey(loc, ID)).toBe(`${folder}${ID}/manifest.json`);
    expect(artifactKey(loc, ID, 'postgres.dump', 'none')).toBe(`${folder}${ID}/postgres.dump`);
    expect(artifactKey(loc, ID, 'volume-platform_redis_data.tar', 'age')).toBe(
      `${folder}${ID}/volume-platform_redis_data.tar.age`,
    );
  });

  it('the keys it makes are the ones validateManifest accepts', () => {
    const loc = { prefix: 'a/b', cluster: 'platform' };
    for (const scheme of ['none', 'age'] as const) {
      const m = manifest({}, scheme === 'age');
      m.artifacts = (m.artifacts as Json[]).map((a) => ({
        ...a,
        key: artifactKey(loc, ID, a.name as 'postgres.dump', scheme),
      }));
      expect(() => validateManifest(m, SOURCE)).not.toThrow();
    }
  });

  it('refuses a cluster name with a slash and an id that is not one', () => {
    expect(() => clusterPrefix({ cluster: 'a/b' })).toThrow('not a cluster name: "a/b"');
    expect(() => backupPrefix({ cluster: 'platform' }, '../x')).toThrow('not a backup id: "../x"');
  });

  it('backupIdOfKey: the backup a key belongs to, null for stray objects', () => {
    const loc = { prefix: 'backups', cluster: 'platform' };
    expect(backupIdOfKey(loc, `backups/platform/${ID}/manifest.json`)).toBe(ID);
    expect(backupIdOfKey(loc, `backups/platform/${ID}/postgres.dump.age`)).toBe(ID);
    expect(backupIdOfKey(loc, `backups/platform/${ID}/`)).toBe(ID);
    expect(backupIdOfKey(loc, 'backups/platform/notes.txt')).toBeNull();
    expect(backupIdOfKey(loc, 'backups/platform/20261399T000000Z/manifest.json')).toBeNull();
    expect(backupIdOfKey(loc, `backups/other/${ID}/manifest.json`)).toBeNull();
    expect(backupIdOfKey(loc, `backups/platformx/${ID}/manifest.json`)).toBeNull();
    expect(backupIdOfKey({ cluster: 'platform' }, `platform/${ID}/stack.yml`)).toBe(ID);
    expect(backupIdOfKey({ cluster: 'platform' }, `backups/platform/${ID}/stack.yml`)).toBeNull();
  });
});

describe('artifact names', () => {
  it('a volume becomes volume-<name>.tar; not a Docker volume name is refused', () => {
    expect(volumeArtifact('platform_redis_data')).toBe('volume-platform_redis_data.tar');
    expect(() => volumeArtifact('../etc')).toThrow('not a Docker volume name: "../etc"');
    expect(() => volumeArtifact('')).toThrow('not a Docker volume name: ""');
  });

  it('content types: encrypted is opaque, else by kind', () => {
    expect(artifactContentType('stack.yml', 'none')).toBe('application/yaml');
    expect(artifactContentType('cluster.yaml', 'none')).toBe('application/yaml');
    expect(artifactContentType('volume-x.tar', 'none')).toBe('application/x-tar');
    expect(artifactContentType('postgres.dump', 'none')).toBe('application/octet-stream');
    expect(artifactContentType('stack.yml', 'age')).toBe('application/octet-stream');
  });
});
