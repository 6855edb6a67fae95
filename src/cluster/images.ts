import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CopyImages, copyImages } from '../core/copy.js';
import { CommandError, UserError } from '../core/errors.js';
import type { Executor, Stream } from '../core/executor.js';
import { change, type Plan, type Step, unchanged } from '../core/plan.js';
import { imageInspectId, imageLoad, imageSave } from '../docker/images.js';

/**
 * Images copied host to host without a registry: `docker save` on the source
 * piped into `docker load` on each target, over the SSH connections already
 * open. Probe → plan (pure) → steps for the shared pipeline, whose apply()
 * runs each copy through runCopyImages.
 */

/** Image reference → its ID on one host; undefined: the host does not have it. */
export type ImageIds = ReadonlyMap<string, string | undefined>;

const NO_SUCH_IMAGE = /no such image/i;

/**
 * The ID of each image on the host. "Absent" only when docker says "No such
 * image"; any other failure (no docker, sudo wants a password, the connection
 * dropped) throws with its cause.
 */
export async function probeImageIds(exec: Executor, refs: readonly string[]): Promise<ImageIds> {
  const ids = await Promise.all(
    refs.map(async (ref): Promise<[string, string | undefined]> => {
      const c = imageInspectId(ref);
      const r = await exec.run(c, { allowFailure: true });
      if (r.exitCode !== 0) {
        if (NO_SUCH_IMAGE.test(r.stderr)) return [ref, undefined];
        throw new CommandError(exec.label, c.argv, r.exitCode, r.stderr.trim());
      }
      const id = r.stdout.trim();
      if (!/^sha256:[0-9a-f]{64}$/.test(id)) {
        throw new CommandError(exec.label, c.argv, 0, `unexpected image ID ${JSON.stringify(id)}`);
      }
      return [ref, id];
    }),
  );
  return new Map(ids);
}

export interface ImagePushItem {
  readonly host: string;
  readonly image: string;
  /** The image's ID at the source: what the target has afterwards. */
  readonly id: string;
  /** copy: the target lacks it or has another image under that name; present: same ID already. */
  readonly action: 'copy' | 'present';
  /** The ID the target has under this name now, when a copy replaces it. */
  readonly replaces?: string;
}

export interface ImagePushPlan {
  /** Where the images come from (an executor label). */
  readonly source: string;
  readonly images: readonly { readonly image: string; readonly id: string }[];
  /** One per (target, image), targets in the given order. */
  readonly items: readonly ImagePushItem[];
  /** Per target with something to copy: its images, sent in one save → load stream. */
  readonly copies: readonly { readonly host: string; readonly images: readonly string[] }[];
}

/**
 * Which image goes to which target: each one a target lacks, or has under
 * another ID; one with the same ID is left alone. Every image must exist at
 * the source.
 */
export function planImagePush(facts: {
  source: string;
  sourceIds: ImageIds;
  targets: readonly { readonly host: string; readonly ids: ImageIds }[];
}): ImagePushPlan {
  const refs = [...facts.sourceIds.keys()];
  const missing = refs.filter((r) => facts.sourceIds.get(r) === undefined);
  if (missing.length) {
    const list = missing.join(', ');
    throw new UserError(
      `${missing.length === 1 ? 'Image' : 'Images'} not found on ${facts.source} (the source): ${list}. Nothing was copied.`,
      `check the name (docker image ls), pull or build it there first (docker pull ${missing[0]}), or copy from the other side with --from local|manager`,
    );
  }
  const images = refs.map((image) => ({ image, id: facts.sourceIds.get(image) as string }));
  const items: ImagePushItem[] = [];
  const copies: { host: string; images: string[] }[] = [];
  for (const t of facts.targets) {
    const send: string[] = [];
    for (const { image, id } of images) {
      const have = t.ids.get(image);
      if (have === id) {
        items.push({ host: t.host, image, id, action: 'present' });
        continue;
      }
      items.push({
        host: t.host,
        image,
        id,
        action: 'copy',
        ...(have !== undefined ? { replaces: have } : {}),
      });
      send.push(image);
    }
    if (send.length) copies.push({ host: t.host, images: send });
  }
  return { source: facts.source, images, items, copies };
}

/** A copy to one target failed: names the target, the images and the side that failed. */
export class ImagePushError extends Error {
  override readonly name = 'ImagePushError';
  constructor(
    readonly host: string,
    readonly images: readonly string[],
    override readonly cause: unknown,
  ) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`${host}: copying ${images.join(', ')} failed: ${why}`);
  }
}

export interface PushResult {
  /** Bytes of image tar that went through (the size of the `docker save` stream). */
  readonly bytes: number;
  readonly ms: number;
  /** What `docker load` printed, e.g. `Loaded image: app:1`. */
  readonly loaded: string;
}

/** At most this much of docker load's stdout is kept (it prints one line per image). */
const LOAD_OUTPUT_LIMIT = 64 * 1024;

/**
 * `docker save refs…` on the source streamed into `docker load` on the target:
 * no temp file, and memory stays bounded because pipeline() honours
 * backpressure end to end (a slow target pauses the source). On any failure
 * both processes are stopped and an ImagePushError names the target and images.
 */
