import type { ConnectFn, Ctx } from '../../src/cli/context.js';

/**
 * A Ctx for running the CLI in-process: no terminal, no prompts (each one is
 * an error, as without a TTY), output collected. `connect` decides what a
 * host is (a fake executor, or a guard that fails the test).
 */
export function testCtx(o: { cwd: string; connect?: ConnectFn; env?: Ctx['env'] }): {
  ctx: Ctx;
  stdout: () => string;
  stderr: () => string;
  /** Forget the output so far (one helper serving several runs). */
  reset: () => void;
} {
  let out = '';
  let err = '';
  const none = () => Promise.reject(new Error('no prompts'));
  const ctx: Ctx = {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    env: o.env ?? {},
    cwd: o.cwd,
    interactive: false,
    tty: false,
    prompts: { password: none, input: none, select: none, confirm: none },
    ...(o.connect ? { connect: o.connect } : {}),
  };
  return {
    ctx,
    stdout: () => out,
    stderr: () => err,
    reset: () => {
      out = '';
      err = '';
    },
  };
}
