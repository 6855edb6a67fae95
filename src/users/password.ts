import { randomBytes } from 'node:crypto';
import { EMAIL_RE } from '../config/validators.js';
import { UserError } from '../core/errors.js';
import { Secret } from '../core/secret.js';

export const MIN_PASSWORD_LENGTH = 12;
/** bcrypt (the dashboard hash) reads only the first 72 bytes; a longer password would be cut without a word. */
export const MAX_PASSWORD_BYTES = 72;
export const GENERATED_PASSWORD_LENGTH = 24;

export const USER_NAME_RE = /^[a-z][a-z0-9_.-]{0,31}$/;

/** URL-safe (RFC 4648 base64url alphabet): 64 symbols, so 6 random bits each and no modulo bias. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Throws a one-line UserError when the password breaks the policy. */
export function checkPasswordPolicy(pw: Secret): void {
  const value = pw.reveal();
  // Characters as the user counts them (code points), not UTF-16 units.
  if ([...value].length < MIN_PASSWORD_LENGTH) {
    throw new UserError(`Password too short: ${MIN_PASSWORD_LENGTH} characters at least`);
  }
  if (Buffer.byteLength(value, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new UserError(`Password too long: ${MAX_PASSWORD_BYTES} bytes at most`);
  }
}

/** A random password of `length` URL-safe characters (24: 144 bits). */
export function generatePassword(length = GENERATED_PASSWORD_LENGTH): Secret {
  if (!Number.isInteger(length) || length < MIN_PASSWORD_LENGTH || length > MAX_PASSWORD_BYTES) {
    throw new RangeError(
      `password length ${length} outside ${MIN_PASSWORD_LENGTH}…${MAX_PASSWORD_BYTES}`,
    );
  }
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += ALPHABET[b & 63];
  return new Secret(out, 'password');
}

/** The name, or a UserError saying what a user name may be. */
export function validateUserName(name: string): string {
  if (!USER_NAME_RE.test(name)) {
    throw new UserError(
      `Invalid user name ${JSON.stringify(name)}: a lower-case letter, then up to 31 of a-z 0-9 _ . -`,
    );
  }
  return name;
}

/** The address as typed (case kept; uniqueness ignores case), or a UserError. */
export function validateEmail(email: string): string {
  if (!EMAIL_RE.test(email)) {
    throw new UserError(`Invalid email address ${JSON.stringify(email)}`);
  }
  return email;
}
