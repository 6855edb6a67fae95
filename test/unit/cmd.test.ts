import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { cmd, formatCmd, redactArgv, revealArgv, shellScript } from '../../src/core/cmd.js';
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

  it('redacts argv and stdin in plans but hands the real value to executors', () => {
    const c = cmd(['tool', '--password', pw, 'a b'], { stdin: pw });
    expect(redactArgv(c)).toEqual(['tool', '--password', '[REDACTED]', 'a b']);
    expect(formatCmd(c)).toBe("tool --password [REDACTED] 'a b' < [REDACTED]");
    expect(revealArgv(c)).toEqual(['tool', '--password', 's3cr3t-value', 'a b']);
  });

  it('passes values to shell scripts as positional parameters, not pasted in', () => {
    const c = shellScript('printf "%s" "$1" | wc -c', ["x'; rm -rf /"]);
    expect(c.argv).toEqual(['sh', '-c', 'printf "%s" "$1" | wc -c', 'sh', "x'; rm -rf /"]);
  });

  it('scrubs secret values out of free text such as stderr', () => {
    expect(scrub('error: bad password s3cr3t-value here', [pw])).toBe(
      'error: bad password [REDACTED] here',
    );
    const e = new CommandError('root@h', redactArgv(cmd(['x', pw])), 3, 'tail');
    expect(e.message).toBe('root@h: command failed (exit 3): x [REDACTED]\ntail');
  });

  it('rejects non-string argv words at build time', () => {
    expect(() => cmd(['a', 1 as unknown as string])).toThrow(TypeError);
  });
});
