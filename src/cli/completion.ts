import type { Command, Help } from 'commander';
import { UserError } from '../core/errors.js';

/**
 * Shell completion generated from the commander program itself: the commands,
 * aliases, options, option values and argument choices that `--help` shows.
 * Nothing here lists a command or an option by hand, so a new one completes as
 * soon as it is wired into src/cli/program.ts.
 */

export interface CompletionOption {
  /** `-c`, `--config` */
  readonly names: readonly string[];
  readonly description: string;
  /** what the next word is: nothing (a flag), a file, or a word (one of `choices` when there are any) */
  readonly value: 'none' | 'file' | 'word';
  /** `file` for `--config <file>`, '' for a flag */
  readonly valueName: string;
  readonly choices: readonly string[];
  readonly repeatable: boolean;
}

export interface CompletionArgument {
  readonly name: string;
  readonly required: boolean;
  readonly variadic: boolean;
  readonly choices: readonly string[];
}

export interface CompletionCommand {
  /** the words after the program's name: [] for the program, ['node', 'join'] */
  readonly path: readonly string[];
  /** name, then aliases */
  readonly names: readonly string[];
  readonly description: string;
  readonly options: readonly CompletionOption[];
  readonly arguments: readonly CompletionArgument[];
  readonly commands: readonly CompletionCommand[];
}

export function completionModel(program: Command): CompletionCommand {
  return describeCommand(program, program.createHelp(), [], []);
}

/** `siblings`: for commander's own `help [command]`, the commands it can name. */
function describeCommand(
  cmd: Command,
  help: Help,
  path: readonly string[],
  siblings: readonly string[],
): CompletionCommand {
  const subcommands = help.visibleCommands(cmd);
  const names = subcommands.flatMap((c) => [c.name(), ...c.aliases()]);
  return {
    path,
    names: [cmd.name(), ...cmd.aliases()],
    description: firstSentence(cmd.description()),
    options: help.visibleOptions(cmd).map((o) => {
      const takesValue = o.required || o.optional;
      const valueName = /[<[]([^>\]]+)[>\]]/.exec(o.flags)?.[1] ?? '';
      return {
        names: [o.short, o.long].filter((n): n is string => n !== undefined),
        description: firstSentence(o.description),
        value: !takesValue ? 'none' : /file|path|dir/i.test(valueName) ? 'file' : 'word',
        valueName,
        choices: o.argChoices ?? [],
        // an option with its own parser (and no choices) collects repeats: --label, --node
        repeatable: o.variadic || (o.parseArg !== undefined && o.argChoices === undefined),
      };
    }),
    // every argument: Help.visibleArguments() drops them all when none has a description
    arguments: cmd.registeredArguments.map((a) => ({
      name: a.name(),
      required: a.required,
      variadic: a.variadic,
      choices: a.argChoices ?? siblings,
    })),
    commands: subcommands.map((c) =>
      describeCommand(
        c,
        help,
        [...path, c.name()],
        // commander's implicit help command is visible but not registered
        cmd.commands.includes(c) ? [] : names.filter((n) => n !== c.name()),
      ),
    ),
  };
}

function firstSentence(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  // a sentence ends at a full stop before a capital: not at `e.g. apps.example.com`
  return (oneLine.split(/(?<=[.;])\s+(?=[A-Z])/)[0] ?? '').replace(/[.;]$/, '');
}

const renderers: Readonly<Record<string, (model: CompletionCommand, bin: string) => string>> = {
  bash: renderBash,
  zsh: renderZsh,
  fish: renderFish,
};

/** The completion script for `shell` (program.ts's completionShells). */
export function renderCompletion(program: Command, shell: string): string {
  const render = renderers[shell];
  if (!render) {
    throw new UserError(
      `unknown shell '${shell}': cluster-cli completion knows ${Object.keys(renderers).join(', ')}`,
    );
  }
  return render(completionModel(program), program.name());
}

function walk(cmd: CompletionCommand): CompletionCommand[] {
  return [cmd, ...cmd.commands.flatMap(walk)];
}

/** Every name, flag and choice ends up in shell code unquoted or in a case pattern. */
function word(w: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.=+-]*$|^--?[A-Za-z0-9][A-Za-z0-9-]*$/.test(w)) {
    throw new Error(`completion: ${JSON.stringify(w)} is not a plain word`);
  }
  return w;
}

/** A case arm per command: `'node join:--host'|'node join:-c') BODY ;;`, or one that never matches. */
function caseArms(
  all: readonly CompletionCommand[],
  names: (c: CompletionCommand) => readonly string[],
  body: string,
  indent: string,
  quote: (text: string) => string,
  separator: string,
): string[] {
  const arms = all.flatMap((c) => {
    const ws = names(c);
    return ws.length === 0
      ? []
      : [
          `${indent}${ws.map((w) => quote(`${c.path.join(' ')}:${word(w)}`)).join(separator)}${body}`,
        ];
  });
  return arms.length > 0 ? arms : [`${indent}${quote('(none)')}${body}`];
}

// ---------------------------------------------------------------- bash

