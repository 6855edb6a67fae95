// `cluster-cli init` on a fresh lab host, broken down per step (preflight,
// swarm init, networks, secrets, deploy, convergence), plus a second run that
// must change nothing. Needs root (the lab). Writes bench/results/init.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const labDir = process.env.CLUSTER_LAB_DIR ?? '/var/tmp/cluster-cli-lab';
const sh = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
const t0 = performance.now();
sh('scripts/lab', ['up', '--hosts', '1']);
const labUpMs = Math.round(performance.now() - t0);
sh('scripts/lab', ['wipe', 'lab1']);
const lab = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8'));
const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-bench-'));
copyFileSync(join(root, 'test/fixtures/lab.cluster.yaml'), join(dir, 'cluster.yaml'));

function init() {
  const args = [
    'bin/cluster-cli.js',
    'init',
    '--host',
    `root@${lab.hosts[0].address}`,
    '--identity',
    lab.sshKey,
    '--known-hosts',
    lab.knownHosts,
    '--domain',
    'app.lab.test',
    '--email',
    'ops@lab.test',
    '--yes',
    '--json',
    '--config',
    join(dir, 'cluster.yaml'),
  ];
  const t = performance.now();
  const r = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true' },
  });
  if (r.status !== 0) throw new Error(`init failed: ${r.stderr}`);
  return { wallMs: Math.round(performance.now() - t), ...JSON.parse(r.stdout) };
}

const first = init();
const second = init();
const result = {
  date: new Date().toISOString(),
  labUpMs,
  first: { wallMs: first.wallMs, stepsMs: first.timingsMs, changes: first.changed.length },
  rerun: { wallMs: second.wallMs, stepsMs: second.timingsMs, changes: second.changed.length },
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/init.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
