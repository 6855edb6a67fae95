import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dockerOf,
  type Lab,
  type LabHost,
  labCli,
  labHost,
  ROOT,
  readLab,
  runCli,
  wipe,
} from './lab.js';

/**
 * `firewall apply` on a real two-node cluster (lab1 manager, lab2 worker),
 * seen from outside its set (this machine on the bridge, and lab3, a lab host
 * that is not a member) and from inside (lab2): the swarm ports are closed to
 * strangers and open between members, SSH and 80 stay open, the overlay still
 * carries traffic between the nodes, and a port a service publishes is
 * unreachable until cluster.yaml declares it. The lab hosts have no systemd:
 * the rules are loaded, the reboot unit is not (firewall status says so).
 */

let lab: Lab;
let h: LabHost[];
let d: Docker[];
let cfg: string;
let cli: ReturnType<typeof labCli>['cli'];
let ok: ReturnType<typeof labCli>['ok'];

/** Does a TCP connection to addr:port open from this machine (10.77.0.1)? */
function opensFromHere(addr: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: addr, port, timeout: 2500 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

/** …from inside a lab host's network namespace. */
function opensFrom(from: LabHost, addr: string, port: number): Promise<boolean> {
  return new Promise((resolve) =>
    execFile(
      'ip',
      [
        'netns',
        'exec',
        from.netns,
        'timeout',
        '3',
        'bash',
        '-c',
        `exec 3<>/dev/tcp/${addr}/${port}`,
      ],
      (err) => resolve(!err),
    ),
  );
}

/** doctor --json's checks as id → verdict. */
const verdicts = (doc: { checks: { id: string; verdict: string }[] }) =>
  Object.fromEntries(doc.checks.map((c) => [c.id, c.verdict]));

const docker = (n: number, ...args: string[]) =>
  execFileSync('docker', ['-H', `unix://${h[n - 1]?.dockerSocket}`, ...args], {
    encoding: 'utf8',
  }).trim();

/** The files firewall apply saves for reboots: on this machine's shared filesystem in the lab. */
function removeSavedFiles(): void {
  for (const f of [
    '/usr/local/lib/cluster-cli/firewall.rules',
    '/usr/local/lib/cluster-cli/firewall6.rules',
    '/usr/local/lib/cluster-cli/firewall-apply',
    '/etc/systemd/system/cluster-cli-firewall.service',
  ])
    rmSync(f, { force: true });
}

beforeAll(async () => {
  lab = readLab();
  h = [1, 2, 3].map((n) => labHost(lab, `lab${n}`));
  d = h.map(dockerOf);
  for (const n of [1, 2, 3]) wipe(`lab${n}`);
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-firewall-'));
  cfg = join(dir, 'cluster.yaml');
  copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, cfg);
  ({ cli, ok } = labCli(lab, () => cfg));
  await ok([
    'init',
    '--host',
    `root@${h[0]?.address}`,
    '--domain',
    'app.lab.test',
    '--email',
    'ops@lab.test',
    '--yes',
  ]);
  await ok(['node', 'join', `root@${h[1]?.address},worker`, '--yes']);
}, 600_000);

afterAll(() => {
  // wipe takes cluster-cli's chains out of the hosts' namespaces
  for (const n of [1, 2, 3]) wipe(`lab${n}`);
  removeSavedFiles();
});