function renderBash(model: CompletionCommand, bin: string): string {
  const fn = `_${bin.replace(/\W/g, '_')}`;
  const all = walk(model);
  const q = (text: string) => `'${text}'`;
  const key = (c: CompletionCommand) => q(c.path.join(' '));
  const valueFlags = (c: CompletionCommand) =>
    c.options.filter((o) => o.value !== 'none').flatMap((o) => o.names);

  const toCommand = all.flatMap((c) =>
    c.commands.map(
      (s) =>
        `        ${s.names.map((n) => q(`${c.path.join(' ')}:${word(n)}`)).join('|')}) cmd=${key(s)} pos=0 ;;`,
    ),
  );
  const valueChoices = all.flatMap((c) =>
    c.options
      .filter((o) => o.choices.length > 0)
      .map(
        (o) =>
          `    ${o.names.map((n) => q(`${c.path.join(' ')}:${word(n)}`)).join('|')}) words=${q(o.choices.map(word).join(' '))} ;;`,
      ),
  );
  const perCommand = all.map((c) => {
    const lines = [
      `  ${key(c)})`,
      `    options=${q(c.options.flatMap((o) => o.names.map(word)).join(' '))}`,
    ];
    if (c.commands.length > 0) {
      lines.push(`    commands=${q(c.commands.flatMap((s) => s.names.map(word)).join(' '))}`);
    }
    c.arguments.forEach((a, i) => {
      if (a.choices.length === 0) return;
      const test = a.variadic ? `pos >= ${i}` : `pos == ${i}`;
      lines.push(`    if ((${test})); then commands=${q(a.choices.map(word).join(' '))}; fi`);
    });
    lines.push('    ;;');
    return lines.join('\n');
  });

  return `# bash completion for ${bin}, generated by \`${bin} completion bash\` from its commands.
# This shell:  source <(${bin} completion bash)
# Every shell: ${bin} completion bash > ~/.local/share/bash-completion/completions/${bin}
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd= pos=0 opt= w i
  local options= commands= words=
  # bash splits --option=value at the = (COMP_WORDBREAKS)
  [[ $cur == = ]] && cur=
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    if [[ -n $opt ]]; then
      [[ $w == = ]] || opt=
      continue
    fi
    case $w in
    -*)
      # an option whose value is the next word
      case "$cmd:\${w%%=*}" in
${caseArms(all, valueFlags, ') [[ $w == *=* ]] || opt=$w ;;', '      ', q, '|').join('\n')}
      esac
      ;;
    *)
      case "$cmd:$w" in
${toCommand.join('\n')}
        *) pos=$((pos + 1)) ;;
      esac
      ;;
    esac
  done
  if [[ -n $opt ]]; then
    # the value of $opt: one of its choices, else bash's default (file names)
    case "$cmd:$opt" in
${valueChoices.join('\n')}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
    return 0
  fi
  case $cmd in
${perCommand.join('\n')}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
  fi
  return 0
}
complete -o default -F ${fn} ${bin}
`;
}

// ---------------------------------------------------------------- zsh

/** Text inside a single-quoted zsh word, in an _arguments `[description]`. */
function zshDescription(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/([[\]])/g, '\\$1')
    .replace(/'/g, `'\\''`);
}

function zshAction(choices: readonly string[], file: boolean): string {
  if (file) return '_files';
  // a space: show the value's name, offer nothing
  return choices.length > 0 ? `(${choices.map(word).join(' ')})` : ' ';
}

function zshOptionSpecs(c: CompletionCommand): string[] {
  return c.options.map((o) => {
    const names = o.names.map(word);
    const ends = names.includes('--help') || names.includes('--version');
    // --help and --version end the command line; an option excludes its other spelling
    const exclusion = ends ? "'(- *)'" : o.repeatable ? "'*'" : `'(${names.join(' ')})'`;
    const spelled = names.map((n) =>
      o.value === 'none' ? n : n.startsWith('--') ? `${n}=` : `${n}+`,
    );
    const forms = spelled.length === 1 ? spelled[0] : `{${spelled.join(',')}}`;
    const value =
      o.value === 'none'
        ? ''
        : `:${word(o.valueName || 'value')}:${zshAction(o.choices, o.value === 'file')}`;
    return `${exclusion}${forms}'[${zshDescription(o.description)}]${value}'`;
  });
}

function zshArgumentSpecs(c: CompletionCommand): string[] {
  return c.arguments.map((a, i) => {
    const position = a.variadic ? '*' : `${i + 1}${a.required ? '' : ':'}`;
    // `( )`, not a space: a space would stop options from completing after an operand
    const action = a.choices.length > 0 ? zshAction(a.choices, false) : '( )';
    return `'${position}:${word(a.name)}:${action}'`;
  });
}

function renderZsh(model: CompletionCommand, bin: string): string {
  const base = `_${bin.replace(/\W/g, '_')}`;
  const fn = (c: CompletionCommand) =>
    [base, ...c.path.map((p) => p.replace(/\W/g, '_'))].join('__');
  const functions = walk(model).map((c) => {
    const specs = [...zshOptionSpecs(c)];
    if (c.commands.length === 0) {
      specs.push(...zshArgumentSpecs(c));
      return `${fn(c)}() {
  _arguments -S \\
    ${specs.join(' \\\n    ')}
}`;
    }
    const described = c.commands.flatMap((s) =>
      s.names.map((n) => `'${word(n)}:${zshDescription(s.description)}'`),
    );
    const dispatch = c.commands.map((s) => `      ${s.names.map(word).join('|')}) ${fn(s)} ;;`);
    return `${fn(c)}() {
  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  local -a commands
  commands=(
    ${described.join('\n    ')}
  )
  _arguments -C \\
    ${specs.join(' \\\n    ')} \\
    '1: :->command' \\
    '*:: :->argument' && ret=0
  case $state in
  command) _describe -t commands '${[bin, ...c.path].join(' ')} command' commands && ret=0 ;;
  argument)
    case $words[1] in
