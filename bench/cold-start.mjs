// Cold start of `cluster-cli --help` against plain `node -e 0`, as wall time of
// whole processes (median of N runs). Target from issue #2: under 150 ms.
// Writes bench/results/cold-start.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const runs = Number(process.env.RUNS ?? 30);

function time(args) {
  const samples = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'ignore' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
    if (i >= 3) samples.push(ms); // the first runs warm the file cache
  }
  samples.sort((a, b) => a - b);
  const q = (p) =>
    Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] * 10) / 10;
  return { median: q(0.5), p90: q(0.9), min: q(0), runs };
}

const result = {
  date: new Date().toISOString(),
  node: process.version,
  targetMs: 150,
  nodeBaseline: time(['-e', '0']),
  help: time(['bin/cluster-cli.js', '--help']),
  initHelp: time(['bin/cluster-cli.js', 'init', '--help']),
};
result.pass = result.help.median < result.targetMs && result.initHelp.median < result.targetMs;
mkdirSync(`${root}bench/results`, { recursive: true });
writeFileSync(`${root}bench/results/cold-start.json`, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
