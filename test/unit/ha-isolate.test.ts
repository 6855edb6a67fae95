import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEADMAN_PIDFILE,
  deadManStart,
  deadManStop,
  deleteRule,
  dockerRestart,
  dockerUnitState,
  HA_COMMENT,
  type HaRule,
  isolateCmds,
  isolationRules,
  listRawPrerouting,
  parseHaRules,
  parseRouteDev,
  parseUnitActive,
  routeTo,
} from '../../src/cluster/ha-isolate.js';
import { formatCmd } from '../../src/core/cmd.js';

const C = ['-m', 'comment', '--comment', 'cluster-cli-ha'];

describe('isolationRules', () => {
  it('SSH accepted on each interface before anything is dropped', () => {
    expect(isolationRules(['eth1', 'eth0'], [2222, 22])).toEqual([
      ['-i', 'eth1', '-p', 'tcp', '-m', 'tcp', '--dport', '22', ...C, '-j', 'ACCEPT'],
      ['-i', 'eth1', '-p', 'tcp', '-m', 'tcp', '--dport', '2222', ...C, '-j', 'ACCEPT'],
      ['-i', 'eth0', '-p', 'tcp', '-m', 'tcp', '--dport', '22', ...C, '-j', 'ACCEPT'],
      ['-i', 'eth0', '-p', 'tcp', '-m', 'tcp', '--dport', '2222', ...C, '-j', 'ACCEPT'],
      ['-i', 'eth1', ...C, '-j', 'DROP'],
      ['-i', 'eth0', ...C, '-j', 'DROP'],
    ]);
  });

  it('one interface named twice is cut once', () => {
    expect(isolationRules(['eth0', 'eth0'], [22])).toHaveLength(2);
  });

  it('refuses loopback, odd interface names, no port, a bad port', () => {
    expect(() => isolationRules(['lo'], [22])).toThrow(/bad interface/);
    expect(() => isolationRules(['eth0 -j ACCEPT'], [22])).toThrow(/bad interface/);
    expect(() => isolationRules(['-eth0'], [22])).toThrow(/bad interface/);
    expect(() => isolationRules([], [22])).toThrow(/no interface/);
    expect(() => isolationRules(['eth0'], [])).toThrow(/no SSH port/);
    expect(() => isolationRules(['eth0'], [70000])).toThrow(/bad port/);
  });
});

describe('iptables commands', () => {
  const rules = isolationRules(['ens3'], [22]);

  it('inserts rule n at position n of -t raw PREROUTING', () => {
    expect(isolateCmds(rules).map(formatCmd)).toEqual([
      'iptables --wait=10 -t raw -I PREROUTING 1 -i ens3 -p tcp -m tcp --dport 22 -m comment --comment cluster-cli-ha -j ACCEPT',
      'iptables --wait=10 -t raw -I PREROUTING 2 -i ens3 -m comment --comment cluster-cli-ha -j DROP',
    ]);
    expect(isolateCmds(rules).every((c) => !c.readOnly)).toBe(true);
  });

  it('deletes exactly the rule it is given', () => {
    expect(deleteRule(rules[1] as HaRule).argv).toEqual([
      'iptables',
      '--wait=10',
      '-t',
      'raw',
      '-D',
      'PREROUTING',
      '-i',
      'ens3',
      ...C,
      '-j',
      'DROP',
    ]);
  });

  it('lists the raw PREROUTING chain read-only', () => {
    expect(listRawPrerouting()).toMatchObject({
      argv: ['iptables', '--wait=10', '-t', 'raw', '-S', 'PREROUTING'],
      readOnly: true,
    });
  });

  it('route lookup, docker unit state and restart', () => {
    expect(routeTo('10.0.0.2')).toMatchObject({
      argv: ['ip', '-o', 'route', 'get', '10.0.0.2'],
      readOnly: true,
    });
    expect(dockerUnitState().readOnly).toBe(true);
    expect(dockerRestart().argv).toEqual(['systemctl', 'restart', 'docker']);
  });
});

describe('parseHaRules', () => {
  it('finds only cluster-cli-ha rules, quoted or not, ready to delete', () => {
    const text = [
      '-P PREROUTING ACCEPT',
      '-A PREROUTING -i eth0 -p tcp -m tcp --dport 22 -m comment --comment cluster-cli-ha -j ACCEPT',
      '-A PREROUTING -i eth0 -m comment --comment "cluster-cli-ha" -j DROP',
      '-A PREROUTING -i eth0 -m comment --comment "cluster-cli-ha-other" -j DROP',
      '-A PREROUTING -m comment --comment "kube proxy cluster-cli-ha" -j NOTRACK',
      '-A PREROUTING -i docker0 -j NOTRACK',
      '',
    ].join('\n');
    expect(parseHaRules(text)).toEqual([
      ['-i', 'eth0', '-p', 'tcp', '-m', 'tcp', '--dport', '22', ...C, '-j', 'ACCEPT'],
      ['-i', 'eth0', ...C, '-j', 'DROP'],
    ]);
    expect(parseHaRules('-P PREROUTING ACCEPT\n')).toEqual([]);
  });

  it('what isolateCmds inserts, printed back by iptables -S, parses to the same rules', () => {
    const rules = isolationRules(['eth1'], [22, 2222]);
    const saved = isolateCmds(rules)
      .map((c) => c.argv.slice(7).join(' '))
      .map((r) => `-A PREROUTING ${r}`)
      .join('\n');
    expect(parseHaRules(saved)).toEqual(rules);
  });
});

