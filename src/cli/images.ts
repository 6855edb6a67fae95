import { isAbsolute, resolve } from 'node:path';
import {
  type ImageIds,
  type ImagePushPlan,
  imagePushSteps,
  mapLimit,
  planImagePush,
  probeImageIds,
  runCopyImages,
  shortImageId,
} from '../cluster/images.js';
import { DEFAULT_CONFIG_FILE, loadConfig } from '../config/load.js';
import { type Config, type Host, proxyImage } from '../config/schema.js';
import type { ApplyReport } from '../core/apply.js';
import { UserError } from '../core/errors.js';
import { quoteArg } from '../core/quote.js';
import type { HostSession } from '../core/session.js';
import { dockerVersion } from '../docker/commands.js';
import { hostTarget } from './cluster.js';
import { connectSession } from './connect.js';
import type { Ctx } from './context.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

export interface ImagesPushOpts extends PipelineFlags {
  /** Positional image references; none → the images cluster.yaml's stack uses. */
  images?: string[];
  /** Only these nodes (names from cluster.yaml); default every host. */
  node?: string[];
  /** local: this machine's Docker; manager: the first manager. Default local when its daemon answers. */
  from?: 'local' | 'manager';
  identity?: string;
  knownHosts?: string;
  jump?: string;
  acceptNewHostKey?: boolean;
  config: string;
}

/** Copies to run at once; each holds a `docker save` on the source and a `docker load` on its target. */
const CONCURRENCY = 4;
/** Milliseconds between progress updates of one copy. */
const PROGRESS_EVERY_MS = 2000;

const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;

type ImageStatus = 'copy' | 'copied' | 'present' | 'failed';

interface NodeRun {
  readonly host: Host;
  label: string;
  session?: HostSession;
  ids?: ImageIds;
  /** Why this node cannot be served (connect or probe failed): it is left out of the plan. */
  error?: Error;
}

/** What one copy moved, recorded by the copy function (also for a copy that failed part way). */
interface CopyRecord {
  bytes: number;
  ms: number;
}

interface Source {
  readonly session: HostSession;
  readonly from: 'local' | 'manager';
  /** The node name when the source is the first manager. */
  readonly node?: string;
  /** Why the default source was not this machine. */
  readonly note?: string;
}

/**
 * `cluster-cli images push`: connect → probe image IDs → plan, then the shared
 * pipeline (print or --json → stop on --dry-run → confirm → apply, where each
 * node that lacks an image gets one streamed `docker save | docker load`, at
 * most CONCURRENCY at once → summary). A node that fails does not stop the
 * others; the command then exits non-zero naming it and the retry command.
 */
