import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderCompletion } from '../../src/cli/completion.js';
import type { Ctx } from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import {
  buildProgram,
  commonOptions,
  completionShells,
  initOptions,
  sshOptions,
} from '../../src/cli/program.js';

/**
 * What a new user meets first: the README's opening commands, `--help` on a
 * mistyped command, shell completion. The CLI runs in-process with captured
 * output (no host is ever contacted); the shells and the scripts' root check run
 * for real.
 */
const root = new URL('../..', import.meta.url).pathname;

function harness() {
  let stdout = '';
  let stderr = '';
  const ctx: Ctx = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    cwd: mkdtempSync(join(tmpdir(), 'cluster-cli-first-')),
    interactive: false,
    tty: false,
    prompts: {
      password: async () => {
        throw new Error('no prompt expected');
      },
      input: async () => {
        throw new Error('no prompt expected');
      },
      select: async () => {
        throw new Error('no prompt expected');
      },
      confirm: async () => {
        throw new Error('no prompt expected');
      },
    },
    connect: async (t) => {
      throw new Error(`test must not connect anywhere (tried ${t.address ?? 'local'})`);
    },
  };
  return {
    ctx,
    run: (...argv: string[]) => main(argv, ctx),
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}

/** An absolute path of a program on PATH, or undefined. */
function which(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const program = buildProgram(harness().ctx);
const longFlags = (defs: readonly { flags: string }[]) =>
  defs.map((d) => /--[a-z-]+/.exec(d.flags)?.[0] as string);

describe('an unknown command', () => {
  it.each([
    [['frobnicate', '--help'], 'cluster-cli <command> --help, where <command> is one of init, '],
    [
      ['node', 'frobnicate', '--help'],
      'cluster-cli node <command> --help, where <command> is one of join, ls, ',
    ],
    [
      ['stack', 'frobnicate', '-h'],
      'cluster-cli stack <command> --help, where <command> is one of render',
    ],
  ])('%j is an error naming it, not a help page', async (argv, next) => {
    const h = harness();
    expect(await h.run(...argv)).toBe(2);
    expect(h.stdout).toBe('');
    const [error, hint, ...rest] = h.stderr.split('\n');
    expect(error).toBe("error: unknown command 'frobnicate'");
    expect(hint?.startsWith(`next: ${next}`)).toBe(true);
    expect(rest).toEqual(['']);
  });

  it('the hint lists every command of that group', async () => {
    const h = harness();
    await h.run('node', 'frobnicate', '--help');
    const node = program.commands.find((c) => c.name() === 'node');
    for (const sub of node?.commands ?? []) expect(h.stderr).toContain(sub.name());
  });

  it('with --json it is one JSON object', async () => {
    const h = harness();
    expect(await h.run('node', 'frobnicate', '--help', '--json')).toBe(2);
    const out = JSON.parse(h.stderr);
    expect(out).toMatchObject({ error: "unknown command 'frobnicate'", exitCode: 2 });
    expect(out.next).toContain('cluster-cli node <command> --help');
  });

  it('without --help too (commander reports it)', async () => {
    const h = harness();
    expect(await h.run('node', 'frobnicate')).toBe(2);
    expect(h.stderr.split('\n')[0]).toBe("error: unknown command 'frobnicate'");
  });

  it.each([
    [['--help'], 'Usage: cluster-cli [options] [command]'],
    [['node', '--help'], 'Usage: cluster-cli node [options] [command]'],
    [['help', 'node'], 'Usage: cluster-cli node [options] [command]'],
    [['node', 'rm', '--help'], 'Usage: cluster-cli node remove|rm [options] <node...>'],
    [['init', '--domain', 'x', '--help'], 'Usage: cluster-cli init [options]'],
    [['completion', '--help'], 'Usage: cluster-cli completion [options] <shell>'],
  ])('known commands still print their help: %j', async (argv, usage) => {
    const h = harness();
    expect(await h.run(...argv)).toBe(0);
    expect(h.stdout.split('\n')[0]).toBe(usage);
    expect(h.stderr).toBe('');
  });
});

describe('cluster-cli completion', () => {
  async function script(shell: string): Promise<string> {
    const h = harness();
    expect(await h.run('completion', shell)).toBe(0);
    expect(h.stderr).toBe('');
    return h.stdout;
  }

  it('an unknown shell is one error line', async () => {
    const h = harness();
    expect(await h.run('completion', 'tcsh')).toBe(2);
    expect(h.stdout).toBe('');
    expect(h.stderr).toBe(
      "error: unknown shell 'tcsh': cluster-cli completion knows bash, zsh, fish\n",
    );
  });

  it('every shell the command offers has a script', () => {
    for (const shell of completionShells) expect(renderCompletion(program, shell)).not.toBe('');
  });

  it('the bash script names every command, node subcommand and init option', async () => {
    const bash = await script('bash');
    const top = visible(program.commands).map((c) => c.name());
    const node = program.commands.find((c) => c.name() === 'node')?.commands ?? [];
    expect(top).toEqual(expect.arrayContaining(['init', 'stack', 'images', 'apply', 'node']));
    expect(node.map((c) => c.name())).toEqual(expect.arrayContaining(['join', 'ls', 'remove']));
    for (const name of top) expect(bash).toContain(`':${name}') cmd='${name}'`);
    for (const sub of node) expect(bash).toContain(`'node:${sub.name()}'`);
    const init = bash.split("\n  'init')\n")[1]?.split('\n')[0] ?? '';
    for (const flag of longFlags([...initOptions, ...sshOptions, ...commonOptions])) {
      expect(init.split(/[' ]/)).toContain(flag);
    }
  });

  it('is loaded only when asked, like every command module', () => {
    for (const file of ['src/cli/program.ts', 'src/cli/main.ts', 'src/cli/entry.ts']) {
      expect(readFileSync(join(root, file), 'utf8')).not.toMatch(/from '\.\/completion\.js'/);
    }
  });

  const bash = which('bash');
  it.skipIf(!bash)('bash: the script parses (bash -n) and completes', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cluster-cli-bash-')), 'cluster-cli.bash');
    writeFileSync(file, await script('bash'));
    execFileSync(bash as string, ['-n', file]);
    // COMP_WORDS as bash fills them: the last word is the one being completed
    const complete = (...words: string[]) =>
      execFileSync(
        bash as string,
        [
          '-c',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: bash code
          'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cluster_cli; printf "%s\\n" "${COMPREPLY[@]}"',
          'complete',
          file,
          'cluster-cli',
          ...words,
        ],
        { encoding: 'utf8' },
      )
        .split('\n')
        .filter(Boolean);
    expect(complete('')).toEqual(
      visible(program.commands)
        .map((c) => c.name())
        .concat('help'),
    );
    expect(complete('node', 'jo')).toEqual(['join']);
    expect(complete('node', 'r')).toEqual(['remove', 'rm']);
    expect(complete('init', '--topology', '')).toEqual(['single', 'three-node', 'ha']);
    expect(complete('init', '-c', 'x.yaml', '--to')).toEqual(['--topology']);
    expect(complete('node', 'join', 'host1', '--role', '=', 'w')).toEqual(['worker']);
    expect(complete('node', 'rm', 'node3', '--dry')).toEqual(['--dry-run']);
    expect(complete('completion', '')).toEqual(['bash', 'zsh', 'fish']);
    expect(complete('help', 'no')).toEqual(['node']);
  });

  const zsh = which('zsh');
  it.skipIf(!zsh)('zsh: the script parses (zsh -n)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cluster-cli-zsh-')), '_cluster-cli');
    writeFileSync(file, await script('zsh'));
    execFileSync(zsh as string, ['-n', file]);
  });

  const fish = which('fish');
  it.skipIf(!fish)('fish: the script parses (fish --no-execute) and completes', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cluster-cli-fish-')), 'cluster-cli.fish');
    writeFileSync(file, await script('fish'));
    execFileSync(fish as string, ['--no-execute', file]);
    const complete = (line: string) =>
      execFileSync(
        fish as string,
        ['-N', '-c', 'source $argv[1]; complete -C $argv[2]', file, line],
        {
          encoding: 'utf8',
        },
      )
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split('\t')[0]);
    expect(complete('cluster-cli node jo')).toEqual(['join']);
    expect(complete('cluster-cli init --topology ')).toEqual(['ha', 'single', 'three-node']);
    expect(complete('cluster-cli completion ')).toEqual(['bash', 'fish', 'zsh']);
  });
});

