import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { daemonTime } from '../cluster/converge.js';
import type { Diagnostic } from '../config/diagnostics.js';
import { type ConfigChange, configChanges } from '../config/diff.js';
import { editConfigText } from '../config/edit.js';
import {
  listKeys,
  resolveKey,
  SECRET_HINT,
  setValuesChecked,
  unsetValuesChecked,
  viewKey,
} from '../config/keys.js';
import { parseConfigYaml, validateConfig } from '../config/load.js';
import type { Config, ConfigInput } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { changesOf } from '../core/plan.js';
import { configServiceNames, hasAgent } from '../stack/model.js';
import { formatConfigChanges, formatConfigList, formatConfigValue } from '../ui/config-view.js';
import { parseTimeoutFlag } from './ask.js';
import { cronSteps } from './backup.js';
import { cfgFlag, openCluster, stackStepsFor } from './cluster.js';
import type { SshFlags } from './connect.js';
import type { Ctx } from './context.js';
import { converge } from './converge-progress.js';
import { closeAll, type PipelineFlags, runPipeline } from './pipeline.js';

/**
 * `config get|list` (read-only: cluster.yaml alone, no host) and the file
 * half of `config set|unset`: parse the arguments, apply them to cluster.yaml's
 * content, validate, and render the new text with comments kept, without
 * writing it. Writing, the plan and updating the services belong to the
 * shared pipeline.
 */

export interface ConfigReadOpts {
  config: string;
  json?: boolean;
}

export interface ConfigEditOpts extends SshFlags, PipelineFlags {
  config: string;
  timeout?: string;
  force?: boolean;
}

interface ConfigFile {
  /** Absolute path, and the name the user gave it. */
  readonly file: string;
  readonly configArg: string;
  readonly text: string;
  readonly input: ConfigInput;
  readonly config: Config;
  readonly warnings: Diagnostic[];
}

async function readConfigFile(ctx: Pick<Ctx, 'cwd'>, configArg: string): Promise<ConfigFile> {
  const file = resolve(ctx.cwd, configArg);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    throw new UserError(
      `No cluster description at ${configArg}.`,
      'create the cluster first with cluster-cli init (it writes cluster.yaml), or pass -c <file>',
    );
  }
  const input = parseConfigYaml(text, configArg) as ConfigInput;
  const { config, warnings } = validateConfig(input, configArg);
  return { file, configArg, text, input, config, warnings };
}

/** `config get <key>`: the effective value; `--json`: `{key, value, default}`. */
export async function runConfigGet(
  key: string,
  opts: ConfigReadOpts,
  ctx: Pick<Ctx, 'cwd' | 'stdout' | 'stderr'>,
): Promise<void> {
  resolveKey(key);
  const { input, config } = await readConfigFile(ctx, opts.config);
  const view = viewKey(config, input, key);
  if (opts.json) {
    const { key: k, value, default: isDefault, redacted } = view;
    ctx.stdout.write(
      `${JSON.stringify({ key: k, value, default: isDefault, ...(redacted ? { redacted } : {}) }, null, 2)}\n`,
    );
    return;
  }
  // stdout holds the value alone, for $(cluster-cli config get …); notes go to stderr
  if (view.value === null) ctx.stderr.write(`${key} is not set\n`);
  else ctx.stdout.write(`${formatConfigValue(view.value)}\n`);
  if (view.redacted) ctx.stderr.write(`note: ${SECRET_HINT}\n`);
}

/** `config list`: every key, its effective value and whether it is the default. */
export async function runConfigList(
  opts: ConfigReadOpts,
  ctx: Pick<Ctx, 'cwd' | 'stdout'>,
): Promise<void> {
  const { input, config, configArg } = await readConfigFile(ctx, opts.config);
  const views = listKeys(config, input);
  if (opts.json) {
    ctx.stdout.write(
      `${JSON.stringify(
        views.map(({ key, value, default: isDefault, redacted, description }) => ({
          key,
          value,
          default: isDefault,
          ...(redacted ? { redacted } : {}),
          description,
        })),
        null,
        2,
      )}\n`,
    );
    return;
  }
  const note = views.some((v) => v.redacted) ? `\n\n[REDACTED]: ${SECRET_HINT}` : '';
  ctx.stdout.write(`${formatConfigList(views, configArg)}${note}\n`);
}

