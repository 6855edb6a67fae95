import { UserError } from '../core/errors.js';
import { REDACTED } from '../core/secret.js';
import { formatPath } from './diagnostics.js';
import {
  KEY_DEFS,
  type KeyDef,
  RESOURCE_SERVICES,
  type ResourceService,
  type StackService,
} from './key-defs.js';
import { ConfigError, type Validated, validateConfig } from './load.js';
import { Config, type ConfigInput, LETS_ENCRYPT } from './schema.js';

/**
 * The key layer of `cluster-cli config get|list|set|unset`: a dotted key as
 * the user types it ↔ a place in cluster.yaml. Pure: data in, new data out;
 * every result is checked by the same schema and rules as cluster.yaml, and a
 * bad value is one `key: message` line naming the key the user typed.
 */

export {
  KEY_DEFS,
  type KeyDef,
  keysHelp,
  RESOURCE_SERVICES,
  type StackService,
} from './key-defs.js';

export interface ResolvedKey {
  /** The key as the user typed it: `resources.app.memory`, `app.env.LOG_LEVEL`. */
  readonly key: string;
  readonly def: KeyDef;
  /** Where it lives in cluster.yaml: ['app', 'resources', 'limits', 'memory']. */
  readonly path: readonly string[];
  /** The block written whole when any of it is (see KeyDef.block). */
  readonly block?: readonly string[];
  readonly services: readonly StackService[];
  /** The registry's one line, for this key. */
  readonly description: string;
  /** An environment variable whose name looks like it holds a secret: its value is never shown. */
  readonly secret: boolean;
}

/** How a key and its effective value are shown by get and list. */
export interface KeyView {
  readonly key: string;
  /** The effective value, defaults included; null when there is none; `[REDACTED]` for a secret. */
  readonly value: unknown;
  /** True when cluster.yaml does not set it, so the default (or nothing) applies. */
  readonly default: boolean;
  readonly redacted?: true;
  readonly description: string;
  readonly services: readonly StackService[];
}

const SECRET_NAME = /PASSWORD|SECRET|TOKEN|KEY|PASS|CREDENTIAL/i;

/** An environment variable name that suggests its value is a secret. */
export function looksSecret(name: string): boolean {
  return SECRET_NAME.test(name);
}

export const SECRET_HINT =
  'values of environment variables whose name looks secret are never printed; keep secrets out of cluster.yaml: store them as Docker secrets (docker secret create) and let the app read /run/secrets/<name>';

/** Effective values of keys whose absence means something other than the schema default. */
const EFFECTIVE: Readonly<Record<string, (c: Config) => unknown>> = {
  'ssl.email': (c) => c.email,
  'ssl.directory': () => LETS_ENCRYPT,
};

type PlainObject = Record<string, unknown>;

function isPlainObject(v: unknown): v is PlainObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function matchDef(def: KeyDef, key: string): ResolvedKey | undefined {
  const words = key.split('.');
  const pattern = def.key.split('.');
  let service: ResourceService | undefined;
  let name: string | undefined;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i] as string;
    const w = words[i];
    if (p === '<NAME>') {
      // the rest of the key, dots and all: the schema says what a name may be
      name = words.slice(i).join('.');
      if (!name) return undefined;
      break;
    }
    if (w === undefined) return undefined;
    if (p === '<service>') {
      if (!(RESOURCE_SERVICES as readonly string[]).includes(w)) return undefined;
      service = w as ResourceService;
    } else if (p !== w) return undefined;
    if (i === pattern.length - 1 && words.length !== pattern.length) return undefined;
  }
  const fill = (template: string): string[] =>
    template
      .split('.')
      .map((t) => (t === '<service>' ? (service ?? t) : t === '<NAME>' ? (name ?? t) : t));
  return {
    key,
    def,
    path: fill(def.path),
    ...(def.block ? { block: fill(def.block) } : {}),
    services: def.services.map((s) => (s === '<service>' ? (service as StackService) : s)),
    description: service ? def.description.replaceAll('<service>', service) : def.description,
    secret: name !== undefined && looksSecret(name),
  };
}

function findKey(key: string): ResolvedKey | undefined {
  for (const def of KEY_DEFS) {
    const r = matchDef(def, key);
    if (r) return r;
  }
  return undefined;
}

/** The registry entry for `key`, or a UserError naming the closest keys. */
export function resolveKey(key: string): ResolvedKey {
  const found = findKey(key);
  if (found) return found;
  const close = suggestions(key);
  throw new UserError(
    `Unknown key ${key}${close.length ? `; did you mean ${orList(close)}?` : ''}`,
    'see every key with: cluster-cli config list (and what each means: cluster-cli config set --help)',
  );
}

/** Every key the registry knows, patterns expanded for services; `app.env.<NAME>` kept as a pattern. */
function knownKeys(): { key: string; path: string }[] {
  return KEY_DEFS.flatMap((def) =>
    def.key.includes('<service>')
      ? RESOURCE_SERVICES.map((s) => ({
          key: def.key.replace('<service>', s),
          path: def.path.replace('<service>', s),
        }))
      : [{ key: def.key, path: def.path }],
  );
}

