import type { Readable, Writable } from 'node:stream';
import type { Cmd } from './cmd.js';

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
  /** Called with each complete stderr line as it arrives (secrets scrubbed). */
  readonly onStderrLine?: (line: string) => void;
}

/** A command left running with its stdin and stdout as streams (dial-stdio, save | load). */
export interface Stream {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /**
   * Settles when the process has exited: resolves with its stderr on exit 0,
   * rejects with a CommandError otherwise (or when the connection dropped).
   */
  readonly done: Promise<RunResult>;
  /** Stop the process (closes the channel / kills it). */
  kill(): void;
}

/**
 * Runs commands on one host, local or over SSH, the same way. Commands needing
 * root are wrapped in `sudo -n` by the executor when its user is not root.
 */
export interface Executor {
  /** Label used in output and errors, e.g. `root@10.0.0.5` or `local`. */
  readonly label: string;
  /** The SSH address (host part of the target) when remote; undefined for this machine. */
  readonly address?: string;
  run(cmd: Cmd, opts?: RunOptions): Promise<RunResult>;
  /** Start a long-running command and hand back its streams (c.stdin is ignored). */
  stream(cmd: Cmd): Promise<Stream>;
  close(): Promise<void>;
}
