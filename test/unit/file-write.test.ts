import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Cmd, fileWrite } from '../../src/core/cmd.js';

/** Runs a builder's command with this machine's sh, its stdin fed. */
function run(c: Cmd): Promise<number> {
  return new Promise((resolve, reject) => {
    const [bin, ...args] = c.argv;
    const p = spawn(bin as string, args, { stdio: ['pipe', 'ignore', 'ignore'] });
    p.on('error', reject);
    p.on('close', (code) => resolve(code ?? -1));
    p.stdin.end(typeof c.stdin === 'string' ? c.stdin : '');
  });
}

describe('fileWrite', () => {
  it('writes the file with its mode, the content on stdin only, the directory made', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-write-'));
    const path = join(dir, 'sub', 'script');
    const c = fileWrite(path, '#!/bin/sh\necho hi\n', '0755');
    expect(c.argv.slice(4)).toEqual([path, '0755']);
    expect(c.argv.join(' ')).not.toContain('echo hi');
    expect(await run(c)).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(statSync(path).mode & 0o777).toBe(0o755);
  });

  it('many writers of one path at once (the lab hosts share a filesystem): all succeed, one whole content wins, no temporary file left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-write-'));
    const path = join(dir, 'rules');
    const contents = Array.from({ length: 12 }, (_, i) => `writer ${i}\n`.repeat(2000));
    const codes = await Promise.all(contents.map((text) => run(fileWrite(path, text, '0644'))));
    expect(codes).toEqual(contents.map(() => 0));
    expect(contents).toContain(readFileSync(path, 'utf8'));
    expect(readdirSync(dir)).toEqual(['rules']);
  });

  it('a write that fails leaves the old file and no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cluster-cli-write-'));
    const path = join(dir, 'unit');
    expect(await run(fileWrite(path, 'old\n', '0644'))).toBe(0);
    expect(await run(fileWrite(path, 'new\n', 'not-a-mode'))).not.toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('old\n');
    expect(readdirSync(dir)).toEqual(['unit']);
  });
});
