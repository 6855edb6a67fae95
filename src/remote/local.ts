import { execa } from 'execa';
import { type Cmd, redactArgv, revealArgv, secretsOf } from '../core/cmd.js';
import { CommandError, tail } from '../core/errors.js';
import { isSecret, scrub } from '../core/secret.js';
import type { Executor, RunOptions, RunResult } from './executor.js';

/** Runs commands on this machine with execa: no shell, argv as given. */
export class LocalExecutor implements Executor {
  readonly label = 'local';
  constructor(private readonly useSudo = process.getuid?.() !== 0) {}

  async run(c: Cmd, opts: RunOptions = {}): Promise<RunResult> {
    let argv = revealArgv(c);
    if (this.useSudo) argv = ['sudo', '-n', '--', ...argv];
    const [file, ...args] = argv as [string, ...string[]];
    const input =
      c.stdin === undefined ? undefined : isSecret(c.stdin) ? c.stdin.reveal() : c.stdin;
    const r = await execa(file, args, {
      input,
      reject: false,
      stripFinalNewline: false,
      timeout: opts.timeoutMs,
      env: { LC_ALL: 'C' },
    });
    const secrets = secretsOf(c);
    const result: RunResult = {
      stdout: r.stdout ?? '',
      stderr: scrub(r.stderr ?? '', secrets),
      exitCode: r.exitCode ?? (r.failed ? 127 : 0),
    };
    if (r.exitCode === undefined && r.failed && !opts.allowFailure) {
      throw new CommandError(this.label, redactArgv(c), null, scrub(r.shortMessage ?? '', secrets));
    }
    if (result.exitCode !== 0 && !opts.allowFailure) {
      throw new CommandError(this.label, redactArgv(c), result.exitCode, tail(result.stderr));
    }
    return result;
  }

  async close(): Promise<void> {}
}