function suggestions(key: string): string[] {
  const known = knownKeys();
  // cluster.yaml's own path, e.g. app.resources.limits.memory → resources.app.memory
  const byPath = known.find((k) => k.path === key && k.key !== key);
  if (byPath) return [byPath.key];
  const typed = key.toLowerCase();
  const scored = known
    .map((k) => ({ key: k.key, d: distance(typed, k.key.toLowerCase()) }))
    .filter((k) => k.d <= Math.max(2, Math.floor(k.key.length / 4)))
    .sort((a, b) => a.d - b.d);
  if (scored.length) return scored.slice(0, 3).map((k) => k.key);
  // the start of a key or a group (`ssl.renew`, `ssl`), else its last word (`replicas`)
  const starts = known.filter((k) => k.key.toLowerCase().startsWith(typed));
  const ends = known.filter((k) => k.key.toLowerCase().endsWith(`.${typed}`));
  return (starts.length ? starts : ends).slice(0, 5).map((k) => k.key);
}

function orList(items: readonly string[]): string {
  if (items.length < 2) return items.join('');
  return `${items.slice(0, -1).join(', ')} or ${items.at(-1)}`;
}

/** Edit distance counting a swap of two neighbours as one edit. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

function getIn(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (!isPlainObject(cur) || !Object.hasOwn(cur, p)) return undefined;
    cur = cur[p];
  }
  return cur;
}

/** A copy of `obj` with `value` at `path`; objects on the way are created, key order kept. */
function setIn(obj: unknown, path: readonly string[], value: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return value;
  const base = isPlainObject(obj) ? obj : {};
  const child = Object.hasOwn(base, head) ? base[head] : undefined;
  return { ...base, [head]: setIn(child, rest, value) };
}

/** A copy of `obj` without `path`; a mapping this leaves empty goes too. Unchanged: `obj` itself. */
function removeIn(obj: PlainObject, path: readonly string[]): PlainObject {
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(obj, head)) return obj;
  const others = Object.fromEntries(Object.entries(obj).filter(([k]) => k !== head));
  if (!rest.length) return others;
  const child = obj[head];
  if (!isPlainObject(child)) return obj;
  const next = removeIn(child, rest);
  if (next === child) return obj;
  return Object.keys(next).length ? { ...obj, [head]: next } : others;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

let defaults: Config | undefined;

/** The schema's defaults (of the parts that do not depend on domain, email or hosts). */
function schemaDefaults(): Config {
  defaults ??= Config.parse({
    domain: 'example.com',
    email: 'admin@example.com',
    hosts: [{ name: 'node1' }],
  });
  return defaults;
}

/** The effective value of `key` in a validated config: what the cluster runs with, defaults included. */
export function getValue(config: Config, key: string): unknown {
  const r = resolveKey(key);
  const value = getIn(config, r.path);
  return value !== undefined ? value : EFFECTIVE[r.def.key]?.(config);
}

/** Whether cluster.yaml (its raw content) sets `key`. */
export function isSet(input: ConfigInput | Partial<ConfigInput>, key: string): boolean {
  return getIn(input, resolveKey(key).path) !== undefined;
}

/** `value`, or `[REDACTED]` when the key holds a secret. */
export function shownValue(key: string, value: unknown): unknown {
  return value !== undefined && value !== null && resolveKey(key).secret ? REDACTED : value;
}

/**
 * The concrete keys of the given configs in registry order: `resources.<service>.*`
 * for every service, `app.env.<NAME>` for every variable any of them sets.
 */
export function concreteKeys(...configs: readonly Config[]): string[] {
  return KEY_DEFS.flatMap((def) => {
    if (def.key.includes('<service>'))
      return RESOURCE_SERVICES.map((s) => def.key.replace('<service>', s));
    const at = def.path.split('.').indexOf('<NAME>');
    if (at === -1) return [def.key];
    const parent = def.path.split('.').slice(0, at);
    const names = new Set(
      configs.flatMap((c) => {
        const m = getIn(c, parent);
        return isPlainObject(m) ? Object.keys(m) : [];
      }),
    );
    return [...names].map((n) => def.key.replace('<NAME>', n));
  });
}

export function viewKey(config: Config, input: ConfigInput, key: string): KeyView {
  const r = resolveKey(key);
  const value = getValue(config, key);
  const redact = r.secret && value !== undefined;
  return {
    key: r.key,
    value: redact ? REDACTED : (value ?? null),
    default: !isSet(input, key),
    ...(redact ? { redacted: true as const } : {}),
    description: r.description,
    services: r.services,
  };
}

/** Every key with its effective value (`config list`). */
export function listKeys(config: Config, input: ConfigInput): KeyView[] {
  return concreteKeys(config).map((k) => viewKey(config, input, k));
}

/** The command-line string as the typed value the schema checks; a string is an error message. */
function parseRaw(r: ResolvedKey, raw: string): { value: unknown } | { error: string } {
  switch (r.def.kind) {
    case 'string':
      return { value: raw };
    case 'int':
      return /^\s*[+-]?\d+\s*$/.test(raw)
        ? { value: Number(raw) }
        : { error: r.def.typeError ?? 'must be a whole number' };
    case 'number':
      return /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/.test(raw)
        ? { value: Number(raw) }
        : { error: r.def.typeError ?? 'must be a number' };
    case 'list':
      return {
        value: raw
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      };
  }
}

