import type { Executor } from '../core/executor.js';

import type { Output } from '../ui/output.js';

export type { Output };

/**
 * Everything a command touches outside itself, injected so tests run the real
 * program in-process with captured output, scripted answers and a chosen
 * executor factory.
 */
export interface Ctx {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** False when stdin/stdout is not a TTY or CI is set: prompts become errors naming the flag. */
  readonly interactive: boolean;
  /** Live progress rendering (listr2 default renderer) only on a TTY. */
  readonly tty: boolean;
  readonly prompts: Prompts;
  /** Where --password-stdin reads from (default: the process's stdin). */
  readonly stdin?: NodeJS.ReadableStream;
  /** Overrides how executors are made (tests); default: local or SSH per host. */
  readonly connect?: ConnectFn;
}

export type ConnectFn = (target: ConnectTarget) => Promise<Executor>;

export interface ConnectTarget {
  readonly address?: string;
  /** Explicit user and port; absent → ~/.ssh/config, then root and 22. */
  readonly user?: string;
  readonly port?: number;
  readonly identityFile?: string;
  readonly knownHostsFile?: string;
  /** --jump: `[user@]host[:port]`, an ~/.ssh/config alias or `none`; beats the config's ProxyJump. */
  readonly jump?: string;
  readonly acceptNewHostKey: boolean;
  readonly confirmHostKey?: (info: {
    host: string;
    port: number;
    type: string;
    fingerprint: string;
    /** Set when the key is a bastion's. */
    role?: 'bastion';
  }) => Promise<boolean>;
}

export interface Prompts {
  input(q: {
    message: string;
    default?: string;
    validate?: (v: string) => true | string;
  }): Promise<string>;
  select<T extends string>(q: {
    message: string;
    choices: readonly { value: T; name?: string }[];
    default?: T;
  }): Promise<T>;
  confirm(q: { message: string; default?: boolean }): Promise<boolean>;
  /** Masked input (passwords): the answer never echoes. */
  password(q: { message: string }): Promise<string>;
}

/** Real prompts, loaded only when first asked (keeps `--help` fast). */
export const inquirerPrompts: Prompts = {
  async input(q) {
    const { input } = await import('@inquirer/prompts');
    return input({
      message: q.message,
      ...(q.default ? { default: q.default } : {}),
      ...(q.validate ? { validate: q.validate } : {}),
    });
  },
  async select(q) {
    const { select } = await import('@inquirer/prompts');
    return select({
      message: q.message,
      choices: q.choices.map((c) => ({ value: c.value, name: c.name ?? c.value })),
      ...(q.default ? { default: q.default } : {}),
    });
  },
  async confirm(q) {
    const { confirm } = await import('@inquirer/prompts');
    return confirm({ message: q.message, default: q.default ?? false });
  },
  async password(q) {
    const { password } = await import('@inquirer/prompts');
    return password({ message: q.message, mask: '*' });
  },
};

export function defaultCtx(): Ctx {
  const ci = Boolean(process.env.CI) && process.env.CI !== 'false';
  const tty = Boolean(process.stdout.isTTY);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    interactive: tty && Boolean(process.stdin.isTTY) && !ci,
    tty: tty && !ci,
    prompts: inquirerPrompts,
  };
}
