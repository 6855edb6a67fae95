import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  type CliResult,
  dockerOf,
  LAB_DIR,
  type Lab,
  type LabHost,
  labHost,
  ROOT,
  readLab,
  runCli,
  samplePs,
  wipe,
} from './lab.js';

/**
 * Five lab hosts become one cluster, for real: `init` on lab1, then one
 * `node join` of lab2 + lab3 (managers, lab3 over a sudo user) and lab4 +
 * lab5 (workers, lab5 labelled db=primary). Everything is checked through the
 * hosts' own Docker APIs; failures are made with iptables inside one host's
 * namespace, or by killing one host's SSH connection.
 */

const DOMAIN = 'app.lab.test';
const EMAIL = 'ops@lab.test';

let lab: Lab;
let h: LabHost[];
let d: Docker[];

function workDir(): { dir: string; cfg: string } {
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-multi-'));
  copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, join(dir, 'cluster.yaml'));
  return { dir, cfg: join(dir, 'cluster.yaml') };
}

const ssh = () => ['--identity', lab.sshKey, '--known-hosts', lab.knownHosts];
const target = (n: number, user = 'root') => `${user}@${h[n - 1]?.address}`;

async function initOn(cfg: string): Promise<void> {
  const r = await runCli([
    'init',
    '--host',
    target(1),
    '--domain',
    DOMAIN,
    '--email',
    EMAIL,
    ...ssh(),
    '--yes',
    '--json',
    '-c',
    cfg,
  ]);
  if (r.code !== 0) throw new Error(`init failed (${r.code}):\n${r.stderr}`);
}

/** iptables inside one lab host's network namespace (its own firewall). */
function iptables(n: number, ...args: string[]): void {
  execFileSync('nsenter', [`--net=/run/netns/${h[n - 1]?.netns}`, 'iptables', ...args]);
}

async function swarmState(x: Docker): Promise<string> {
  return ((await x.info()) as { Swarm: { LocalNodeState: string } }).Swarm.LocalNodeState;
}

/** sshd's accepted logins per host since a byte offset of its log. */
function logins(n: number, since: number): number {
  const log = readFileSync(`${LAB_DIR}/lab${n}/sshd.log`, 'utf8').slice(since);
  return (log.match(/Accepted publickey/g) ?? []).length;
}
const logSize = (n: number) => statSync(`${LAB_DIR}/lab${n}/sshd.log`).size;

beforeAll(() => {
  lab = readLab();
  h = [1, 2, 3, 4, 5].map((n) => labHost(lab, `lab${n}`));
  d = h.map(dockerOf);
});

