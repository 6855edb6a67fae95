import { describe, expect, it } from 'vitest';
import { type PortNeed, probePorts } from '../../src/cluster/ports.js';
import type { Cmd } from '../../src/core/cmd.js';
import type { Executor, RunResult } from '../../src/core/executor.js';

/**
 * A recorded host (a fake executor): a lost SYN cannot be produced on demand
 * by a real network, so the answers of the port check script are scripted.
 */
function host(answers: string[][]): Executor & { asked: string[][] } {
  const asked: string[][] = [];
  return {
    label: 'root@10.0.0.4',
    asked,
    async run(c: Cmd): Promise<RunResult> {
      const targets = c.argv.slice(5); // sh -c SCRIPT sh TIMEOUT targets...
      asked.push(targets);
      const next = answers.shift() ?? [];
      return { stdout: next.join('\n'), stderr: '', exitCode: 0 };
    },
    async stream() {
      throw new Error('not used');
    },
    async close() {},
  };
}

const needs: PortNeed[] = [
  { to: 'node1', addr: '10.0.0.1', port: 2377, what: 'swarm management' },
  { to: 'node2', addr: '10.0.0.2', port: 7946, what: 'node gossip' },
  { to: 'node3', addr: '10.0.0.3', port: 7946, what: 'node gossip' },
];

describe('port checks', () => {
  it('a port that gave no answer is asked once more; only a second silence counts', async () => {
    const h = host([
      ['10.0.0.1:2377 timeout', '10.0.0.2:7946 ok', '10.0.0.3:7946 timeout'],
      ['10.0.0.1:2377 ok', '10.0.0.3:7946 timeout'],
    ]);
    const r = await probePorts(h, 'node4', needs);
    expect(h.asked).toEqual([
      ['10.0.0.1:2377', '10.0.0.2:7946', '10.0.0.3:7946'],
      ['10.0.0.1:2377', '10.0.0.3:7946'],
    ]);
    expect(r.map((x) => `${x.to} ${x.result}`)).toEqual(['node1 ok', 'node2 ok', 'node3 timeout']);
    expect(r.every((x) => x.from === 'node4')).toBe(true);
  });

  it('a refused port is an answer: not asked again', async () => {
    const h = host([['10.0.0.1:2377 refused', '10.0.0.2:7946 ok', '10.0.0.3:7946 ok']]);
    const r = await probePorts(h, 'node4', needs);
    expect(h.asked).toHaveLength(1);
    expect(r[0]?.result).toBe('refused');
  });
});
