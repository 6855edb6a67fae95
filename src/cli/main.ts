import { CommandError, UserError } from '../core/errors.js';
import type { Ctx } from './context.js';
import { buildProgram, CommanderError } from './program.js';

/** Runs the CLI and returns the exit code. Never exits the process itself. */
export async function main(argv: readonly string[], ctx: Ctx): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, ctx);
  }
}

export function reportError(err: unknown, ctx: Pick<Ctx, 'stderr'>): number {
  if (err instanceof CommanderError) {
    // commander already printed its one-line message (or the help / version)
    return err.exitCode === 0 ||
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version'
      ? 0
      : 2;
  }
  if (err instanceof UserError) {
    ctx.stderr.write(`error: ${err.message}\n`);
    if (err.next) ctx.stderr.write(`next: ${err.next}\n`);
    return err.exitCode;
  }
  if (err instanceof CommandError) {
    ctx.stderr.write(`error: ${err.message}\n`);
    return 1;
  }
  // A bug: keep the stack trace so it can be reported.
  ctx.stderr.write(
    `internal error (please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  return 70;
}