describe('a five-node cluster from one init and one node join', () => {
  let w: { dir: string; cfg: string };
  let join: CliResult;
  let ps: string[];
  let loginsPerHost: number[];

  beforeAll(async () => {
    wipe('all');
    w = workDir();
    await initOn(w.cfg);
  }, 300_000);

  it('refuses to join when a manager port is blocked, naming the pair and port, and joins nothing', async () => {
    iptables(
      1,
      '-I',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '2377',
      '-s',
      h[1]?.address ?? '',
      '-j',
      'DROP',
    );
    try {
      const before = readFileSync(w.cfg, 'utf8');
      const r = await runCli([
        'node',
        'join',
        `${target(2)},manager`,
        target(4),
        ...ssh(),
        '--yes',
        '-c',
        w.cfg,
      ]);
      expect(r.code).not.toBe(0);
      const lines = r.stderr.split('\n');
      expect(lines[0]).toBe('error: A swarm port is blocked; nothing was joined:');
      expect(lines[1]).toBe(
        `  lab2 -> lab1 (${h[0]?.address}) 2377/tcp swarm management: no answer (filtered?)`,
      );
      expect(await swarmState(d[1] as Docker)).toBe('inactive');
      expect(await swarmState(d[3] as Docker)).toBe('inactive');
      expect(readFileSync(w.cfg, 'utf8')).toBe(before);
    } finally {
      iptables(
        1,
        '-D',
        'INPUT',
        '-p',
        'tcp',
        '--dport',
        '2377',
        '-s',
        h[1]?.address ?? '',
        '-j',
        'DROP',
      );
    }
  });

  describe('the join', () => {
    beforeAll(async () => {
      const sizes = [1, 2, 3, 4, 5].map(logSize);
      const sampler = samplePs();
      join = await runCli([
        'node',
        'join',
        `${target(2)},manager`,
        `${target(3, lab.sudoUser)},manager`,
        `${target(4)},worker`,
        `${target(5)},worker,db=primary`,
        ...ssh(),
        '--force',
        '--yes',
        '--json',
        '-c',
        w.cfg,
      ]);
      ps = await sampler.stop();
      loginsPerHost = [1, 2, 3, 4, 5].map((n) => logins(n, sizes[n - 1] ?? 0));
      if (join.code !== 0) throw new Error(`node join failed (${join.code}):\n${join.stderr}`);
    }, 600_000);

    it('reports every host joined and the overlay passing between every pair', () => {
      const doc = JSON.parse(join.stdout);
      expect(
        doc.hosts.map((x: { node: string; status: string; role: string }) => [
          x.node,
          x.role,
          x.status,
        ]),
      ).toEqual([
        ['lab2', 'manager', 'joined'],
        ['lab3', 'manager', 'joined'],
        ['lab4', 'worker', 'joined'],
        ['lab5', 'worker', 'joined'],
      ]);
      expect(doc.overlay.pairs).toHaveLength(10);
      expect(doc.overlay.problems).toEqual([]);
      expect(doc.quorum).toEqual({ managers: 3, tolerates: 1, evenWarning: false });
    });

    it('has three reachable managers with one leader, the labels and the workers', async () => {
      const nodes = await (d[0] as Docker).listNodes();
      const byName = Object.fromEntries(nodes.map((n) => [n.Description?.Hostname, n]));
      expect(Object.keys(byName).sort()).toEqual(['lab1', 'lab2', 'lab3', 'lab4', 'lab5']);
      const managers = nodes.filter((n) => n.Spec?.Role === 'manager');
      expect(managers.map((n) => n.Description?.Hostname).sort()).toEqual(['lab1', 'lab2', 'lab3']);
      expect(managers.every((n) => n.ManagerStatus?.Reachability === 'reachable')).toBe(true);
      expect(managers.filter((n) => n.ManagerStatus?.Leader)).toHaveLength(1);
      expect(nodes.every((n) => n.Status?.State === 'ready')).toBe(true);
      expect(byName.lab5?.Spec?.Labels).toEqual({ db: 'primary' });
      expect(byName.lab4?.Spec?.Role).toBe('worker');
    });

    it('runs PostgreSQL and Redis on the db=primary worker and the proxy only on managers', async () => {
      const nodes = await (d[0] as Docker).listNodes();
      const name = new Map(nodes.map((n) => [n.ID, n.Description?.Hostname]));
      const where = async (svc: string) =>
        (
          await (d[0] as Docker).listTasks({
            filters: { service: [svc], 'desired-state': ['running'] },
          })
        )
          .filter((t) => t.Status?.State === 'running')
          .map((t) => name.get(t.NodeID ?? ''))
          .sort();
      expect(await where('platform_postgres')).toEqual(['lab5']);
      expect(await where('platform_redis')).toEqual(['lab5']);
      expect(await where('platform_proxy')).toEqual(['lab1', 'lab2', 'lab3']);
    });

    it('never shows a join token in any argv on any host, the output or cluster.yaml', async () => {
      const swarm = (await (d[0] as Docker).swarmInspect()) as {
        JoinTokens: { Worker: string; Manager: string };
      };
      const tokens = [swarm.JoinTokens.Worker, swarm.JoinTokens.Manager];
      // the sampler did see the joins' processes, so an argv token would have been caught
      expect(ps.some((l) => l.includes('docker system dial-stdio'))).toBe(true);
      for (const t of tokens) {
        expect(t).toMatch(/^SWMTKN-1-/);
        expect(ps.filter((l) => l.includes(t))).toEqual([]);
        expect(join.stdout + join.stderr).not.toContain(t);
        expect(readFileSync(w.cfg, 'utf8')).not.toContain(t);
      }
    });

    it('opens one SSH connection per host', () => {
      // lab1: the manager; lab2..lab5: the targets
      expect(loginsPerHost).toEqual([1, 1, 1, 1, 1]);
    });

    it('records the hosts in cluster.yaml and keeps its comments', () => {
      const text = readFileSync(w.cfg, 'utf8');
      expect(text).toContain('# A cluster.yaml preset for the lab');
      expect(text).toContain('# busybox: the overlay check after a join');
      const cfg = parse(text);
      expect(
        cfg.hosts.map((x: { name: string; role?: string; user: string }) => [
          x.name,
          x.role ?? 'manager',
          x.user,
        ]),
      ).toEqual([
        ['lab1', 'manager', 'root'],
        ['lab2', 'manager', 'root'],
        ['lab3', 'manager', lab.sudoUser],
        ['lab4', 'worker', 'root'],
        ['lab5', 'worker', 'root'],
      ]);
      expect(cfg.hosts[4].labels).toEqual({ db: 'primary' });
    });

    it('a second node join changes nothing', async () => {
      const before = await (d[0] as Docker).listServices();
      const file = readFileSync(w.cfg, 'utf8');
      const r = await runCli([
        'node',
        'join',
        `${target(2)},manager`,
        `${target(3, lab.sudoUser)},manager`,
        `${target(4)},worker`,
        `${target(5)},worker,db=primary`,
        ...ssh(),
        '--yes',
        '-c',
        w.cfg,
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/node join: 4 host\(s\) into platform: 0 to change/);
      const after = await (d[0] as Docker).listServices();
      expect(after.map((s) => [s.ID, s.Version?.Index])).toEqual(
        before.map((s) => [s.ID, s.Version?.Index]),
      );
      expect(readFileSync(w.cfg, 'utf8')).toBe(file);
    });

    it('--rotate-token replaces both join tokens', async () => {
      const tokens = async () =>
        (
          (await (d[0] as Docker).swarmInspect()) as {
            JoinTokens: { Worker: string; Manager: string };
          }
        ).JoinTokens;
      const before = await tokens();
      const r = await runCli([
        'node',
        'join',
        `${target(4)},worker`,
        ...ssh(),
        '--rotate-token',
        '--yes',
        '-c',
        w.cfg,
      ]);
      expect(r.code, r.stderr).toBe(0);
      const after = await tokens();
      expect(after.Worker).not.toBe(before.Worker);
      expect(after.Manager).not.toBe(before.Manager);
      expect(r.stdout + r.stderr).not.toContain(after.Worker);
    });
  });

  it('names the pair when 4789/udp is blocked between two nodes', async () => {
    const rule = ['INPUT', '-p', 'udp', '--dport', '4789', '-s', h[4]?.address ?? '', '-j', 'DROP'];
    iptables(4, '-I', ...rule);
    try {
      const r = await runCli([
        'node',
        'join',
        `${target(4)},worker`,
        ...ssh(),
        '--yes',
        '-c',
        w.cfg,
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        'lab4 <-> lab5: no overlay traffic between them (4789/udp VXLAN blocked, or 7946/udp gossip)',
      );
      expect(r.stderr).not.toMatch(/lab[123] <-> lab[1235]:/);
    } finally {
      iptables(4, '-D', ...rule);
    }
  });

  it('node ls shows a manager whose dockerd stopped as down, and the cluster still answers', async () => {
    const pid = Number(readFileSync(`${LAB_DIR}/lab2/dockerd.pid`, 'utf8').trim());
    process.kill(pid, 'SIGTERM'); // a clean stop: dockerd takes its containerd with it
    try {
      let row: { name: string; status: string; manager?: string } | undefined;
      for (let i = 0; i < 40; i++) {
        const r = await runCli(['node', 'ls', ...ssh(), '--json', '-c', w.cfg]);
        expect(r.code, r.stderr).toBe(0);
        row = JSON.parse(r.stdout).find((x: { name: string }) => x.name === 'lab2');
        if (row?.status === 'down') break;
        await new Promise((res) => setTimeout(res, 1000));
      }
      expect(row?.status).toBe('down');
      // the other managers keep quorum: the swarm still takes reads and writes
      const svcs = await (d[0] as Docker).listServices();
      expect(svcs.length).toBe(4);
      await (d[0] as Docker).getNode('lab4').inspect();
    } finally {
      // a swarm manager's dockerd takes ~15 s to stop; start it again only then
      for (let i = 0; i < 120 && existsSync(`/proc/${pid}`); i++)
        await new Promise((res) => setTimeout(res, 500));
      execFileSync(`${ROOT}scripts/lab`, ['up', '--hosts', '5'], { stdio: 'inherit' });
    }
  });

  it('apply from a file that adds a label and demotes a manager converges; a second apply plans nothing', async () => {
    const text = readFileSync(w.cfg, 'utf8');
    const cfg = parse(text);
    expect(cfg.hosts[2].name).toBe('lab3');
    writeFileSync(
      w.cfg,
      text
        .replace(/(name: lab3\n(?:.*\n)*?\s+role: )manager/, '$1worker # demoted by apply')
        .replace(/(name: lab4\n(?:.*\n)*?\s+advertiseAddr: \S+\n)/, '$1    labels: { zone: b }\n'),
    );
    const r = await runCli(['apply', ...ssh(), '--yes', '--json', '-c', w.cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).changed).toEqual([
      'Labels of lab4: set zone=b',
      'Demote lab3 to worker',
    ]);
    const nodes = await (d[0] as Docker).listNodes();
    const byName = Object.fromEntries(nodes.map((n) => [n.Description?.Hostname, n]));
    expect(byName.lab3?.Spec?.Role).toBe('worker');
    expect(byName.lab4?.Spec?.Labels).toEqual({ zone: 'b' });
    const again = await runCli(['apply', ...ssh(), '--yes', '--json', '-c', w.cfg]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).changed).toEqual([]);
    expect(readFileSync(w.cfg, 'utf8')).toContain('role: worker # demoted by apply');
  });

  it('node label, drain, activate, promote and remove change the swarm and keep cluster.yaml in step', async () => {
    const run = async (...args: string[]) => {
      const r = await runCli(['node', ...args, ...ssh(), '--yes', '--json', '-c', w.cfg]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r;
    };
    const nodeOf = async (name: string) =>
      (await (d[0] as Docker).listNodes()).find((n) => n.Description?.Hostname === name);
    const hostOf = (name: string) =>
      parse(readFileSync(w.cfg, 'utf8')).hosts.find((x: { name: string }) => x.name === name);

    await run('label', 'lab4', 'tier=batch', '--remove', 'zone');
    expect((await nodeOf('lab4'))?.Spec?.Labels).toEqual({ tier: 'batch' });
    expect(hostOf('lab4').labels).toEqual({ tier: 'batch' });
    const again = await run('label', 'lab4', 'tier=batch', '--remove', 'zone', '--dry-run');
    const steps = JSON.parse(again.stdout).plan.steps as { action: string }[];
    expect(steps.filter((x) => x.action === 'change')).toEqual([]);

    await run('drain', 'lab4');
    expect((await nodeOf('lab4'))?.Spec?.Availability).toBe('drain');
    await run('activate', 'lab4');
    expect((await nodeOf('lab4'))?.Spec?.Availability).toBe('active');

    await run('promote', 'lab3');
    expect((await nodeOf('lab3'))?.Spec?.Role).toBe('manager');
    expect(hostOf('lab3').role).toBe('manager');

    await run('remove', 'lab4');
    expect(await nodeOf('lab4')).toBeUndefined();
    expect(await swarmState(d[3] as Docker)).toBe('inactive');
    expect(hostOf('lab4')).toBeUndefined();
    // the file still keeps the user's comments
    expect(readFileSync(w.cfg, 'utf8')).toContain('# busybox: the overlay check after a join');
  });
});

describe('a node whose SSH connection dies mid-join', () => {
  let w: { dir: string; cfg: string };
  beforeAll(async () => {
    wipe('all');
    w = workDir();
    await initOn(w.cfg);
  }, 300_000);

  /** Kill lab3's SSH session processes (not its listener) the moment its join starts. */
  function killOnJoin(): ChildProcess {
    const ns = h[2]?.netns;
    const script = `
      listener=$(cat ${LAB_DIR}/lab3/sshd.pid)
      nsino=$(stat -L -c %i /run/netns/${ns})
      for i in $(seq 1 2000); do
        for p in $(pgrep -f 'docker system dial-stdio'); do
          [ "$(stat -L -c %i /proc/$p/ns/net 2>/dev/null)" = "$nsino" ] || continue
          for s in $(pgrep -x sshd); do
            [ "$s" = "$listener" ] && continue
            [ "$(stat -L -c %i /proc/$s/ns/net 2>/dev/null)" = "$nsino" ] && kill -9 "$s"
          done
          exit 0
        done
        sleep 0.01
      done
      exit 1`;
    return spawn('bash', ['-c', script], { stdio: 'ignore' });
  }

  it('the others finish, the report names the failed host, and a re-run completes it', async () => {
    const killer = killOnJoin();
    const killed = new Promise<number | null>((res) => killer.on('exit', res));
    const r = await runCli([
      'node',
      'join',
      target(2),
      target(3),
      target(4),
      ...ssh(),
      '--yes',
      '--json',
      '-c',
      w.cfg,
    ]);
    expect(await killed).toBe(0);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    const status = Object.fromEntries(
      doc.hosts.map((x: { node: string; status: string }) => [x.node, x.status]),
    );
    expect(status).toEqual({ lab2: 'joined', lab3: 'failed', lab4: 'joined' });
    const failed = doc.hosts.find((x: { node: string }) => x.node === 'lab3');
    expect(failed.retry).toContain(`cluster-cli node join ${target(3)},worker`);
    expect(JSON.parse(r.stderr.trim().split('\n').at(-1) ?? '{}').error).toBe(
      `1 of 3 host(s) did not join: ${target(3)} (the others did).`,
    );
    expect(await swarmState(d[1] as Docker)).toBe('active');
    expect(await swarmState(d[3] as Docker)).toBe('active');
    // cluster.yaml lists only what joined
    expect(parse(readFileSync(w.cfg, 'utf8')).hosts.map((x: { name: string }) => x.name)).toEqual([
      'lab1',
      'lab2',
      'lab4',
    ]);

    const again = await runCli([
      'node',
      'join',
      target(3),
      ...ssh(),
      '--yes',
      '--json',
      '-c',
      w.cfg,
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(['joined', 'member']).toContain(JSON.parse(again.stdout).hosts[0].status);
    expect(await swarmState(d[2] as Docker)).toBe('active');
    expect((await (d[0] as Docker).listNodes()).map((n) => n.Description?.Hostname).sort()).toEqual(
      ['lab1', 'lab2', 'lab3', 'lab4'],
    );
    expect(parse(readFileSync(w.cfg, 'utf8')).hosts.map((x: { name: string }) => x.name)).toEqual([
      'lab1',
      'lab2',
      'lab4',
      'lab3',
    ]);
  });

  it.each([
    [
      'an unknown role',
      [`${'X'}`, '--role', 'boss'],
      "error: option '--role <role>' argument 'boss' is invalid. Allowed choices are manager, worker.",
    ],
    [
      'a label a=b=c',
      ['X', '--label', 'a=b=c'],
      'error: --label "a=b=c": bad value "b=c"; values are letters, digits, . _ - (one = only, between key and value)',
    ],
    [
      'a label key with spaces',
      ['X', '--label', 'my key=v'],
      'error: --label "my key=v": bad key "my key"; keys are lower-case letters, digits, . _ - (starting with a letter)',
    ],
    [
      'an unreachable host',
      ['root@10.77.0.1:1'],
      'error: Cannot reach root@10.77.0.1:1: Cannot connect to 10.77.0.1:1: connection refused. Nothing was changed.',
    ],
  ])('node join rejects %s with one clear line and changes nothing', async (_what, args, line) => {
    const before = readFileSync(w.cfg, 'utf8');
    const nodesBefore = (await (d[0] as Docker).listNodes()).length;
    const argv = args.map((a) => (a === 'X' ? `root@${h[4]?.address}` : a));
    const r = await runCli(['node', 'join', ...argv, ...ssh(), '--yes', '-c', w.cfg]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toBe(line);
    expect(await swarmState(d[4] as Docker)).toBe('inactive');
    expect((await (d[0] as Docker).listNodes()).length).toBe(nodesBefore);
    expect(readFileSync(w.cfg, 'utf8')).toBe(before);
  });

  it('a node that does not exist is one clear line and changes nothing', async () => {
    const before = readFileSync(w.cfg, 'utf8');
    const r = await runCli(['node', 'label', 'nosuchnode', 'a=b', ...ssh(), '--yes', '-c', w.cfg]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n')[0]).toMatch(/^error: no node "nosuchnode" in the swarm/);
    expect(readFileSync(w.cfg, 'utf8')).toBe(before);
  });
});

afterAll(() => {
  wipe('all');
});
