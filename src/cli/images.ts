import { isAbsolute, resolve } from 'node:path';
import {
  type ImageIds,
  type ImagePushPlan,
  mapLimit,
  type PushEvent,
  type PushOutcome,
  planImagePush,
  probeImageIds,
  pushToTargets,
} from '../cluster/images.js';
import { DEFAULT_CONFIG_FILE, loadConfig } from '../config/load.js';
import { type Config, type Host, proxyImage } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { Executor } from '../core/executor.js';
import { quoteArg } from '../core/quote.js';
import { dockerVersion } from '../docker/commands.js';
import { formatTable } from '../ui/table.js';
import { confirmOrFail } from './ask.js';
import { connectHost } from './connect.js';
import type { ConnectTarget, Ctx } from './context.js';

export interface ImagesPushOpts {
  /** Positional image references; none → the images cluster.yaml's stack uses. */
  images?: string[];
  /** Only these nodes (names from cluster.yaml); default every host. */
  node?: string[];
  /** local: this machine's Docker; manager: the first manager. Default local when its daemon answers. */
  from?: 'local' | 'manager';
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  config: string;
}

/** Copies to run at once; each holds a `docker save` on the source and a `docker load` on its target. */
const CONCURRENCY = 4;
/** Seconds between progress lines of one copy. */
const PROGRESS_EVERY_MS = 2000;

const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._/:@-]*$/;

type ImageStatus = 'copy' | 'copied' | 'present' | 'failed';

interface NodeRun {
  readonly host: Host;
  label: string;
  exec?: Executor;
  ids?: ImageIds;
  /** Why this node cannot be served (connect or probe failed), or why its copy failed. */
  error?: Error;
  outcome?: PushOutcome;
}

interface Source {
  readonly exec: Executor;
  readonly from: 'local' | 'manager';
  /** The node name when the source is the first manager. */
  readonly node?: string;
  /** Why the default source was not this machine. */
  readonly note?: string;
}

/**
 * `cluster-cli images push`: connect → probe image IDs → plan → print (or
 * --json) → stop on --dry-run → confirm → stream `docker save | docker load`
 * to each node that lacks an image → summary. A node that fails does not stop
 * the others; the command then exits non-zero naming it and the retry command.
 */
