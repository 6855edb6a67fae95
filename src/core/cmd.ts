import { quoteArg } from './quote.js';
import { isSecret, REDACTED, type Secret } from './secret.js';

/**
 * A command as argv, never as a shell string. Argv holds plain strings only:
 * a remote `ps`, sudo's log and shell history all see it, so a secret can
 * never be a word of it. Secrets reach a process on stdin (or, for the Docker
 * Engine API, in a request body: see ApiRequest).
 */
export interface Cmd {
  readonly argv: readonly string[];
  /** Fed to the process's stdin: how secrets reach `docker secret create -` without touching argv. */
  readonly stdin?: string | Secret;
  /** Read-only commands run even in --dry-run; write commands are only printed there. */
  readonly readOnly?: boolean;
  /** Abandon the command after this long (a package install that hangs on a dead mirror). */
  readonly timeoutMs?: number;
  /** Its stderr lines report progress (e.g. waiting for a lock): shown while it runs. */
  readonly progress?: boolean;
}

export function cmd(argv: readonly string[], extra: Omit<Cmd, 'argv'> = {}): Cmd {
  for (const a of argv) {
    // Checked at run time too: a Secret (or anything else) smuggled in through
    // `any` must fail here, before it can reach a command line.
    if (typeof a !== 'string') {
      throw new TypeError(
        isSecret(a)
          ? 'a secret cannot be a command-line word: pass it on stdin or in an API request body'
          : `argv word is not a string: ${String(a)}`,
      );
    }
  }
  return { argv, ...extra };
}

/** Read-only probe command: runs in --dry-run too. */
export function probe(argv: readonly string[], extra: Omit<Cmd, 'argv' | 'readOnly'> = {}): Cmd {
  return cmd(argv, { ...extra, readOnly: true });
}

/**
 * The one explicit door to shell syntax (pipes, redirects, `||`). The script is a
 * fixed string written in this codebase; values go in as positional parameters
 * ("$1", "$2" …), never pasted into the script.
 */
export function shellScript(
  script: string,
  params: readonly string[] = [],
  extra: Omit<Cmd, 'argv'> = {},
): Cmd {
  return cmd(['sh', '-c', script, 'sh', ...params], extra);
}

/**
 * Write a file through stdin, replacing it in one rename: the content goes to
 * a temporary file of its own beside it (two writers of one path never share
 * it), gets its mode, then takes the path. Nothing in argv but path and mode.
 */
export function fileWrite(path: string, content: string, mode: string): Cmd {
  return shellScript(
    'mkdir -p "$(dirname "$1")" && t=$(mktemp "$1.XXXXXX") && { cat > "$t" && chmod "$2" "$t" && mv -f "$t" "$1" || { rm -f "$t"; exit 1; }; }',
    [path, mode],
    { stdin: content },
  );
}

/** Human-readable, copy-pasteable (quoted) form of a command; stdin is never shown. */
export function formatCmd(c: Cmd): string {
  const line = c.argv.map(quoteArg).join(' ');
  if (c.stdin === undefined) return line;
  return isSecret(c.stdin) ? `${line} < ${REDACTED}` : `${line} < (stdin, ${c.stdin.length} bytes)`;
}

/** The secrets a command carries (only ever on stdin), for scrubbing its output. */
export function secretsOf(c: Cmd): Secret[] {
  return isSecret(c.stdin) ? [c.stdin] : [];
}

/** The value to write to the process's stdin, for executors only. */
export function stdinOf(c: Cmd): string | undefined {
  return c.stdin === undefined ? undefined : isSecret(c.stdin) ? c.stdin.reveal() : c.stdin;
}
