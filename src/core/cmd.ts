import { quoteArg } from '../remote/quote.js';
import { isSecret, REDACTED, type Secret } from './secret.js';

/** One word of a command line. A Secret prints as [REDACTED] everywhere but in the executor. */
export type Arg = string | Secret;

/** A command as argv, never as a shell string. */
export interface Cmd {
  readonly argv: readonly Arg[];
  /** Fed to the process's stdin: how secrets reach `docker secret create -` without touching argv. */
  readonly stdin?: string | Secret;
  /** Read-only commands run even in --dry-run; write commands are only printed there. */
  readonly readOnly?: boolean;
}

export function cmd(argv: readonly Arg[], extra: Omit<Cmd, 'argv'> = {}): Cmd {
  for (const a of argv) {
    if (typeof a !== 'string' && !isSecret(a))
      throw new TypeError(`argv word is not a string: ${String(a)}`);
  }
  return { argv, ...extra };
}

/** Read-only probe command: runs in --dry-run too. */
export function probe(argv: readonly Arg[], extra: Omit<Cmd, 'argv' | 'readOnly'> = {}): Cmd {
  return cmd(argv, { ...extra, readOnly: true });
}

/**
 * The one explicit door to shell syntax (pipes, redirects, `||`). The script is a
 * fixed string written in this codebase; values go in as positional parameters
 * ("$1", "$2" …), never pasted into the script.
 */
export function shellScript(
  script: string,
  params: readonly Arg[] = [],
  extra: Omit<Cmd, 'argv'> = {},
): Cmd {
  return cmd(['sh', '-c', script, 'sh', ...params], extra);
}

export function redactArgv(c: Cmd): string[] {
  return c.argv.map((a) => (isSecret(a) ? REDACTED : a));
}

/** Human-readable, copy-pasteable (quoted) and redacted form of a command. */
export function formatCmd(c: Cmd): string {
  const line = c.argv.map((a) => (isSecret(a) ? REDACTED : quoteArg(a))).join(' ');
  if (c.stdin === undefined) return line;
  return isSecret(c.stdin) ? `${line} < ${REDACTED}` : `${line} < (stdin, ${c.stdin.length} bytes)`;
}

/** The real argv, for executors only. */
export function revealArgv(c: Cmd): string[] {
  return c.argv.map((a) => (isSecret(a) ? a.reveal() : a));
}

export function secretsOf(c: Cmd): Secret[] {
  const out: Secret[] = c.argv.filter(isSecret);
  if (isSecret(c.stdin)) out.push(c.stdin);
  return out;
}
