import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, labHost, ROOT, readLab, runCli } from './lab.js';

/**
 * `init` on a truly fresh VPS: scripts/lab's "vps" hosts have their own Debian
 * 12 root, systemd as PID 1, sshd, no Docker, and reach nothing but the apt
 * proxy on the lab bridge. So cluster-cli installs Debian's docker.io itself,
 * under systemd, as it would on a rented server. The images come from no
 * registry: they are copied with `images push` from lab1's daemon (the lab
 * image cache), as a user without a registry would from their laptop.
 */

const CACHE = process.env.CLUSTER_LAB_CACHE ?? '/var/cache/cluster-cli-lab';
const VPS_STATE = `${CACHE}/vps`;

interface VpsHost {
  name: string;
  address: string;
  number: number;
}
interface VpsLab {
  sshKey: string;
  knownHosts: string;
  sudoUser: string;
  hosts: VpsHost[];
}

let vps: VpsLab;
let imageSource: string;

const lab = (...args: string[]) =>
  execFileSync(`${ROOT}scripts/lab`, args, { stdio: 'inherit', timeout: 600_000 });

function host(name: string): VpsHost {
  const h = vps.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`vps host ${name} is not up`);
  return h;
}

/** A command in the guest as root, over SSH (the way a user would look). */
function guest(name: string, script: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      'ssh',
      [
        '-i',
        vps.sshKey,
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        `UserKnownHostsFile=${vps.knownHosts}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'LogLevel=ERROR',
        `root@${host(name).address}`,
        script,
      ],
      { timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          out: `${stdout}${stderr}`.trim(),
        }),
    );
  });
}

async function guestOk(name: string, script: string): Promise<string> {
  const r = await guest(name, script);
  if (r.code !== 0) throw new Error(`${name}: ${script} failed (${r.code}): ${r.out}`);
  return r.out;
}

/** PIDs (as this machine sees them) of the guest's processes whose comm is one of `names`. */
function guestPids(name: string, names: readonly string[]): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      if (!names.includes(comm)) continue;
      const cg = readFileSync(`/proc/${p}/cgroup`, 'utf8');
      if (cg.split('\n').some((l) => l.split(':')[2]?.startsWith(`/${name}/`))) pids.push(+p);
    } catch {
      // the process ended meanwhile
    }
  }
  return pids;
}

class Vps {
  readonly dir = mkdtempSync(join(tmpdir(), 'cluster-cli-vps-'));
  readonly config = join(this.dir, 'cluster.yaml');
  constructor(
    readonly name: string,
    readonly user = 'root',
  ) {
    copyFileSync(`${ROOT}test/fixtures/lab.cluster.yaml`, this.config);
  }
  private ssh() {
    return ['--identity', vps.sshKey, '--known-hosts', vps.knownHosts];
  }
  init(extra: string[] = []): Promise<CliResult> {
    return runCli([
      'init',
      '--host',
      `${this.user}@${host(this.name).address}`,
      ...this.ssh(),
      '--domain',
      `${this.name}.lab.test`,
      '--email',
      'ops@lab.test',
      '--yes',
      '--config',
      this.config,
      ...extra,
    ]);
  }
  /** Copy the stack's images from the lab's image source (no registry here). */
  async pushImages(): Promise<void> {
    const r = await runCli(
      ['images', 'push', '--from', 'local', '--yes', ...this.ssh(), '-c', this.config],
      {
        env: { DOCKER_HOST: imageSource },
      },
    );
    if (r.code !== 0) throw new Error(`images push failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
  }
  /**
   * The first init ends when the deploy finds no images on the host: at once,
   * naming the push to run (not after the deploy timeout). Then push, init
   * again: the stack runs. Returns the failed first result for checks.
   */
  async initToRunning(first: CliResult): Promise<void> {
    expect(first.code, `${first.stderr}\n${first.stdout}`).toBe(1);
    expect(first.stderr).toMatch(/The image of platform_\w+ is not on /);
    expect(first.stderr).toContain('cluster-cli images push --yes');
    await this.pushImages();
    const again = await this.init(['--json']);
    if (again.code !== 0)
      throw new Error(`second init failed (${again.code}):\n${again.stderr}\n${again.stdout}`);
  }
}

