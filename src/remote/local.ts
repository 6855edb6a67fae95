import { execa } from 'execa';
import { type Cmd, secretsOf, stdinOf } from '../core/cmd.js';
import { CommandError, tail } from '../core/errors.js';
import type { Executor, RunOptions, RunResult, Stream } from '../core/executor.js';
import { scrub } from '../core/secret.js';
import { lineSplitter } from './ssh.js';
import { refuseSudoPassword } from './sudo.js';

/** Runs commands on this machine with execa: no shell, argv as given. */
export class LocalExecutor implements Executor {
  readonly label = 'local';
  constructor(private readonly useSudo = process.getuid?.() !== 0) {}

  #argv(c: Cmd): [string, ...string[]] {
    const argv = this.useSudo ? ['sudo', '-n', '--', ...c.argv] : [...c.argv];
    return argv as [string, ...string[]];
  }

  async run(c: Cmd, opts: RunOptions = {}): Promise<RunResult> {
    const [file, ...args] = this.#argv(c);
    const secrets = secretsOf(c);
    const child = execa(file, args, {
      input: stdinOf(c),
      reject: false,
      stripFinalNewline: false,
      timeout: opts.timeoutMs,
      env: { LC_ALL: 'C' },
    });
    if (opts.onStderrLine) {
      const report = opts.onStderrLine;
      child.stderr?.on(
        'data',
        lineSplitter((l) => report(scrub(l, secrets))),
      );
    }
    const r = await child;
    const result: RunResult = {
      stdout: r.stdout ?? '',
      stderr: scrub(r.stderr ?? '', secrets),
      exitCode: r.exitCode ?? (r.failed ? 127 : 0),
    };
    if (result.exitCode !== 0) refuseSudoPassword(this.label, this.useSudo, result.stderr);
    if (r.exitCode === undefined && r.failed && !opts.allowFailure) {
      throw new CommandError(this.label, [...c.argv], null, scrub(r.shortMessage ?? '', secrets));
    }
    if (result.exitCode !== 0 && !opts.allowFailure) {
      throw new CommandError(this.label, [...c.argv], result.exitCode, tail(result.stderr));
    }
    return result;
  }

  async stream(c: Cmd): Promise<Stream> {
    const [file, ...args] = this.#argv(c);
    const child = execa(file, args, {
      reject: false,
      buffer: { stdout: false, stderr: true },
      env: { LC_ALL: 'C' },
    });
    const done = child.then((r) => {
      const stderr = String(r.stderr ?? '');
      if (r.exitCode !== 0 && !r.isTerminated) {
        throw new CommandError(this.label, [...c.argv], r.exitCode ?? null, tail(stderr));
      }
      return { stdout: '', stderr, exitCode: r.exitCode ?? 0 };
    });
    // A caller that only watches the streams must not see an unhandled rejection.
    done.catch(() => {});
    if (!child.stdin || !child.stdout) throw new Error('execa gave no stdio pipes');
    return { stdin: child.stdin, stdout: child.stdout, done, kill: () => child.kill() };
  }

  async close(): Promise<void> {}
}
