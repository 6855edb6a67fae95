import { ProbeError, probeText } from '../cluster/probe.js';
import { type Cmd, probe, shellScript } from '../core/cmd.js';
import { UserError } from '../core/errors.js';
import type { Executor } from '../core/executor.js';
import { type Family, familyName, iptablesBin } from './rules.js';

/** One family's filter table: every chain, with its rules as iptables-save prints them (no `-A <chain>`). */
export interface FamilyFacts {
  readonly chains: ReadonlyMap<string, readonly string[]>;
}

/** What a node's firewall holds now; read-only, runs in --dry-run too. */
export interface FirewallFacts {
  readonly ipv4: FamilyFacts;
  /** Absent when the kernel has no IPv6 (no /proc/net/if_inet6). */
  readonly ipv6?: FamilyFacts;
  /** sha256 of each file asked about; undefined when it does not exist. */
  readonly files: Readonly<Record<string, string | undefined>>;
  /** systemd runs this host (/run/systemd/system): the boot unit can be used. */
  readonly systemd: boolean;
  /** The unit's state, when systemd runs. */
  readonly unit?: { readonly enabled: boolean; readonly active: boolean };
}

/** iptables-save's output, or a line of it, is not what we can read: never "no rules". */
export class IptablesSaveParseError extends Error {
  override readonly name = 'IptablesSaveParseError';
}

/**
 * The filter table of `iptables-save` (or ip6tables-save) output: chain → rule
 * specs without `-A <chain>`, whitespace collapsed. Any line that is not a
 * comment, a table, a chain, a rule or COMMIT, a rule for an undeclared
 * chain, or a table left without COMMIT (cut-off output) throws: the caller
 * must not take a garbled answer for an empty firewall. Output without a
 * filter table (iptables-legacy before anything loaded it) is a filter table
 * with no chains of ours.
 */
export function parseIptablesSave(text: string): Map<string, string[]> {
  const tables = new Map<string, Map<string, string[]>>();
  let table: { name: string; chains: Map<string, string[]> } | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    const fail = (why: string) => {
      throw new IptablesSaveParseError(
        `line ${i + 1}: ${why}: ${JSON.stringify(line.slice(0, 120))}`,
      );
    };
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      if (table) fail('a table starts before the previous one was committed');
      const name = line.slice(1);
      if (!/^[a-z]+$/.test(name)) fail('not a table name');
      if (tables.has(name)) fail('table listed twice');
      table = { name, chains: new Map() };
      continue;
    }
    if (!table) fail('outside of a table');
    const t = table as { name: string; chains: Map<string, string[]> };
    if (line === 'COMMIT') {
      tables.set(t.name, t.chains);
      table = undefined;
      continue;
    }
    if (line.startsWith(':')) {
      const m = /^:(\S+) (\S+) \[\d+:\d+\]$/.exec(line);
      if (!m) fail('not a chain line');
      const chain = (m as RegExpExecArray)[1] as string;
      if (t.chains.has(chain)) fail('chain declared twice');
      t.chains.set(chain, []);
      continue;
    }
    const rule = /^-A (\S+) (.+)$/.exec(line);
    if (!rule) fail('not a rule');
    const [, chain, spec] = rule as RegExpExecArray;
    const rules = t.chains.get(chain as string);
    if (!rules) fail(`rule for undeclared chain ${chain}`);
    (rules as string[]).push((spec as string).replace(/\s+/g, ' '));
  }
  if (table)
    throw new IptablesSaveParseError(`table ${table.name} has no COMMIT (output cut off?)`);
  return tables.get('filter') ?? new Map();
}

/**
 * One rule in a spelling every iptables version agrees on, for comparing what
 * we want with what a host holds: the implicit `-m tcp`/`-m udp`/`-m icmp`
 * dropped, a single address's /32 or /128 dropped, ctstate lists sorted.
 */
export function normalizeRule(spec: string): string {
  return spec
    .trim()
    .replace(/\s+/g, ' ')
    .replace(/ -m (tcp|udp|icmp|icmp6|ipv6-icmp)(?= |$)/g, '')
    .replace(/^-m (tcp|udp|icmp|icmp6|ipv6-icmp) /, '')
    .replace(/(-[sd] \S+?)\/(32|128)(?= |$)/g, (whole, addr: string, bits: string) =>
      (bits === '32') === !addr.includes(':') ? addr : whole,
    )
    .replace(
      /--ctstate (\S+)/g,
      (_w, states: string) => `--ctstate ${states.split(',').sort().join(',')}`,
    );
}

// ------------------------------------------------------------- commands --

/** `iptables-save -t filter` (ip6tables-save for IPv6). */
export function iptablesSave(family: Family): Cmd {
  return probe([`${iptablesBin(family)}-save`, '-t', 'filter']);
}

/** The sha256 of each file, or `- <path>` for a missing one (exit 2 when one cannot be read). */
export function fileHashes(paths: readonly string[]): Cmd {
  return shellScript(
    'for f in "$@"; do if [ -e "$f" ]; then sha256sum "$f" || exit 2; else echo "- $f"; fi; done',
    paths,
    { readOnly: true },
  );
}