describe("the README's first commands", () => {
  it('are scripts/demo and scripts/test, without sudo', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const block = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = block
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean);
    expect(commands).toEqual(['scripts/demo', 'scripts/test']);
  });

  // `id` reports a user that is not root; `sudo`, where there is one, only records its arguments.
  function asUser(script: string, withSudo: boolean) {
    const bin = mkdtempSync(join(tmpdir(), 'cluster-cli-user-'));
    writeFileSync(join(bin, 'id'), '#!/bin/sh\necho 1000\n');
    if (withSudo) writeFileSync(join(bin, 'sudo'), '#!/bin/sh\nprintf "%s\\n" "$@"\n');
    for (const f of withSudo ? ['id', 'sudo'] : ['id']) chmodSync(join(bin, f), 0o755);
    const r = spawnSync(which('bash') as string, [script, '--project', 'unit'], {
      cwd: root,
      // nothing else on PATH: without sudo the script must stop before it needs anything
      env: { PATH: bin, CLUSTER_LAB_DIR: '/var/tmp/elsewhere', HOME: '/nonexistent' },
      encoding: 'utf8',
    });
    return { ...r, bin };
  }

  it.each(['scripts/test', 'scripts/demo'])(
    '%s runs itself again through sudo when not root, keeping PATH and CLUSTER_* settings',
    (script) => {
      const r = asUser(script, true);
      expect(r.status).toBe(0);
      expect(r.stdout.split('\n').filter(Boolean)).toEqual([
        '--',
        'env',
        `PATH=${r.bin}`,
        'CLUSTER_LAB_DIR=/var/tmp/elsewhere',
        script,
        '--project',
        'unit',
      ]);
    },
  );

  it.each(['scripts/test', 'scripts/demo'])(
    '%s without root and without sudo says to run it as root',
    (script) => {
      const r = asUser(script, false);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `${script}: run as root (the lab needs network namespaces and its own Docker daemons); sudo is not installed, so log in as root and run ${script} again\n`,
      );
    },
  );
});

/** Commands a user sees (help, completion): not the hidden in-cluster `agent`. */
function visible<T extends { name(): string }>(commands: readonly T[]): T[] {
  return commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
}
