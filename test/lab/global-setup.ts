import { execFileSync } from 'node:child_process';

/**
 * Brings up the multi-host lab once for the lab project (idempotent: an
 * already running lab is reused) and builds the CLI the tests run. The lab is
 * taken down at the end unless CLUSTER_LAB_KEEP=1.
 */
export default function setup(): () => void {
  const root = new URL('../..', import.meta.url).pathname;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(`${root}scripts/lab`, ['up', '--hosts', '5'], { cwd: root, stdio: 'inherit' });
  return () => {
    if (process.env.CLUSTER_LAB_KEEP === '1') return;
    execFileSync(`${root}scripts/lab`, ['down'], { cwd: root, stdio: 'inherit' });
  };
}
