import { readFile, rename, writeFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { UserError } from '../core/errors.js';
import { type Diagnostic, formatDiagnostics, fromZodIssues } from './diagnostics.js';
import { editConfigText } from './edit.js';
import { checkRules } from './rules.js';
import { Config, type ConfigInput } from './schema.js';

export const DEFAULT_CONFIG_FILE = 'cluster.yaml';
export const SCHEMA_URL = 'https://unpkg.com/cluster-cli/schema/cluster.schema.json';
const SCHEMA_HEADER = `# yaml-language-server: $schema=${SCHEMA_URL}`;

export interface Validated {
  readonly config: Config;
  readonly warnings: Diagnostic[];
}

export class ConfigError extends UserError {
  constructor(
    readonly file: string,
    readonly diagnostics: Diagnostic[],
  ) {
    super(
      `${file} is not valid:\n${formatDiagnostics(diagnostics)}`,
      `fix ${file} and run the command again`,
    );
  }
}

/** Schema, then rules. Throws ConfigError listing every `path: message`. */
export function validateConfig(input: unknown, file = DEFAULT_CONFIG_FILE): Validated {
  const parsed = Config.safeParse(input, { reportInput: true });
  if (!parsed.success) throw new ConfigError(file, fromZodIssues(parsed.error.issues));
  const { errors, warnings } = checkRules(parsed.data);
  if (errors.length) throw new ConfigError(file, errors);
  return { config: parsed.data, warnings };
}

/**
 * cluster.yaml's text as a raw, not yet validated mapping (init fills in what
 * is missing before validating). YAML errors come with their line number.
 */
export function parseConfigYaml(text: string, file = DEFAULT_CONFIG_FILE): Partial<ConfigInput> {
  const doc = parseDocument(text, { prettyErrors: true });
  const e = doc.errors[0];
  if (e) {
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}` : '(top level)';
    const message = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(file, [{ path: where, message }]);
  }
  const raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [
      { path: '(top level)', message: 'must be a mapping of keys to values' },
    ]);
  }
  return raw as Partial<ConfigInput>;
}

export function parseConfigText(text: string, file = DEFAULT_CONFIG_FILE): Validated {
  return validateConfig(parseConfigYaml(text, file), file);
}

/** The file's raw content, or undefined when it does not exist. `label` names it in errors. */
export async function readConfigInput(
  file = DEFAULT_CONFIG_FILE,
  label = file,
): Promise<Partial<ConfigInput> | undefined> {
  const text = await readTextIfExists(file);
  return text === undefined ? undefined : parseConfigYaml(text, label);
}

async function readTextIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function loadConfig(
  file = DEFAULT_CONFIG_FILE,
  label = file,
): Promise<Validated | undefined> {
  const raw = await readConfigInput(file, label);
  return raw === undefined ? undefined : validateConfig(raw, label);
}

function withoutSchemaKey(input: ConfigInput): Omit<ConfigInput, '$schema'> {
  const { $schema: _ignored, ...rest } = input;
  return rest;
}

/** The YAML text for a new cluster.yaml: the schema hint for editors, then the config. */
export function configToYaml(input: ConfigInput): string {
  return editConfigText(undefined, withoutSchemaKey(input), SCHEMA_HEADER);
}

/**
 * Writes `input` to `file`. An existing file is edited in place, so the user's
 * comments, key order and formatting stay (its `$schema` key, if any, is kept
 * as it is); a new one is written as configToYaml does. Atomic (temp file +
 * rename) so a crash never leaves half a cluster.yaml.
 */
export async function saveConfig(file: string, input: ConfigInput): Promise<void> {
  validateConfig(input, file);
  const existing = await readTextIfExists(file);
  const next: Record<string, unknown> = withoutSchemaKey(input);
  if (existing !== undefined) {
    // Also reports a file broken since it was read as `path: message`, with its line.
    const current: Record<string, unknown> = parseConfigYaml(existing, file);
    if (current.$schema !== undefined) next.$schema = current.$schema;
  }
  const text = editConfigText(existing, next, SCHEMA_HEADER);
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o644 });
  await rename(tmp, file);
}