export async function runImagesPush(opts: ImagesPushOpts, ctx: Ctx): Promise<void> {
  const t0 = performance.now();

  // 1. Input, checked before any host is contacted.
  const file = isAbsolute(opts.config) ? opts.config : resolve(ctx.cwd, opts.config);
  const loaded = await loadConfig(file, opts.config);
  if (!loaded) {
    throw new UserError(
      `${opts.config} does not exist: images push copies to the hosts it lists.`,
      'run cluster-cli init first, or pass -c <file>',
    );
  }
  const { config } = loaded;
  const explicit = unique(opts.images ?? []);
  for (const ref of explicit) {
    if (!IMAGE_REF.test(ref)) {
      throw new UserError(
        `${JSON.stringify(ref)} is not an image reference such as postgres:16-alpine.`,
      );
    }
  }
  const images = explicit.length ? explicit : stackImages(config);
  const nodes = selectNodes(config, opts.node ?? []);
  const manager = config.hosts.find((h) => h.role === 'manager') ?? (config.hosts[0] as Host);

  const runs: NodeRun[] = nodes.map((host) => ({ host, label: plannedLabel(host) }));
  const opened: HostSession[] = [];
  try {
    // 2. Connect (host keys checked) and probe: read-only, also in --dry-run.
    const source = await openSource(ctx, opts, config, manager, opened);
    await mapLimit(runs, ctx.interactive ? 1 : 8, async (r) => {
      try {
        if (source.from === 'manager' && r.host.name === manager.name) r.session = source.session;
        else {
          r.session = await connectSession(ctx, hostTarget(r.host, opts, config));
          opened.push(r.session);
        }
        r.label = r.session.exec.label;
      } catch (err) {
        r.error = asError(err);
      }
    });
    const sourceIds = await probeImageIds(source.session.exec, images);
    await Promise.all(
      runs.map(async (r) => {
        if (!r.session) return;
        try {
          r.ids = await probeImageIds(r.session.exec, images);
        } catch (err) {
          r.error = asError(err);
        }
      }),
    );

    // 3. Plan (throws when an image is missing at the source).
    const reachable = runs.filter((r) => r.ids !== undefined);
    const push = planImagePush({
      source: source.session.exec.label,
      sourceIds,
      targets: reachable.map((r) => ({ host: r.host.name, ids: r.ids as ImageIds })),
    });
    const plan = imagePushSteps(push, new Map(reachable.map((r) => [r.host.name, r.label])));
    // The copy steps run on the nodes' sessions and read from the source's. A
    // node that is the source's host (same label) gets no copy: it has the IDs.
    const sessions = new Map<string, HostSession>([[source.session.exec.label, source.session]]);
    for (const r of reachable)
      if (!sessions.has(r.label)) sessions.set(r.label, r.session as HostSession);

    // 4. The shared pipeline; the copy function records what each node received.
    const copies = new Map<string, CopyRecord>();
    const nodeOf = new Map(reachable.map((r) => [r.label, r.host.name]));
    const outcome = await runPipeline(ctx, opts, {
      name: 'images push',
      plan,
      sessions,
      keepGoing: true,
      maxParallel: CONCURRENCY,
      preamble: {
        text: formatPreamble(source, push, runs),
        json: planned(source, push, runs),
      },
      async copy(action, from, to, status) {
        const label = to.exec.label;
        const node = nodeOf.get(label) ?? label;
        const rec: CopyRecord = { bytes: 0, ms: 0 };
        copies.set(label, rec);
        const c0 = performance.now();
        let shown = c0;
        try {
          await runCopyImages(action, from.exec, to.exec, {
            ids: sourceIds,
            onBytes: (bytes) => {
              rec.bytes = bytes;
              const now = performance.now();
              if (now - shown < PROGRESS_EVERY_MS) return;
              shown = now;
              status(`${node}: ${formatBytes(bytes)} sent`);
            },
          });
        } finally {
          rec.ms = Math.round(performance.now() - c0);
        }
        status(`${node}: done, ${formatRate(rec)}`);
      },
      summary(o) {
        const doc = report(source, push, runs, { t0, report: o.report, copies });
        return { text: `\n${formatSummary(doc)}\n`, json: doc };
      },
    });

    // 5. Exit: non-zero naming every node that did not get its images.
    const failed = runs.flatMap((r) => {
      const error = r.error ?? outcome.report.failed.get(r.label)?.error;
      return error === undefined ? [] : [{ node: r.host.name, error: asError(error) }];
    });
    failIfAny(failed, opts, explicit);
  } finally {
    await closeAll(new Set(opened));
  }
}

/** The images the stack runs: app, PostgreSQL, Redis and the proxy. */
export function stackImages(config: Config): string[] {
  return unique([config.app.image, config.postgres.image, config.redis.image, proxyImage(config)]);
}

/** The hosts named by --node (comma-separated or repeated), or all of them; unknown names are an error. */
export function selectNodes(config: Config, names: readonly string[]): Host[] {
  const wanted = unique(names.flatMap((n) => n.split(',')).map((n) => n.trim())).filter(Boolean);
  if (wanted.length === 0) return [...config.hosts];
  const known = config.hosts.map((h) => h.name);
  const unknown = wanted.filter((n) => !known.includes(n));
  if (unknown.length) {
    throw new UserError(
      `Unknown node${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}: cluster.yaml lists ${known.join(', ')}.`,
      `pass --node with one of: ${known.join(', ')}`,
    );
  }
  return config.hosts.filter((h) => wanted.includes(h.name));
}