export async function pushImages(
  source: Executor,
  target: Executor,
  refs: readonly string[],
  opts: { onBytes?: (bytes: number) => void } = {},
): Promise<PushResult> {
  const t0 = performance.now();
  let bytes = 0;
  let load: Stream | undefined;
  let save: Stream | undefined;
  try {
    load = await target.stream(imageLoad());
    save = await source.stream(imageSave(refs));
  } catch (err) {
    load?.kill();
    await load?.done.catch(() => {});
    throw new ImagePushError(target.label, refs, err);
  }

  const out: Buffer[] = [];
  let outBytes = 0;
  load.stdout.on('data', (d: Buffer) => {
    if (outBytes < LOAD_OUTPUT_LIMIT) out.push(d);
    outBytes += d.length;
  });
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      opts.onBytes?.(bytes);
      cb(null, chunk);
    },
  });

  // The first thing to fail, in the order it happened: a dying process often
  // shows up first as EPIPE on the stream, so its own exit error is preferred below.
  const failures: { side: 'save' | 'load' | 'stream'; err: unknown }[] = [];
  const watch = <T>(side: 'save' | 'load' | 'stream', p: Promise<T>) =>
    p.catch((err: unknown) => {
      failures.push({ side, err });
      throw err;
    });
  const piped = watch('stream', pipeline(save.stdout, counter, load.stdin));
  const saved = watch('save', save.done);
  const loaded = watch('load', load.done);
  try {
    await Promise.all([piped, saved, loaded]);
  } catch {
    save.kill();
    load.kill();
    // Let both exit (their SSH sessions are freed on close), but never hang on a process that ignores the kill.
    await settledWithin(KILL_GRACE_MS, [piped, saved, loaded]);
    throw new ImagePushError(target.label, refs, describeFailure(failures, source, target));
  }
  return {
    bytes,
    ms: performance.now() - t0,
    loaded: Buffer.concat(out).toString('utf8').trim(),
  };
}

/** How long a killed save or load may take to go away before the error is reported anyway. */
const KILL_GRACE_MS = 5000;

async function settledWithin(ms: number, ps: readonly Promise<unknown>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled(ps),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}

/** A process that exited on its own with an error says more than the broken pipe it left. */
function describeFailure(
  failures: readonly { side: 'save' | 'load' | 'stream'; err: unknown }[],
  source: Executor,
  target: Executor,
): Error {
  const exited = (f: { err: unknown }) =>
    !(f.err instanceof CommandError) || f.err.exitCode !== null;
  const best =
    failures.find((f) => f.side === 'save' && exited(f)) ??
    failures.find((f) => f.side === 'load' && exited(f)) ??
    failures[0];
  if (!best) return new Error('unknown failure');
  const err = best.err instanceof Error ? best.err : new Error(String(best.err));
  if (best.side === 'stream') {
    return new Error(`stream from ${source.label} to ${target.label} broke: ${err.message}`);
  }
  return err;
}

/**
 * apply()'s copy for a CopyImages step: `docker save` on the source streamed
 * into `docker load` on the target (pushImages), then the images' IDs on the
 * target checked against the source's (`ids`): a name that still points at
 * another image afterwards is a failed copy, not a success.
 */
export async function runCopyImages(
  action: CopyImages,
  source: Executor,
  target: Executor,
  opts: { ids: ImageIds; onBytes?: (bytes: number) => void },
): Promise<PushResult> {
  const r = await pushImages(source, target, action.refs, {
    ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
  });
  const now = await probeImageIds(target, action.refs);
  const wrong = action.refs.filter((ref) => now.get(ref) !== opts.ids.get(ref));
  if (wrong.length) {
    throw new ImagePushError(
      target.label,
      wrong,
      new Error(
        `after docker load the target has ${wrong.map((ref) => `${ref} = ${now.get(ref) ?? 'nothing'}`).join(', ')}, not the source's ${wrong.map((ref) => opts.ids.get(ref)).join(', ')}`,
      ),
    );
  }
  return r;
}

/**
 * The push as a Plan for the shared pipeline: per node, an unchanged step for
 * each image it already has with the same ID, and one step (all of them in
 * the `copy` wave, so they run at once) streaming the rest from the source in
 * one save | load. Every node gets its own save stream from the source (the
 * source's disk is read once per node; in exchange nothing is buffered for a
 * slow node). `labels` maps each node to its session label.
 */
export function imagePushSteps(push: ImagePushPlan, labels: ReadonlyMap<string, string>): Plan {
  const steps: Step[] = [];
  const nodes = [...new Set(push.items.map((i) => i.host))];
  for (const node of nodes) {
    const label = labels.get(node);
    if (label === undefined) throw new Error(`no session label for node ${node}`);
    const items = push.items.filter((i) => i.host === node);
    for (const i of items.filter((x) => x.action === 'present')) {
      steps.push(
        unchanged(`present:${node}:${i.image}`, label, `${i.image} on ${node}`, 'present, same ID'),
      );
    }
    const send = items.filter((x) => x.action === 'copy');
    if (send.length === 0) continue;
    const what = send
      .map((i) => `${i.image}${i.replaces ? ` (replaces ${shortImageId(i.replaces)})` : ''}`)
      .join(', ');
    steps.push(
      change(
        `copy:${node}`,
        label,
        `Copy ${what} to ${node}`,
        [
          copyImages(
            push.source,
            send.map((i) => i.image),
          ),
        ],
        { wave: 'copy' },
      ),
    );
  }
  return { title: `images push from ${push.source}`, steps };
}

/** The first 12 hex digits of an image ID, as `docker image ls` shows it. */
export const shortImageId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** fn over items with at most `limit` running at once; results in input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
