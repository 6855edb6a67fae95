import { quoteArg } from './quote.js';
import type { HostSession } from './session.js';

/**
 * Images streamed host to host, as data: `docker save refs…` on `from` piped
 * into `docker load` on the step's host, with no registry and no temp file.
 * Planners put it in a Step like a Cmd and printers show it as that pipe; how
 * the bytes move (two processes and a stream between them) is not core's
 * business, so apply() runs it through the copy function it is given.
 */
export interface CopyImages {
  readonly kind: 'copy';
  /** The source host (a session label); the step's own host is the target. */
  readonly from: string;
  readonly refs: readonly string[];
}

export function copyImages(from: string, refs: readonly string[]): CopyImages {
  if (refs.length === 0) throw new TypeError('copyImages needs at least one image');
  return { kind: 'copy', from, refs };
}

export function isCopyImages(v: unknown): v is CopyImages {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'copy';
}

/** `docker save app:1 redis:7 | docker load  (from root@10.0.0.1)`: how a plan prints it. */
export function formatCopyImages(c: CopyImages): string {
  return `docker save ${c.refs.map(quoteArg).join(' ')} | docker load  (from ${c.from})`;
}

/** Runs one CopyImages from the source's session to the target's; throws when the copy failed. */
export type CopyImagesFn = (
  action: CopyImages,
  from: HostSession,
  to: HostSession,
) => Promise<void>;
