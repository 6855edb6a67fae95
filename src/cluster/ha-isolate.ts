import { type Cmd, cmd, probe, shellScript } from '../core/cmd.js';

/**
 * `doctor --ha` takes a node out the way a crash or a cut cable would: in the
 * node's raw table (before conntrack, before Docker's own chains), every
 * packet coming in on the node's network interfaces is dropped, except new
 * and established TCP to its SSH port(s), so cluster-cli keeps the session it
 * needs to bring the node back. Every rule carries the comment
 * `cluster-cli-ha`: what restores it, the dead-man switch and the cleanup of
 * an interrupted run find exactly these rules and no other.
 *
 * All builders are pure; the orchestration (src/cli/doctor-ha.ts) runs them
 * through the executor, which adds sudo for a non-root user.
 */

export const HA_COMMENT = 'cluster-cli-ha';
/** The dead-man switch's process group id, on the node. */
export const DEADMAN_PIDFILE = '/run/cluster-cli-ha.pid';
/** Seconds the dead-man switch waits beyond the longest time a check keeps the node out. */
export const DEADMAN_MARGIN_S = 30;
/** How long an iptables command waits for the xtables lock. */
const LOCK_WAIT = '--wait=10';
/** At most this many copies of one rule are deleted (a loop that never ends is worse than a leftover). */
export const MAX_DELETES = 50;

/** One rule of `-t raw PREROUTING`, as the words after the chain name. */
export type HaRule = readonly string[];

/** Interface names iptables takes: no spaces, no leading dash, at most 15 characters. */
const IFACE = /^[A-Za-z0-9_.:+][A-Za-z0-9_.:+-]{0,14}$/;

/**
 * The rules that cut a node off: per interface, its SSH ports accepted, then
 * everything else dropped. Listed in the order they must end up in the chain
 * (all ACCEPTs before any DROP).
 */
export function isolationRules(ifaces: readonly string[], sshPorts: readonly number[]): HaRule[] {
  const names = [...new Set(ifaces)];
  if (!names.length) throw new Error('isolationRules: no interface');
  for (const i of names) {
    if (!IFACE.test(i) || i === 'lo') throw new Error(`isolationRules: bad interface ${i}`);
  }
  const ports = [...new Set(sshPorts)].sort((a, b) => a - b);
  if (!ports.length) throw new Error('isolationRules: no SSH port');
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535)
      throw new Error(`isolationRules: bad port ${p}`);
  }
  const comment = ['-m', 'comment', '--comment', HA_COMMENT];
  return [
    ...names.flatMap((i) =>
      ports.map((p) => [
        '-i',
        i,
        '-p',
        'tcp',
        '-m',
        'tcp',
        '--dport',
        String(p),
        ...comment,
        '-j',
        'ACCEPT',
      ]),
    ),
    ...names.map((i) => ['-i', i, ...comment, '-j', 'DROP']),
  ];
}

/**
 * Insert the rules at the top of `-t raw PREROUTING`, in order: rule n goes to
 * position n, so the SSH ACCEPTs are in place before the first DROP.
 */
export function isolateCmds(rules: readonly HaRule[]): Cmd[] {
  return rules.map((r, i) =>
    cmd(['iptables', LOCK_WAIT, '-t', 'raw', '-I', 'PREROUTING', String(i + 1), ...r], {
      timeoutMs: 30_000,
    }),
  );
}

/** Delete one copy of a rule; fails once none is left (run it until it fails). */
export function deleteRule(rule: HaRule): Cmd {
  return cmd(['iptables', LOCK_WAIT, '-t', 'raw', '-D', 'PREROUTING', ...rule], {
    timeoutMs: 30_000,
  });
}

/** The raw table's PREROUTING rules, as `-A PREROUTING …` lines: where leftovers are found. */
export function listRawPrerouting(): Cmd {
  return probe(['iptables', LOCK_WAIT, '-t', 'raw', '-S', 'PREROUTING'], { timeoutMs: 30_000 });
}

/** Words of one `iptables -S` line: double quotes group (and are dropped), as iptables prints comments. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) {
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string));
  }
  return out;
}

/**
 * cluster-cli-ha rules in `iptables -t raw -S PREROUTING` output (an earlier
 * run that was interrupted): each as the words after `-A PREROUTING`, ready
 * for deleteRule. Other rules are never touched.
 */
