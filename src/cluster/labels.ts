import { NODE_LABEL_KEY, NODE_LABEL_VALUE } from '../config/validators.js';
import { UserError } from '../core/errors.js';

const KEY_HINT = 'keys are lower-case letters, digits, . _ - (starting with a letter)';

/** `--label db=primary` words → a label map; any bad word is a UserError naming it. */
export function parseLabelArgs(words: readonly string[], flag = '--label'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq <= 0)
      throw new UserError(`${flag} ${JSON.stringify(w)}: must be key=value, e.g. db=primary`);
    const key = w.slice(0, eq);
    const value = w.slice(eq + 1);
    if (!NODE_LABEL_KEY.test(key))
      throw new UserError(
        `${flag} ${JSON.stringify(w)}: bad key ${JSON.stringify(key)}; ${KEY_HINT}`,
      );
    if (!NODE_LABEL_VALUE.test(value))
      throw new UserError(
        `${flag} ${JSON.stringify(w)}: bad value ${JSON.stringify(value)}; values are letters, digits, . _ - (one = only, between key and value)`,
      );
    if (key in out && out[key] !== value)
      throw new UserError(`${flag}: ${key} is given twice with different values`);
    out[key] = value;
  }
  return out;
}

/** `--remove key` words, checked like label keys. */
export function parseLabelKeys(words: readonly string[], flag = '--remove'): string[] {
  for (const k of words) {
    if (!NODE_LABEL_KEY.test(k))
      throw new UserError(`${flag} ${JSON.stringify(k)}: bad label key; ${KEY_HINT}`);
  }
  return [...new Set(words)];
}