export async function runImagesPush(opts: ImagesPushOpts, ctx: Ctx): Promise<void> {
  const t0 = performance.now();
  const out = (s: string) => {
    if (!opts.json) ctx.stdout.write(s);
  };

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
  const opened: Executor[] = [];
  try {
    // 2. Connect (host keys checked) and probe: read-only, also in --dry-run.
    const source = await openSource(ctx, opts, config, manager, opened);
    out(`Source: ${describeSource(source)}\n`);
    await mapLimit(runs, ctx.interactive ? 1 : 8, async (r) => {
      try {
        r.exec =
          source.from === 'manager' && r.host.name === manager.name
            ? source.exec
            : await connectHost(ctx, connectTargetOf(r.host, config, opts));
        if (r.exec !== source.exec) opened.push(r.exec);
        r.label = r.exec.label;
      } catch (err) {
        r.error = asError(err);
      }
    });
    const sourceIds = await probeImageIds(source.exec, images);
    await Promise.all(
      runs.map(async (r) => {
        if (!r.exec) return;
        try {
          r.ids = await probeImageIds(r.exec, images);
        } catch (err) {
          r.error = asError(err);
        }
      }),
    );

    // 3. Plan (throws when an image is missing at the source).
    const reachable = runs.filter((r) => r.ids !== undefined);
    const plan = planImagePush({
      source: source.exec.label,
      sourceIds,
      targets: reachable.map((r) => ({ host: r.host.name, ids: r.ids as ImageIds })),
    });
    const copies = plan.items.filter((i) => i.action === 'copy').length;

    if (opts.dryRun) {
      if (opts.json) {
        ctx.stdout.write(`${JSON.stringify(report(source, plan, runs, t0, true), null, 2)}\n`);
      } else {
        out(`${formatPushPlan(plan, runs)}\n\nDry run: nothing was copied.\n`);
      }
      failIfAny(runs, opts, explicit);
      return;
    }

    out(`${formatPushPlan(plan, runs)}\n\n`);
    if (copies > 0) {
      await confirmOrFail(ctx, {
        yes: Boolean(opts.yes),
        what: `images push would copy ${copies} image(s) to ${plan.copies.length} node(s)`,
        message: `Copy ${copies} image(s) to ${plan.copies.map((c) => c.host).join(', ')}?`,
      });

      // 4. Copy: one save → load stream per node, CONCURRENCY at a time.
      out(`Copying from ${source.exec.label} (at most ${CONCURRENCY} nodes at a time):\n`);
      const byName = new Map(runs.map((r) => [r.host.name, r]));
      const ids = new Map(plan.images.map((i) => [i.image, i.id]));
      const lastShown = new Map<string, number>();
      const onEvent = (e: PushEvent) => {
        if (e.type === 'start') {
          lastShown.set(e.node, performance.now());
          out(`  ${e.node}: copying ${e.images.join(', ')} ...\n`);
        } else if (e.type === 'bytes') {
          const now = performance.now();
          if (now - (lastShown.get(e.node) ?? 0) >= PROGRESS_EVERY_MS) {
            lastShown.set(e.node, now);
            out(`  ${e.node}: ${formatBytes(e.bytes)} sent\n`);
          }
        } else if (e.outcome.ok) {
          const { bytes, ms } = e.outcome;
          out(
            `  ${e.outcome.node}: done, ${formatBytes(bytes)} in ${(ms / 1000).toFixed(1)}s (${formatBytes((bytes / Math.max(ms, 1)) * 1000)}/s)\n`,
          );
        } else {
          out(`  ${e.outcome.node}: FAILED: ${e.outcome.error.message}\n`);
        }
      };
      const outcomes = await pushToTargets(
        source.exec,
        plan.copies.map((c) => {
          const r = byName.get(c.host) as NodeRun;
          return {
            node: c.host,
            target: r.exec as Executor,
            images: c.images.map((image) => ({ image, id: ids.get(image) as string })),
          };
        }),
        { concurrency: CONCURRENCY, onEvent },
      );
      for (const o of outcomes) {
        const r = byName.get(o.node) as NodeRun;
        r.outcome = o;
        if (!o.ok) r.error = o.error;
      }
    }

    // 5. Summary.
    const doc = report(source, plan, runs, t0, false);
    if (opts.json) ctx.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    else out(`\n${formatSummary(doc)}\n`);
    failIfAny(runs, opts, explicit);
  } finally {
    await Promise.allSettled(opened.map((e) => e.close()));
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

/** Same mapping as init: the host's address/user/port, SSH files from the flags, else cluster.yaml's ssh:. */
function connectTargetOf(host: Host, config: Config, opts: ImagesPushOpts): ConnectTarget {
  const identityFile = opts.identity ?? config.ssh.identityFile;
  const knownHostsFile = opts.knownHosts ?? config.ssh.knownHostsFile;
  return {
    ...(host.address ? { address: host.address } : {}),
    ...(host.user ? { user: host.user } : {}),
    ...(host.port ? { port: host.port } : {}),
    ...(identityFile ? { identityFile } : {}),
    ...(knownHostsFile ? { knownHostsFile } : {}),
    acceptNewHostKey: Boolean(opts.acceptNewHostKey),
  };
}

async function openSource(
  ctx: Ctx,
  opts: ImagesPushOpts,
  config: Config,
  manager: Host,
  opened: Executor[],
): Promise<Source> {
  let note: string | undefined;
  if (opts.from !== 'manager') {
    const local = await connectHost(ctx, { acceptNewHostKey: false });
    opened.push(local);
    let why: string;
    try {
      const r = await local.run(dockerVersion(), { allowFailure: true, timeoutMs: 15_000 });
      if (r.exitCode === 0) return { exec: local, from: 'local' };
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
  const exec = await connectHost(ctx, connectTargetOf(manager, config, opts));
  opened.push(exec);
  return { exec, from: 'manager', node: manager.name, ...(note ? { note } : {}) };
}

function describeSource(s: Source): string {
  if (s.from === 'local') return 'this machine (local Docker)';
  return `${s.node} (${s.exec.label}), the first manager${s.note ? `; ${s.note}` : ''}`;
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
  timingsMs: { total: number };
}

function report(
  source: Source,
  plan: ImagePushPlan,
  runs: readonly NodeRun[],
  t0: number,
  dryRun: boolean,
): PushReport {
  const nodes = runs.map((r): NodeReport => {
    const items = new Map(
      plan.items.filter((i) => i.host === r.host.name).map((i) => [i.image, i]),
    );
    const images = plan.images.map(({ image }) => {
      const item = items.get(image);
      let status: ImageStatus;
      if (item?.action === 'present') status = 'present';
      else if (r.error) status = 'failed';
      else if (dryRun) status = 'copy';
      else status = r.outcome?.ok ? 'copied' : 'failed';
      return {
        image,
        status,
        ...(item?.replaces && status !== 'present' ? { replaces: item.replaces } : {}),
      };
    });
    return {
      node: r.host.name,
      host: r.label,
      status: r.error ? 'failed' : 'ok',
      bytes: r.outcome?.bytes ?? 0,
      ms: Math.round(r.outcome?.ms ?? 0),
      ...(r.error ? { error: r.error.message } : {}),
      images,
    };
  });
  const all = nodes.flatMap((n) => n.images);
  return {
    dryRun,
    source: {
      from: source.from,
      host: source.exec.label,
      ...(source.node ? { node: source.node } : {}),
    },
    images: plan.images.map((i) => ({ image: i.image, id: i.id })),
    nodes,
    copied: all.filter((i) => i.status === 'copied').length,
    present: all.filter((i) => i.status === 'present').length,
    failed: nodes.filter((n) => n.status === 'failed').map((n) => n.node),
    timingsMs: { total: Math.round(performance.now() - t0) },
  };
}

/** One row per (node, image): `+` will be copied, `=` already there with the same ID, `!` node failed. */
export function formatPushPlan(plan: ImagePushPlan, runs: readonly NodeRun[]): string {
  const rows: string[][] = [];
  for (const r of runs) {
    if (r.error) {
      rows.push([r.host.name, '-', `! unreachable: ${firstLine(r.error.message)}`]);
      continue;
    }
    for (const i of plan.items.filter((x) => x.host === r.host.name)) {
      rows.push([
        i.host,
        i.image,
        i.action === 'present'
          ? '= present (same ID)'
          : `+ copy${i.replaces ? ` (replaces ${shortId(i.replaces)})` : ''}`,
      ]);
    }
  }
  const images = plan.images.map((i) => `  ${i.image}  ${shortId(i.id)}`).join('\n');
  const copies = plan.items.filter((i) => i.action === 'copy').length;
  const present = plan.items.length - copies;
  return [
    `Images on the source:\n${images}`,
    '',
    formatTable(['node', 'image', 'action'], rows),
    '',
    `${copies} to copy to ${plan.copies.length} node(s), ${present} already present.`,
  ].join('\n');
}

function formatSummary(doc: PushReport): string {
  const ok = doc.nodes.filter((n) => n.status === 'ok');
  const bytes = ok.reduce((s, n) => s + n.bytes, 0);
  const lines = [
    doc.copied > 0
      ? `Copied ${doc.copied} image(s) to ${ok.filter((n) => n.bytes > 0).length} node(s), ${formatBytes(bytes)} in all; ${doc.present} already present.`
      : `Nothing copied: ${doc.present} image(s) already present.`,
  ];
  for (const n of doc.nodes.filter((x) => x.status === 'failed')) {
    lines.push(`  ${n.node} (${n.host}) FAILED: ${firstLine(n.error ?? '')}`);
  }
  return lines.join('\n');
}

/** Exit non-zero naming the failed nodes and the command that retries only them. */
function failIfAny(runs: readonly NodeRun[], opts: ImagesPushOpts, explicit: string[]): void {
  const failed = runs.filter((r) => r.error);
  if (failed.length === 0) return;
  const retry = [
    'cluster-cli images push',
    ...(opts.config !== DEFAULT_CONFIG_FILE ? ['-c', quoteArg(opts.config)] : []),
    ...failed.flatMap((r) => ['--node', quoteArg(r.host.name)]),
    ...(opts.from ? ['--from', opts.from] : []),
    ...(opts.identity ? ['--identity', quoteArg(opts.identity)] : []),
    ...(opts.knownHosts ? ['--known-hosts', quoteArg(opts.knownHosts)] : []),
    ...(opts.yes ? ['--yes'] : []),
    ...explicit.map(quoteArg),
  ].join(' ');
  throw new UserError(
    `images push failed on ${failed.map((r) => `${r.host.name} (${firstLine(r.error?.message ?? '')})`).join('; ')}.`,
    retry,
    1,
  );
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

const shortId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);
const firstLine = (s: string) => s.split('\n')[0] ?? '';
const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}
