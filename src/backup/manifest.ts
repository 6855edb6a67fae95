/**
 * The backup manifest and where a backup's objects live in the bucket.
 *
 * Layout, one folder per backup:
 *
 *   <prefix>/<cluster>/<id>/postgres.dump[.age]
 *   <prefix>/<cluster>/<id>/redis.rdb[.age]
 *   <prefix>/<cluster>/<id>/volume-<name>.tar[.age]
 *   <prefix>/<cluster>/<id>/cluster.yaml[.age]
 *   <prefix>/<cluster>/<id>/stack.yml[.age]
 *   <prefix>/<cluster>/<id>/manifest.json        written last
 *
 * `id` is backupId() of the start time, `20261124T030000Z`, so ids sort by
 * time. The manifest is uploaded only after every artifact has been uploaded
 * and its digest recorded: a folder without a manifest.json that passes
 * validateManifest() is an interrupted or failed run, never a backup (retention
 * counts it as `incomplete`). The manifest itself is plain JSON even when the
 * artifacts are encrypted: it holds sizes, digests and versions, no data.
 */
import { z } from 'zod';
import { formatPath } from '../config/diagnostics.js';
import { UserError } from '../core/errors.js';

export const MANIFEST_FORMAT = 1;
export const MANIFEST_FILE = 'manifest.json';
/** age's format, as its header's first line names it. */
export const AGE_VERSION = 'age-encryption.org/v1';

export type ArtifactName =
  | 'postgres.dump'
  | 'admins.dump'
  | 'redis.rdb'
  | 'cluster.yaml'
  | 'stack.yml'
  | `volume-${string}.tar`;

/** Every backup has these; volumes vary. */
export const REQUIRED_ARTIFACTS = [
  'postgres.dump',
  'redis.rdb',
  'cluster.yaml',
  'stack.yml',
] as const;

/**
 * In backups since they carry it, absent from older ones: cluster-cli's admin
 * users (a data-only dump of cluster_cli.users), for a cluster rebuilt from
 * the bucket.
 */
export const OPTIONAL_ARTIFACTS = ['admins.dump'] as const;

// Docker's volume name rule.
const VOLUME_ARTIFACT = /^volume-[A-Za-z0-9][A-Za-z0-9_.-]*\.tar$/;
const SHA256 = /^[0-9a-f]{64}$/;
const BACKUP_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const TICK = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$/;

export function isArtifactName(name: string): name is ArtifactName {
  return (
    (REQUIRED_ARTIFACTS as readonly string[]).includes(name) ||
    (OPTIONAL_ARTIFACTS as readonly string[]).includes(name) ||
    VOLUME_ARTIFACT.test(name)
  );
}

/** The artifact of one named volume. */
export function volumeArtifact(volume: string): ArtifactName {
  const name = `volume-${volume}.tar` as const;
  if (!VOLUME_ARTIFACT.test(name))
    throw new Error(`not a Docker volume name: ${JSON.stringify(volume)}`);
  return name;
}

const sha256 = z.string().regex(SHA256, { error: 'must be a SHA-256 digest in lowercase hex' });
const text = z.string().min(1, { error: 'must not be empty' });
const instant = z.iso.datetime({ error: 'must be a UTC time such as 2026-11-24T03:00:00Z' });

const Artifact = z.object({
  name: z.string().refine(isArtifactName, {
    error:
      'must be postgres.dump, admins.dump, redis.rdb, cluster.yaml, stack.yml or volume-<name>.tar',
  }),
  /** The S3 object key; restore reads the artifact beside the manifest, this is a record. */
  key: text,
  /** Bytes stored, i.e. after encryption. */
  size: z.number().int({ error: 'must be a whole number of bytes' }).min(0),
  /** Of the bytes stored, i.e. after encryption: checkable without the key. */
  sha256,
  /** Of the plaintext, when encrypted: checked after decryption. */
  plainSha256: sha256.optional(),
  contentType: text,
});

const Encryption = z.discriminatedUnion(
  'scheme',
  [
    z.object({ scheme: z.literal('none') }),
    z.object({
      scheme: z.literal('age'),
      /** age's format version. */
      version: z.literal(AGE_VERSION),
      /** The public key the artifacts were encrypted to. */
      recipient: z.string().regex(/^age1[0-9a-z]+$/, { error: 'must be an age recipient (age1…)' }),
      /** The Docker secret that holds the matching identity. */
      identitySecret: text,
    }),
  ],
  { error: 'must be {"scheme": "none"} or {"scheme": "age", …}' },
);

const ManifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT, { error: 'must be 1' }),
    id: z.string().regex(BACKUP_ID, { error: 'must be a backup id such as 20261124T030000Z' }),
    cluster: z.string().regex(/^[^/\s]+$/, { error: 'must be a cluster name' }),
    /** When the run started; the id is made from it. */
    createdAt: instant,
    /** When the last artifact was stored, just before the manifest. */
    finishedAt: instant,
    /** The schedule tick (tickId) a scheduled run claimed; absent for a run by hand. */
    tick: z.string().regex(TICK, { error: 'must be a tick such as 2026-11-24T03:00Z' }).optional(),
    clusterCliVersion: text,
    postgres: z.object({ serverVersion: text, pgDumpVersion: text, database: text }),
    redis: z.object({ version: text }),
    artifacts: z.array(Artifact),
    encryption: Encryption,
  })
  .superRefine((m, ctx) => {
    const issue = (path: PropertyKey[], message: string) =>
      ctx.addIssue({ code: 'custom', path, message });
    if (m.id !== backupId(new Date(m.createdAt))) {
      issue(['id'], `does not match createdAt (expected ${backupId(new Date(m.createdAt))})`);
    }
    if (Date.parse(m.finishedAt) < Date.parse(m.createdAt))
      issue(['finishedAt'], 'is before createdAt');
    const seen = new Set<string>();
    m.artifacts.forEach((a, i) => {
      if (seen.has(a.name)) issue(['artifacts', i, 'name'], `${a.name} is listed twice`);
      seen.add(a.name);
      const file = storedName(a.name as ArtifactName, m.encryption.scheme);
      if (a.key !== `${m.id}/${file}` && !a.key.endsWith(`/${m.id}/${file}`)) {
        issue(['artifacts', i, 'key'], `must end in ${m.id}/${file}`);
      }
      if (m.encryption.scheme === 'age' && a.plainSha256 === undefined) {
        issue(['artifacts', i, 'plainSha256'], 'is missing');
      }
    });
    for (const name of REQUIRED_ARTIFACTS) {
      if (!seen.has(name)) issue(['artifacts'], `has no ${name}`);
    }
  });

