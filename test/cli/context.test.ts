import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { testCtx } from '../helpers/ctx.js';

/**
 * `context create` with the real docker CLI: contexts are files under
 * DOCKER_CONFIG, so no daemon and no SSH are needed to check what it writes
 * (the lab's firewall test dials one over SSH).
 */

const dockerConfig = mkdtempSync(join(tmpdir(), 'cluster-cli-docker-config-'));
const saved = process.env.DOCKER_CONFIG;
beforeAll(() => {
  process.env.DOCKER_CONFIG = dockerConfig;
});
afterAll(() => {
  if (saved === undefined) delete process.env.DOCKER_CONFIG;
  else process.env.DOCKER_CONFIG = saved;
});

const endpoint = (name: string) =>
  execFileSync('docker', ['context', 'inspect', name, '--format', '{{.Endpoints.docker.Host}}'], {
    encoding: 'utf8',
    env: { ...process.env, DOCKER_CONFIG: dockerConfig },
  }).trim();

function cluster(address: string): string {
  const cwd = mkdtempSync(join(tmpdir(), 'cluster-cli-context-'));
  writeFileSync(
    join(cwd, 'cluster.yaml'),
    `name: shop # our cluster\ndomain: apps.example.com\nemail: ops@example.com\nhosts:\n  - name: node1\n    address: ${address}\n    user: ops\n    port: 2222\n`,
  );
  return cwd;
}

describe('cluster-cli context create', () => {
  it('creates a context for the first manager over SSH; a second run changes nothing', async () => {
    const { ctx, stdout } = testCtx({ cwd: cluster('203.0.113.11') });
    expect(await main(['context', 'create', '--yes', '--json'], ctx)).toBe(0);
    expect(JSON.parse(stdout())).toEqual({
      name: 'shop',
      host: 'ssh://ops@203.0.113.11:2222',
      changed: true,
    });
    expect(endpoint('shop')).toBe('ssh://ops@203.0.113.11:2222');
    const again = testCtx({ cwd: ctx.cwd });
    expect(await main(['context', 'create', '--yes', '--json'], again.ctx)).toBe(0);
    expect(JSON.parse(again.stdout()).changed).toBe(false);
  });

  it('points an existing context again when the manager moved; --dry-run shows it and changes nothing', async () => {
    const cwd = cluster('203.0.113.99');
    const dry = testCtx({ cwd });
    expect(await main(['context', 'create', '--dry-run'], dry.ctx)).toBe(0);
    expect(dry.stdout()).toContain(
      'Docker context shop → ssh://ops@203.0.113.99:2222 (was ssh://ops@203.0.113.11:2222)',
    );
    expect(dry.stdout()).toContain('docker context update shop');
    expect(endpoint('shop')).toBe('ssh://ops@203.0.113.11:2222');
    const run = testCtx({ cwd });
    expect(await main(['context', 'create', '--yes'], run.ctx)).toBe(0);
    expect(endpoint('shop')).toBe('ssh://ops@203.0.113.99:2222');
    expect(run.stdout()).toContain('docker --context shop service ls');
  });

  it('a bad name or no terminal without --yes: one line, nothing created', async () => {
    const cwd = cluster('203.0.113.12');
    const bad = testCtx({ cwd });
    expect(await main(['context', 'create', '--name', 'x!', '--yes'], bad.ctx)).toBe(2);
    expect(bad.stderr().split('\n')[0]).toMatch(/^error: --name "x!": a Docker context name/);
    const noTty = testCtx({ cwd });
    expect(await main(['context', 'create', '--name', 'other'], noTty.ctx)).not.toBe(0);
    expect(noTty.stderr()).toMatch(/--yes/);
    expect(() => endpoint('other')).toThrow();
  });
});
