import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { cmd, formatCmd, secretsOf, shellScript, stdinOf } from '../../src/core/cmd.js';
import { CommandError } from '../../src/core/errors.js';
import { scrub, secret } from '../../src/core/secret.js';

describe('commands and secrets', () => {
  const pw = secret('s3cr3t-value');

  it('never prints a secret, whatever the printer', () => {
    expect(String(pw)).toBe('[REDACTED]');
    expect(JSON.stringify({ pw })).toBe('{"pw":"[REDACTED]"}');
    expect(inspect({ pw })).not.toContain('s3cr3t');
    expect(`${pw}`).toBe('[REDACTED]');
  });

  it('refuses a secret as an argv word: secrets travel on stdin only', () => {
    expect(() => cmd(['tool', '--password', pw as unknown as string])).toThrow(
      'a secret cannot be a command-line word: pass it on stdin or in an API request body',
    );
    expect(() => shellScript('echo "$1"', [pw as unknown as string])).toThrow(TypeError);
  });

  it('redacts stdin in plans but hands the real value to executors', () => {
    const c = cmd(['tool', '--password-stdin', 'a b'], { stdin: pw });
    expect(formatCmd(c)).toBe("tool --password-stdin 'a b' < [REDACTED]");
    expect(stdinOf(c)).toBe('s3cr3t-value');
    expect(secretsOf(c)).toEqual([pw]);
  });

  it('passes values to shell scripts as positional parameters, not pasted in', () => {
    const c = shellScript('printf "%s" "$1" | wc -c', ["x'; rm -rf /"]);
    expect(c.argv).toEqual(['sh', '-c', 'printf "%s" "$1" | wc -c', 'sh', "x'; rm -rf /"]);
  });

  it('scrubs secret values out of free text such as stderr', () => {
    expect(scrub('error: bad password s3cr3t-value here', [pw])).toBe(
      'error: bad password [REDACTED] here',
    );
    const e = new CommandError('root@h', ['x'], 3, scrub('tail s3cr3t-value', [pw]));
    expect(e.message).toBe('root@h: command failed (exit 3): x\ntail [REDACTED]');
  });

  it('rejects non-string argv words at build time', () => {
    expect(() => cmd(['a', 1 as unknown as string])).toThrow(TypeError);
  });
});
