import { Argument, Command, CommanderError, Option } from 'commander';
import { UserError } from '../core/errors.js';
import type { Ctx } from './context.js';

/**
 * Options defined once as data: commander wiring and the README's option
 * tables both come from here. Command handlers load lazily so `--help` stays fast.
 */
export interface OptionDef {
  readonly flags: string;
  readonly description: string;
  readonly choices?: readonly string[];
  readonly default?: string;
}

export const commonOptions: readonly OptionDef[] = [
  {
    flags: '-c, --config <file>',
    description: 'cluster description to read and update',
    default: 'cluster.yaml',
  },
  { flags: '--json', description: 'print one JSON document for scripts instead of text' },
];

export const sshOptions: readonly OptionDef[] = [
  {
    flags: '--identity <file>',
    description: 'SSH private key (default: ssh-agent, then ~/.ssh/id_*)',
  },
  {
    flags: '--known-hosts <file>',
    description: 'known_hosts file to check host keys against (default: ~/.ssh/known_hosts)',
  },
  {
    flags: '--accept-new-host-key',
    description: 'trust and record a host key seen for the first time (never a changed one)',
  },
];

/** Every command that changes hosts. */
export const changeOptions: readonly OptionDef[] = [
  { flags: '--dry-run', description: 'print every step with its exact command and change nothing' },
  { flags: '-y, --yes', description: 'apply without asking (needed when there is no terminal)' },
  {
    flags: '--timeout <seconds>',
    description: 'how long to wait for every service to run (default: deploy.timeout, 300)',
  },
];

/** `--label a=b --label c=d` → ['a=b', 'c=d']. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export const initOptions: readonly OptionDef[] = [
  {
    flags: '--host <target>',
    description:
      'first manager as user@address[:port] or an ~/.ssh/config alias; omit to set up this machine',
  },
  {
    flags: '--domain <name>',
    description: 'domain the platform app answers on, e.g. apps.example.com',
  },
  { flags: '--email <address>', description: "contact address for Let's Encrypt" },
  {
    flags: '--advertise-addr <ip>',
    description: 'address other nodes reach this manager on (default: detected)',
  },
  {
    flags: '--topology <name>',
    description: 'cluster shape this manager starts',
    choices: ['single', 'three-node', 'ha'],
  },
  { flags: '--proxy <provider>', description: 'ingress proxy', choices: ['traefik', 'caddy'] },
  {
    flags: '--tls <mode>',
    description: "certificates: acme (Let's Encrypt), internal (proxy's own CA) or off",
    choices: ['acme', 'internal', 'off'],
  },
  {
    flags: '--force',
    description:
      'go on although the host is below the minimums, a port is taken, or PostgreSQL/Redis would move to another node',
  },
  { flags: '--dry-run', description: 'print every step with its exact command and change nothing' },
  { flags: '-y, --yes', description: 'apply without asking (needed when there is no terminal)' },
  {
    flags: '--timeout <seconds>',
    description: 'how long to wait for every service to run (default: deploy.timeout, 300)',
  },
];

function addOptions(cmd: Command, defs: readonly OptionDef[]): Command {
  for (const d of defs) {
    const o = new Option(d.flags, d.description);
    if (d.choices) o.choices(d.choices as string[]);
    if (d.default !== undefined) o.default(d.default);
    cmd.addOption(o);
  }
  return cmd;
}

/** The shells `cluster-cli completion` prints a script for (src/cli/completion.ts). */
export const completionShells: readonly string[] = ['bash', 'zsh', 'fish'];

