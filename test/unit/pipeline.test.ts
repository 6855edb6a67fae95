import { describe, expect, it } from 'vitest';
import type { Ctx } from '../../src/cli/context.js';
import { runPipeline } from '../../src/cli/pipeline.js';
import type { ApplyReport } from '../../src/core/apply.js';
import { cmd } from '../../src/core/cmd.js';
import { CommandError } from '../../src/core/errors.js';
import { change, type Plan } from '../../src/core/plan.js';
import type { HostSession } from '../../src/core/session.js';

/** The shared runner with a scripted host (what it runs is apply's business; here: the story's order). */
function harness(fail: boolean) {
  const out: string[] = [];
  const events: string[] = [];
  const session: HostSession = {
    exec: {
      label: 'h',
      async run(c) {
        events.push(`run ${c.argv.join(' ')}`);
        if (fail) throw new CommandError('h', [...c.argv], 1, 'boom');
        return { stdout: '', stderr: '', exitCode: 0 };
      },
      stream: () => Promise.reject(new Error('no streams')),
      close: async () => {},
    },
    docker: () => {
      throw new Error('no api');
    },
    close: async () => {},
  };
  const ctx = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: () => {} },
    env: {},
    cwd: '/',
    interactive: false,
    tty: false,
    prompts: {} as Ctx['prompts'],
  } as Ctx;
  const plan: Plan = { title: 'p', steps: [change('a', 'h', 'do a', [cmd(['a'])])] };
  const op = {
    name: 'test',
    plan,
    sessions: new Map([['h', session]]),
    beforeApply: async () => {
      events.push('beforeApply');
    },
    converge: async () => {
      events.push('converge');
      return 'ok';
    },
    save: async (r: ApplyReport | undefined) => {
      events.push(r ? 'save(report)' : 'save(undefined)');
    },
    summary: () => ({ text: 'summary\n', json: { done: true } }),
  };
  return { ctx, op, out, events };
}

describe('runPipeline', () => {
  it('dry run: prints the plan and runs nothing', async () => {
    const h = harness(false);
    const o = await runPipeline(h.ctx, { dryRun: true }, h.op);
    expect(o.dryRun).toBe(true);
    expect(h.events).toEqual([]);
    expect(h.out.join('')).toContain('Dry run: nothing was changed.');
  });

  it('without --yes and without a terminal it refuses before anything runs', async () => {
    const h = harness(false);
    await expect(runPipeline(h.ctx, {}, h.op)).rejects.toThrow(
      'test would make 1 change(s) on h; refusing without confirmation (no terminal to ask on).',
    );
    expect(h.events).toEqual([]);
  });

  it('apply, converge, save, summary: in that order', async () => {
    const h = harness(false);
    const o = await runPipeline(h.ctx, { yes: true }, h.op);
    expect(h.events).toEqual(['beforeApply', 'run a', 'converge', 'save(report)']);
    expect(o.converged).toBe('ok');
    expect(h.out.at(-1)).toBe('summary\n');
  });

  it('a failed apply still lets the command record what it safely can, then fails with its error', async () => {
    const h = harness(true);
    await expect(runPipeline(h.ctx, { yes: true }, h.op)).rejects.toBeInstanceOf(CommandError);
    expect(h.events).toEqual(['beforeApply', 'run a', 'save(undefined)']);
  });
});
