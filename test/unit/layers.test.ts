import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Dependencies point down: core knows no transport, ui knows no command, and
 * only the layers made for them touch ssh2, execa, dockerode, prompts or listr2.
 */
const SRC = new URL('../../src/', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every `from '…'` / `import('…')` of a file: relative ones resolved to src/<layer>/…, packages as named. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\()\s*'([^']+)'/g)].map((m) => m[1] as string);
  return specs.map((s) =>
    s.startsWith('.') ? relative(SRC, join(file, '..', s)).replace(/\.js$/, '') : s,
  );
}

const layerOf = (path: string) => path.split('/')[0];
const all = files(SRC).map((f) => ({ file: relative(SRC, f), deps: imports(f) }));

describe('layers', () => {
  it('src/core imports only src/core and node built-ins', () => {
    const bad = all
      .filter((f) => layerOf(f.file) === 'core')
      .flatMap((f) =>
        f.deps
          .filter((d) => !d.startsWith('node:') && layerOf(d) !== 'core')
          .map((d) => `${f.file} -> ${d}`),
      );
    expect(bad).toEqual([]);
  });

  it('src/ui never imports src/cli', () => {
    const bad = all
      .filter((f) => layerOf(f.file) === 'ui')
      .flatMap((f) => f.deps.filter((d) => layerOf(d) === 'cli').map((d) => `${f.file} -> ${d}`));
    expect(bad).toEqual([]);
  });

  it('transports and prompts stay in their layers', () => {
    const allowed: Record<string, string[]> = {
      ssh2: ['remote'],
      execa: ['remote'],
      dockerode: ['remote'],
      '@inquirer/prompts': ['cli'],
      listr2: ['ui'],
    };
    const bad = all.flatMap((f) =>
      f.deps
        .filter((d) => d in allowed && !allowed[d]?.includes(layerOf(f.file) ?? ''))
        .map((d) => `${f.file} -> ${d}`),
    );
    expect(bad).toEqual([]);
  });

  it('nothing below src/cli imports src/cli', () => {
    const bad = all
      .filter((f) => layerOf(f.file) !== 'cli')
      .flatMap((f) => f.deps.filter((d) => layerOf(d) === 'cli').map((d) => `${f.file} -> ${d}`));
    expect(bad).toEqual([]);
  });
});
