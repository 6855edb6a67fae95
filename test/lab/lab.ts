import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const LAB_DIR = process.env.CLUSTER_LAB_DIR ?? '/var/tmp/cluster-cli-lab';

export interface LabHost {
  name: string;
  address: string;
  sshPort: number;
  user: string;
  dockerSocket: string;
  netns: string;
}

/**
 * The lab's ACME CA: Debian's pebble, with pebble-challtestsrv as its DNS.
 * Challenges are really validated: every name resolves to lab1 (10.77.0.11)
 * unless an A record is set through `challtestsrv` (POST /add-a
 * {"host":"app.lab.test.","addresses":["10.77.0.12"]}, POST /clear-a {"host":…},
 * POST /set-default-ipv4 {"ip":…}); pebble then fetches the HTTP-01 token from
 * that address on port 80 (TLS-ALPN-01: 443). Authorizations are never reused.
 */
export interface LabAcme {
  /** ACME directory URL (https://10.77.0.1:14000/dir). */
  directory: string;
  /** PEM of the lab CA that signs pebble's listener: trust it to talk to `directory`. */
  caFile: string;
  /** Pebble's issuing root (PEM over HTTPS, same CA as `directory`); new at every pebble start. */
  rootsUrl: string;
  /** pebble-challtestsrv's management API (http://10.77.0.1:8055). */
  challtestsrv: string;
  /** pebble-challtestsrv's mock DNS server, "10.77.0.1:8053" (UDP and TCP). */
  dnsServer: string;
  /**
   * Pebble's log, append-only while the lab is up. A new order:
   * `Added order "<id>" to the db`; an issued certificate:
   * `Issued certificate serial <hex> for order <id>`; a failed validation:
   * `order <id> set INVALID by invalid authz <id>`.
   */
  log: string;
}

export interface Lab {
  sshKey: string;
  knownHosts: string;
  sudoUser: string;
  images: Record<'proxy' | 'app' | 'postgres' | 'redis', string>;
  acme: LabAcme;
  /** Debian's Swift with s3api on the bridge: a real S3 API (path-style). */
  s3: {
    endpoint: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    otherAccessKeyId: string;
    otherSecretAccessKey: string;
    state: string;
  };
  hosts: LabHost[];
}

export function readLab(): Lab {
  return JSON.parse(readFileSync(`${LAB_DIR}/lab.json`, 'utf8')) as Lab;
}

export function labHost(lab: Lab, name: string): LabHost {
  const h = lab.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`lab host ${name} is not up`);
  return h;
}

/** The host's own Docker API, straight on its socket: what the tests check against. */
export function dockerOf(host: LabHost): Docker {
  return new Docker({ socketPath: host.dockerSocket });
}

/** Make a lab host fresh again: leave the swarm, drop containers, volumes, networks. */
export function wipe(host: string): void {
  execFileSync(`${ROOT}scripts/lab`, ['wipe', host], { stdio: 'inherit' });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would (a separate process, no TTY, CI set); `stdin` is all it reads. */
export function runCli(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = execFile(
      process.execPath,
      [`${ROOT}bin/cluster-cli.js`, ...args],
      {
        cwd: opts.cwd ?? ROOT,
        env: { ...process.env, CI: 'true', ...opts.env },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 900_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    p.stdin?.end(opts.stdin ?? '');
  });
}

/**
 * The CLI against one lab cluster: the lab's SSH key and known_hosts, and
 * `cfg()` as its cluster.yaml. `ok` throws with both outputs unless it exits 0.
 */
export function labCli(lab: Lab, cfg: () => string) {
  const cli = (args: string[], stdin?: string) =>
    runCli([...args, '--identity', lab.sshKey, '--known-hosts', lab.knownHosts, '-c', cfg()], {
      ...(stdin === undefined ? {} : { stdin }),
    });
  const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
    const r = await cli(args, stdin);
    if (r.code !== 0)
      throw new Error(`${args.join(' ')} failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
    return r;
  };
  return { cli, ok };
}

/**
 * A cluster the way a user forms one: `init` on the first target, then one
 * `node join` of the others (each `user@host[,role][,k=v]`), with `ok` from labCli.
 */
export async function formCluster(
  ok: (args: string[]) => Promise<CliResult>,
  first: string,
  joins: readonly string[],
  o: { domain?: string; joinFlags?: readonly string[] } = {},
): Promise<void> {
  const domain = o.domain ?? 'app.lab.test';
  await ok(['init', '--host', first, '--domain', domain, '--email', 'ops@lab.test', '--yes']);
  if (joins.length) await ok(['node', 'join', ...joins, ...(o.joinFlags ?? []), '--yes']);
}

/**
 * Stop a lab host's dockerd: the node goes down with its tasks (sshd stays).
 * Returns the restart, which waits until the daemon has stopped (a swarm
 * manager's takes ~15 s) and starts it again with `scripts/lab up`.
 */
export function stopNode(n: number): () => Promise<void> {
  const pid = Number(readFileSync(`${LAB_DIR}/lab${n}/dockerd.pid`, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  return async () => {
    for (let i = 0; i < 120 && existsSync(`/proc/${pid}`); i++)
      await new Promise((res) => setTimeout(res, 500));
    execFileSync(`${ROOT}scripts/lab`, ['up', '--hosts', '5'], { stdio: 'inherit' });
  };
}

/** Runs a command inside a running container of a service and returns stdout. */
export async function execIn(docker: Docker, service: string, cmd: string[]): Promise<string> {
  const [c] = await docker.listContainers({
    filters: { label: [`com.docker.swarm.service.name=${service}`] },
  });
  if (!c) throw new Error(`no running container for ${service}`);
  const exec = await docker
    .getContainer(c.Id)
    .exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  const stderr: Buffer[] = [];
  const out = new PassThrough().on('data', (b: Buffer) => chunks.push(b));
  const err = new PassThrough().on('data', (b: Buffer) => stderr.push(b));
  await new Promise<void>((resolve, reject) => {
    docker.modem.demuxStream(stream, out, err);
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  if (info.ExitCode !== 0)
    throw new Error(
      `${cmd.join(' ')} in ${service} exited ${info.ExitCode}: ${Buffer.concat(stderr).toString()}`,
    );
  return Buffer.concat(chunks).toString();
}

/** `ps` of the whole machine (the lab hosts share its PID namespace), sampled until stopped. */
export function samplePs(): { stop: () => Promise<string[]> } {
  const seen = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const out = await new Promise<string>((res) =>
        execFile('ps', ['-eo', 'args='], { maxBuffer: 8 << 20 }, (_e, so) => res(so ?? '')),
      );
      for (const l of out.split('\n')) seen.add(l);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return [...seen];
    },
  };
}
