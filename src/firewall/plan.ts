import { createHash } from 'node:crypto';
import { type Cmd, cmd, fileWrite, shellScript } from '../core/cmd.js';
import { change, type Plan, type Step, unchanged } from '../core/plan.js';
import { type FirewallFacts, normalizeRule } from './probe.js';
import {
  type ChainRules,
  FAMILIES,
  type Family,
  type FirewallRules,
  familyName,
  iptablesBin,
  JUMPS,
  OUR_CHAINS,
  renderRestore,
} from './rules.js';

/**
 * Planning a node's firewall: compare what it holds (probe.ts) with what it
 * should (rules.ts) and emit the steps that close the gap, each with its exact
 * commands. Pure. The rules reach the node on stdin, never in argv.
 *
 * Persistence: the rules are saved under /usr/local/lib/cluster-cli and a
 * systemd unit replays them (through the same script) whenever Docker starts.
 */

export const FIREWALL_DIR = '/usr/local/lib/cluster-cli';
export const RULES_FILES: Readonly<Record<Family, string>> = {
  ipv4: `${FIREWALL_DIR}/firewall.rules`,
  ipv6: `${FIREWALL_DIR}/firewall6.rules`,
};
export const SCRIPT_FILE = `${FIREWALL_DIR}/firewall-apply`;
export const UNIT_NAME = 'cluster-cli-firewall.service';
export const UNIT_FILE = `/etc/systemd/system/${UNIT_NAME}`;
/** Every file the plan writes and the probe hashes. */
export const FIREWALL_FILES: readonly string[] = [
  RULES_FILES.ipv4,
  RULES_FILES.ipv6,
  SCRIPT_FILE,
  UNIT_FILE,
];

/**
 * If the jump from `from` to our chain is missing, insert it as the first rule
 * (`-C` finds an existing one: nothing is added twice). The boot script does the
 * same (renderScript).
 */
const ENSURE_JUMP = '"$1" -w 10 -C "$2" -j "$3" 2>/dev/null || "$1" -w 10 -I "$2" 1 -j "$3"';

// ------------------------------------------------------------- builders --

/** Load one family's rules in one atomic transaction; the ruleset goes on stdin. */
export function iptablesRestore(family: Family, ruleset: string): Cmd {
  return cmd([`${iptablesBin(family)}-restore`, '--wait=10', '--noflush'], { stdin: ruleset });
}

/** Make `from` jump to `to` first thing, unless it already jumps there. */
export function jumpEnsure(family: Family, from: string, to: string): Cmd {
  return shellScript(ENSURE_JUMP, [iptablesBin(family), from, to]);
}

/** Write a file through stdin, renamed over the old one (core's fileWrite). */
export { fileWrite };

export function systemctl(...args: string[]): Cmd {
  return cmd(['systemctl', ...args]);
}

// ------------------------------------------------------------ renderers --

/**
 * The script the unit runs (and that anyone can run by hand): each family's
 * saved rules in one `iptables-restore --noflush`, then the jumps, added only
 * when missing. The directory is an argument so a test can point it elsewhere.
 */
export function renderScript(): string {
  return `#!/bin/sh
# Written by \`cluster-cli firewall apply\`; run by ${UNIT_NAME} after Docker starts.
# Refills the ${OUR_CHAINS.join(' and ')} chains from the saved rules (one atomic
# iptables-restore --noflush per family: every other chain stays as it is), then makes
# INPUT and DOCKER-USER jump to them. Running it again changes nothing.
set -eu
dir=\${1:-${FIREWALL_DIR}}
jump() {
  ${ENSURE_JUMP}
}
load() {
  "$1-restore" --wait=10 --noflush "$2"
  jump "$1" INPUT ${JUMPS[0]?.to}
  # Docker creates DOCKER-USER when it starts (for IPv6 only with its ip6tables on).
  if "$1" -w 10 -n -L DOCKER-USER >/dev/null 2>&1; then
    jump "$1" DOCKER-USER ${JUMPS[1]?.to}
  fi
}
load iptables "$dir/firewall.rules"
if [ -e /proc/net/if_inet6 ]; then
  load ip6tables "$dir/firewall6.rules"
fi
`;
}

