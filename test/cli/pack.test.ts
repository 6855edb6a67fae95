import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * What a user gets from the registry: `npm pack` the project as it is now,
 * install that tarball into an empty project, run the installed binary. Done in
 * copies under the temp dir (npm ci, build and pack there), so this checkout's
 * node_modules and dist/ are never touched. Needs the npm registry.
 */
const root = new URL('../..', import.meta.url).pathname;
const skip = process.env.CLUSTER_CLI_SKIP_PACK === '1';
const work = mkdtempSync(join(tmpdir(), 'cluster-cli-pack-'));

// npx/npm run hand their own settings to child processes (npm_config_prefix,
// npm_config_local_prefix, npm_package_*): a nested npm must find its project itself.
const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([k]) => !(/^npm_/i.test(k) && k.toLowerCase() !== 'npm_config_registry') && k !== 'INIT_CWD',
  ),
);

function run(cmd: string, args: readonly string[], cwd: string): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}:\n${r.stderr}${r.stdout}`,
    );
  }
  return r;
}

/** Not copied: installed, built or written by runs. */
const generated = new Set(['node_modules', 'dist', '.git', 'test-results', 'coverage', '.lab']);

describe('the npm package', () => {
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('packs bin, dist and schema only; installed from the tarball, `cluster-cli init --help` works', (ctx) => {
    ctx.skip(skip, 'CLUSTER_CLI_SKIP_PACK=1: the npm pack → install test is switched off');
    const src = join(work, 'src');
    cpSync(root, src, {
      recursive: true,
      filter: (from) => !generated.has(relative(root, from).split('/')[0] ?? ''),
    });
    const flags = ['--no-audit', '--no-fund', '--prefer-offline'];
    // the lock must install as it is: this is the fresh clone's `npm ci`
    run('npm', ['ci', ...flags, '--ignore-scripts'], src);
    const out = join(work, 'out');
    mkdirSync(out);
    // prepack: a clean dist/ from this source
    const packed = run('npm', ['pack', '--json', '--pack-destination', out], src).stdout;
    const [info] = JSON.parse(packed.slice(packed.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    if (!info) throw new Error(`npm pack printed no package: ${packed}`);
    const files = info.files.map((f) => f.path);

    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'bin/cluster-cli.js',
        'dist/cli/entry.js',
        'dist/cli/completion.js',
        // editors fetch it from the package: the first line of every cluster.yaml points at it
        'schema/cluster.schema.json',
      ]),
    );
    const unexpected = files.filter(
      (f) =>
        !['package.json', 'README.md', 'bin/cluster-cli.js', 'schema/cluster.schema.json'].includes(
          f,
        ) && !/^dist\/.+\.js$/.test(f),
    );
    expect(unexpected).toEqual([]);
    expect(files.filter((f) => /^(src|test|scripts|bench)\//.test(f))).toEqual([]);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), '{ "name": "pack-check", "private": true }\n');
    run('npm', ['install', ...flags, join(out, info.filename)], app);
    const bin = join(app, 'node_modules/.bin/cluster-cli');

    const help = run(bin, ['init', '--help'], app);
    expect(help.stdout).toContain('Usage: cluster-cli init [options]');
    expect(help.stdout).toContain('--accept-new-host-key');
    expect(help.stderr).toBe('');
    expect(run(bin, ['--version'], app).stdout.trim()).toBe('0.1.0');
    // a lazily loaded command module, from the installed dist/
    expect(run(bin, ['completion', 'bash'], app).stdout).toContain(
      'complete -o default -F _cluster_cli cluster-cli',
    );
  }, 60_000);
});
