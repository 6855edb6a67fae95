import { concreteKeys, getValue, resolveKey, type StackService, shownValue } from './keys.js';
import type { Config } from './schema.js';

/** One key whose effective value differs, for the plan of `config set|unset`. */
export interface ConfigChange {
  readonly key: string;
  /** Effective values (defaults included); null when there is none; `[REDACTED]` for a secret. */
  readonly before: unknown;
  readonly after: unknown;
  /** The stack services the key concerns (display only: the stack renderer decides). */
  readonly services: readonly StackService[];
}

/**
 * The registry's keys whose effective value differs between two validated
 * configs, in registry order. A secret-looking environment variable is listed
 * when it changes, its values redacted. Pure.
 */
export function configChanges(before: Config, after: Config): ConfigChange[] {
  return concreteKeys(before, after).flatMap((key) => {
    const b = getValue(before, key);
    const a = getValue(after, key);
    if (JSON.stringify(a ?? null) === JSON.stringify(b ?? null)) return [];
    return [
      {
        key,
        before: shownValue(key, b) ?? null,
        after: shownValue(key, a) ?? null,
        services: resolveKey(key).services,
      },
    ];
  });
}

/** The stack services any of the changes concern, in stack order. */
export function affectedServices(changes: readonly ConfigChange[]): StackService[] {
  const all = new Set(changes.flatMap((c) => c.services));
  return (['proxy', 'app', 'postgres', 'redis', 'agent', 'backup'] as const).filter((s) =>
    all.has(s),
  );
}