${dispatch.join('\n')}
    esac
    ret=$?
    ;;
  esac
  return ret
}`;
  });
  return `#compdef ${bin}
# zsh completion for ${bin}, generated by \`${bin} completion zsh\` from its commands.
# This shell:  source <(${bin} completion zsh)      (after compinit)
# Every shell: ${bin} completion zsh > "\${fpath[1]}/_${bin}"

${functions.join('\n\n')}

if [[ \${funcstack[1]-} == _${bin} ]]; then
  # autoloaded from $fpath
  ${base} "$@"
else
  compdef ${base} ${bin}
fi
`;
}

// ---------------------------------------------------------------- fish

function fishQuote(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function renderFish(model: CompletionCommand, bin: string): string {
  const state = `__${bin.replace(/\W/g, '_')}_state`;
  const at = `__${bin.replace(/\W/g, '_')}_at`;
  const all = walk(model);
  const key = (c: CompletionCommand) => c.path.join(' ');

  const toCommand = all.flatMap((c) =>
    c.commands.map(
      (s) => `            case ${s.names.map((n) => fishQuote(`${key(c)}:${word(n)}`)).join(' ')}
                set cmd ${fishQuote(key(s))}
                set pos 0`,
    ),
  );
  const valueFlags = (c: CompletionCommand) =>
    c.options.filter((o) => o.value !== 'none').flatMap((o) => o.names);
  // the next word is the option's value unless it came as --option=value
  const valueBody = "\n                    string match -q -- '*=*' $w; or set value 1";

  const lines: string[] = [];
  const complete = (c: CompletionCommand, condition: string, rest: string) =>
    lines.push(
      `complete -c ${bin} -n ${fishQuote(`${at} ${fishQuote(key(c))}${condition}`)} ${rest}`,
    );
  for (const c of all) {
    for (const s of c.commands) {
      for (const n of s.names) {
        complete(c, ' 0', `-a ${word(n)} -d ${fishQuote(s.description)}`);
      }
    }
    for (const o of c.options) {
      const flags = o.names
        .map((n) => (n.startsWith('--') ? `-l ${word(n.slice(2))}` : `-s ${word(n.slice(1))}`))
        .join(' ');
      const value =
        o.value === 'none'
          ? ''
          : o.value === 'file'
            ? ' -r -F'
            : o.choices.length > 0
              ? ` -x -a ${fishQuote(o.choices.map(word).join(' '))}`
              : ' -x';
      complete(c, '', `${flags}${value} -d ${fishQuote(o.description)}`);
    }
    c.arguments.forEach((a, i) => {
      if (a.choices.length === 0) return;
      complete(
        c,
        a.variadic ? ` ${i}-` : ` ${i}`,
        `-a ${fishQuote(a.choices.map(word).join(' '))} -d ${fishQuote(a.name)}`,
      );
    });
  }

  return `# fish completion for ${bin}, generated by \`${bin} completion fish\` from its commands.
# This shell:  ${bin} completion fish | source
# Every shell: ${bin} completion fish > ~/.config/fish/completions/${bin}.fish

# Prints the command the words before the cursor name, how many operands it has
# so far, and 1 when the word under the cursor is the value of an option.
function ${state}
    set -l words (commandline -opc)
    set -e words[1]
    set -l cmd ''
    set -l pos 0
    set -l value 0
    for w in $words
        if test $value = 1
            set value 0
            continue
        end
        if string match -q -- '-*' $w
            switch "$cmd:"(string split -m 1 -- = $w)[1]
${caseArms(all, valueFlags, valueBody, '                case ', fishQuote, ' ').join('\n')}
            end
            continue
        end
        switch "$cmd:$w"
${toCommand.join('\n')}
            case '*'
                set pos (math $pos + 1)
        end
    end
    printf '%s\\n' $cmd $pos $value
end

# ${at} COMMAND [N | N-]: the cursor is in COMMAND (at operand N, or N and later)
function ${at}
    set -l s (${state})
    test "$s[1]" = "$argv[1]"; or return 1
    set -q argv[2]; or return 0
    test "$s[3]" = 0; or return 1
    if string match -q -- '*-' $argv[2]
        test $s[2] -ge (string trim -c - -- $argv[2])
    else
        test $s[2] -eq $argv[2]
    end
end

complete -c ${bin} -f
${lines.join('\n')}
`;
}
