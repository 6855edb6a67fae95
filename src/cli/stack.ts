import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { UserError } from '../core/errors.js';
import { buildStackModel } from '../stack/model.js';
import { renderStack } from '../stack/render.js';
import type { Ctx } from './context.js';

export interface StackRenderOpts {
  config: string;
  out?: string;
  json?: boolean;
}

/** `stack render`: cluster.yaml → stack YAML, no host touched. */
export async function runStackRender(opts: StackRenderOpts, ctx: Ctx): Promise<void> {
  const file = resolve(ctx.cwd, opts.config);
  const loaded = await loadConfig(file, opts.config);
  if (!loaded) throw new UserError(`${opts.config} not found.`, 'create it with: cluster-cli init');
  const model = buildStackModel(loaded.config);
  const rendered = renderStack(model);
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify({ yaml: rendered.yaml, configs: rendered.configs }, null, 2)}\n`,
    );
    return;
  }
  if (!opts.out) {
    ctx.stdout.write(rendered.yaml);
    return;
  }
  const out = resolve(ctx.cwd, opts.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, rendered.yaml);
  ctx.stdout.write(`wrote ${opts.out}\n`);
  for (const c of rendered.configs) {
    const path = join(dirname(out), c.name);
    await writeFile(path, c.content);
    ctx.stdout.write(`wrote ${join(dirname(opts.out), c.name)} (Docker config for ${c.target})\n`);
  }
}
