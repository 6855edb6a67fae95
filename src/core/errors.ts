/**
 * An error the user can fix. Printed as one line (no stack trace), followed by
 * the next command to run when there is one.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly next?: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

/**
 * Ends a command with this exit code after it printed its own report (status:
 * 1 degraded, 2 down): no `error:` line.
 */
export class ExitCode extends Error {
  override readonly name = 'ExitCode';
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** A remote or local command that failed. argv is already redacted. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly host: string,
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderrTail: string,
  ) {
    super(
      `${host}: command failed (exit ${exitCode ?? 'signal'}): ${argv.join(' ')}${stderrTail ? `\n${stderrTail}` : ''}`,
    );
  }
}

export function tail(text: string, lines = 12): string {
  const all = text.trimEnd().split('\n');
  return all.slice(-lines).join('\n');
}
