import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * The published CLI runs on plain Node's ESM loader, not vitest's: a named
 * import from a CommonJS package (ssh2) passes here but fails there. So build,
 * then load every module of dist/ and run the binary as a user would.
 */
const root = new URL('../..', import.meta.url).pathname;

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? jsFiles(join(dir, e.name))
      : e.name.endsWith('.js') && e.name !== 'entry.js'
        ? [join(dir, e.name)]
        : [],
  );
}

describe('the built package', () => {
  beforeAll(() => {
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], { cwd: root });
  }, 120_000);

  it('loads every module under plain Node', () => {
    const files = jsFiles(join(root, 'dist')).map((f) => `./${relative(root, f)}`);
    expect(files.length).toBeGreaterThan(20);
    const script = `for (const f of ${JSON.stringify(files)}) await import(f);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('bin/cluster-cli.js --version and --help work', () => {
    const v = spawnSync(process.execPath, ['bin/cluster-cli.js', '--version'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(v.stdout.trim()).toBe('0.1.0');
    const h = spawnSync(process.execPath, ['bin/cluster-cli.js', 'stack', 'render', '--help'], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('Print the stack YAML for the current cluster.yaml');
  });
});