async function openSource(
  ctx: Ctx,
  opts: ImagesPushOpts,
  config: Config,
  manager: Host,
  opened: HostSession[],
): Promise<Source> {
  let note: string | undefined;
  if (opts.from !== 'manager') {
    const local = await connectSession(ctx, { acceptNewHostKey: false });
    opened.push(local);
    let why: string;
    try {
      const r = await local.exec.run(dockerVersion(), { allowFailure: true, timeoutMs: 15_000 });
      if (r.exitCode === 0) return { session: local, from: 'local' };
      why = (r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.exitCode}`;
    } catch (err) {
      why = asError(err).message.split('\n')[0] ?? '';
    }
    if (opts.from === 'local') {
      throw new UserError(
        `No Docker daemon answers on this machine (${why}), so it cannot be the source.`,
        'start Docker here, or copy from the first manager with --from manager',
      );
    }
    note = `no Docker daemon answers on this machine (${why})`;
  }
  const session = await connectSession(ctx, hostTarget(manager, opts, config));
  opened.push(session);
  return { session, from: 'manager', node: manager.name, ...(note ? { note } : {}) };
}

function describeSource(s: Source): string {
  if (s.from === 'local') return 'this machine (local Docker)';
  return `${s.node} (${s.session.exec.label}), the first manager${s.note ? `; ${s.note}` : ''}`;
}

function plannedLabel(h: Host): string {
  if (!h.address) return 'local';
  return `${h.user ?? ''}${h.user ? '@' : ''}${h.address}${h.port ? `:${h.port}` : ''}`;
}

interface NodeReport {
  node: string;
  host: string;
  status: 'ok' | 'failed';
  bytes: number;
  ms: number;
  error?: string;
  images: { image: string; status: ImageStatus; replaces?: string }[];
}

interface PushReport {
  dryRun: boolean;
  source: { from: 'local' | 'manager'; host: string; node?: string };
  images: { image: string; id: string }[];
  nodes: NodeReport[];
  copied: number;
  present: number;
  failed: string[];
  timingsMs: { total: number; copy?: number };
}

/** What the plan means per node and image, before anything is copied: the --dry-run --json `preflight`. */
function planned(source: Source, push: ImagePushPlan, runs: readonly NodeRun[]) {
  const { dryRun: _, timingsMs: __, copied: ___, ...doc } = report(source, push, runs);
  return doc;
}

/** Per node and image: present | copied | failed (or `copy` before apply), with bytes and time per node. */
function report(
  source: Source,
  push: ImagePushPlan,
  runs: readonly NodeRun[],
  applied?: {
    t0: number;
    report: ApplyReport;
    copies: ReadonlyMap<string, CopyRecord>;
  },
): PushReport {
  const nodes = runs.map((r): NodeReport => {
    const f = applied?.report.failed.get(r.label);
    const error = r.error ?? (f ? asError(f.error) : undefined);
    const copy = applied?.copies.get(r.label);
    const items = new Map(
      push.items.filter((i) => i.host === r.host.name).map((i) => [i.image, i]),
    );
    const images = push.images.map(({ image }) => {
      const item = items.get(image);
      let status: ImageStatus;
      if (item?.action === 'present') status = 'present';
      else if (error) status = 'failed';
      else status = applied ? 'copied' : 'copy';
      return {
        image,
        status,
        ...(item?.replaces && status !== 'present' ? { replaces: item.replaces } : {}),
      };
    });
    return {
      node: r.host.name,
      host: r.label,
      status: error ? 'failed' : 'ok',
      bytes: copy?.bytes ?? 0,
      ms: Math.round(copy?.ms ?? 0),
      ...(error ? { error: error.message } : {}),
      images,
    };
  });
  const all = nodes.flatMap((n) => n.images);
  const copyMs = applied?.report.waveMs.copy;
  return {
    dryRun: !applied,
    source: {
      from: source.from,
      host: source.session.exec.label,
      ...(source.node ? { node: source.node } : {}),
    },
    images: push.images.map((i) => ({ image: i.image, id: i.id })),
    nodes,
    copied: all.filter((i) => i.status === 'copied').length,
    present: all.filter((i) => i.status === 'present').length,
    failed: nodes.filter((n) => n.status === 'failed').map((n) => n.node),
    timingsMs: {
      total: Math.round(performance.now() - (applied?.t0 ?? performance.now())),
      ...(copyMs !== undefined ? { copy: Math.round(copyMs) } : {}),
    },
  };
}

/** Printed before the plan: the source, its images, and the nodes left out because they could not be probed. */
function formatPreamble(source: Source, push: ImagePushPlan, runs: readonly NodeRun[]): string {
  const lines = [
    `Source: ${describeSource(source)}`,
    'Images on the source:',
    ...push.images.map((i) => `  ${i.image}  ${shortImageId(i.id)}`),
  ];
  const unreachable = runs.filter((r) => r.error);
  if (unreachable.length) {
    lines.push('Not in the plan (connect or probe failed):');
    for (const r of unreachable) {
      lines.push(`  ${r.host.name} (${r.label}): ${firstLine(r.error?.message ?? '')}`);
    }
  }
  if (push.copies.length > 1) {
    lines.push(
      `Each node gets its own docker save | docker load stream, at most ${CONCURRENCY} at a time.`,
    );
  }
  return lines.join('\n');
}

function formatSummary(doc: PushReport): string {
  const ok = doc.nodes.filter((n) => n.status === 'ok');
  const got = ok.filter((n) => n.images.some((i) => i.status === 'copied'));
  const bytes = got.reduce((s, n) => s + n.bytes, 0);
  const lines = [
    doc.copied > 0
      ? `Copied ${doc.copied} image(s) to ${got.length} node(s), ${formatBytes(bytes)} in all; ${doc.present} already present.`
      : `Nothing copied: ${doc.present} image(s) already present.`,
  ];
  for (const n of got) lines.push(`  ${n.node} (${n.host}): ${formatRate(n)}`);
  for (const n of doc.nodes.filter((x) => x.status === 'failed')) {
    lines.push(`  ${n.node} (${n.host}) FAILED: ${firstLine(n.error ?? '')}`);
  }
  return lines.join('\n');
}

/** Exit non-zero naming the failed nodes and the command that retries only them. */
function failIfAny(
  failed: readonly { node: string; error: Error }[],
  opts: ImagesPushOpts,
  explicit: string[],
): void {
  if (failed.length === 0) return;
  const retry = [
    'cluster-cli images push',
    ...(opts.config !== DEFAULT_CONFIG_FILE ? ['-c', quoteArg(opts.config)] : []),
    ...failed.flatMap((f) => ['--node', quoteArg(f.node)]),
    ...(opts.from ? ['--from', opts.from] : []),
    ...(opts.identity ? ['--identity', quoteArg(opts.identity)] : []),
    ...(opts.knownHosts ? ['--known-hosts', quoteArg(opts.knownHosts)] : []),
    ...(opts.jump ? ['--jump', quoteArg(opts.jump)] : []),
    ...(opts.yes ? ['--yes'] : []),
    ...explicit.map(quoteArg),
  ].join(' ');
  throw new UserError(
    `images push failed on ${failed.map((f) => `${f.node} (${firstLine(f.error.message)})`).join('; ')}.`,
    retry,
    1,
  );
}

/** `300.0 kB in 0.1s (3.0 MB/s)` */
function formatRate({ bytes, ms }: { bytes: number; ms: number }): string {
  return `${formatBytes(bytes)} in ${(ms / 1000).toFixed(1)}s (${formatBytes((bytes / Math.max(ms, 1)) * 1000)}/s)`;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

const firstLine = (s: string) => s.split('\n')[0] ?? '';
const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}
