import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { Secret } from '../core/secret.js';
import { secretNames } from '../stack/model.js';

/**
 * Fresh values for the stack's Docker secrets, generated on this machine.
 * Planners use one only where the secret does not exist yet. base64url: no
 * quote or backslash, which redis.conf would unquote.
 */
export function generateSecrets(config: Pick<Config, 'name' | 'app'>): Record<string, Secret> {
  return Object.fromEntries(
    Object.values(secretNames(config.name, Boolean(config.app.adminEmail))).map((n) => [
      n,
      new Secret(randomBytes(24).toString('base64url'), n),
    ]),
  );
}