export function parseFileHashes(
  text: string,
  paths: readonly string[],
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const hash = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    const missing = /^- (.+)$/.exec(line);
    if (hash) out[hash[2] as string] = hash[1];
    else if (missing) out[missing[1] as string] = undefined;
    else throw new Error(`unexpected line from sha256sum: ${JSON.stringify(line.slice(0, 120))}`);
  }
  for (const p of paths) if (!(p in out)) throw new Error(`sha256sum said nothing about ${p}`);
  return out;
}

// ---------------------------------------------------------------- probe --

export interface FirewallProbeOptions {
  /** Files whose content the plan compares (the saved rules, the boot script, the unit). */
  readonly files: readonly string[];
  /** The systemd unit that re-applies the rules. */
  readonly unit: string;
  /**
   * The host gets Docker (and with it iptables) from this same command: it has
   * no rules yet, and by the time the rules load it has INPUT and (IPv4)
   * DOCKER-USER. Everything else is read as usual.
   */
  readonly beforeDocker?: boolean;
}

/**
 * What a node's firewall holds: our chains and the jumps to them (the whole
 * filter table, as iptables-save prints it), the saved files and the boot
 * unit. A tool that is missing, sudo that wants a password, output we cannot
 * read: a ProbeError, never an empty firewall.
 */
export async function probeFirewall(
  exec: Executor,
  opts: FirewallProbeOptions,
): Promise<FirewallFacts> {
  const [ipv6, systemd] = await Promise.all([
    testFact(exec, 'whether the kernel has IPv6', ['test', '-e', '/proc/net/if_inet6']),
    testFact(exec, 'whether systemd runs', ['test', '-d', '/run/systemd/system']),
  ]);
  const family = async (f: Family): Promise<FamilyFacts> => {
    if (opts.beforeDocker)
      return {
        chains: new Map<string, string[]>([
          ['INPUT', []],
          ...(f === 'ipv4' ? ([['DOCKER-USER', []]] as [string, string[]][]) : []),
        ]),
      };
    const what = `the ${familyName(f)} firewall (${iptablesBin(f)}-save)`;
    const text = await probeText(exec, what, iptablesSave(f));
    try {
      return { chains: parseIptablesSave(text) };
    } catch (err) {
      throw new ProbeError(exec.label, what, err);
    }
  };
  const hashes = async () => {
    const what = 'the saved firewall files';
    const text = await probeText(exec, what, fileHashes(opts.files));
    try {
      return parseFileHashes(text, opts.files);
    } catch (err) {
      throw new ProbeError(exec.label, what, err);
    }
  };
  const [v4, v6, files, unit] = await Promise.all([
    family('ipv4'),
    ipv6 ? family('ipv6') : undefined,
    hashes(),
    systemd ? unitState(exec, opts.unit) : undefined,
  ]);
  return {
    ipv4: v4,
    ...(v6 ? { ipv6: v6 } : {}),
    files,
    systemd,
    ...(unit ? { unit } : {}),
  };
}

/** `test …`: exit 0 yes, 1 no, anything else (sudo, a dropped connection) a ProbeError. */
async function testFact(exec: Executor, what: string, argv: string[]): Promise<boolean> {
  let r: Awaited<ReturnType<Executor['run']>>;
  try {
    r = await exec.run(probe(argv), { allowFailure: true });
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new ProbeError(exec.label, what, err);
  }
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1 && r.stderr.trim() === '') return false;
  throw new ProbeError(exec.label, what, r.stderr.trim() || `exit ${r.exitCode}`);
}

/** States `systemctl is-enabled` prints for a unit that will not start with Docker. */
const NOT_ENABLED = new Set([
  'disabled',
  'masked',
  'masked-runtime',
  'not-found',
  'linked',
  'linked-runtime',
  '',
]);
/** States `systemctl is-active` prints for a unit that is not running. */
const NOT_ACTIVE = new Set([
  'inactive',
  'failed',
  'activating',
  'deactivating',
  'reloading',
  'unknown',
]);

async function unitState(
  exec: Executor,
  unit: string,
): Promise<{ enabled: boolean; active: boolean }> {
  const what = `the state of ${unit}`;
  const run = async (verb: string) => {
    try {
      return await exec.run(probe(['systemctl', verb, unit]), { allowFailure: true });
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new ProbeError(exec.label, what, err);
    }
  };
  const [en, ac] = await Promise.all([run('is-enabled'), run('is-active')]);
  const enabledState = en.stdout.trim();
  let enabled: boolean;
  if (en.exitCode === 0) enabled = true;
  else if (
    NOT_ENABLED.has(enabledState) &&
    // an older systemd says so on stderr for a unit file that does not exist
    (en.stderr.trim() === '' || /No such file or directory|not found/i.test(en.stderr))
  )
    enabled = false;
  else
    throw new ProbeError(
      exec.label,
      what,
      en.stderr.trim() || `is-enabled printed ${JSON.stringify(enabledState)}`,
    );
  const activeState = ac.stdout.trim();
  let active: boolean;
  if (ac.exitCode === 0 && activeState === 'active') active = true;
  else if (ac.exitCode !== 0 && NOT_ACTIVE.has(activeState)) active = false;
  else
    throw new ProbeError(
      exec.label,
      what,
      ac.stderr.trim() || `is-active printed ${JSON.stringify(activeState)}`,
    );
  return { enabled, active };
}
