// Forming a 5-node cluster on the lab, cluster-cli against the raw script a
// person would write, in the same run. Needs root (the lab). Writes
// bench/results/join.json with the measured ratios:
// - joins: cluster-cli's join wave for 4 hosts vs `ssh … docker swarm join`
//   for the same 4 hosts in parallel (target <= 1.15x);
// - formation: `init` + `node join` (preflight, port checks, overlay check,
//   stack deploy and convergence included) vs a raw script doing swarm init,
//   networks, secrets, the same stack, waiting for it, and the joins
//   (target <= 2x);
// - SSH connections opened per host by `node join`, counted in each sshd's log.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const labDir = process.env.CLUSTER_LAB_DIR ?? '/var/tmp/cluster-cli-lab';
const sh = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
sh('scripts/lab', ['up', '--hosts', '5']);
const lab = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8'));
const addr = (n) => lab.hosts[n - 1].address;
const sshArgs = [
  '-i',
  lab.sshKey,
  '-o',
  `UserKnownHostsFile=${lab.knownHosts}`,
  '-o',
  'BatchMode=yes',
];

/** One command on a lab host over plain ssh, as a raw script would. */
function ssh(n, args, input) {
  const r = spawnSync('ssh', [...sshArgs, `root@${addr(n)}`, ...args], {
    encoding: 'utf8',
    input,
  });
  if (r.status !== 0) throw new Error(`ssh lab${n} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
function sshAsync(n, args) {
  return new Promise((resolve, reject) => {
    const p = spawn('ssh', [...sshArgs, `root@${addr(n)}`, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`lab${n}: ${err}`))));
  });
}

function cli(args, dir) {
  const t = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      'bin/cluster-cli.js',
      ...args,
      '--identity',
      lab.sshKey,
      '--known-hosts',
      lab.knownHosts,
      '--yes',
      '--json',
      '--config',
      join(dir, 'cluster.yaml'),
    ],
    { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } },
  );
  if (r.status !== 0) throw new Error(`cluster-cli ${args[0]} failed: ${r.stderr}`);
  return { wallMs: performance.now() - t, ...JSON.parse(r.stdout) };
}

/** The raw formation script: what cluster-cli automates, by hand. */
async function rawFormation(dir, moveDb) {
  const t0 = performance.now();
  ssh(1, ['docker', 'swarm', 'init', '--advertise-addr', addr(1)]);
  for (const [n, subnet, internal] of [
    ['platform-ingress', '10.0.10.0/24', false],
    ['platform-app', '10.0.20.0/24', false],
    ['platform-data', '10.0.30.0/24', true],
  ]) {
    ssh(1, [
      'docker',
      'network',
      'create',
      '-d',
      'overlay',
      '--attachable',
      '--subnet',
      subnet,
      ...(internal ? ['--internal'] : []),
      n,
    ]);
  }
  for (const s of ['platform_postgres_password', 'platform_redis_password']) {
    ssh(1, ['docker', 'secret', 'create', s, '-'], 'raw-bench-password-0123456789');
  }
  // the same stack file and proxy config cluster-cli renders
  const out = join(dir, 'raw');
  spawnSync(
    process.execPath,
    [
      'bin/cluster-cli.js',
      'stack',
      'render',
      '-c',
      join(dir, 'cluster.yaml'),
      '-o',
      join(out, 'stack.yml'),
    ],
    { cwd: root },
  );
  const stack = readFileSync(join(out, 'stack.yml'), 'utf8');
  for (const m of stack.matchAll(/name: (platform_\w+_[0-9a-f]{12})$/gm)) {
    ssh(1, ['docker', 'config', 'create', m[1], '-'], readFileSync(join(out, m[1]), 'utf8'));
  }
  ssh(1, ['docker', 'stack', 'deploy', '--resolve-image', 'never', '-c', '-', 'platform'], stack);
  const token = ssh(1, ['docker', 'swarm', 'join-token', '-q', 'worker']).trim();
  const mtoken = ssh(1, ['docker', 'swarm', 'join-token', '-q', 'manager']).trim();
  const j0 = performance.now();
  await Promise.all([
    sshAsync(2, ['docker', 'swarm', 'join', '--token', mtoken, `${addr(1)}:2377`]),
    sshAsync(3, ['docker', 'swarm', 'join', '--token', mtoken, `${addr(1)}:2377`]),
    sshAsync(4, ['docker', 'swarm', 'join', '--token', token, `${addr(1)}:2377`]),
    sshAsync(5, ['docker', 'swarm', 'join', '--token', token, `${addr(1)}:2377`]),
  ]);
  const joinsMs = performance.now() - j0;
  ssh(5, ['true']);
  if (moveDb) ssh(1, ['docker', 'node', 'update', '--label-add', 'db=primary', 'lab5']);
  // wait until every service runs its replicas
  for (;;) {
    const ls = ssh(1, ['docker', 'service', 'ls', '--format', '{{.Replicas}}']);
    const rows = ls.trim().split('\n');
    if (rows.length === 4 && rows.every((r) => /^(\d+)\/\1\b/.test(r))) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  return { totalMs: performance.now() - t0, joinsMs };
}

const logSize = (n) => statSync(join(labDir, `lab${n}`, 'sshd.log')).size;
const logins = (n, from) =>
  (
    readFileSync(join(labDir, `lab${n}`, 'sshd.log'), 'utf8')
      .slice(from)
      .match(/Accepted publickey/g) ?? []
  ).length;

const runs = Number(process.env.BENCH_RUNS ?? 3);

/**
 * One formation each way. moveDb: lab5 becomes db=primary. The raw script
 * labels it before PostgreSQL/Redis ever start; cluster-cli's init has already
 * started them on lab1, so its join moves them (and waits for that update,
 * Swarm's 10 s monitor window included). Without it both keep them on lab1.
 */
async function once(moveDb) {
  sh('scripts/lab', ['wipe', 'all']);
  const rawDir = mkdtempSync(join(tmpdir(), 'cluster-cli-bench-raw-'));
  copyFileSync(join(root, 'test/fixtures/lab.cluster.yaml'), join(rawDir, 'cluster.yaml'));
  // stack render needs a complete file: the same answers init would write
  writeFileSync(
    join(rawDir, 'cluster.yaml'),
    `${readFileSync(join(rawDir, 'cluster.yaml'), 'utf8')}domain: app.lab.test\nemail: ops@lab.test\nhosts:\n  - { name: lab1, address: ${addr(1)} }\n  - { name: lab5, address: ${addr(5)}, role: worker${moveDb ? ', labels: { db: primary }' : ''} }\n`,
  );
  const raw = await rawFormation(rawDir, moveDb);

  sh('scripts/lab', ['wipe', 'all']);
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-bench-'));
  copyFileSync(join(root, 'test/fixtures/lab.cluster.yaml'), join(dir, 'cluster.yaml'));
  const t0 = performance.now();
  const init = cli(
    ['init', '--host', `root@${addr(1)}`, '--domain', 'app.lab.test', '--email', 'ops@lab.test'],
    dir,
  );
  const sizes = [1, 2, 3, 4, 5].map(logSize);
  const joinRun = cli(
    [
      'node',
      'join',
      `root@${addr(2)},manager`,
      `${lab.sudoUser}@${addr(3)},manager`,
      `root@${addr(4)},worker`,
      `root@${addr(5)},worker${moveDb ? ',db=primary' : ''}`,
      ...(moveDb ? ['--force'] : []),
    ],
    dir,
  );
  const formationMs = performance.now() - t0;
  return {
    raw: { formationMs: Math.round(raw.totalMs), joinsMs: Math.round(raw.joinsMs) },
    cli: {
      formationMs: Math.round(formationMs),
      initMs: Math.round(init.wallMs),
      initTimingsMs: init.timingsMs,
      joinWallMs: Math.round(joinRun.wallMs),
      joinTimingsMs: joinRun.timingsMs,
    },
    sshLoginsPerHost: Object.fromEntries(
      [1, 2, 3, 4, 5].map((n) => [`lab${n}`, logins(n, sizes[n - 1])]),
    ),
  };
}

const scenarios = { databaseStaysOnLab1: [], databaseMovesToLab5: [] };
for (let i = 0; i < runs; i++) {
  scenarios.databaseStaysOnLab1.push(await once(false));
  scenarios.databaseMovesToLab5.push(await once(true));
}
sh('scripts/lab', ['wipe', 'all']);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function ratios(samples) {
  const joinWave = median(samples.map((s) => s.cli.joinTimingsMs.joinWave));
  const rawJoins = median(samples.map((s) => s.raw.joinsMs));
  const cliFormation = median(samples.map((s) => s.cli.formationMs));
  const rawFormationMs = median(samples.map((s) => s.raw.formationMs));
  return {
    joins: {
      cliJoinWaveMs: joinWave,
      rawParallelJoinsMs: rawJoins,
      ratio: +(joinWave / rawJoins).toFixed(2),
      target: 1.15,
    },
    formation: {
      cliMs: cliFormation,
      rawMs: rawFormationMs,
      ratio: +(cliFormation / rawFormationMs).toFixed(2),
      target: 2,
    },
  };
}
const result = {
  date: new Date().toISOString(),
  runs,
  ratios: Object.fromEntries(Object.entries(scenarios).map(([k, v]) => [k, ratios(v)])),
  sshConnectionsPerHostDuringJoin: Object.values(scenarios)
    .flat()
    .map((s) => s.sshLoginsPerHost),
  scenarios,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/join.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result.ratios, null, 2));