describe('parseRouteDev / parseUnitActive', () => {
  it('reads dev of ip -o route get', () => {
    expect(parseRouteDev('10.0.0.2 dev eth1 src 10.0.0.1 uid 0 \\    cache ')).toBe('eth1');
    expect(parseRouteDev('1.1.1.1 via 203.0.113.1 dev ens3 src 203.0.113.11 uid 0')).toBe('ens3');
    expect(parseRouteDev('10.0.0.2 dev veth0@if12 src 10.0.0.1')).toBe('veth0');
    expect(parseRouteDev('local 10.0.0.1 dev lo table local src 10.0.0.1')).toBeUndefined();
    expect(parseRouteDev('')).toBeUndefined();
  });

  it('active only when systemctl says so', () => {
    expect(parseUnitActive('active\n')).toBe(true);
    expect(parseUnitActive('inactive\n')).toBe(false);
    expect(parseUnitActive('no-systemd\n')).toBe(false);
    expect(parseUnitActive('')).toBe(false);
  });
});

/**
 * The dead-man switch for real: its script runs under sh with a fake
 * `iptables` on PATH that logs each call and holds a rule table in a file
 * (-D succeeds while a copy of the rule is left). A real kernel firewall is
 * the lab's job.
 */
describe('dead-man switch (sh, fake iptables)', () => {
  function sandbox(copies: number) {
    const dir = mkdtempSync(join(tmpdir(), 'ha-deadman-'));
    const table = join(dir, 'table');
    const calls = join(dir, 'calls');
    writeFileSync(
      table,
      `${'-i eth0 -m comment --comment cluster-cli-ha -j DROP\n'.repeat(copies)}`,
    );
    writeFileSync(calls, '');
    const fake = join(dir, 'iptables');
    writeFileSync(
      fake,
      `#!/bin/sh
echo "$*" >> "${calls}"
[ "$4" = "-D" ] || exit 0
shift 5
rule="$*"
if grep -qxF -- "$rule" "${table}"; then
  awk -v r="$rule" 'BEGIN{d=0} { if (!d && $0 == r) { d=1; next } print }' "${table}" > "${table}.new"
  mv "${table}.new" "${table}"
  exit 0
fi
exit 1
`,
    );
    chmodSync(fake, 0o755);
    const env = { ...process.env, PATH: `${dir}:${process.env.PATH}` };
    const run = (argv: readonly string[]) =>
      execFileSync(argv[0] as string, argv.slice(1) as string[], { env, encoding: 'utf8' });
    return { dir, table, calls, pidfile: join(dir, 'deadman.pid'), run };
  }
  const rules = [['-i', 'eth0', '-m', 'comment', '--comment', HA_COMMENT, '-j', 'DROP']];
  const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean);

  it('after its delay it deletes every copy of the rules, then removes its pid file', async () => {
    const s = sandbox(2);
    const started = Date.now();
    s.run(deadManStart(rules, 1, s.pidfile).argv);
    // it returns at once, detached, with its pid recorded
    expect(Date.now() - started).toBeLessThan(900);
    expect(existsSync(s.pidfile)).toBe(true);
    expect(lines(s.table)).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 2500));
    expect(lines(s.table)).toHaveLength(0);
    expect(lines(s.calls).filter((l) => l.includes(' -D PREROUTING -i eth0'))).toHaveLength(3);
    expect(existsSync(s.pidfile)).toBe(false);
  });

  it('stopped in time, it deletes nothing', async () => {
    const s = sandbox(1);
    s.run(deadManStart(rules, 1, s.pidfile).argv);
    const pid = Number(readFileSync(s.pidfile, 'utf8'));
    expect(pid).toBeGreaterThan(1);
    s.run(deadManStop(s.pidfile).argv);
    expect(existsSync(s.pidfile)).toBe(false);
    await new Promise((r) => setTimeout(r, 2000));
    expect(lines(s.table)).toHaveLength(1);
    expect(lines(s.calls)).toEqual([]);
  });

  it('a stale pid file of another process kills nothing', () => {
    const s = sandbox(0);
    writeFileSync(s.pidfile, `${process.pid}\n`);
    s.run(deadManStop(s.pidfile).argv);
    expect(existsSync(s.pidfile)).toBe(false); // and this test process is still alive to check it
  });

  it('defaults to the pid file under /run', () => {
    expect(deadManStop().argv.at(-1)).toBe(DEADMAN_PIDFILE);
    expect(deadManStart(rules, 50).argv.slice(-3)).toEqual([
      DEADMAN_PIDFILE,
      '50',
      '-i eth0 -m comment --comment cluster-cli-ha -j DROP',
    ]);
  });

  it('refuses a rule word with a space (the switch splits rules on spaces)', () => {
    expect(() => deadManStart([['-i', 'eth 0']], 10)).toThrow(/space/);
    expect(() => deadManStart(rules, 0)).toThrow(/bad delay/);
  });
});
