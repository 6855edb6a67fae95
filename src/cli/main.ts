import { CommandError, ExitCode, UserError } from '../core/errors.js';
import type { Ctx } from './context.js';
import { buildProgram, CommanderError, unknownCommandError } from './program.js';

interface Failure {
  readonly exitCode: number;
  readonly error?: string;
  readonly next?: string;
}

/**
 * Runs the CLI and returns the exit code. Never exits the process itself.
 * Errors go to stderr as `error: …` and `next: …` lines, or with --json as one
 * JSON object `{"error": …, "next": …}` a script can parse.
 */
export async function main(argv: readonly string[], ctx: Ctx): Promise<number> {
  const json = argv.includes('--json');
  let commanderText = '';
  // commander prints its own usage errors; with --json we collect them instead
  const programCtx: Ctx = json
    ? { ...ctx, stderr: { write: (s: string) => (commanderText += s) } }
    : ctx;
  const program = buildProgram(programCtx);
  try {
    const unknown = unknownCommandError(program, argv);
    if (unknown) throw unknown;
    await program.parseAsync(argv as string[], { from: 'user' });
    return 0;
  } catch (err) {
    const f = describeError(err);
    if (json) {
      const error = f.error ?? commanderText.split('\n')[0]?.replace(/^error: /, '');
      if (error)
        ctx.stderr.write(
          `${JSON.stringify({ error, ...(f.next ? { next: f.next } : {}), exitCode: f.exitCode })}\n`,
        );
    } else if (f.error !== undefined) {
      ctx.stderr.write(`error: ${f.error}\n`);
      if (f.next) ctx.stderr.write(`next: ${f.next}\n`);
    }
    return f.exitCode;
  }
}

export function describeError(err: unknown): Failure {
  if (err instanceof CommanderError) {
    // commander already printed its one-line message (or the help / version)
    const ok =
      err.exitCode === 0 ||
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version';
    return { exitCode: ok ? 0 : 2 };
  }
  if (err instanceof ExitCode) return { exitCode: err.exitCode };
  if (err instanceof UserError) {
    return { exitCode: err.exitCode, error: err.message, ...(err.next ? { next: err.next } : {}) };
  }
  if (err instanceof CommandError) return { exitCode: 1, error: err.message };
  // A bug: keep the stack trace so it can be reported.
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return { exitCode: 70, error: `internal error (please report it): ${detail}` };
}
