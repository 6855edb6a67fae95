import { readFile, rename, writeFile } from 'node:fs/promises';
import { parseDocument, stringify } from 'yaml';
import { UserError } from '../core/errors.js';
import { type Diagnostic, formatDiagnostics, fromZodIssues } from './diagnostics.js';
import { checkRules } from './rules.js';
import { Config, type ConfigInput } from './schema.js';

export const DEFAULT_CONFIG_FILE = 'cluster.yaml';
export const SCHEMA_URL = 'https://unpkg.com/cluster-cli/schema/cluster.schema.json';

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
  const parsed = Config.safeParse(input);
  if (!parsed.success) throw new ConfigError(file, fromZodIssues(parsed.error.issues));
  const { errors, warnings } = checkRules(parsed.data);
  if (errors.length) throw new ConfigError(file, errors);
  return { config: parsed.data, warnings };
}

export function parseConfigText(text: string, file = DEFAULT_CONFIG_FILE): Validated {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const where = e?.linePos?.[0] ? `line ${e.linePos[0].line}` : '(top level)';
    throw new ConfigError(file, [
      {
        path: where,
        message: ((e?.message ?? 'invalid YAML').split('\n')[0] ?? '').replace(
          / at line \d+, column \d+:?$/,
          '',
        ),
      },
    ]);
  }
  return validateConfig(doc.toJS() ?? {}, file);
}

export async function loadConfig(file = DEFAULT_CONFIG_FILE): Promise<Validated | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return parseConfigText(text, file);
}

/** The YAML text for a config: only what the user set or what differs from defaults stays readable. */
export function configToYaml(input: ConfigInput): string {
  const { $schema: _ignored, ...rest } = input as ConfigInput & { $schema?: string };
  return `# yaml-language-server: $schema=${SCHEMA_URL}\n${stringify(rest, { lineWidth: 0 })}`;
}

/** Atomic write (temp file + rename) so a crash never leaves half a cluster.yaml. */
export async function saveConfig(file: string, input: ConfigInput): Promise<void> {
  validateConfig(input, file);
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, configToYaml(input), { mode: 0o644 });
  await rename(tmp, file);
}