const SET_EXAMPLE =
  'cluster-cli config set app.replicas=3 (or: cluster-cli config set app.replicas 3)';

/**
 * `config set` operands: `key value` (exactly two words, the first without
 * `=`) or any number of `key=value` (split at the first `=`: a value may hold more).
 */
export function parseSetArgs(args: readonly string[]): [key: string, raw: string][] {
  const [first, second] = args;
  if (args.length === 2 && first !== undefined && second !== undefined && !first.includes('='))
    return [[first, second]];
  if (!args.length) throw new UserError('config set needs a key and a value', SET_EXAMPLE);
  return args.map((a) => {
    const at = a.indexOf('=');
    if (at <= 0) throw new UserError(`config set: ${a} is not key=value`, SET_EXAMPLE);
    return [a.slice(0, at), a.slice(at + 1)];
  });
}

export type ConfigEditRequest = { readonly config: string } & (
  | { readonly pairs: readonly (readonly [key: string, raw: string])[] }
  | { readonly keys: readonly string[] }
);

/** cluster.yaml before and after a `config set|unset`, not yet written. */
export interface ConfigEdit {
  /** Absolute path, and the name the user gave it. */
  readonly file: string;
  readonly configArg: string;
  readonly beforeText: string;
  /** The new text, comments and formatting kept; the same string when nothing changed. */
  readonly afterText: string;
  readonly beforeInput: ConfigInput;
  readonly afterInput: ConfigInput;
  readonly before: Config;
  readonly after: Config;
  /** Keys whose effective value changed (empty: the cluster would run the same). */
  readonly changes: ConfigChange[];
  /** Rule warnings the edit brings (not those the file had already), and secret-looking values set. */
  readonly warnings: Diagnostic[];
}

/**
 * Reads cluster.yaml, applies the keys, validates the result with the schema
 * and rules, and renders the new text with editConfigText. Writes nothing: a
 * bad key or value throws a one-line UserError and the file stays as it was.
 */
export async function prepareConfigEdit(
  ctx: Pick<Ctx, 'cwd'>,
  req: ConfigEditRequest,
): Promise<ConfigEdit> {
  // an unknown key is reported before the file is read
  const keys = 'pairs' in req ? req.pairs.map(([k]) => k) : req.keys;
  for (const k of keys) resolveKey(k);
  const current = await readConfigFile(ctx, req.config);
  if (keys.some((k) => k.startsWith('backup.')) && !current.input.backup)
    throw new UserError(
      `Backups are not set up in ${current.configArg}: backup.* keys change an existing setup.`,
      'cluster-cli backup setup --s3-endpoint https://s3.example.com --s3-bucket backups --schedule "0 3 * * *"',
    );
  const next =
    'pairs' in req
      ? setValuesChecked(current.input, req.pairs)
      : unsetValuesChecked(current.input, req.keys);
  const same = JSON.stringify(next.input) === JSON.stringify(current.input);
  const had = new Set(current.warnings.map((w) => `${w.path}: ${w.message}`));
  const secrets: Diagnostic[] =
    'pairs' in req
      ? req.pairs
          .map(([k]) => resolveKey(k))
          .filter((r) => r.secret)
          .map((r) => ({
            path: r.key,
            message:
              'looks like a secret, and cluster.yaml is plain text: prefer a Docker secret (docker secret create) the app reads from /run/secrets/',
          }))
      : [];
  return {
    file: current.file,
    configArg: current.configArg,
    beforeText: current.text,
    afterText: same ? current.text : editConfigText(current.text, next.input),
    beforeInput: current.input,
    afterInput: next.input,
    before: current.config,
    after: next.config,
    changes: configChanges(current.config, next.config),
    warnings: [...next.warnings.filter((w) => !had.has(`${w.path}: ${w.message}`)), ...secrets],
  };
}

