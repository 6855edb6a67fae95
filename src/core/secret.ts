import { inspect } from 'node:util';

export const REDACTED = '[REDACTED]';

/**
 * A value that must never be printed. Every printer (plans, errors, logs, JSON)
 * sees `[REDACTED]`; only the executor calls `reveal()` when it hands the value
 * to a process, and then only through stdin or argv of a builder that allows it.
 */
export class Secret {
  readonly #value: string;
  constructor(
    value: string,
    readonly label = 'secret',
  ) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

export function secret(value: string, label?: string): Secret {
  return new Secret(value, label);
}

export function isSecret(value: unknown): value is Secret {
  return value instanceof Secret;
}

/** Replace every occurrence of the given secrets' values in free text (stderr tails, logs). */
export function scrub(text: string, secrets: Iterable<Secret>): string {
  let out = text;
  for (const s of secrets) {
    const v = s.reveal();
    if (v.length >= 4) out = out.split(v).join(REDACTED);
  }
  return out;
}
