import { describe, expect, it } from 'vitest';
import { preflight } from '../../src/cluster/preflight.js';
import { formatPreflight } from '../../src/ui/preflight.js';
import { freshDebianHost, managerOf } from '../helpers/facts.js';

describe('preflight', () => {
  it('passes a fresh host meeting the seed minimums, as a table', async () => {
    const r = preflight(freshDebianHost(), { force: false, stack: 'platform' });
    expect(r.blocking).toEqual([]);
    await expect(formatPreflight(r)).toMatchFileSnapshot('./__snapshots__/preflight-fresh.txt');
  });

  it('refuses a host below the minimums unless --force', () => {
    const small = freshDebianHost({
      cpus: 1,
      memKb: 1_000_000,
      disk: { path: '/var/lib', totalKb: 20_000_000, availKb: 1 },
    });
    const r = preflight(small, { force: false, stack: 'platform' });
    expect(r.blocking.map((b) => b.check)).toEqual(['CPU', 'Memory', 'Disk (/var/lib)']);
    expect(preflight(small, { force: true, stack: 'platform' }).blocking).toEqual([]);
  });

  it('flags ports taken by something else, but not the ones our own swarm and proxy hold', () => {
    const busy = freshDebianHost({ listening: { tcp: [22, 80, 2377], udp: [4789] } });
    const r = preflight(busy, { force: false, stack: 'platform' });
    expect(r.blocking.map((b) => b.value)).toEqual(['in use: 80/tcp, 2377/tcp, 4789/udp']);

    const ours = managerOf({
      services: [{ name: 'platform_proxy', revision: 'x', constraints: [] }],
    });
    expect(preflight(ours, { force: false, stack: 'platform' }).blocking).toEqual([]);
    // the swarm's ports are ours, but 80/443 belong to someone else when our proxy isn't deployed
    expect(
      preflight(managerOf({}), { force: false, stack: 'platform' }).blocking.map((b) => b.value),
    ).toEqual(['in use: 80/tcp, 443/tcp']);
  });

  it('a worker of another swarm is a hard failure that --force does not lift', () => {
    const worker = freshDebianHost({ swarm: { state: 'active', isManager: false, nodeId: 'w' } });
    const r = preflight(worker, { force: true, stack: 'platform' });
    expect(r.blocking.map((b) => `${b.check}: ${b.value}`)).toEqual([
      'Swarm: worker node of another swarm',
    ]);
  });

  it('a missing Docker is planned, not refused, on a supported OS', () => {
    const r = preflight(
      freshDebianHost({
        docker: { installed: false },
        swarm: { state: 'unknown', isManager: false },
      }),
      {
        force: false,
        stack: 'platform',
      },
    );
    expect(r.blocking).toEqual([]);
    expect(r.rows.find((x) => x.check === 'Docker')).toMatchObject({
      value: 'not installed',
      status: 'warn',
    });
  });
});