/** `config set key=value…`: edit cluster.yaml, then update just the services the change shapes. */
export async function configSet(
  ctx: Ctx,
  opts: ConfigEditOpts,
  pairs: readonly (readonly [key: string, raw: string])[],
): Promise<void> {
  const edit = await prepareConfigEdit(ctx, { config: opts.config, pairs });
  await applyConfigEdit(ctx, opts, edit, 'set');
}

/** `config unset key…`: as configSet, back to the defaults. */
export async function configUnset(
  ctx: Ctx,
  opts: ConfigEditOpts,
  keys: readonly string[],
): Promise<void> {
  const edit = await prepareConfigEdit(ctx, { config: opts.config, keys });
  await applyConfigEdit(ctx, opts, edit, 'unset');
}

/**
 * The shared pipeline for an edit: the plan is the stack's steps for the
 * edited file (so only services whose revision changes are updated; a
 * re-run after a failed update plans it again), cluster.yaml is written
 * once the changes were applied, and nothing at all on --dry-run or a
 * refusal.
 */
async function applyConfigEdit(
  ctx: Ctx,
  opts: ConfigEditOpts,
  edit: ConfigEdit,
  verb: 'set' | 'unset',
): Promise<void> {
  const timeoutS = parseTimeoutFlag(opts.timeout);
  const out = (t: string) => {
    if (!opts.json) ctx.stdout.write(t);
  };
  const h = await openCluster(ctx, opts);
  const manager = h.manager.session;
  const sessions = new Map([[manager.exec.label, manager]]);
  try {
    const stack = stackStepsFor(h, edit.after, Boolean(opts.force));
    for (const w of stack.warnings) out(`warning: ${w}\n`);
    for (const w of edit.warnings) out(`warning: ${w.path}: ${w.message}\n`);
    const fileChanges = edit.afterText !== edit.beforeText;
    // A new schedule or retention reaches the job through each manager's cron script.
    const cron =
      edit.after.backup && edit.changes.some((c) => c.key.startsWith('backup.'))
        ? await cronSteps(ctx, h, edit.after, opts, sessions)
        : [];
    const plan = {
      title: `config ${verb} on ${h.config.name}`,
      steps: [...stack.steps, ...cron],
    };
    let since: Date | undefined;
    let written = false;
    const outcome = await runPipeline(ctx, opts, {
      name: `config ${verb}`,
      plan,
      sessions,
      preamble: {
        text: formatConfigChanges(edit.changes, edit.configArg),
        json: { changes: edit.changes },
      },
      async beforeApply() {
        if (stack.deploys) since = await daemonTime(manager.docker()).catch(() => undefined);
      },
      async converge(mode) {
        if (!stack.deploys) return undefined;
        return converge(manager.docker(), ctx.stdout, mode, {
          stack: edit.after.name,
          services: configServiceNames(edit.after),
          timeoutMs: (timeoutS ?? edit.after.deploy.timeout) * 1000,
          ...(since ? { since } : {}),
        });
      },
      async save(report) {
        // Only once the changes went through: a failed apply leaves the file as it was.
        if (!fileChanges || !report || report.failed.size) return;
        await writeFile(edit.file, edit.afterText);
        written = true;
      },
      summary(o) {
        const updated = changesOf(plan).map((s) => s.title);
        const tls = edit.changes.some(
          (c) =>
            c.key === 'domain' ||
            c.key.startsWith('ssl.') ||
            c.key === 'app.domains' ||
            c.key === 'proxy.dashboard',
        );
        const lines = [
          '',
          written
            ? `Wrote ${edit.configArg} (${edit.changes.length} key(s) changed).`
            : fileChanges
              ? `${edit.configArg} not written.`
              : `${edit.configArg} already says so.`,
          updated.length
            ? `Updated: ${updated.join('; ')}`
            : 'The cluster already runs this configuration.',
          ...(tls && hasAgent(edit.after)
            ? [`The certificate must cover the new names: cluster-cli ssl renew${cfgFlag(opts)}`]
            : []),
          '',
        ];
        return {
          text: lines.join('\n'),
          json: { changes: edit.changes, written, updated, services: o.converged },
        };
      },
    });
    if (outcome.dryRun) return;
  } finally {
    await closeAll(sessions.values());
  }
}
