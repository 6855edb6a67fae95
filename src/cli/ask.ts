import { UserError } from '../core/errors.js';
import type { Ctx } from './context.js';

/**
 * An answer comes from its flag; else from a prompt on a TTY; else it is an
 * error that names the flag to pass. Validation is the same on every path.
 */
export async function askInput(
  ctx: Pick<Ctx, 'interactive' | 'prompts'>,
  q: {
    flag: string;
    value: string | undefined;
    message: string;
    default?: string;
    validate: (v: string) => true | string;
  },
): Promise<string> {
  if (q.value !== undefined) return checked(q.flag, q.value, q.validate);
  if (!ctx.interactive) {
    if (q.default !== undefined) return checked(q.flag, q.default, q.validate);
    throw new UserError(
      `Missing ${q.flag}: ${q.message.replace(/\?$/, '')} (no terminal to ask on).`,
      `pass ${q.flag} <value>`,
    );
  }
  return ctx.prompts.input({
    message: q.message,
    ...(q.default ? { default: q.default } : {}),
    validate: q.validate,
  });
}

export async function askSelect<T extends string>(
  ctx: Pick<Ctx, 'interactive' | 'prompts'>,
  q: {
    flag: string;
    value: T | undefined;
    message: string;
    choices: readonly { value: T; name?: string }[];
    default: T;
  },
): Promise<T> {
  if (q.value !== undefined) return q.value;
  if (!ctx.interactive) return q.default;
  return ctx.prompts.select({ message: q.message, choices: q.choices, default: q.default });
}

/** Confirmation for a change: --yes, or a prompt on a TTY, or an error saying to pass --yes. */
export async function confirmOrFail(
  ctx: Pick<Ctx, 'interactive' | 'prompts'>,
  q: { yes: boolean; message: string; what: string },
): Promise<void> {
  if (q.yes) return;
  if (!ctx.interactive) {
    throw new UserError(
      `${q.what}; refusing without confirmation (no terminal to ask on).`,
      'pass --yes to apply, or --dry-run to preview',
    );
  }
  if (!(await ctx.prompts.confirm({ message: q.message, default: true }))) {
    throw new UserError('Cancelled: nothing was changed.', undefined, 1);
  }
}

export function checked(
  flag: string,
  value: string,
  validate: (v: string) => true | string,
): string {
  const r = validate(value);
  if (r !== true) throw new UserError(`${flag} ${JSON.stringify(value)}: ${r}`);
  return value;
}

/** A whole-number flag: absent stays absent; else from min to max, or one clear error. */
export function parseIntFlag(
  flag: string,
  v: string | undefined,
  min: number,
  max: number,
  unit?: string,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UserError(
      `${flag} ${JSON.stringify(v)}: must be a whole number${unit ? ` of ${unit}` : ''} from ${min} to ${max}`,
    );
  return n;
}

/** `--timeout <seconds>`: absent stays absent; else a whole number from 10 to 3600. */
export function parseTimeoutFlag(v: string | undefined): number | undefined {
  return parseIntFlag('--timeout', v, 10, 3600, 'seconds');
}

/** Everything a stream gives until its end, as text (--password-stdin and the like). */
export function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      text += d;
    });
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}
