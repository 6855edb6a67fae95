import { writeFile } from 'node:fs/promises';
import { editConfigText } from '../config/edit.js';
import { validateConfig } from '../config/load.js';
import type { Config, ConfigInput, Host } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { changesOf, type Step } from '../core/plan.js';
import type { HostSession } from '../core/session.js';
import {
  checkFirewall,
  FIREWALL_FILES,
  type FirewallCheck,
  planFirewall,
  planFirewallRemoval,
  UNIT_NAME,
} from '../firewall/plan.js';
import { type FirewallFacts, probeFirewall } from '../firewall/probe.js';
import {
  type FirewallRules,
  firewallInputFor,
  firewallRules,
  memberAddresses,
  type SwarmNodeAddress,
  sshPortsOf,
} from '../firewall/rules.js';
import { formatTable } from '../ui/table.js';
import { type ClusterHandle, cfgFlag, hostTarget, openCluster } from './cluster.js';
import { connectSession, type SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { selectNodes } from './images.js';
import { connectAll } from './join-flow.js';
import { closeAll, type PipelineFlags, ReportedFailure, runPipeline } from './pipeline.js';

export interface FirewallFlags extends SshFlags, PipelineFlags {
  config: string;
  /** Only these hosts of cluster.yaml (repeated or comma-separated); default every host. */
  node?: string[];
}

const PROBE = { files: FIREWALL_FILES, unit: UNIT_NAME };

/**
 * `firewall apply`: every host of cluster.yaml gets the rules for the current
 * member list (so a node added to or removed from the file is let in or shut
 * out everywhere), saved for reboots and Docker restarts. Records
 * firewall.enabled: true in cluster.yaml.
 */
export async function runFirewallApply(opts: FirewallFlags, ctx: Ctx): Promise<void> {
  await firewallChange(opts, ctx, 'apply', async (h, nodes) => {
    // Every member still counts in the rules; only the chosen hosts get them.
    const members = memberAddresses(h.config, swarmAddresses(h));
    const fw = await firewallStepsFor(h.config, members, nodes);
    return {
      steps: fw.steps,
      next: h.config.firewall.enabled ? undefined : setEnabledInFile(h, true),
      preamble: membersPreamble(h.config, members),
      done: (names) => [
        `Firewall in step on ${names}: SSH and 80/443 open, the swarm ports open to the ${h.config.hosts.length} node(s) only, ${h.config.firewall.allow.length} declared port(s), everything else closed.`,
        ...(fw.notes.length ? ['', 'Note:', ...fw.notes.map((n) => `  ${n}`)] : []),
      ],
      json: { notes: fw.notes },
    };
  });
}

/**
 * `firewall remove`: takes cluster-cli's rules, saved files and boot unit off
 * every host (or the --node ones), leaving Docker's chains and every other
 * rule. Records firewall.enabled: false when it ran on every host.
 */
export async function runFirewallRemove(opts: FirewallFlags, ctx: Ctx): Promise<void> {
  await firewallChange(opts, ctx, 'remove', async (h, nodes) => {
    const facts = await Promise.all(nodes.map((n) => probeFirewall(n.session.exec, PROBE)));
    const plan = planFirewallRemoval(
      '',
      nodes.map((n, i) => ({
        name: n.host.name,
        host: n.session.exec.label,
        facts: facts[i] as FirewallFacts,
      })),
    );
    const everyHost = nodes.length === h.config.hosts.length;
    const next = everyHost && h.config.firewall.enabled ? setEnabledInFile(h, false) : undefined;
    return {
      steps: [...plan.steps],
      next,
      done: (names) => [
        `cluster-cli's firewall is off ${names}: the swarm ports and published container ports answer anyone the host's network lets through.`,
        ...(!everyHost && h.config.firewall.enabled
          ? [
              '',
              'Note:',
              '  cluster.yaml keeps firewall.enabled: true (only some nodes were given): node join, node remove and firewall apply put the rules back on them.',
            ]
          : []),
      ],
      nextLine: `  cluster-cli firewall apply${cfgFlag(opts)}   # to put it back`,
      json: { enabled: next ? false : h.config.firewall.enabled },
    };
  });
}

interface FirewallChange {
  readonly steps: Step[];
  /** cluster.yaml's new text, written once every node is done; undefined: unchanged. */
  readonly next: string | undefined;
  readonly preamble?: { text: string; json: unknown };
  /** The summary's lines, given the names of the nodes done. */
  done(names: string): string[];
  /** One more line under Next:. */
  readonly nextLine?: string;
  readonly json: Record<string, unknown>;
}

/**
 * The shared run of apply and remove: a session per chosen host, the plan
 * through the pipeline on all of them at once (keep going past a failed one),
 * cluster.yaml saved only when every node is done, and a failure named.
 */
async function firewallChange(
  opts: FirewallFlags,
  ctx: Ctx,
  verb: 'apply' | 'remove',
  build: (h: ClusterHandle, nodes: FirewallTarget[]) => Promise<FirewallChange>,
): Promise<void> {
  const h = await openCluster(ctx, opts);
  const sessions = new Map<string, HostSession>([
    [h.manager.session.exec.label, h.manager.session],
  ]);
  try {
    const chosen = selectNodes(h.config, opts.node ?? []);
    const nodes = await connectHosts(ctx, h, chosen, opts, sessions);
    const c = await build(h, nodes);
    const plan = { title: `firewall ${verb} on ${h.config.name}`, steps: c.steps };
    const outcome = await runPipeline(ctx, opts, {
      name: `firewall ${verb}`,
      plan,
      sessions,
      keepGoing: true,
      ...(c.preamble ? { preamble: c.preamble } : {}),
      async save(report) {
        if (!c.next || !report || report.failed.size) return;
        await writeFile(h.file, c.next);
      },
      summary(o) {
        const failed = [...o.report.failed.keys()];
        const done = nodes.filter((n) => !failed.includes(n.session.exec.label));
        const lines = [
          '',
          ...c.done(done.map((n) => n.host.name).join(', ') || 'no node'),
          '',
          'Next:',
          `  cluster-cli firewall status${cfgFlag(opts)}`,
          ...(c.nextLine ? [c.nextLine] : []),
          '',
        ];
        return {
          text: lines.join('\n'),
          json: {
            changed: changesOf(o.plan).map((x) => x.title),
            failed: [...o.report.failed.entries()].map(([host, f]) => ({
              host,
              step: f.step.title,
              error: f.error instanceof Error ? f.error.message : String(f.error),
            })),
            ...c.json,
          },
        };
      },
    });
    if (outcome.report.failed.size) {
      throw new ReportedFailure(
        `firewall ${verb} did not finish on ${[...outcome.report.failed.keys()].join(', ')} (the other nodes are done).`,
        `fix the cause, then run: cluster-cli firewall ${verb}${cfgFlag(opts)}`,
      );
    }
  } finally {
    await closeAll(sessions.values());
  }
}

export interface FirewallStatusRow {
  readonly node: string;
  readonly host: string;
  readonly state: FirewallCheck['state'] | 'unreachable' | 'unknown';
  readonly differences: readonly string[];
  readonly notes: readonly string[];
  readonly error?: string;
}

/**
 * `firewall status`: per node, in step / drifted / absent (or unreachable,
 * unknown when it could not be read). Read-only. Exit 1 when any node is not
 * in step.
 */
export async function runFirewallStatus(opts: FirewallFlags, ctx: Ctx): Promise<void> {
  const h = await openCluster(ctx, opts);
  const sessions: HostSession[] = [h.manager.session];
  try {
    const members = memberAddresses(h.config, swarmAddresses(h));
    const rows = await Promise.all(
      selectNodes(h.config, opts.node ?? []).map(async (host): Promise<FirewallStatusRow> => {
        let session = host === h.manager.host ? h.manager.session : undefined;
        const base = { node: host.name, host: host.address ?? 'local' };
        if (!session) {
          try {
            session = await connectSession(ctx, hostTarget(host, opts, h.config));
          } catch (err) {
            if (!(err instanceof UserError)) throw err;
            return {
              ...base,
              state: 'unreachable',
              differences: [],
              notes: [],
              error: err.message,
            };
          }
          sessions.push(session);
        }
        const row = { ...base, host: session.exec.label };
        let facts: FirewallFacts;
        try {
          facts = await probeFirewall(session.exec, PROBE);
        } catch (err) {
          if (!(err instanceof UserError)) throw err;
          return { ...row, state: 'unknown', differences: [], notes: [], error: err.message };
        }
        const check = checkFirewall(desiredRules(h.config, members, { host, session }), facts);
        return {
          ...row,
          state: check.state,
          differences: check.differences,
          notes: check.notes,
        };
      }),
    );
    const bad = rows.filter((r) => r.state !== 'in step');
    if (opts.json) {
      ctx.stdout.write(
        `${JSON.stringify({ enabled: h.config.firewall.enabled, inStep: bad.length === 0, nodes: rows }, null, 2)}\n`,
      );
    } else {
      const lines = [
        formatTable(
          ['NODE', 'HOST', 'FIREWALL', 'DETAIL'],
          rows.map((r) => [
            r.node,
            r.host,
            r.state,
            r.error ??
              (r.state === 'absent'
                ? 'no rules, files or unit of cluster-cli'
                : r.differences.join('; ') || '-'),
          ]),
        ),
      ];
      const notes = rows.flatMap((r) => r.notes.map((n) => `  ${r.node}: ${n}`));
      if (notes.length) lines.push('', 'Note:', ...notes);
      ctx.stdout.write(`${lines.join('\n')}\n`);
    }
    if (bad.length) {
      throw new ReportedFailure(
        `${bad.length} of ${rows.length} node(s) not in step: ${bad.map((r) => `${r.node} (${r.state})`).join(', ')}.`,
        `cluster-cli firewall apply${cfgFlag(opts)}`,
      );
    }
  } finally {
    await closeAll(sessions);
  }
}

// --------------------------------------------------------------- helpers --

export interface FirewallTarget {
  readonly host: Host;
  readonly session: HostSession;
  /** Docker (and with it iptables) arrives with this same command. */
  readonly beforeDocker?: boolean;
}

/**
 * One session per host of cluster.yaml (the manager's is reused; the others
 * are added to `sessions`), in the order given. Unreachable: nothing changed.
 */
export async function connectHosts(
  ctx: Ctx,
  h: ClusterHandle,
  hosts: readonly Host[],
  opts: SshFlags,
  sessions: Map<string, HostSession>,
): Promise<FirewallTarget[]> {
  const others = hosts.filter((x) => x !== h.manager.host);
  const opened = await connectAll(
    ctx,
    others.map((x) => ({ name: x.name, target: hostTarget(x, opts, h.config) })),
    sessions,
  );
  return hosts.map((host) =>
    host === h.manager.host
      ? { host, session: h.manager.session }
      : { host, session: opened[others.indexOf(host)] as HostSession },
  );
}

/** The preamble lines for a plan's firewall notes; none without notes. */
export function firewallNoteLines(notes: readonly string[] | undefined): string[] {
  return notes?.length ? ['', 'Firewall notes:', ...notes.map((n) => `  ${n}`)] : [];
}

/**
 * Read each node's firewall and plan the steps that give it the rules for
 * `config`'s members (a `wave` of their own: all nodes at once), with the
 * notes worth printing.
 */
export async function firewallStepsFor(
  config: Config,
  members: ReadonlyMap<string, readonly string[]>,
  nodes: readonly FirewallTarget[],
  wave = 'firewall',
): Promise<{ steps: Step[]; notes: string[] }> {
  const facts = await Promise.all(
    nodes.map((n) =>
      probeFirewall(n.session.exec, {
        ...PROBE,
        ...(n.beforeDocker ? { beforeDocker: true } : {}),
      }),
    ),
  );
  const wanted = nodes.map((n) => desiredRules(config, members, n));
  const plan = planFirewall(
    '',
    nodes.map((n, i) => ({
      name: n.host.name,
      host: n.session.exec.label,
      rules: wanted[i] as FirewallRules,
      facts: facts[i] as FirewallFacts,
    })),
    wave,
  );
  const notes = nodes.flatMap((n, i) =>
    checkFirewall(wanted[i] as FirewallRules, facts[i] as FirewallFacts)
      .notes.filter((note) => !(n.beforeDocker && note.startsWith('no DOCKER-USER')))
      .map((note) => `${n.host.name}: ${note}`),
  );
  return { steps: [...plan.steps], notes: [...new Set(notes)] };
}

/** The addresses the swarm knows its nodes at: Status.Addr, and a manager's ManagerStatus.Addr. */
export function swarmAddresses(h: ClusterHandle): SwarmNodeAddress[] {
  return h.manager.cluster.nodes.flatMap((n) => {
    const manager = n.managerAddr?.replace(/^\[?(.*?)\]?:\d+$/, '$1');
    return [n.addr, manager]
      .filter((a): a is string => Boolean(a))
      .map((addr) => ({ hostname: n.hostname, addr }));
  });
}

export function desiredRules(
  config: Config,
  members: ReadonlyMap<string, readonly string[]>,
  n: Pick<FirewallTarget, 'host' | 'session'>,
): FirewallRules {
  return firewallRules(
    firewallInputFor(config, members, sshPortsOf(n.host, connectedPort(n.session.exec.label))),
  );
}

/** The port in an SSH executor's label (`user@host:2222`, `user@[::1]:2222`); none for 22 or this machine. */
export function connectedPort(label: string): number | undefined {
  const m = /^[^@\s]+@(?:\[[^\]]+\]|[^:[\]\s]+):(\d+)$/.exec(label);
  return m ? Number(m[1]) : undefined;
}

function membersPreamble(config: Config, members: ReadonlyMap<string, readonly string[]>) {
  const json = Object.fromEntries(members);
  const allow = config.firewall.allow.map(
    (a) => `${a.port}/${a.proto}${a.from ? ` from ${a.from}` : ''}`,
  );
  return {
    text: [
      'Swarm ports (2377/tcp, 7946/tcp+udp, 4789/udp) open to:',
      ...[...members].map(([name, addrs]) => `  ${name}: ${addrs.join(', ')}`),
      `Open to everyone: SSH, 80/tcp, 443/tcp${allow.length ? `; declared: ${allow.join(', ')}` : ''}.`,
    ].join('\n'),
    json: { members: json, allow: config.firewall.allow },
  };
}

/** cluster.yaml with firewall.enabled set, comments kept. */
function setEnabledInFile(h: ClusterHandle, enabled: boolean): string {
  const input: ConfigInput = structuredClone(h.input);
  input.firewall = { ...(input.firewall ?? {}), enabled };
  validateConfig(input, h.configArg);
  return editConfigText(h.text, input);
}
