import type { ConfigChange } from '../config/diff.js';
import type { KeyView } from '../config/keys.js';
import { formatTable } from './table.js';

/**
 * A key's value as text, the way `config set` takes it back: a list
 * comma-separated, nothing at all for no value.
 */
export function formatConfigValue(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map(formatConfigValue).join(',');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

const cell = (value: unknown) => formatConfigValue(value) || '-';

/** `config list`: key, value, where it comes from, what it is. */
export function formatConfigList(views: readonly KeyView[], file: string): string {
  return formatTable(
    ['KEY', 'VALUE', 'FROM', 'DESCRIPTION'],
    views.map((v) => [v.key, cell(v.value), v.default ? 'default' : file, v.description]),
  );
}

/** The changes of `config set|unset`, before → after, with the services they concern. */
export function formatConfigChanges(changes: readonly ConfigChange[], file: string): string {
  if (!changes.length) return `No change: ${file} already says so.`;
  return formatTable(
    ['KEY', 'BEFORE', 'AFTER', 'SERVICES'],
    changes.map((c) => [c.key, cell(c.before), cell(c.after), c.services.join(',')]),
  );
}