describe('firewall on a two-node cluster', () => {
  it('before: the swarm port answers anyone (the probe can see an open port)', async () => {
    expect(await opensFrom(h[2] as LabHost, h[0]?.address as string, 2377)).toBe(true);
    const st = await cli(['firewall', 'status', '--json']);
    expect(st.code).toBe(1);
    // doctor on the real cluster: one manager and no firewall are warnings; the rest holds
    const dr = await cli(['doctor', '--json']);
    expect(dr.code, dr.stdout).toBe(1);
    const v = verdicts(JSON.parse(dr.stdout));
    expect(Object.values(v)).not.toContain('fail');
    expect(v).toMatchObject({
      quorum: 'warn',
      firewall: 'warn',
      'clock:lab1': 'ok',
      'clock:lab2': 'ok',
      'ports:lab1': 'ok',
      'ports:lab2': 'ok',
      engines: 'ok',
      'stack-objects': 'ok',
      'stale-configs': 'ok',
      'memory:lab1': 'ok',
      'memory:lab2': 'ok',
    });
  });

  it('apply: swarm ports closed to strangers, open between members; SSH and 80 open to all', async () => {
    const r = await ok(['firewall', 'apply', '--yes', '--json']);
    expect(JSON.parse(r.stdout).failed).toEqual([]);
    const [a1, a2] = [h[0]?.address as string, h[1]?.address as string];
    const outsider = h[2] as LabHost;
    expect(await opensFromHere(a1, 2377)).toBe(false);
    expect(await opensFrom(outsider, a1, 2377)).toBe(false);
    expect(await opensFrom(outsider, a1, 7946)).toBe(false);
    expect(await opensFrom(outsider, a2, 7946)).toBe(false);
    expect(await opensFrom(h[1] as LabHost, a1, 2377)).toBe(true);
    expect(await opensFrom(h[0] as LabHost, a2, 7946)).toBe(true);
    for (const a of [a1, a2]) expect(await opensFromHere(a, 22)).toBe(true);
    expect(await opensFromHere(a1, 80)).toBe(true);
    expect(await opensFrom(outsider, a1, 80)).toBe(true);
    expect(readFileSync(cfg, 'utf8')).toMatch(/firewall:\n\s+enabled: true/);
    const st = await cli(['firewall', 'status', '--json']);
    expect(st.code, st.stdout).toBe(0);
    const dr = JSON.parse((await cli(['doctor', '--json'])).stdout);
    expect(verdicts(dr)).toMatchObject({
      'firewall:lab1': 'ok',
      'firewall:lab2': 'ok',
      'ports:lab1': 'ok',
      'ports:lab2': 'ok',
    });
    // a second apply changes nothing
    const again = JSON.parse((await ok(['firewall', 'apply', '--yes', '--json'])).stdout);
    expect(again.changed).toEqual([]);
  });

  it('context create: the docker CLI here reaches the cluster over SSH', async () => {
    // docker dials with the system's ssh: give it the lab's key and known_hosts
    // through an ssh on PATH that adds -F (the user's own ~/.ssh/config, in real use).
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-context-'));
    writeFileSync(
      join(dir, 'ssh_config'),
      `Host *\n  IdentityFile ${lab.sshKey}\n  UserKnownHostsFile ${lab.knownHosts}\n  StrictHostKeyChecking yes\n  BatchMode yes\n`,
    );
    mkdirSync(join(dir, 'bin'));
    writeFileSync(
      join(dir, 'bin', 'ssh'),
      `#!/bin/sh\nexec /usr/bin/ssh -F ${join(dir, 'ssh_config')} "$@"\n`,
      { mode: 0o755 },
    );
    const env = {
      HOME: dir,
      DOCKER_CONFIG: join(dir, 'docker'),
      PATH: `${join(dir, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    };
    const r = await runCli(['context', 'create', '--yes', '--json', '-c', cfg], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      name: 'platform',
      host: `ssh://root@${h[0]?.address}`,
      changed: true,
    });
    const ls = execFileSync(
      'docker',
      ['--context', 'platform', 'service', 'ls', '--format', '{{.Name}}'],
      {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      },
    );
    expect(ls.split('\n')).toEqual(expect.arrayContaining(['platform_app', 'platform_proxy']));
    const again = await runCli(['context', 'create', '--yes', '--json', '-c', cfg], { env });
    expect(JSON.parse(again.stdout).changed).toBe(false);
  });

  it('the overlay still carries traffic between the members; the nodes stay ready', async () => {
    docker(
      1,
      'service',
      'create',
      '--detach',
      '--name',
      'fwcheck',
      '--mode',
      'global',
      '--network',
      'platform-ingress',
      'cluster-lab/app:1',
    );
    try {
      let ip = '';
      let on2 = '';
      for (let i = 0; i < 60 && !(ip && on2); i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const c1 = (await d[0]?.listContainers({
          filters: { label: ['com.docker.swarm.service.name=fwcheck'] },
        })) as Docker.ContainerInfo[];
        const c2 = (await d[1]?.listContainers({
          filters: { label: ['com.docker.swarm.service.name=fwcheck'] },
        })) as Docker.ContainerInfo[];
        ip = c1[0]?.NetworkSettings.Networks['platform-ingress']?.IPAddress ?? '';
        on2 = c2[0]?.Id ?? '';
      }
      expect(ip).not.toBe('');
      // lab2's task reaches lab1's over the overlay: VXLAN (4789/udp) between the members passes
      const got = docker(2, 'exec', on2, 'ping', '-c', '2', '-W', '2', ip);
      expect(got).toMatch(/2 packets received/);
    } finally {
      docker(1, 'service', 'rm', 'fwcheck');
    }
    const nodes = JSON.parse((await ok(['node', 'ls', '--json'])).stdout) as { status: string }[];
    expect(nodes.map((n) => n.status)).toEqual(['ready', 'ready']);
  });

  it('a port a service publishes is closed until cluster.yaml declares it', async () => {
    docker(
      1,
      'service',
      'create',
      '--detach',
      '--name',
      'fwpub',
      '--constraint',
      'node.hostname == lab1',
      '--publish',
      'published=8088,target=80,mode=host',
      'cluster-lab/app:1',
    );
    try {
      const a1 = h[0]?.address as string;
      for (let i = 0; i < 60; i++) {
        if (
          docker(1, 'service', 'ps', '--format', '{{.CurrentState}}', 'fwpub').startsWith('Running')
        )
          break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      // the service answers on its own host, so a closed port is the firewall's doing
      expect(await opensFrom(h[0] as LabHost, a1, 8088)).toBe(true);
      expect(await opensFromHere(a1, 8088)).toBe(false);
      expect(await opensFrom(h[2] as LabHost, a1, 8088)).toBe(false);
      writeFileSync(
        cfg,
        readFileSync(cfg, 'utf8').replace(
          /firewall:\n\s+enabled: true\n/,
          'firewall:\n  enabled: true\n  allow:\n    - { port: 8088, proto: tcp } # the demo port\n',
        ),
      );
      await ok(['firewall', 'apply', '--yes']);
      expect(await opensFromHere(a1, 8088)).toBe(true);
      expect(await opensFrom(h[2] as LabHost, a1, 8088)).toBe(true);
      expect(readFileSync(cfg, 'utf8')).toContain('# the demo port');
    } finally {
      docker(1, 'service', 'rm', 'fwpub');
    }
  });

  it('node join with the firewall on: the members let the new node in first, then it gets the rules too', async () => {
    const [a1, a2, a3] = h.map((x) => x.address);
    const lab3 = h[2] as LabHost;
    expect(await opensFrom(lab3, a1 as string, 2377)).toBe(false);
    const dry = JSON.parse(
      (await ok(['node', 'join', `root@${a3},worker`, '--dry-run', '--json'])).stdout,
    ) as { plan: { steps: { id: string; action: string }[] } };
    const ids = dry.plan.steps.filter((x) => x.action === 'change').map((x) => x.id);
    const at = (id: string) => ids.indexOf(id);
    // lab1 and lab2 open to lab3 before it joins; lab3 gets its rules once it has joined
    expect(at('firewall-rules-lab1')).toBeGreaterThanOrEqual(0);
    expect(at('firewall-rules-lab2')).toBeGreaterThanOrEqual(0);
    const joinStep = ids.findIndex((id) => id.startsWith('join'));
    expect(joinStep).toBeGreaterThan(at('firewall-rules-lab1'));
    expect(at('firewall-rules-lab3')).toBeGreaterThan(joinStep);
    expect(await opensFrom(lab3, a1 as string, 2377)).toBe(false); // a dry run changes nothing

    const r = await ok(['node', 'join', `root@${a3},worker`, '--yes', '--json']);
    expect(JSON.parse(r.stdout).overlay?.problems ?? []).toEqual([]);
    expect(await opensFrom(lab3, a1 as string, 2377)).toBe(true);
    expect(await opensFrom(lab3, a2 as string, 7946)).toBe(true);
    expect(await opensFrom(h[0] as LabHost, a3 as string, 7946)).toBe(true);
    // lab3's own rules: members in, strangers (this machine) out
    expect(await opensFromHere(a3 as string, 7946)).toBe(false);
    expect(await opensFromHere(a3 as string, 22)).toBe(true); // (a worker runs no proxy: nothing on 80)
    const st = await cli(['firewall', 'status', '--json']);
    expect(st.code, st.stdout).toBe(0);
    expect((JSON.parse(st.stdout).nodes as { node: string }[]).map((n) => n.node).sort()).toEqual([
      'lab1',
      'lab2',
      'lab3',
    ]);
  });

  it('a node removed from the cluster is shut out of the swarm ports on the others, by node remove itself', async () => {
    const r = await ok(['node', 'remove', 'lab2', '--yes', '--json']);
    expect(JSON.parse(r.stdout).notes.join('\n')).not.toContain('firewall apply');
    expect(await opensFrom(h[1] as LabHost, h[0]?.address as string, 2377)).toBe(false);
    expect(await opensFrom(h[1] as LabHost, h[2]?.address as string, 7946)).toBe(false);
    expect(await opensFromHere(h[0]?.address as string, 80)).toBe(true);
    const st = await cli(['firewall', 'status', '--json']);
    expect(st.code, st.stdout).toBe(0);
  });

  it("firewall remove takes cluster-cli's rules off every node; the swarm port answers anyone again", async () => {
    const [a1, a3] = [h[0]?.address as string, h[2]?.address as string];
    const outsider = h[1] as LabHost; // removed above
    const r = JSON.parse((await ok(['firewall', 'remove', '--yes', '--json'])).stdout);
    expect(r.failed).toEqual([]);
    expect(r.enabled).toBe(false);
    expect(await opensFrom(outsider, a1, 2377)).toBe(true);
    expect(await opensFrom(outsider, a3, 7946)).toBe(true);
    expect(readFileSync(cfg, 'utf8')).toMatch(/firewall:\n\s+enabled: false/);
    expect(readFileSync(cfg, 'utf8')).toContain('# the demo port');
    for (const n of [1, 3])
      expect(
        execFileSync('ip', ['netns', 'exec', `clab-lab${n}`, 'iptables-save'], {
          encoding: 'utf8',
        }),
      ).not.toContain('CLUSTER-CLI');
    const st = await cli(['firewall', 'status', '--json']);
    expect(st.code).toBe(1);
    expect((JSON.parse(st.stdout).nodes as { state: string }[]).map((n) => n.state)).toEqual([
      'absent',
      'absent',
    ]);
    // the cluster still works, and a second remove finds nothing to take off
    const nodes = JSON.parse((await ok(['node', 'ls', '--json'])).stdout) as { status: string }[];
    expect(nodes.map((n) => n.status)).toEqual(['ready', 'ready']);
    const again = JSON.parse((await ok(['firewall', 'remove', '--yes', '--json'])).stdout);
    expect(again.changed).toEqual([]);
  });
});