/**
 * The unit that puts the rules back:
 * - WantedBy=docker.service: enabling it hooks it to Docker's start, so it runs
 *   at every boot (and every `systemctl start docker`) with Docker;
 * - After=docker.service: it runs once Docker is up, when DOCKER-USER exists
 *   (Docker creates it at start, and would find ours already there otherwise);
 * - PartOf=docker.service: a stop or restart of Docker stops or restarts this
 *   unit too, so a Docker restart re-applies the rules after Docker is back;
 * - Type=oneshot with RemainAfterExit=yes: it stays "active" after the script
 *   ends, which is what lets PartOf= restart it (an inactive unit is not).
 * Not WantedBy=multi-user.target: started at boot without Docker, it would stay
 * active and not run again when Docker starts later.
 */
export function renderUnit(): string {
  return `# Written by \`cluster-cli firewall apply\`.
[Unit]
Description=cluster-cli firewall (${OUR_CHAINS.join(', ')})
After=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${SCRIPT_FILE}

[Install]
WantedBy=docker.service
`;
}

/** Each file a node should hold, with its content and mode. */
export function firewallFiles(
  rules: FirewallRules,
): readonly { path: string; content: string; mode: string }[] {
  return [
    { path: RULES_FILES.ipv4, content: renderRestore('ipv4', rules.ipv4), mode: '0644' },
    { path: RULES_FILES.ipv6, content: renderRestore('ipv6', rules.ipv6), mode: '0644' },
    { path: SCRIPT_FILE, content: renderScript(), mode: '0755' },
    { path: UNIT_FILE, content: renderUnit(), mode: '0644' },
  ];
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// ------------------------------------------------------------ comparing --

export type FirewallState = 'in step' | 'drifted' | 'absent';

/** How one node's firewall compares with what it should hold. */
export interface FirewallCheck {
  readonly state: FirewallState;
  /** Per family: the live chains or a jump differ. */
  readonly liveDiffers: Readonly<Partial<Record<Family, true>>>;
  /** Saved files whose content differs (or that are missing). */
  readonly staleFiles: readonly string[];
  /** The unit is not enabled or not active (only when systemd runs). */
  readonly unitOff: boolean;
  /** What differs, one line each, for people. */
  readonly differences: readonly string[];
  /** Limits worth knowing that are not differences (no systemd, no DOCKER-USER). */
  readonly notes: readonly string[];
}

/** The families a node has: IPv4 always, IPv6 when its kernel has it. */
export function familiesOf(facts: FirewallFacts): Family[] {
  return FAMILIES.filter((f) => f === 'ipv4' || facts.ipv6 !== undefined);
}

export function checkFirewall(rules: FirewallRules, facts: FirewallFacts): FirewallCheck {
  const differences: string[] = [];
  const notes: string[] = [];
  const liveDiffers: Partial<Record<Family, true>> = {};
  let ours = false;
  for (const family of familiesOf(facts)) {
    const chains: ReadonlyMap<string, readonly string[]> =
      (family === 'ipv4' ? facts.ipv4 : facts.ipv6)?.chains ?? new Map();
    const want: ChainRules = rules[family];
    const name = familyName(family);
    for (const chain of OUR_CHAINS) {
      const have = chains.get(chain);
      if (have) ours = true;
      const d = ruleDiff(want[chain], have ?? []);
      if (!have) differences.push(`${name}: no ${chain} chain`);
      else if (d.add || d.remove)
        differences.push(
          `${name} ${chain}: ${[d.add ? `${d.add} rule(s) missing` : '', d.remove ? `${d.remove} unexpected` : '', d.order ? 'order differs' : ''].filter(Boolean).join(', ')}`,
        );
      else if (d.order) differences.push(`${name} ${chain}: rules in another order`);
      if (!have || d.add || d.remove || d.order) liveDiffers[family] = true;
    }
    for (const j of JUMPS) {
      const from = chains.get(j.from);
      if (!from) {
        // Without Docker's ip6tables there is no IPv6 DOCKER-USER, and no IPv6
        // DNAT either: docker-proxy serves IPv6 published ports through INPUT,
        // where CLUSTER-CLI-INPUT filters them. Without an IPv4 one (Docker
        // down, or its nftables backend) published ports go unfiltered.
        if (j.from === 'DOCKER-USER' && family === 'ipv4')
          notes.push(
            'no DOCKER-USER chain (Docker not running, or its nftables backend): published container ports are not filtered',
          );
        continue;
      }
      const jumps = from.filter((r) => normalizeRule(r) === `-j ${j.to}`).length;
      if (jumps > 0) ours = true;
      if (jumps === 0) {
        differences.push(`${name}: ${j.from} does not jump to ${j.to}`);
        liveDiffers[family] = true;
      }
    }
  }
  if (!facts.ipv6) notes.push('no IPv6 in the kernel: only IPv4 rules');

  const staleFiles: string[] = [];
  for (const f of firewallFiles(rules)) {
    const have = facts.files[f.path];
    if (have !== undefined) ours = true;
    if (have !== sha256(f.content)) {
      staleFiles.push(f.path);
      differences.push(have === undefined ? `${f.path} missing` : `${f.path} differs`);
    }
  }

  let unitOff = false;
  if (!facts.systemd) {
    notes.push('no systemd: the rules are not put back after a reboot');
  } else if (!facts.unit?.enabled || !facts.unit.active) {
    unitOff = true;
    if (facts.unit?.enabled) ours = true;
    differences.push(
      `${UNIT_NAME} ${[facts.unit?.enabled ? '' : 'not enabled', facts.unit?.active ? '' : 'not active'].filter(Boolean).join(', ')}`,
    );
  }
  const state: FirewallState = !differences.length ? 'in step' : ours ? 'drifted' : 'absent';
  return { state, liveDiffers, staleFiles, unitOff, differences, notes };
}

/** Rules to add and to remove (as multisets, normalised), and whether the order differs. */
function ruleDiff(
  want: readonly string[],
  have: readonly string[],
): { add: number; remove: number; order: boolean } {
  const w = want.map(normalizeRule);
  const h = have.map(normalizeRule);
  const counts = new Map<string, number>();
  for (const r of h) counts.set(r, (counts.get(r) ?? 0) + 1);
  let add = 0;
  for (const r of w) {
    const n = counts.get(r) ?? 0;
    if (n > 0) counts.set(r, n - 1);
    else add++;
  }
  const remove = [...counts.values()].reduce((a, b) => a + b, 0);
  return { add, remove, order: w.join('\n') !== h.join('\n') };
}

// -------------------------------------------------------------- planning --

export interface NodeFirewall {
  /** The node's name in cluster.yaml. */
  readonly name: string;
  /** Where its steps run (an executor label). */
  readonly host: string;
  readonly rules: FirewallRules;
  readonly facts: FirewallFacts;
}

/**
 * Per node, in order (all nodes at once): load the rules where the live
 * chains or jumps differ, save the files that differ, enable and (re)start the
 * unit. A node already in step gets `unchanged` steps only.
 */
export function planFirewall(
  title: string,
  nodes: readonly NodeFirewall[],
  waveName = 'firewall',
): Plan {
  const steps: Step[] = [];
  const wave = { wave: waveName };
  for (const n of nodes) {
    const check = checkFirewall(n.rules, n.facts);
    const families = familiesOf(n.facts);
    const count = families
      .map(
        (f) =>
          `${familyName(f)} ${OUR_CHAINS.map((c) => n.rules[f][c].length).reduce((a, b) => a + b, 0)} rules`,
      )
      .join(', ');
    const live = families.filter((f) => check.liveDiffers[f]);
    steps.push(
      live.length
        ? change(
            `firewall-rules-${n.name}`,
            n.host,
            `Load the firewall rules on ${n.name} (${count})`,
            live.flatMap((f) => [
              iptablesRestore(f, renderRestore(f, n.rules[f])),
              ...JUMPS.filter((j) =>
                (f === 'ipv4' ? n.facts.ipv4 : n.facts.ipv6)?.chains.has(j.from),
              ).map((j) => jumpEnsure(f, j.from, j.to)),
            ]),
            wave,
          )
        : unchanged(
            `firewall-rules-${n.name}`,
            n.host,
            `Firewall rules on ${n.name}`,
            `${OUR_CHAINS.join(' and ')} hold the wanted rules: ${count}`,
            wave,
          ),
    );
    const stale = firewallFiles(n.rules).filter((f) => check.staleFiles.includes(f.path));
    steps.push(
      stale.length
        ? change(
            `firewall-files-${n.name}`,
            n.host,
            `Save the rules for reboots on ${n.name}: ${stale.map((f) => f.path).join(', ')}`,
            stale.map((f) => fileWrite(f.path, f.content, f.mode)),
            wave,
          )
        : unchanged(
            `firewall-files-${n.name}`,
            n.host,
            `Saved firewall rules on ${n.name}`,
            `${FIREWALL_DIR} holds them`,
            wave,
          ),
    );
    const unitChanged = check.staleFiles.includes(UNIT_FILE);
    if (!n.facts.systemd) {
      steps.push(
        unchanged(
          `firewall-unit-${n.name}`,
          n.host,
          `Boot unit on ${n.name}`,
          `no systemd: run ${SCRIPT_FILE} after each boot to put the rules back`,
          wave,
        ),
      );
    } else if (unitChanged || check.unitOff) {
      steps.push(
        change(
          `firewall-unit-${n.name}`,
          n.host,
          `Enable ${UNIT_NAME} on ${n.name} (puts the rules back whenever Docker starts)`,
          [
            ...(unitChanged ? [systemctl('daemon-reload')] : []),
            systemctl('enable', UNIT_NAME),
            // runs the saved script once now: the boot path is proven before we leave
            systemctl('restart', UNIT_NAME),
          ],
          wave,
        ),
      );
    } else {
      steps.push(
        unchanged(
          `firewall-unit-${n.name}`,
          n.host,
          `Boot unit on ${n.name}`,
          `${UNIT_NAME} enabled and active`,
          wave,
        ),
      );
    }
  }
  return { title, steps };
}

// -------------------------------------------------------------- removing --

/** Delete every jump from `from` to our chain (there may be several), then nothing if none. */
const DROP_JUMPS =
  'while "$1" -w 10 -C "$2" -j "$3" 2>/dev/null; do "$1" -w 10 -D "$2" -j "$3"; done';

export function jumpsDrop(family: Family, from: string, to: string): Cmd {
  return shellScript(DROP_JUMPS, [iptablesBin(family), from, to]);
}

export function chainDelete(family: Family, chain: string): Cmd[] {
  return [
    cmd([iptablesBin(family), '-w', '10', '-F', chain]),
    cmd([iptablesBin(family), '-w', '10', '-X', chain]),
  ];
}

export interface NodeFirewallFacts {
  readonly name: string;
  readonly host: string;
  readonly facts: FirewallFacts;
}

/**
 * `firewall remove`, per node: stop and disable the boot unit first (so
 * nothing puts the rules back), then drop the jumps and our chains, then the
 * saved files. Docker's own chains and every other rule stay. A node without
 * any of it gets `unchanged` steps.
 */
export function planFirewallRemoval(title: string, nodes: readonly NodeFirewallFacts[]): Plan {
  const steps: Step[] = [];
  const wave = { wave: 'firewall' };
  for (const n of nodes) {
    const unitOn = n.facts.systemd && (n.facts.unit?.enabled || n.facts.unit?.active);
    const live = familiesOf(n.facts).flatMap((f) => {
      const chains = (f === 'ipv4' ? n.facts.ipv4 : n.facts.ipv6)?.chains ?? new Map();
      const jumps = JUMPS.filter((j) =>
        (chains.get(j.from) ?? []).some((r: string) => normalizeRule(r) === `-j ${j.to}`),
      ).map((j) => jumpsDrop(f, j.from, j.to));
      const ours = OUR_CHAINS.filter((c) => chains.has(c)).flatMap((c) => chainDelete(f, c));
      return [...jumps, ...ours];
    });
    const files = FIREWALL_FILES.filter((p) => n.facts.files[p] !== undefined);
    const cmds = [
      ...(unitOn ? [systemctl('disable', '--now', UNIT_NAME)] : []),
      ...live,
      ...(files.length ? [cmd(['rm', '-f', '--', ...files])] : []),
      ...(n.facts.systemd && files.includes(UNIT_FILE) ? [systemctl('daemon-reload')] : []),
    ];
    steps.push(
      cmds.length
        ? change(
            `firewall-remove-${n.name}`,
            n.host,
            `Take cluster-cli's firewall off ${n.name}: ${[unitOn ? UNIT_NAME : '', live.length ? 'rules' : '', files.length ? `${files.length} saved file(s)` : ''].filter(Boolean).join(', ')}`,
            cmds,
            wave,
          )
        : unchanged(
            `firewall-remove-${n.name}`,
            n.host,
            `cluster-cli's firewall on ${n.name}`,
            'none there: no rules, files or unit of cluster-cli',
            wave,
          ),
    );
  }
  return { title, steps };
}
