import type { Cmd } from '../core/cmd.js';

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface RunOptions {
  /** Return a non-zero result instead of throwing CommandError. */
  readonly allowFailure?: boolean;
  /** Milliseconds before the command is abandoned. */
  readonly timeoutMs?: number;
}

/**
 * Runs commands on one host, local or over SSH, the same way. Commands needing
 * root are wrapped in `sudo -n` by the executor when its user is not root.
 */
export interface Executor {
  /** Label used in output and errors, e.g. `root@10.0.0.5` or `local`. */
  readonly label: string;
  run(cmd: Cmd, opts?: RunOptions): Promise<RunResult>;
  close(): Promise<void>;
}