export function buildProgram(ctx: Ctx): Command {
  const program = new Command('cluster-cli')
    .description('Turn fresh servers into a production Docker Swarm cluster.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });

  const init = addOptions(program.command('init'), [
    ...initOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Check a host, install Docker, initialise Swarm, create networks and deploy the platform stack.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli init                                        # this machine, asks for what it needs
  $ cluster-cli init --host root@203.0.113.10 --domain apps.example.com \\
        --email ops@example.com --yes                        # scripted, over SSH
  $ cluster-cli init --host deploy@203.0.113.10:2222 --dry-run  # show every command, change nothing`,
    )
    .action(async (opts) => {
      const { runInit } = await import('./init.js');
      await runInit(opts, ctx);
    });
  init.exitOverride();

  const stack = program.command('stack').description('Render the platform stack file.');
  addOptions(stack.command('render'), [
    ...commonOptions,
    { flags: '-o, --out <file>', description: 'write the YAML to a file instead of stdout' },
  ])
    .description('Print the stack YAML for the current cluster.yaml without touching any host.')
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli stack render\n  $ cluster-cli stack render -c prod.yaml -o stack.yml',
    )
    .action(async (opts) => {
      const { runStackRender } = await import('./stack.js');
      await runStackRender(opts, ctx);
    });

  const images = program
    .command('images')
    .description('Copy Docker images to the nodes without a registry (air-gapped clusters).');
  const imagesPushOptions: readonly OptionDef[] = [
    {
      flags: '--from <where>',
      description:
        "where the images are: this machine's Docker (default when it answers) or the first manager",
      choices: ['local', 'manager'],
    },
    { flags: '--dry-run', description: 'print which node gets which image and copy nothing' },
    { flags: '-y, --yes', description: 'copy without asking (needed when there is no terminal)' },
  ];
  addOptions(
    images
      .command('push')
      .argument(
        '[image...]',
        'images to copy (default: the app, postgres, redis and proxy images)',
      ),
    [...imagesPushOptions, ...sshOptions, ...commonOptions],
  )
    .addOption(
      new Option(
        '--node <name>',
        'copy only to this node of cluster.yaml (repeat, or comma-separate; default: every host)',
      ).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]),
    )
    .description(
      'Stream images (docker save | docker load over SSH) to every node that lacks them; nodes with the same image ID are skipped.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli images push --dry-run                       # the stack's images: who would get what
  $ cluster-cli images push myapp:1.4 --yes                 # from this machine to every node
  $ cluster-cli images push --from manager --node node2 --node node3 myapp:1.4
  $ cluster-cli images push --json --yes myapp:1.4          # one JSON report: per node, per image`,
    )
    .action(async (refs: string[], opts) => {
      const { runImagesPush } = await import('./images.js');
      await runImagesPush({ ...opts, images: refs }, ctx);
    });

  addOptions(program.command('apply'), [
    {
      flags: '--force',
      description: 'go on although a host is below the minimums, or PostgreSQL/Redis would move',
    },
    {
      flags: '--force-leave',
      description: 'make a host that is in another (or a dead) swarm leave it first',
    },
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Make the cluster match cluster.yaml: join missing hosts, set roles and labels, update the stack.',
    )
    .addHelpText(
      'after',
      `
cluster.yaml is the source of truth for hosts, roles and labels: a label missing
from the file is removed from its node; a node missing from the file is reported,
never removed (use cluster-cli node remove).

Examples:
  $ cluster-cli apply --dry-run          # what would change
  $ cluster-cli apply --yes              # make it so
  $ cluster-cli apply -c prod.yaml --yes --json`,
    )
    .action(async (opts) => {
      const { runApply } = await import('./apply.js');
      await runApply(opts, ctx);
    });

  const node = program
    .command('node')
    .description('Join, list, label and manage the swarm nodes of the cluster.');
  addOptions(
    node
      .command('join')
      .argument('<target...>', 'user@address[:port] or ~/.ssh/config alias of each host'),
    [
      {
        flags: '--role <role>',
        description: 'what the hosts join as',
        choices: ['manager', 'worker'],
        default: 'worker',
      },
      { flags: '--rotate-token', description: 'rotate the join tokens afterwards' },
      {
        flags: '--force-leave',
        description: 'make a host that is in another (or a dead) swarm leave it first',
      },
      {
        flags: '--force',
        description:
          'go on although a host is below the minimums, or PostgreSQL/Redis would move to a newly labelled node',
      },
      ...changeOptions,
      ...sshOptions,
      ...commonOptions,
    ],
  )
    .addOption(
      new Option('--label <key=value>', 'node label to set (repeatable)').argParser(collect),
    )
    .description(
      'SSH into hosts, check them and the swarm ports, install Docker where missing, and join them all at once.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli node join root@10.0.0.12 root@10.0.0.13 --role manager --yes
  $ cluster-cli node join deploy@10.0.0.14 --role worker --label db=primary --force --yes
  $ cluster-cli node join node5 --dry-run     # an ~/.ssh/config alias; show the plan only`,
    )
    .action(async (targets: string[], opts) => {
      const { runNodeJoin } = await import('./node-join.js');
      await runNodeJoin(targets, opts, ctx);
    });

  // node ls, label, promote, demote, drain, activate, remove (src/cli/node-ops.ts)
  const nodeArg = 'node name (hostname) or ID prefix, as `cluster-cli node ls` shows it';
  const noTimeout = changeOptions.filter((o) => !o.flags.startsWith('--timeout'));
  addOptions(node.command('ls'), [...sshOptions, ...commonOptions])
    .description(
      'List every swarm node (role, availability, status, manager reachability, labels, engine) and every cluster.yaml host, flagging where they disagree.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli node ls
  $ cluster-cli node ls --json      # one JSON array, a row per node`,
    )
    .action(async (opts) => {
      const { runNodeLs } = await import('./node-ops.js');
      await runNodeLs(opts, ctx);
    });

  addOptions(
    node
      .command('label')
      .argument('<node>', nodeArg)
      .argument('[labels...]', 'labels to set, as key=value'),
    [
      {
        flags: '--force',
        description:
          'go on although PostgreSQL and Redis would move to another node (their volumes are per node: they start empty there)',
      },
      ...changeOptions,
      ...sshOptions,
      ...commonOptions,
    ],
  )
    .addOption(new Option('--remove <key>', 'label to remove (repeatable)').argParser(collect))
    .description(
      "Set or remove a node's labels, record them in cluster.yaml, and redeploy the stack when placement follows them. db=primary moves from any other node; moving the database needs --force.",
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli node label node3 public_ip=true --yes
  $ cluster-cli node label node2 --remove zone --dry-run
  $ cluster-cli node label node2 db=primary --force --yes   # moves PostgreSQL and Redis: they start EMPTY on node2`,
    )
    .action(async (name: string, labels: string[], opts) => {
      const { runNodeLabel } = await import('./node-ops.js');
      await runNodeLabel(name, labels, opts, ctx);
    });

  for (const [verb, role] of [
    ['promote', 'manager'],
    ['demote', 'worker'],
  ] as const) {
    addOptions(node.command(verb).argument('<node...>', nodeArg), [
      {
        flags: '--force',
        description:
          role === 'worker'
            ? 'go on although the remaining reachable managers would lose quorum, or PostgreSQL/Redis would move (never demotes the last manager)'
            : 'go on although PostgreSQL/Redis would move (they are pinned to the first manager of cluster.yaml unless a node has db=primary)',
      },
      ...changeOptions,
      ...sshOptions,
      ...commonOptions,
    ])
      .description(
        role === 'manager'
          ? 'Make nodes managers and record role: manager in cluster.yaml.'
          : 'Make managers workers and record role: worker in cluster.yaml; refuses the last manager, and (without --force) a demotion after which the reachable managers lose quorum.',
      )
      .addHelpText(
        'after',
        role === 'manager'
          ? `
Examples:
  $ cluster-cli node promote node2 node3 --yes     # 1 → 3 managers: survives one failure
  $ cluster-cli node promote node4 --dry-run`
          : `
Examples:
  $ cluster-cli node demote node3 --yes
  $ cluster-cli node demote node2 node3 --dry-run   # shows the quorum left
When the node cluster-cli connects through is demoted, the steps run on another manager of cluster.yaml.`,
      )
      .action(async (names: string[], opts) => {
        const { runNodeRole } = await import('./node-ops.js');
        await runNodeRole(names, role, opts, ctx);
      });
  }

  for (const availability of ['drain', 'activate'] as const) {
    addOptions(node.command(availability).argument('<node...>', nodeArg), [
      ...noTimeout,
      ...sshOptions,
      ...commonOptions,
    ])
      .description(
        availability === 'drain'
          ? 'Move every task off nodes (maintenance) and schedule nothing new on them. Runtime state: cluster.yaml is not changed.'
          : 'Let drained nodes take tasks again. Runtime state: cluster.yaml is not changed.',
      )
      .addHelpText(
        'after',
        availability === 'drain'
          ? `
Examples:
  $ cluster-cli node drain node3 --yes
  $ cluster-cli node drain node2 node3 --dry-run --json`
          : `
Examples:
  $ cluster-cli node activate node3 --yes`,
      )
      .action(async (names: string[], opts) => {
        const { runNodeAvailability } = await import('./node-ops.js');
        await runNodeAvailability(names, availability === 'drain' ? 'drain' : 'active', opts, ctx);
      });
  }

  addOptions(node.command('remove').alias('rm').argument('<node...>', nodeArg), [
    {
      flags: '--force',
      description:
        'go on although quorum would be at risk, the node holds the PostgreSQL/Redis volumes, or it cannot be reached to leave (docker node rm --force); never removes the last manager',
    },
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Take nodes out of the swarm one by one: drain, demote a manager, `docker swarm leave` on the node (over SSH, when it answers), `docker node rm` on a manager; then drop them from cluster.yaml.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli node remove node4 --yes
  $ cluster-cli node remove node2 --dry-run        # every step, in order
  $ cluster-cli node rm node5 --force --yes        # node5 is gone for good and cannot leave itself
Refused: the last manager (always); without --force, leaving fewer managers than a majority
of today's, remaining reachable managers without quorum, or the node PostgreSQL and Redis live on.`,
    )
    .action(async (names: string[], opts) => {
      const { runNodeRemove } = await import('./node-ops.js');
      await runNodeRemove(names, opts, ctx);
    });

  // Generated from this program (commands, aliases, options, choices) when asked.
  program
    .command('completion')
    .addArgument(
      new Argument('<shell>', 'the shell to print the completion script for')
        .choices(completionShells)
        // the choices stay for --help and the scripts; completion.ts refuses another
        // shell in one line, where commander's check would add a usage hint
        .argParser((shell: string) => shell),
    )
    .description('Print a shell completion script for cluster-cli.')
    .addHelpText(
      'after',
      `
Examples:
  $ source <(cluster-cli completion bash)    # bash: this session; add the line to ~/.bashrc to keep it
  $ source <(cluster-cli completion zsh)     # zsh: the same, in ~/.zshrc after compinit
  $ cluster-cli completion fish > ~/.config/fish/completions/cluster-cli.fish`,
    )
    .action(async (shell: string) => {
      const { renderCompletion } = await import('./completion.js');
      ctx.stdout.write(renderCompletion(program, shell));
    });

  return program;
}

/**
 * commander prints the help of the nearest command it knows for
 * `cluster-cli frobnicate --help` and exits 0: it looks at --help before it
 * looks for the command. Walk the words the way commander does and name the
 * unknown command instead. Without --help commander reports it itself.
 */
export function unknownCommandError(
  program: Command,
  argv: readonly string[],
): UserError | undefined {
  const end = argv.indexOf('--');
  const words = end === -1 ? argv : argv.slice(0, end);
  if (!words.some((w) => w === '--help' || w === '-h')) return undefined;
  const help = program.createHelp();
  const path = [program.name()];
  let cmd = program;
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    // only a command that groups subcommands takes no operand of its own
    if (cmd.commands.length === 0) return undefined;
    const subcommands = help.visibleCommands(cmd);
    if (word.startsWith('-')) {
      const flag = word.split('=')[0];
      const option = help.visibleOptions(cmd).find((o) => o.long === flag || o.short === flag);
      // an option this command does not know is taken as a flag, as commander's parser does
      if (option?.required && !word.includes('=')) i++;
      continue;
    }
    const sub = subcommands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) {
      const names = subcommands.map((c) => c.name()).filter((n) => n !== 'help');
      return new UserError(
        `unknown command '${word}'`,
        `${path.join(' ')} <command> --help, where <command> is one of ${names.join(', ')}`,
      );
    }
    if (sub.name() === 'help') return undefined;
    path.push(sub.name());
    cmd = sub;
  }
  return undefined;
}

export { CommanderError };
