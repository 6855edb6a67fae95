// `cluster-cli doctor` (and `status`) on a 5-node lab cluster: 3 managers,
// 2 workers. doctor connects to every node at once and reads what its checks
// need (quorum, clocks, resources, node-to-node ports, engines, stack
// objects, firewall); measured as wall time of the whole command, several
// runs, plus the SSH connections it opens per host. Needs root (the lab).
// Writes bench/results/doctor.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const labDir = process.env.CLUSTER_LAB_DIR ?? '/var/tmp/cluster-cli-lab';
const runs = Number(process.env.RUNS ?? 5);
const sh = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
sh('scripts/lab', ['up', '--hosts', '5']);
sh('scripts/lab', ['wipe', 'all']);
const lab = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8'));
const target = (n) => `root@${lab.hosts[n - 1].address}`;
const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-bench-doctor-'));
const cfg = join(dir, 'cluster.yaml');
copyFileSync(join(root, 'test/fixtures/lab.cluster.yaml'), cfg);

function cli(args) {
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
      '-c',
      cfg,
    ],
    { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } },
  );
  return { ...r, wallMs: Math.round(performance.now() - t) };
}
const must = (r, what) => {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}`);
  return r;
};

must(
  cli([
    'init',
    '--host',
    target(1),
    '--domain',
    'app.lab.test',
    '--email',
    'ops@lab.test',
    '--yes',
  ]),
  'init',
);
must(
  cli([
    'node',
    'join',
    `${target(2)},manager`,
    `${target(3)},manager`,
    `${target(4)},worker`,
    `${target(5)},worker`,
    '--yes',
  ]),
  'node join',
);

/** "Accepted publickey" lines in each lab host's sshd log: connections opened. */
const logins = () =>
  lab.hosts.map((h) => {
    try {
      return (
        readFileSync(join(labDir, h.name, 'sshd.log'), 'utf8').match(/Accepted publickey/g) ?? []
      ).length;
    } catch {
      return Number.NaN;
    }
  });

const doctor = [];
const status = [];
let checks = [];
let connections = [];
for (let i = 0; i < runs; i++) {
  const before = logins();
  const d = cli(['doctor', '--json']);
  const after = logins();
  connections = after.map((n, j) => n - before[j]);
  // exit 0 (all ok) or 1 (a warning, e.g. the lab firewall not applied) are both a finished doctor
  if (d.status !== 0 && d.status !== 1) throw new Error(`doctor failed (${d.status}): ${d.stderr}`);
  const doc = JSON.parse(d.stdout);
  checks = doc.checks.map((c) => `${c.id ?? c.title}: ${c.verdict}`);
  doctor.push(d.wallMs);
  status.push(must(cli(['status', '--json']), 'status').wallMs);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const result = {
  date: new Date().toISOString(),
  nodes: 5,
  runs,
  doctor: { medianMs: median(doctor), allMs: doctor, sshConnectionsPerHost: connections, checks },
  status: { medianMs: median(status), allMs: status },
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/doctor.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(
  JSON.stringify({ doctor: result.doctor.medianMs, status: result.status.medianMs }, null, 2),
);