export function parseHaRules(text: string): HaRule[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('-A PREROUTING '))
    .map(words)
    .filter((w) => w.some((x, i) => x === '--comment' && w[i + 1] === HA_COMMENT))
    .map((w) => w.slice(2));
}

/**
 * Stops a dead-man switch started earlier, if one still runs: its process
 * group is killed only when /proc says it is ours (the marker in its script),
 * so a stale pid file never kills another process. "$1" is the pid file.
 */
const STOP_DEADMAN = `p="$1"
if [ -s "$p" ]; then
  pid=$(cat "$p")
  case "$pid" in
    ''|*[!0-9]*) ;;
    *) if grep -q cluster-cli-ha-deadman "/proc/$pid/cmdline" 2>/dev/null; then
         kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
       fi ;;
  esac
fi
rm -f "$p"`;

/**
 * The dead-man switch, run detached in its own session: writes its pid,
 * sleeps, then deletes each rule (one "$@" word per rule, its words separated
 * by spaces: rules have no other spaces) until none is left. A CLI killed
 * with SIGKILL, or a lost connection, still leaves the node healed.
 */
const DEADMAN_BODY = `: cluster-cli-ha-deadman
p="$1"; s="$2"; shift 2
echo $$ > "$p"
sleep "$s"
set -f
for r in "$@"; do
  n=0
  while [ "$n" -lt ${MAX_DELETES} ] && iptables ${LOCK_WAIT} -t raw -D PREROUTING $r 2>/dev/null; do n=$((n+1)); done
done
[ "$(cat "$p" 2>/dev/null)" = "$$" ] && rm -f "$p"
exit 0`;

const START_DEADMAN = `${STOP_DEADMAN}
s="$2"; shift 2
setsid sh -c '${DEADMAN_BODY.replace(/'/g, `'\\''`)}' cluster-cli-ha-deadman "$p" "$s" "$@" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s "$p" ] && [ "$i" -lt 50 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done
if [ ! -s "$p" ]; then echo "the dead-man switch did not start" >&2; exit 1; fi`;

/**
 * Start the dead-man switch before isolating: after `seconds` it deletes the
 * rules on its own. Any earlier switch still running is stopped first.
 */
export function deadManStart(
  rules: readonly HaRule[],
  seconds: number,
  pidfile = DEADMAN_PIDFILE,
): Cmd {
  if (!Number.isInteger(seconds) || seconds < 1)
    throw new Error(`deadManStart: bad delay ${seconds}`);
  for (const r of rules) {
    if (r.some((w) => /\s/.test(w) || w === ''))
      throw new Error(`deadManStart: a rule word has a space: ${r.join(' ')}`);
  }
  return shellScript(START_DEADMAN, [pidfile, String(seconds), ...rules.map((r) => r.join(' '))], {
    timeoutMs: 30_000,
  });
}

/** Stop the dead-man switch (the node was restored in time); nothing to stop is fine. */
export function deadManStop(pidfile = DEADMAN_PIDFILE): Cmd {
  return shellScript(STOP_DEADMAN, [pidfile], { timeoutMs: 30_000 });
}

/** The route to another node: its `dev` is the interface this node's swarm traffic uses. */
export function routeTo(address: string): Cmd {
  return probe(['ip', '-o', 'route', 'get', address]);
}

/** `dev X` of `ip -o route get`; undefined for none or loopback. */
export function parseRouteDev(text: string): string | undefined {
  const dev = /\bdev\s+(\S+)/.exec(text)?.[1]?.replace(/@.*$/, '');
  if (!dev || dev === 'lo' || !IFACE.test(dev)) return undefined;
  return dev;
}

/** Whether systemd runs Docker: prints `active` when it does (anything else when not, `no-systemd` without systemctl). */
export function dockerUnitState(): Cmd {
  return shellScript(
    'command -v systemctl >/dev/null 2>&1 || { echo no-systemd; exit 0; }; systemctl is-active docker 2>/dev/null; exit 0',
    [],
    { readOnly: true, timeoutMs: 30_000 },
  );
}

export function parseUnitActive(text: string): boolean {
  return text.trim().split('\n')[0]?.trim() === 'active';
}

/** Restart the Docker daemon through systemd (node-rejoin). */
export function dockerRestart(): Cmd {
  return cmd(['systemctl', 'restart', 'docker'], { timeoutMs: 180_000 });
}