/** The state a user checks on the VPS afterwards: Docker under systemd, the swarm, the stack. */
async function expectRunningStack(name: string): Promise<void> {
  expect(await guestOk(name, 'cat /proc/1/comm')).toBe('systemd');
  expect(await guestOk(name, 'systemctl is-enabled docker; systemctl is-active docker')).toBe(
    'enabled\nactive',
  );
  expect(await guestOk(name, `dpkg-query -W -f='\${Status}' docker.io`)).toBe(
    'install ok installed',
  );
  expect(await guestOk(name, 'dpkg --audit; ls -A /var/lib/dpkg/updates')).toBe('');
  expect(await guestOk(name, "docker info --format '{{.Swarm.LocalNodeState}}'")).toBe('active');
  const services = await guestOk(
    name,
    "docker service ls --filter label=com.docker.stack.namespace=platform --format '{{.Name}} {{.Replicas}}'",
  );
  expect(services.split('\n').sort()).toEqual([
    'platform_app 1/1',
    'platform_postgres 1/1',
    'platform_proxy 1/1',
    'platform_redis 1/1',
  ]);
}

beforeAll(() => {
  // Fresh hosts every run: `vps up` copies the template again after a `vps down`.
  lab('vps', 'down');
  lab('vps', 'up', '1', '2', '3', '4');
  vps = JSON.parse(readFileSync(`${VPS_STATE}/hosts.json`, 'utf8')) as VpsLab;
  imageSource = `unix://${labHost(readLab(), 'lab1').dockerSocket}`;
}, 900_000);

afterAll(() => {
  if (process.env.CLUSTER_LAB_KEEP !== '1') lab('vps', 'down');
}, 300_000);

