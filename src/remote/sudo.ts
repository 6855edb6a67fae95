import { UserError } from '../core/errors.js';

/**
 * `sudo -n` fails at once when the user's sudo wants a password. That is never
 * the fact a probe looks for, so it is one clear error wherever it happens.
 */
export function refuseSudoPassword(label: string, usesSudo: boolean, stderr: string): void {
  if (!usesSudo) return;
  if (/^sudo: (a password is required|a terminal is required|.*may not run sudo)/m.test(stderr)) {
    throw new UserError(
      `${label}: sudo asks for a password; cluster-cli needs passwordless sudo for a non-root user.`,
      `log in as root, or give the user NOPASSWD sudo: echo '<user> ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/<user>`,
    );
  }
}
