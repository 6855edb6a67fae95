import { execFileSync } from 'node:child_process';

/**
 * Brings up the multi-host lab once for the lab project (idempotent: an
 * already running lab is reused), builds the CLI the tests run and its image. The lab is
 * taken down at the end unless CLUSTER_LAB_KEEP=1.
 */
export default function setup(): () => void {
  const root = new URL('../..', import.meta.url).pathname;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  execFileSync(`${root}scripts/lab`, ['up', '--hosts', '5'], { cwd: root, stdio: 'inherit' });
  // cluster-cli's own image (the in-cluster agent), from this checkout, on every host.
  execFileSync(`${root}scripts/build-image`, [], { cwd: root, stdio: 'inherit' });
  execFileSync(`${root}scripts/lab`, ['load-image', `${root}.cache/cluster-cli-image.tar`], {
    cwd: root,
    stdio: 'inherit',
  });
  return () => {
    if (process.env.CLUSTER_LAB_KEEP === '1') return;
    execFileSync(`${root}scripts/lab`, ['down'], { cwd: root, stdio: 'inherit' });
  };
}
