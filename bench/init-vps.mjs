// `cluster-cli init` on a fresh VPS (scripts/lab's vps host: its own Debian 12
// root, systemd, no Docker, packages only through the lab's apt proxy), per
// step, Docker install included. No registry serves the lab images, so a
// user's path is: init (installs Docker, deploys, stops at once: no images) →
// images push (from lab1's daemon, as from a laptop) → init (converges) →
// init (changes nothing). Each round starts from a fresh host; round 1 warms
// the apt proxy's cache, the figures are the medians of the later rounds.
// Needs root (the lab). Writes bench/results/init-vps.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const labDir = process.env.CLUSTER_LAB_DIR ?? '/var/tmp/cluster-cli-lab';
const cacheDir = process.env.CLUSTER_LAB_CACHE ?? '/var/cache/cluster-cli-lab';
const rounds = Number(process.env.ROUNDS ?? 4);
const sh = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

sh('npx', ['tsc', '-p', 'tsconfig.build.json']);
sh('scripts/lab', ['up', '--hosts', '1']);
const lab = JSON.parse(readFileSync(join(labDir, 'lab.json'), 'utf8'));

function cli(args, env = {}) {
  const t = performance.now();
  const r = spawnSync(process.execPath, ['bin/cluster-cli.js', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true', ...env },
  });
  return { ...r, wallMs: Math.round(performance.now() - t) };
}

/** Per-step times from the plain progress lines: `[host] <title>: done in 6.1s`. */
function stepTimes(stdout) {
  const out = {};
  for (const m of stdout.matchAll(/\[[^\]]+\] (.+): done in ([\d.]+)s/g))
    out[m[1]] = Math.round(Number(m[2]) * 1000);
  return out;
}

function round() {
  sh('scripts/lab', ['vps', 'down']);
  let t = performance.now();
  sh('scripts/lab', ['vps', 'up', '1']);
  const hostUpMs = Math.round(performance.now() - t);
  const vps = JSON.parse(readFileSync(join(cacheDir, 'vps/hosts.json'), 'utf8'));
  const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-bench-vps-'));
  const cfg = join(dir, 'cluster.yaml');
  copyFileSync(join(root, 'test/fixtures/lab.cluster.yaml'), cfg);
  const ssh = ['--identity', vps.sshKey, '--known-hosts', vps.knownHosts];
  const init = (extra) =>
    cli([
      'init',
      '--host',
      `root@${vps.hosts[0].address}`,
      ...ssh,
      '--domain',
      'vps1.lab.test',
      '--email',
      'ops@lab.test',
      '--yes',
      '-c',
      cfg,
      ...extra,
    ]);
  const first = init([]);
  if (first.status !== 1 || !first.stderr.includes('images push'))
    throw new Error(
      `first init: expected the missing-image stop, got ${first.status}: ${first.stderr}`,
    );
  t = performance.now();
  const push = cli(['images', 'push', '--from', 'local', '--yes', ...ssh, '-c', cfg], {
    DOCKER_HOST: `unix://${lab.hosts[0].dockerSocket}`,
  });
  if (push.status !== 0) throw new Error(`images push failed: ${push.stderr}`);
  const second = init(['--json']);
  if (second.status !== 0) throw new Error(`second init failed: ${second.stderr}`);
  const third = init(['--json']);
  if (third.status !== 0) throw new Error(`third init failed: ${third.stderr}`);
  const s2 = JSON.parse(second.stdout);
  const s3 = JSON.parse(third.stdout);
  return {
    hostUpMs,
    firstInit: { wallMs: first.wallMs, stepsMs: stepTimes(first.stdout) },
    imagesPush: { wallMs: push.wallMs },
    secondInit: { wallMs: second.wallMs, stepsMs: s2.timingsMs, changes: s2.changed.length },
    rerun: { wallMs: third.wallMs, changes: s3.changed.length },
    totalWallMs: first.wallMs + push.wallMs + second.wallMs,
  };
}

const all = [];
for (let i = 0; i < rounds; i++) all.push(round());
sh('scripts/lab', ['vps', 'down']);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const warm = all.length > 1 ? all.slice(1) : all;
const installTitle = Object.keys(warm[0].firstInit.stepsMs).find((k) =>
  k.startsWith('Install Docker'),
);
const result = {
  date: new Date().toISOString(),
  rounds: all.length,
  note: 'medians over the rounds after the first (warm apt proxy); each round a fresh vps host',
  median: {
    hostUpMs: median(warm.map((r) => r.hostUpMs)),
    dockerInstallMs: median(warm.map((r) => r.firstInit.stepsMs[installTitle])),
    firstInitWallMs: median(warm.map((r) => r.firstInit.wallMs)),
    imagesPushWallMs: median(warm.map((r) => r.imagesPush.wallMs)),
    secondInitWallMs: median(warm.map((r) => r.secondInit.wallMs)),
    convergenceMs: median(warm.map((r) => r.secondInit.stepsMs.convergence)),
    rerunWallMs: median(warm.map((r) => r.rerun.wallMs)),
    totalWallMs: median(warm.map((r) => r.totalWallMs)),
  },
  rounds_: all,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/init-vps.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result.median, null, 2));
