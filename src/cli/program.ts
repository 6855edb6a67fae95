import { Argument, Command, CommanderError, Option } from 'commander';
import { keysHelp } from '../config/key-defs.js';
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
  {
    flags: '--jump <bastion>',
    description:
      'reach the hosts through this jump host: user@host[:port] or an ~/.ssh/config alias (beats ProxyJump; none: direct)',
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

const forceMoveOption: OptionDef = {
  flags: '--force',
  description:
    'go on although PostgreSQL/Redis would move to another node (their data stays behind)',
};

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
    flags: '--firewall',
    description:
      "turn cluster-cli's firewall on: SSH and 80/443 open, the swarm ports to the cluster's nodes only, everything else closed (recorded in cluster.yaml)",
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

/** `doctor --ha`: the HA checklist run for real against the cluster. */
export const haOptions: readonly OptionDef[] = [
  {
    flags: '--ha',
    description:
      'run the HA checks for real: take out a manager, a worker, each proxy node under HTTP load, restart a node; shows the plan, asks (or --yes), writes a report',
  },
  {
    flags: '--report <file>',
    description:
      'with --ha: where to write the Markdown report (default: doctor-ha-<cluster>-<UTC time>.md beside cluster.yaml)',
  },
  { flags: '--down-seconds <n>', description: 'with --ha: how long a node stays out (default 20)' },
  {
    flags: '--reschedule-timeout <seconds>',
    description: 'with --ha: how long the cluster may take to recover (default 60)',
  },
  {
    flags: '--rps <n>',
    description: 'with --ha: requests per second of the HTTP load (default 20)',
  },
  {
    flags: '--check <names...>',
    description:
      'with --ha: only these checks (manager-loss, worker-loss, proxy-failover, node-rejoin; comma-separated or repeated)',
  },
];

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
        flags: '--firewall',
        description:
          "turn cluster-cli's firewall on with this join: every node's rules let the members only into the swarm ports (recorded in cluster.yaml; on by default once it is)",
      },
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

  const dockerContext = program
    .command('context')
    .description('A Docker context for the cluster, so the docker CLI here reaches it over SSH.');
  addOptions(dockerContext.command('create'), [
    { flags: '--name <name>', description: 'context name (default: the cluster name)' },
    ...changeOptions.filter((o) => !o.flags.startsWith('--timeout')),
    ...commonOptions,
  ])
    .description(
      'Create (or point again) a Docker context at the first manager over SSH; docker dials with your ssh and ~/.ssh/config.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli context create --yes && docker --context platform service ls
  $ cluster-cli context create --name prod --dry-run`,
    )
    .action(async (opts) => {
      const { runContextCreate } = await import('./context-cmd.js');
      await runContextCreate(opts, ctx);
    });

  addOptions(program.command('status'), [...sshOptions, ...commonOptions])
    .description(
      'Is the cluster healthy? Nodes, services (running/desired, the last task error), drift from cluster.yaml, the certificate, the backups. Exit 0 healthy, 1 degraded, 2 down.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli status
  $ cluster-cli status --json || alert "cluster not healthy"   # exit 1 degraded, 2 down`,
    )
    .action(async (opts) => {
      const { runStatus } = await import('./status.js');
      await runStatus(opts, ctx);
    });

  addOptions(program.command('doctor'), [
    {
      flags: '--prune',
      description:
        'remove the stale configs it finds (earlier revisions no service uses); shows the plan, asks (or --yes)',
    },
    ...haOptions,
    ...noTimeout.map((o) => ({ ...o, description: `with --prune or --ha: ${o.description}` })),
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Check everything on every node, each with a verdict and the command that fixes it: quorum, clock skew, memory and disk headroom against the reservations, node-to-node ports, Docker versions in step, the secrets and configs the stack needs, stale configs, the firewall. Read-only (except --prune and --ha). Exit 0 all ok, 1 a warning, 2 a failure.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli doctor
  $ cluster-cli doctor --json | jq '.checks[] | select(.verdict != "ok")'
  $ cluster-cli doctor --prune --dry-run     # the docker config rm commands, nothing removed
  $ cluster-cli doctor --prune --yes
  $ cluster-cli doctor --ha --dry-run        # which node each HA check takes out, the exact iptables commands
  $ cluster-cli doctor --ha --yes --report ha.md --down-seconds 30
  $ cluster-cli doctor --ha --check proxy-failover --yes --rps 50`,
    )
    .action(async (opts) => {
      const { runDoctor } = await import('./doctor.js');
      await runDoctor(opts, ctx);
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

  // ssl enable, status, renew, disable (src/cli/ssl.ts)
  const ssl = program
    .command('ssl')
    .description(
      'HTTPS for the platform: certificates from an ACME CA, one for every proxy replica.',
    );
  const dnsOption: OptionDef = {
    flags: '--dns-server <address>',
    description:
      'DNS server (ip or ip:port) the pre-check asks for the host names (default: the system resolver)',
  };
  addOptions(ssl.command('enable'), [
    {
      flags: '--email <address>',
      description: 'ACME account email (default: email in cluster.yaml)',
    },
    {
      flags: '--staging',
      description: "use Let's Encrypt's staging CA (untrusted certificates, generous limits)",
    },
    {
      flags: '--acme-ca <url>',
      description: 'ACME directory URL of another CA (ZeroSSL, step-ca, a private CA)',
    },
    {
      flags: '--acme-ca-root <file>',
      description: "PEM of the private CA that signs that directory's HTTPS",
    },
    {
      flags: '--managed-by <who>',
      description:
        "cluster: one certificate for every proxy replica (default); proxy: the proxy's own ACME (one replica only)",
      choices: ['cluster', 'proxy'],
    },
    dnsOption,
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Turn on HTTPS with HTTP-01: checks DNS and port 80 first, then obtains one certificate and serves it from every proxy replica.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli ssl enable --email ops@example.com
  $ cluster-cli ssl enable --staging --dry-run
  $ cluster-cli ssl enable --acme-ca https://ca.internal:9000/acme/acme/directory --acme-ca-root root.pem --yes`,
    )
    .action(async (opts) => {
      const { runSslEnable } = await import('./ssl.js');
      await runSslEnable(opts, ctx);
    });
  addOptions(ssl.command('status'), [dnsOption, ...sshOptions, ...commonOptions])
    .description(
      'Per host name: the certificate (issuer, expiry), which nodes serve it, the last renewal and the last ACME error.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli ssl status\n  $ cluster-cli ssl status --json',
    )
    .action(async (opts) => {
      const { runSslStatus } = await import('./ssl.js');
      await runSslStatus(opts, ctx);
    });
  addOptions(ssl.command('renew'), [
    { flags: '--force', description: 'renew although the certificate is still fresh' },
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Renew the certificate now if due (or --force): one agent replica orders it, every proxy replica gets it.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli ssl renew\n  $ cluster-cli ssl renew --force --yes',
    )
    .action(async (opts) => {
      const { runSslRenew } = await import('./ssl.js');
      await runSslRenew(opts, ctx);
    });
  addOptions(ssl.command('disable'), [...changeOptions, ...sshOptions, ...commonOptions])
    .description('Go back to plain HTTP (the agent is removed; the stored certificate is kept).')
    .addHelpText('after', '\nExamples:\n  $ cluster-cli ssl disable --yes')
    .action(async (opts) => {
      const { runSslDisable } = await import('./ssl.js');
      await runSslDisable(opts, ctx);
    });

  // user create, list, passwd, disable, enable, delete, verify (src/cli/user.ts)
  const user = program
    .command('user')
    .description(
      "The platform's admins: stored in its PostgreSQL (scrypt), they also guard the proxy dashboard.",
    );
  const passwordOptions: OptionDef[] = [
    {
      flags: '--password-stdin',
      description: 'read the password from stdin (for scripts; never pass it as an argument)',
    },
    { flags: '--generate', description: 'make a strong password and print it once' },
  ];
  addOptions(
    user.command('create').argument('<name>', 'user name (lower-case letters, digits, . _ -)'),
    [
      { flags: '--email <address>', description: 'email address (unique, case-insensitively)' },
      ...passwordOptions,
      ...changeOptions,
      ...sshOptions,
      ...commonOptions,
    ],
  )
    .description(
      "Create an admin. On a terminal the password is asked twice, masked. The first admin is also the app's bootstrap admin.",
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli user create alice --email alice@example.com
  $ printf '%s' "$PASSWORD" | cluster-cli user create ci --email ci@example.com --password-stdin --yes
  $ cluster-cli user create bob --email bob@example.com --generate --yes`,
    )
    .action(async (name: string, opts) => {
      const { runUserCreate } = await import('./user.js');
      await runUserCreate(name, opts, ctx);
    });
  addOptions(user.command('list').alias('ls'), [...sshOptions, ...commonOptions])
    .description('List the admins (never a hash).')
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli user list\n  $ cluster-cli user list --json',
    )
    .action(async (opts) => {
      const { runUserList } = await import('./user.js');
      await runUserList(opts, ctx);
    });
  addOptions(user.command('passwd').argument('<name>', 'user name'), [
    ...passwordOptions,
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description('Set a new password.')
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli user passwd alice\n  $ cluster-cli user passwd alice --generate --yes',
    )
    .action(async (name: string, opts) => {
      const { runUserPasswd } = await import('./user.js');
      await runUserPasswd(name, opts, ctx);
    });
  for (const verb of ['disable', 'enable'] as const) {
    addOptions(user.command(verb).argument('<name>', 'user name'), [
      ...changeOptions,
      ...sshOptions,
      ...commonOptions,
    ])
      .description(
        verb === 'disable'
          ? 'Stop a user from logging in (kept, can be enabled again).'
          : 'Let a disabled user log in again.',
      )
      .addHelpText('after', `\nExamples:\n  $ cluster-cli user ${verb} alice --yes`)
      .action(async (name: string, opts) => {
        const { runUserEnable } = await import('./user.js');
        await runUserEnable(name, verb === 'disable', opts, ctx);
      });
  }
  addOptions(user.command('delete').alias('rm').argument('<name>', 'user name'), [
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description('Delete a user.')
    .addHelpText('after', '\nExamples:\n  $ cluster-cli user delete alice --yes')
    .action(async (name: string, opts) => {
      const { runUserDelete } = await import('./user.js');
      await runUserDelete(name, opts, ctx);
    });
  addOptions(user.command('verify').argument('<name>', 'user name or email'), [
    { flags: '--password-stdin', description: 'read the password to check from stdin' },
    ...sshOptions,
    ...commonOptions,
  ])
    .description('Check a password against the stored hash: exit 0 when it logs in, 1 when not.')
    .addHelpText(
      'after',
      '\nExamples:\n  $ printf \'%s\' "$PASSWORD" | cluster-cli user verify alice --password-stdin',
    )
    .action(async (name: string, opts) => {
      const { runUserVerify } = await import('./user.js');
      await runUserVerify(name, opts, ctx);
    });

  // backup setup, run, list, verify, status; restore (src/cli/backup.ts); job (in the cluster)
  const backup = program
    .command('backup')
    .description(
      'Backups to any S3-compatible store: scheduled by cron on the managers, exactly once, verified.',
    );
  addOptions(backup.command('setup'), [
    {
      flags: '--s3-endpoint <url>',
      description: 'S3 API endpoint, e.g. https://s3.eu-west-1.amazonaws.com',
    },
    { flags: '--s3-bucket <name>', description: 'bucket (must exist)' },
    { flags: '--s3-region <region>', description: 'region (default us-east-1)' },
    {
      flags: '--s3-prefix <prefix>',
      description: 'key prefix in the bucket (default cluster-cli)',
    },
    {
      flags: '--s3-path-style',
      description: 'path-style URLs (MinIO, Swift, Ceph and most non-AWS stores)',
    },
    {
      flags: '--s3-credentials-stdin',
      description:
        'read the access key id and secret key from stdin, one per line (else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, else a prompt)',
    },
    {
      flags: '--schedule <cron>',
      description: 'five-field cron expression, UTC (default "0 3 * * *")',
    },
    {
      flags: '--retention <spec>',
      description: 'GFS counts, e.g. daily=7,weekly=4,monthly=6 (the default)',
    },
    { flags: '--encrypt', description: 'encrypt with age; the key is generated and printed once' },
    {
      flags: '--age-identity-file <file>',
      description:
        'encrypt with an existing age key (AGE-SECRET-KEY-1… line; - for stdin): a new cluster restoring from the bucket alone',
    },
    ...changeOptions,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Where, when and how long: checks the schedule and the bucket (write, read, delete) before saving anything.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cluster-cli backup setup \\
      --s3-endpoint https://s3.example.com --s3-bucket backups --schedule "0 3 * * *" --encrypt
  $ printf '%s\\n%s\\n' "$ID" "$KEY" | cluster-cli backup setup --s3-endpoint http://minio:9000 \\
      --s3-bucket b --s3-path-style --s3-credentials-stdin --yes
  # a new cluster, recovering from the bucket alone with the key kept elsewhere:
  $ cluster-cli backup setup --s3-endpoint https://s3.example.com --s3-bucket backups \
      --age-identity-file ~/backup-key.txt && cluster-cli restore latest`,
    )
    .action(async (opts) => {
      const { runBackupSetup } = await import('./backup.js');
      await runBackupSetup(opts, ctx);
    });
  addOptions(backup.command('run'), [...changeOptions, ...sshOptions, ...commonOptions])
    .description('Take a backup now (the same job cron starts), with progress.')
    .addHelpText('after', '\nExamples:\n  $ cluster-cli backup run --yes')
    .action(async (opts) => {
      const { runBackupRun } = await import('./backup.js');
      await runBackupRun(opts, ctx);
    });
  addOptions(backup.command('list').alias('ls'), [...sshOptions, ...commonOptions])
    .description('Every backup run: id, time, size, status, verified.')
    .addHelpText('after', '\nExamples:\n  $ cluster-cli backup list --json')
    .action(async (opts) => {
      const { runBackupList } = await import('./backup.js');
      await runBackupList(opts, ctx);
    });
  addOptions(backup.command('verify').argument('<id>', 'a backup id, or latest'), [
    { flags: '--timeout <seconds>', description: 'how long to wait for the check (default 3600)' },
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Download a backup, check every sha256, decrypt, and load the dump into a scratch database.',
    )
    .addHelpText('after', '\nExamples:\n  $ cluster-cli backup verify latest')
    .action(async (id: string, opts) => {
      const { runBackupVerify } = await import('./backup.js');
      await runBackupVerify(id, opts, ctx);
    });
  addOptions(backup.command('status'), [...sshOptions, ...commonOptions])
    .description('Schedule, last success, next run; a warning when the last success is too old.')
    .addHelpText('after', '\nExamples:\n  $ cluster-cli backup status')
    .action(async (opts) => {
      const { runBackupStatus } = await import('./backup.js');
      await runBackupStatus(opts, ctx);
    });
  backup
    .command('job', { hidden: true })
    .argument('<action>', 'run | verify | restore')
    .option('--scheduled', 'started by cron: claim this tick')
    .option('--id <id>', 'backup id (verify, restore)')
    .option('--only <part>', 'postgres | redis | volumes (restore)')
    .action(async (action: string, opts) => {
      const { runBackupJob } = await import('./backup-job.js');
      await runBackupJob(action, opts, ctx);
    });
  addOptions(
    program
      .command('restore')
      .argument('<id>', 'a backup id from `cluster-cli backup list`, or latest'),
    [
      {
        flags: '--only <part>',
        description: 'restore just one part',
        choices: ['postgres', 'redis', 'volumes'],
      },
      ...changeOptions,
      ...sshOptions,
      ...commonOptions,
    ],
  )
    .description(
      'Replace the data with a backup: shows what is replaced and asks; checks every sha256 first; stops the app, restores, starts it and waits for its health.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli restore latest\n  $ cluster-cli restore 20261124T030000Z --only postgres --yes',
    )
    .action(async (id: string, opts) => {
      const { runRestore } = await import('./backup.js');
      await runRestore(id, opts, ctx);
    });

  // firewall apply, remove, status (src/cli/firewall.ts)
  const firewall = program
    .command('firewall')
    .description(
      "The nodes' firewall: SSH and 80/443 open, the swarm ports open between the nodes only, every other port (published containers too) closed unless declared in cluster.yaml.",
    );
  const firewallNode = (c: Command) =>
    c.option(
      '--node <name>',
      'only this host of cluster.yaml (repeat, or comma-separate; default: every host)',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    );
  firewallNode(
    addOptions(firewall.command('apply'), [
      ...changeOptions.filter((o) => !o.flags.startsWith('--timeout')),
      ...sshOptions,
      ...commonOptions,
    ]),
  )
    .description(
      "Load the rules on every host of cluster.yaml (their own chains, INPUT and Docker's DOCKER-USER jump to them) and keep them across reboots and Docker restarts. Once it is on, node join and node remove update every node's rules themselves.",
    )
    .addHelpText(
      'after',
      `
Extra ports go in cluster.yaml:
  firewall:
    allow:
      - { port: 9100, proto: tcp, from: 10.0.0.0/8 }

Examples:
  $ cluster-cli firewall apply --dry-run      # every rule change, per node
  $ cluster-cli firewall apply --yes
  $ cluster-cli firewall apply --node node4 --yes   # one node (its rules still name every member)
  $ cluster-cli firewall apply -c prod.yaml --yes --json`,
    )
    .action(async (opts) => {
      const { runFirewallApply } = await import('./firewall.js');
      await runFirewallApply(opts, ctx);
    });
  firewallNode(
    addOptions(firewall.command('remove'), [
      ...changeOptions.filter((o) => !o.flags.startsWith('--timeout')),
      ...sshOptions,
      ...commonOptions,
    ]),
  )
    .description(
      "Take cluster-cli's rules, saved files and boot unit off every host of cluster.yaml (Docker's chains and other rules stay); records firewall.enabled: false when every host was done.",
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli firewall remove --dry-run     # what goes, per node
  $ cluster-cli firewall remove --yes
  $ cluster-cli firewall remove --node node4 --yes`,
    )
    .action(async (opts) => {
      const { runFirewallRemove } = await import('./firewall.js');
      await runFirewallRemove(opts, ctx);
    });
  firewallNode(addOptions(firewall.command('status'), [...sshOptions, ...commonOptions]))
    .description(
      'Per node: in step, drifted (and what differs) or absent. Read-only; exit 1 when a node is not in step.',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  $ cluster-cli firewall status\n  $ cluster-cli firewall status --json',
    )
    .action(async (opts) => {
      const { runFirewallStatus } = await import('./firewall.js');
      await runFirewallStatus(opts, ctx);
    });

  // The process inside the cluster's agent service; not for people.
  program
    .command('agent', { hidden: true })
    .description("Run cluster-cli's in-cluster agent (inside the stack only).")
    .action(async () => {
      const { runAgent } = await import('./agent.js');
      await runAgent(ctx);
    });

  // config get, list, set, unset (src/cli/config-cmd.ts); keys from src/config/key-defs.ts
  const config = program
    .command('config')
    .description(
      'Read and change cluster.yaml by key (domain, app.replicas, resources.app.memory, …).',
    );
  const keyArg = 'a key as `cluster-cli config list` shows it, e.g. app.replicas';
  addOptions(config.command('get').argument('<key>', keyArg), commonOptions)
    .description(
      'Print the effective value of one key (the default when cluster.yaml does not set it). Secret-looking values print as [REDACTED].',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli config get app.replicas
  $ cluster-cli config get resources.postgres.memory --json   # {"key", "value", "default"}`,
    )
    .action(async (key: string, opts) => {
      const { runConfigGet } = await import('./config-cmd.js');
      await runConfigGet(key, opts, ctx);
    });
  addOptions(config.command('list').alias('ls'), commonOptions)
    .description('List every key with its effective value and whether it is the default.')
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli config list
  $ cluster-cli config list --json    # one JSON array, a row per key`,
    )
    .action(async (opts) => {
      const { runConfigList } = await import('./config-cmd.js');
      await runConfigList(opts, ctx);
    });
  addOptions(
    config
      .command('set')
      .argument('<key=value...>', 'keys to set, as key=value (or one key and its value)'),
    [...changeOptions, forceMoveOption, ...sshOptions, ...commonOptions],
  )
    .description(
      'Change keys of cluster.yaml (comments kept), show the plan and update only the services the change affects. A bad value changes nothing.',
    )
    .addHelpText(
      'after',
      () => `
${keysHelp()}

Examples:
  $ cluster-cli config set app.replicas 3
  $ cluster-cli config set app.image=ghcr.io/acme/web:1.5 resources.app.memory=1G --yes
  $ cluster-cli config set app.domains=www.example.com,shop.example.com --dry-run`,
    )
    .action(async (args: string[], opts) => {
      const { configSet, parseSetArgs } = await import('./config-cmd.js');
      await configSet(ctx, opts, parseSetArgs(args));
    });
  addOptions(config.command('unset').argument('<key...>', 'keys to return to their defaults'), [
    ...changeOptions,
    forceMoveOption,
    ...sshOptions,
    ...commonOptions,
  ])
    .description(
      'Remove keys from cluster.yaml so their defaults apply, show the plan and update the services they affect. domain and email cannot be unset.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ cluster-cli config unset resources.app.memory --yes
  $ cluster-cli config unset app.env.DEBUG proxy.dashboard --dry-run`,
    )
    .action(async (keys: string[], opts) => {
      const { configUnset } = await import('./config-cmd.js');
      await configUnset(ctx, opts, keys);
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
