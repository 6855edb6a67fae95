import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerOf, type Lab, type LabHost, labHost, ROOT, readLab, runCli, wipe } from './lab.js';

/**
 * A node only a bastion can reach: lab5's sshd answers lab4 alone (a reject
 * rule in lab5's own network namespace), so from this machine it is reached
 * through lab4 or not at all. `init --jump` sets it up through the bastion,
 * with the bastion's host key checked like any other.
 */

let lab: Lab;
let node: LabHost;
let bastion: LabHost;
let cfg: string;
const RULE = (b: LabHost, n: LabHost) => [
  'INPUT',
  '-p',
  'tcp',
  '--dport',
  String(n.sshPort),
  '!',
  '-s',
  b.address,
  '-j',
  'REJECT',
  '--reject-with',
  'tcp-reset',
];
const iptables = (op: '-I' | '-D') =>
  execFileSync('ip', ['netns', 'exec', node.netns, 'iptables', op, ...RULE(bastion, node)]);

const ssh = (knownHosts = lab.knownHosts) => [
  '--identity',
  lab.sshKey,
  '--known-hosts',
  knownHosts,
  '-c',
  cfg,
];
const init = (extra: string[], knownHosts?: string) =>
  runCli([
    'init',
    '--host',
    `root@${node.address}`,
    '--domain',
    'app.lab.test',
    '--email',
    'ops@lab.test',
    ...extra,
    ...ssh(knownHosts),
  ]);

beforeAll(() => {
  lab = readLab();
  node = labHost(lab, 'lab5');
  bastion = labHost(lab, 'lab4');
  wipe('lab5');
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-jump-'));
  cfg = join(dir, 'cluster.yaml');
  copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, cfg);
  iptables('-I');
});

afterAll(() => {
  iptables('-D');
  wipe('lab5');
});

describe('a node behind a bastion', () => {
  it('is unreachable directly: one line naming it, nothing changed', async () => {
    const before = readFileSync(cfg, 'utf8');
    const r = await init(['--yes']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toMatch(
      new RegExp(`Cannot connect to ${node.address.replaceAll('.', '\\.')}:22: connection refused`),
    );
    expect(readFileSync(cfg, 'utf8')).toBe(before);
  });

  it("the bastion's host key is checked like a node's: unknown is refused, naming the bastion", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-jump-kh-'));
    const onlyNode = join(dir, 'known_hosts');
    writeFileSync(
      onlyNode,
      readFileSync(lab.knownHosts, 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith(`${bastion.address} `))
        .join('\n'),
    );
    const r = await init(['--jump', `root@${bastion.address}`, '--yes'], onlyNode);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/host key for bastion/i);
    expect(r.stderr).toMatch(/--accept-new-host-key/);
    expect(
      await dockerOf(node)
        .swarmInspect()
        .catch(() => undefined),
    ).toBeUndefined();
  });

  it('init --jump sets it up through the bastion; node ls --jump reads it back', async () => {
    const r = await init(['--jump', `root@${bastion.address}`, '--yes', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const services = await dockerOf(node).listServices();
    expect(services.map((s) => s.Spec?.Name).sort()).toEqual(
      expect.arrayContaining(['platform_app', 'platform_postgres', 'platform_proxy']),
    );
    const ls = await runCli([
      'node',
      'ls',
      '--json',
      '--jump',
      `root@${bastion.address}`,
      ...ssh(),
    ]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(ls.stdout))).toContain('lab5');
    // and still not without it
    const direct = await runCli(['node', 'ls', ...ssh()]);
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toMatch(/connection refused/);
    // status: down (exit 2) from here without the bastion, healthy through it
    const blind = await runCli(['status', '--json', ...ssh()]);
    expect(blind.code).toBe(2);
    const doc = JSON.parse(blind.stdout);
    expect(doc.verdict).toBe('down');
    expect(doc.findings[0].text).toMatch(/No manager of .* could be reached/);
    const through = await runCli([
      'status',
      '--json',
      '--jump',
      `root@${bastion.address}`,
      ...ssh(),
    ]);
    expect(through.code, through.stdout).toBe(0);
    expect(JSON.parse(through.stdout).verdict).toBe('healthy');
  });
});