export type Manifest = Omit<z.infer<typeof ManifestSchema>, 'artifacts'> & {
  readonly artifacts: readonly ManifestArtifact[];
};
export type ManifestArtifact = Omit<z.infer<typeof Artifact>, 'name'> & {
  readonly name: ArtifactName;
};
export type Encryption = z.infer<typeof Encryption>;

/**
 * A manifest that is unreadable or incomplete: the backup is not usable. A
 * UserError (one line, no stack); its `name` stays UserError's, test with
 * instanceof.
 */
export class ManifestError extends UserError {}

/**
 * The manifest, complete, or a ManifestError naming the first thing missing or
 * wrong: `manifest <source>: artifacts[2].sha256 is missing`.
 */
export function validateManifest(json: unknown, source = MANIFEST_FILE): Manifest {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ManifestError(`manifest ${source}: not a JSON object`);
  }
  if ('format' in json && typeof json.format === 'number' && json.format > MANIFEST_FORMAT) {
    throw new ManifestError(
      `manifest ${source}: format ${json.format} is newer than this cluster-cli reads (${MANIFEST_FORMAT})`,
      'upgrade cluster-cli',
    );
  }
  const parsed = ManifestSchema.safeParse(json, { reportInput: true });
  if (parsed.success) return parsed.data as Manifest;
  const first = parsed.error.issues[0];
  const path = first ? formatPath(first.path) : '(top level)';
  const missing = first?.code === 'invalid_type' && first.input === undefined;
  const why = missing ? 'is missing' : (first?.message ?? 'is invalid');
  const more =
    parsed.error.issues.length > 1 ? ` (and ${parsed.error.issues.length - 1} more)` : '';
  throw new ManifestError(`manifest ${source}: ${path} ${why}${more}`);
}

/** JSON text (an S3 object's body) → a valid manifest, or a ManifestError. */
export function parseManifest(text: string, source = MANIFEST_FILE): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(
      `manifest ${source}: not JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  return validateManifest(json, source);
}

/** `20261124T030000Z`: the UTC start time to the second. */
export function backupId(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new Error('backupId: invalid date');
  return `${date.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
}

/** The start time a backup id stands for, or null if `id` is not one. */
export function parseBackupId(id: string): Date | null {
  const m = BACKUP_ID.exec(id);
  if (!m) return null;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const date = new Date(Date.UTC(y as number, (mo as number) - 1, d, h, mi, s));
  return backupId(date) === id ? date : null;
}

/** Where a cluster's backups live: `--s3-prefix` (may be empty) and the cluster's name. */
export interface BackupLocation {
  readonly prefix?: string;
  readonly cluster: string;
}

/** `<prefix>/<cluster>/`: list with delimiter `/` to find the backups. */
export function clusterPrefix(loc: BackupLocation): string {
  if (!/^[^/\s]+$/.test(loc.cluster))
    throw new Error(`not a cluster name: ${JSON.stringify(loc.cluster)}`);
  const prefix = (loc.prefix ?? '').replace(/^\/+|\/+$/g, '');
  return prefix ? `${prefix}/${loc.cluster}/` : `${loc.cluster}/`;
}

/** `<prefix>/<cluster>/<id>/` */
export function backupPrefix(loc: BackupLocation, id: string): string {
  if (!BACKUP_ID.test(id)) throw new Error(`not a backup id: ${JSON.stringify(id)}`);
  return `${clusterPrefix(loc)}${id}/`;
}

export function manifestKey(loc: BackupLocation, id: string): string {
  return `${backupPrefix(loc, id)}${MANIFEST_FILE}`;
}

/** An artifact's key beside the manifest; `.age` is appended when it is encrypted. */
export function artifactKey(
  loc: BackupLocation,
  id: string,
  name: ArtifactName,
  scheme: Encryption['scheme'],
): string {
  return `${backupPrefix(loc, id)}${storedName(name, scheme)}`;
}

/** The backup id a key under clusterPrefix() belongs to, or null for a stray object. */
export function backupIdOfKey(loc: BackupLocation, key: string): string | null {
  const base = clusterPrefix(loc);
  if (!key.startsWith(base)) return null;
  const id = key.slice(base.length).split('/')[0] ?? '';
  return parseBackupId(id) ? id : null;
}

/** The Content-Type to store an artifact with. */
export function artifactContentType(name: ArtifactName, scheme: Encryption['scheme']): string {
  if (scheme === 'age') return 'application/octet-stream';
  if (name.endsWith('.tar')) return 'application/x-tar';
  if (name.endsWith('.yaml') || name.endsWith('.yml')) return 'application/yaml';
  return 'application/octet-stream';
}

function storedName(name: ArtifactName, scheme: Encryption['scheme']): string {
  return scheme === 'age' ? `${name}.age` : name;
}