describe('init on a fresh VPS (systemd, no Docker, packages only through the apt proxy)', () => {
  it('the host starts without Docker and with no route beyond the lab bridge', async () => {
    expect(await guestOk('vps1', 'cat /proc/1/comm')).toBe('systemd');
    expect((await guest('vps1', 'command -v docker')).code).not.toBe(0);
    expect(await guestOk('vps1', 'ip route')).not.toMatch(/default/);
  });

  it('as root, with --firewall: installs docker.io under systemd, then the firewall; goes on to a running stack; a second run changes nothing', async () => {
    const v = new Vps('vps1');
    const first = await v.init(['--firewall']);
    expect(first.stdout).toContain('Install Docker (Debian GNU/Linux 12 (bookworm))');
    // the rules load once Docker (and with it iptables) is installed
    expect(first.stdout.indexOf('Load the firewall rules on vps1')).toBeGreaterThan(
      first.stdout.indexOf('Install Docker'),
    );
    await v.initToRunning(first);
    await expectRunningStack('vps1');
    // the firewall is on under systemd: its unit puts the rules back whenever Docker starts
    expect(
      await guestOk(
        'vps1',
        'systemctl is-enabled cluster-cli-firewall; systemctl is-active cluster-cli-firewall',
      ),
    ).toBe('enabled\nactive');
    expect(await guestOk('vps1', 'iptables -S INPUT; iptables -S DOCKER-USER')).toMatch(
      /-A INPUT -j CLUSTER-CLI-INPUT[\s\S]*-A DOCKER-USER -j CLUSTER-CLI-DOCKER/,
    );
    const addr = host('vps1').address;
    expect(await opensFromHere(addr, 2377)).toBe(false); // this machine is no member
    expect(await opensFromHere(addr, 22)).toBe(true);
    expect(await opensFromHere(addr, 80)).toBe(true);
    expect(readFileSync(v.config, 'utf8')).toMatch(/firewall:\n\s+enabled: true/);
    const third = await v.init(['--json']);
    expect(third.code, third.stderr).toBe(0);
    expect((JSON.parse(third.stdout) as { changed: string[] }).changed).toEqual([]);
  });

  it('as a sudo user, while unattended-upgrades holds the dpkg lock: waits (saying so), then installs', async () => {
    // What a new VPS does at first boot: another apt holds the lock for a while.
    await guestOk(
      'vps2',
      'systemd-run --unit=fake-upgrades sh -c \'apt-get update -qq && apt-get install -y -qq -o DPkg::Pre-Invoke::="sleep 20" ed\'',
    );
    for (let i = 0; i < 120; i++) {
      if ((await guest('vps2', 'pgrep -f "sleep 20"')).code === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const v = new Vps('vps2', vps.sudoUser);
    const first = await v.init();
    // The progress line names the lock and who holds it.
    expect(first.stdout).toMatch(
      /waiting for the package manager: \/var\/lib\/dpkg\/lock-frontend is held by (apt-get|sh|sleep) \(pid \d+\)/,
    );
    // The other apt finished its work, then ours ran.
    expect(await guestOk('vps2', `dpkg-query -W -f='\${Status}' ed`)).toBe('install ok installed');
    await v.initToRunning(first);
    await expectRunningStack('vps2');
    // Everything ran through sudo as the sudo user.
    expect(await guestOk('vps2', 'journalctl -q _COMM=sudo | grep -c "apt-get\\|sh -c"')).not.toBe(
      '0',
    );
  });

  it('the SSH connection drops during the Docker install: the re-run resumes and ends in the same state', async () => {
    const v = new Vps('vps3');
    const running = v.init();
    await untilInstalling('vps3');
    // Cut the CLI's connection: kill the guest's sshd session processes.
    for (const pid of guestPids('vps3', ['sshd'])) killIfSession(pid);
    const cut = await running;
    expect(cut.code).not.toBe(0);
    const again = await v.init();
    await v.initToRunning(again);
    await expectRunningStack('vps3');
  });

  it('apt and dpkg are killed mid-install (a reboot, the OOM killer): the re-run finishes the install first', async () => {
    const v = new Vps('vps4');
    const running = v.init();
    await untilInstalling('vps4');
    for (const pid of guestPids('vps4', ['sshd'])) killIfSession(pid);
    for (const pid of guestPids('vps4', ['apt-get', 'dpkg', 'sh', 'http'])) kill(pid);
    expect((await running).code).not.toBe(0);
    // The kill landed before the install was done: dpkg left packages half
    // done (dpkg --audit lists them), or docker.io is not installed yet (seen in
    // CI: dpkg between two packages). When it was cut inside a package, apt
    // refuses to run until `dpkg --configure -a`.
    const audit = await guestOk('vps4', 'dpkg --audit');
    const status = await guestOk(
      'vps4',
      `dpkg-query -W -f='\${Status}' docker.io 2>/dev/null || true`,
    );
    expect(audit !== '' || status !== 'install ok installed', `${audit} / ${status}`).toBe(true);
    const interrupted = (await guestOk('vps4', 'ls -A /var/lib/dpkg/updates')) !== '';
    const again = await v.init();
    if (interrupted) expect(again.stdout).toContain('finishing an interrupted package install');
    await v.initToRunning(again);
    await expectRunningStack('vps4');
  });
});

/**
 * Until dpkg is unpacking packages in the guest and has recorded a package
 * as half done (its journal in /var/lib/dpkg/updates is not empty): a kill
 * now leaves what `dpkg --audit` reports. apt also runs dpkg for a moment at
 * its start (--print-foreign-architectures): only the --unpack run counts.
 */
async function untilInstalling(name: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    for (const pid of guestPids(name, ['dpkg'])) {
      try {
        if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('--unpack'))
          continue;
        // the guest's own filesystem, seen through the process
        if (readdirSync(`/proc/${pid}/root/var/lib/dpkg/updates`).length > 0) return;
      } catch {
        // that dpkg ended meanwhile
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${name}: dpkg never started unpacking`);
}

/** Does a TCP connection to addr:port open from this machine (10.77.0.1)? */
function opensFromHere(addr: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: addr, port, timeout: 2500 });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** The per-connection sshd processes (`sshd: root@notty`), not the listener. */
function killIfSession(pid: number): void {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (/^sshd: \S+@/.test(args) || args.includes('[priv]')) kill(pid);
  } catch {
    // gone already
  }
}