function resolveAll(keys: readonly string[]): ResolvedKey[] {
  const resolved = keys.map(resolveKey);
  const seen = new Map<string, string>();
  for (const r of resolved) {
    const where = r.path.join('.');
    const first = seen.get(where);
    if (first !== undefined)
      throw new UserError(
        first === r.key ? `${r.key} is given twice` : `${first} and ${r.key} are the same key`,
        'give each key once',
      );
    seen.set(where, r.key);
  }
  return resolved;
}

/**
 * `input` with each `key=raw` set: a new object (input is not changed),
 * validated as cluster.yaml is. Throws a UserError of one line, each bad key
 * as `key: message`.
 */
export function setValues(
  input: ConfigInput,
  pairs: readonly (readonly [key: string, raw: string])[],
): ConfigInput {
  return setValuesChecked(input, pairs).input;
}

/** setValues, also returning the validated config (and its warnings). */
export function setValuesChecked(
  input: ConfigInput,
  pairs: readonly (readonly [key: string, raw: string])[],
): Validated & { input: ConfigInput } {
  const resolved = resolveAll(pairs.map(([k]) => k));
  const errors: string[] = [];
  let next: unknown = input;
  resolved.forEach((r, i) => {
    const parsed = parseRaw(r, pairs[i]?.[1] ?? '');
    if ('error' in parsed) {
      errors.push(`${r.key}: ${parsed.error}`);
      return;
    }
    if (r.block && getIn(next, r.block) === undefined)
      next = setIn(next, r.block, structuredClone(getIn(schemaDefaults(), r.block)));
    next = setIn(next, r.path, parsed.value);
  });
  if (errors.length) throw new UserError(errors.join('; '));
  return checked(next as ConfigInput, resolved);
}

/**
 * `input` without `keys`, so their defaults apply: a new object, validated.
 * A required key (domain, email) is refused. A field of a block (a service's
 * resources) goes back to its default; the block goes once all of it is.
 */
export function unsetValues(input: ConfigInput, keys: readonly string[]): ConfigInput {
  return unsetValuesChecked(input, keys).input;
}

/** unsetValues, also returning the validated config (and its warnings). */
export function unsetValuesChecked(
  input: ConfigInput,
  keys: readonly string[],
): Validated & { input: ConfigInput } {
  const resolved = resolveAll(keys);
  const required = resolved.find((r) => r.def.required);
  if (required)
    throw new UserError(
      `${required.key} is required: it cannot be unset`,
      `change it instead: cluster-cli config set ${required.key}=<value>`,
    );
  let next = input as PlainObject;
  for (const r of resolved) {
    if (r.block) {
      const block = getIn(next, r.block);
      if (block === undefined) continue;
      const base = getIn(schemaDefaults(), r.block);
      const reset = setIn(block, r.path.slice(r.block.length), getIn(schemaDefaults(), r.path));
      next = sameJson(reset, base)
        ? removeIn(next, r.block)
        : (setIn(next, r.block, reset) as PlainObject);
    } else {
      next = removeIn(next, r.path);
    }
  }
  return checked(next as ConfigInput, resolved);
}

function checked(
  next: ConfigInput,
  touched: readonly ResolvedKey[],
): Validated & { input: ConfigInput } {
  try {
    return { ...validateConfig(next), input: next };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const lines = err.diagnostics.map((d) => {
      const r = touched.find((t) => related(d.path, formatPath(t.path)));
      return `${r ? r.key : d.path}: ${readable(d.message)}`;
    });
    throw new UserError([...new Set(lines)].join('; '));
  }
}

/** A diagnostic's path and a key's path are about the same value (one inside the other). */
function related(diag: string, key: string): boolean {
  return (
    diag === key ||
    key.startsWith(`${diag}.`) ||
    diag.startsWith(`${key}.`) ||
    diag.startsWith(`${key}[`)
  );
}

/** zod's built-in messages (used where the schema gives none) as the schema's own read. */
export function readable(message: string): string {
  const rules: readonly [RegExp, string][] = [
    [/^Too small: expected number to be >=(\S+)$/, 'must be at least $1'],
    [/^Too small: expected number to be >(\S+)$/, 'must be more than $1'],
    [/^Too big: expected number to be <=(\S+)$/, 'must be at most $1'],
    [/^Too big: expected number to be <(\S+)$/, 'must be less than $1'],
    [/^Too small: expected string to have >=1 characters$/, 'must not be empty'],
    [/^Too small: expected string to have >=(\d+) characters$/, 'must have at least $1 characters'],
    [/^Too big: expected string to have <=(\d+) characters$/, 'must have at most $1 characters'],
    [/^Too small: expected array to have >=(\d+) items$/, 'must list at least $1'],
  ];
  for (const [re, out] of rules) if (re.test(message)) return message.replace(re, out);
  return message;
}
